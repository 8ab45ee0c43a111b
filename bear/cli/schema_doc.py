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
from bear.config.schema import GeneratorConfig
from bear.core.schemas import (
    ADVANCED_MESS,
    DAILY,
    FORMAT_COLUMNS,
    LINKS,
    NULL_COLUMNS,
    PARTITION_KEY,
    PRIMARY_KEY,
    SCHEMAS,
    STYLE_COLUMNS,
    TABLES,
    TRANSACTIONS,
    added_names,
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

## Schema evolution

A column marked *added* appears in its table from a configured day (`generator.schema_changes`: a list of
`{table, columns, since}`): the files of partitions before `since` lack it (absent, not null), the files from
`since` on hold it (null where it does not apply, and for orders placed before `since` that the feed delivers
late or again into a later file). Every file of a table still reads as one dataset: DuckDB's
`union_by_name=true` reads the earlier rows' value as null; with pyarrow datasets give the schema (the last
partition's file's, or `pa.unify_schemas` of all), since the first file's would leave the column out. A partition's
table schema version is 1 (the base columns) plus the number of its table's schema changes live on its day;
`_MANIFEST.json` records it as `"table_schema": {"version": n, "columns_added": [...]}`, and `bear verify` holds
each file to the columns of its day. Adding a nullable column keeps the bronze contract v1.

## The order feed: late and repeated deliveries

Orders arrive the way an at-least-once feed delivers them (`mess.late_share`, `mess.redelivery_share`; see the
levels below). A late order lands, with its lines and the customer_changes it caused, in the partition of a day
`mess.late_days` (1-3) after its `order_date` (never after its first return); a re-delivered order and its lines
land a second time `mess.redelivery_days` (1-2) after the first delivery: the same values, another `event_id`, the
later day's `ingestion_ts`. Each feed partition's `_MANIFEST.json` counts them (`"delivery": {"late": n,
"redelivered": n}`); the IDs stay those of the order's day. At the lake's end, orders still on their way are
missing until an extension lands them (the plan's `feed` counts them per chunk, and the copies). The consumer's
dedup rule, the latest `ingestion_ts` then the highest `event_id` per primary key, gives back the lake delivered
once:

```sql
select * from read_parquet('lake/orders/ingest_dt=*/part-*.parquet', union_by_name=true, hive_partitioning=true)
qualify row_number() over (partition by order_id order by ingestion_ts desc, event_id desc) = 1
```

## Mess

Mess never touches keys or partition columns and never drops a row; the manifests count every value it changed,
per column and kind. Whitespace (one or two spaces on both sides) and casing (upper, lower or title; a value it
leaves unchanged is not counted) are independent kinds, each at the level's style rate. `format` writes emails
and phone numbers in a variant format of the same value at the level's format rate: an email upper case, title
case (`First.Last00000123@Gmail.Com`) or with a space before or after it (still `like '%@%.%'`, and the clean
value after trim and lower-casing); a phone number as `(AAA) EEE-LLLL`, `+1 AAA EEE LLLL`, `1AAAEEELLLL` or
`AAA.EEE.LLLL` (the same digits, less the country code where it is dropped).
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
    if column in FORMAT_COLUMNS.get(table, ()):
        kinds.append("format")
    if column in ADVANCED_MESS.get(table, {}):
        kinds.append(ADVANCED_MESS[table][column])
    return ", ".join(kinds)


def _levels() -> str:
    rows = ["| level | whitespace | casing | nulls | format | advanced (spike, redrawn reasons) | late orders | "
            "re-delivered orders |", "|---|---|---|---|---|---|---|---|"]
    for level in MESS_LEVELS:
        m = OmegaConf.load(Path(conf_dir()) / "mess" / f"{level}.yaml")
        rows.append(f"| `{level}` | {m.style_rate:.0%} | {m.style_rate:.0%} | {m.null_rate:.0%} | "
                    f"{m.format_rate:.0%} | {'yes' if m.advanced else 'no'} | {m.late_share:.0%} | "
                    f"{m.redelivery_share:.1%} |")
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
    since = {col: change.since for change in GeneratorConfig().schema_changes if change.table == table
             for col in change.columns}
    for c in columns(table):
        f = schema.field(c.name)
        added = (f" (added; present in partitions from `generator.schema_changes` since, default "
                 f"{since.get(c.name, 'none')})" if c.name in added_names(table) else "")
        lines.append(f"| `{c.name}` | {_type(f.type)} | {'yes' if f.nullable else 'no'} | {_mess(table, c.name)} | "
                     f"{c.doc}{added} |")
    return "\n".join(lines)


def render() -> str:
    """The whole page, as checked in at docs/schema.md."""
    return "\n\n".join([HEADER + "\n" + _levels(), *(_table(t) for t in TABLES)]) + "\n"


if __name__ == "__main__":
    print(render(), end="")
