"""The data dictionary, `docs/schema.md`, rendered from the code's own table definitions.

`python -m bear.cli.schema_doc > docs/schema.md` writes it; a test fails when the checked-in page and
`render()` differ, so the page cannot drift from bear.schemas (columns, types, nullability, keys,
partitioning, mess targets) or from the mess levels in conf/mess/.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from omegaconf import OmegaConf

from bear.config.load import conf_dir
from bear.core.schemas import (
    ADVANCED_MESS,
    DAILY,
    LINKS,
    NULL_COLUMNS,
    PARTITION_KEY,
    PRIMARY_KEY,
    SCHEMAS,
    STYLE_COLUMNS,
    TABLES,
    TRANSACTIONS,
    columns,
)
from bear.core.vocab import MESS_LEVELS

HEADER = """\
# Data dictionary

Generated from `bear/core/schemas.py` by `python -m bear.cli.schema_doc > docs/schema.md`;
`tests/test_schema_doc.py` fails when this page and the code differ. The column names are the bronze
contract v1 the raw zone's consumer reads: adding a nullable column keeps v1, renaming, removing or
retyping one breaks it.

## Layout and reading

- `<lake>/<table>/<key>=<value>/part-NNNNN.parquet`, with `_MANIFEST.json` (files, rows, md5, mess counts) and
  `_SUCCESS` (the partition is committed) beside them. Every day of the run has a partition in every transactional
  table and in customer_changes, empty days included (a manifest without files).
- The partition column is also a column inside every file, with the path's value: a file read alone has it, and
  hive-aware readers (DuckDB `hive_partitioning=true`, Spark) see one column. With pyarrow datasets, read without
  partition discovery, `ds.dataset("lake/orders", format="parquet")`, or give the partition schema.
- DuckDB: `read_parquet('lake/<table>/<key>=*/part-*.parquet', union_by_name=true, hive_partitioning=true)`.
- Types: money is `decimal(12,2)` stored as INT64; times are `timestamp[us]` (UTC, no zone); dates are `date32`.
  Integer, date, time and money columns are DELTA_BINARY_PACKED, `event_id` DELTA_BYTE_ARRAY (Spark >= 3.3,
  Trino, DuckDB, Polars and pyarrow read both). A column that is not nullable is Parquet REQUIRED.
- Lineage on every row of every table (never null): `batch_id`, `ingestion_ts`, `event_id`, `source_file`.

## History: append-only, extensible

No committed row depends on `run.end`: a later `run.end` on the same lake appends the new days' partitions (new
signups, carts, orders, returns of earlier orders that fall in them, customer changes) and never rewrites a
committed file, so the lake always equals a fresh run over its range. Facts that change after a row was written
are therefore not updated in place:

- `customers` holds each customer as they signed up (`loyalty_tier` = `initial_loyalty_tier`, `clv_bucket` Low),
  in the partition of their signup day. Customers who signed up before `run.start` are written with the first
  commit; later ones with the chunk their signup day falls in. `generator.customers` customers sign up between
  `generator.customer.signup_start` and `signup_end`; after `signup_end` they keep arriving at the same daily rate
  for as long as the run goes on, so the lake holds every customer who signed up by `run.end`.
- `customer_changes` holds every later change of a customer's loyalty tier or CLV bucket as a dated row
  (`valid_from`, the new values, what changed, the order that earned it). For an SCD2 dimension, a customer's
  versions are their `customers` row (valid from `signup_date`) followed by their `customer_changes` rows in
  `valid_from` order; each version is valid until the next one's `valid_from`. On the run's first day, rows with
  a null `order_id` carry what customers who signed up before `run.start` had earned by then.

## Mess

Mess never touches keys or partition columns and never drops a row; the manifests count every value it changed,
per column and kind. Whitespace (one or two spaces on both sides) and casing (upper, lower or title; a value it
leaves unchanged is not counted) are independent kinds, each at the level's style rate.
"""


def _type(t: pa.DataType) -> str:
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamp[us]"
    return {"large_string": "string", "date32[day]": "date", "bool": "boolean"}.get(str(t), str(t))


def _mess(table: str, column: str) -> str:
    kinds = []
    if column in STYLE_COLUMNS.get(table, ()):
        kinds += ["whitespace", "casing"]
    if column in NULL_COLUMNS.get(table, ()):
        kinds.append("null")
    if column in ADVANCED_MESS.get(table, {}):
        kinds.append(ADVANCED_MESS[table][column])
    return ", ".join(kinds)


def _levels() -> str:
    rows = ["| level | whitespace | casing | nulls | advanced (spike, redrawn reasons) |", "|---|---|---|---|---|"]
    for level in MESS_LEVELS:
        m = OmegaConf.load(Path(conf_dir()) / "mess" / f"{level}.yaml")
        rows.append(f"| `{level}` | {m.style_rate:.0%} | {m.style_rate:.0%} | {m.null_rate:.0%} | "
                    f"{'yes' if m.advanced else 'no'} |")
    return "\n".join(rows) + "\n\n" + "\n".join((
        "- `spike`: one day a month every order's `total_items` is multiplied 5-20x (a broken upstream counter).",
        "- `redrawn`: a return's reason is drawn again at the style rate, biased to its first item's category.",
    ))


def _table(table: str) -> str:
    key = PARTITION_KEY[table]
    links = [f"`{', '.join(cols)}` -> {parent}" for child, cols, parent, _ in LINKS if child == table]
    where = ("one partition per day; lines sit in their parent's partition" if table in TRANSACTIONS
             else "one partition per day of the run" if table in DAILY else "one partition per value")
    lines = [
        f"## {table}",
        "",
        f"- Partitioned by `{key}=` ({where}).",
        f"- Primary key: `{', '.join(PRIMARY_KEY[table])}`.",
        f"- Foreign keys: {'; '.join(links) if links else 'none'}.",
        "",
        "| column | type | nullable | mess | meaning |",
        "|---|---|---|---|---|",
    ]
    schema = SCHEMAS[table]
    for c in columns(table):
        f = schema.field(c.name)
        lines.append(f"| `{c.name}` | {_type(f.type)} | {'yes' if f.nullable else 'no'} | {_mess(table, c.name)} | "
                     f"{c.doc} |")
    return "\n".join(lines)


def render() -> str:
    """The whole page, as checked in at docs/schema.md."""
    return "\n\n".join([HEADER + "\n" + _levels(), *(_table(t) for t in TABLES)]) + "\n"


if __name__ == "__main__":
    print(render(), end="")
