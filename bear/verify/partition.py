"""The checks inside one partition, and how failures name their rows and partitions.

`check_partition` judges a partition as the sink holds it (markers, manifest, files, strays, the
manifest's mess counts) without looking at any other partition, so every day task and dimension
task of the audit runs it on its own partitions. The helpers below turn ID numbers and masks into
the examples and partition names a failure shows; the passes share them so failures read alike.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bear.core import text
from bear.core.schemas import EVENT_COLUMN, PRIMARY_KEY
from bear.lake.layout import day_partition
from bear.verify.checks import DAY_US, Failure, plain, ts_micros
from bear.verify.findings import Findings
from bear.verify.read import DAY, MARKERS, PartRead

ID_PREFIX = {"shopping_carts": "CART-", "orders": "ORD-", "returns": "RTN-"}  # the ID formats, for examples


def check_partition(pr: PartRead, fp: str, level: str, found: Findings) -> None:
    """Markers, manifest, files (existence, rows, md5, schema), strays and the manifest's mess counts."""
    t, p = pr.table, pr.partition
    found.partitions += 1
    found.count("coverage.markers", 1)
    absent = [m for m in MARKERS if m not in pr.names]
    if absent:
        found.fail("coverage.markers", t, f"missing {' and '.join(absent)}", partition=p)
    m = pr.manifest
    if m is not None or pr.manifest_error:
        found.count("manifest.valid", 1)
    if pr.manifest_error:
        found.fail("manifest.valid", t, pr.manifest_error, partition=p)
    listed = {}
    if m is not None:
        listed = {f["path"]: f for f in m["files"]}
        problems = [k for k, ok in (
            ("table", m.get("table") == t), ("partition", m.get("partition") == p),
            ("config_fingerprint", m.get("config_fingerprint") == fp),
            ("total_rows", m.get("total_rows") == sum(f["rows"] for f in m["files"])),
            ("mess_level", m.get("mess_level") == level),
            ("table_schema", m.get("table_schema") == pr.shape.document()),  # the version its files are read with
        ) if not ok]
        if problems:
            found.fail("manifest.valid", t, f"manifest disagrees on {', '.join(problems)}", problems, partition=p)
    for f in pr.files:
        found.count("manifest.files", 1)
        if not f.present:
            found.fail("manifest.files", t, "listed file missing", [f.name], partition=p)
            continue
        found.files += 1
        found.bytes += f.size
        for check in ("manifest.rows", "manifest.checksum", "files.schema", "files.lineage", "files.partition_column"):
            found.count(check, 1)
        entry = listed.get(f.name)
        if entry is not None and entry.get("md5") != f.md5:
            found.fail("manifest.checksum", t, "md5 of the file differs from the manifest", [f.name], partition=p)
        if f.error:
            found.fail("files.schema", t, f.error, [f.name], partition=p)
        elif entry is not None and entry.get("rows") != f.rows:
            found.fail("manifest.rows", t, f"file has {f.rows} rows, manifest says {entry.get('rows')}", [f.name],
                       partition=p)
        if f.lineage:
            found.fail("files.lineage", t, "; ".join(f.lineage), [f.name], partition=p)
        elif m is not None and f.data is not None and f.batch_ids not in ([], [m.get("batch_id")]):
            found.fail("files.lineage", t, f"batch_id {f.batch_ids} is not the manifest's {m.get('batch_id')!r}",
                       [f.name], partition=p)
        if f.partition_value:
            found.fail("files.partition_column", t, f.partition_value, [f.name], partition=p)
        if f.data is not None:
            found.rows[t] += f.data.num_rows
    strays = sorted(n for n in pr.names if n not in MARKERS and (m is None or n not in listed))
    found.count("manifest.orphans", len(pr.names - set(MARKERS)))
    if strays:
        found.fail("manifest.orphans", t, f"{len(strays)} files not in any manifest", strays, len(strays), p)
    if m is not None:
        partition_mess(pr, found)


def partition_mess(pr: PartRead, found: Findings) -> None:
    """Tally the manifest's mess counts for the rates; compare them with the data where the data can tell."""
    t, m = pr.table, pr.manifest
    counts = {(col, kind): n for col, kinds in m.get("mess_counts", {}).items() for kind, n in kinds.items()}
    found.mess_rows[t] += m["total_rows"]
    for (col, kind), n in counts.items():
        found.mess_counts[(t, col, kind)] += n
    if not pr.readable:
        return
    measured: Counter = sum((f.mess for f in pr.files), Counter())
    for (col, kind), n in measured.items():
        if kind == "casing_capacity":
            found.capacity[(t, col)] += n
    found.count("mess.counts", 1)
    visible = sorted({k for k in (*measured, *counts) if k[1] in ("null", "whitespace")})
    wrong = [f"{col}.{kind}: manifest {counts.get((col, kind), 0)}, data {measured[(col, kind)]}"
             for col, kind in visible if counts.get((col, kind), 0) != measured[(col, kind)]]
    if wrong:
        found.fail("mess.counts", t, "mess counts differ from the data", wrong, len(wrong), pr.partition)


def event_partition(table: str, t: pa.Table, day: int, found: Findings, part: str) -> None:
    """Every row of a day's partition has its event time on that day."""
    found.count("integrity.event_partition", t.num_rows)
    bad = ts_micros(t[EVENT_COLUMN[table]]) // DAY_US != day
    if bad.any():
        found.fail("integrity.event_partition", table, f"{int(bad.sum())} rows outside the partition of their "
                   f"{EVENT_COLUMN[table]}", values_where(t[PRIMARY_KEY[table][0]], bad), int(bad.sum()), part)


def values_where(col: pa.ChunkedArray | pa.Array, mask: np.ndarray, k: int = 10) -> list:
    """The first `k` distinct values of `col` where `mask` holds (failure examples)."""
    return pc.unique(col.filter(pa.array(mask))).slice(0, k).to_pylist()


def id_text(table: str, nums: np.ndarray) -> list:
    """ID numbers as the lake writes them (CART-00000042), for examples."""
    nums = np.asarray(nums[:10], dtype=np.int64)
    if table in ID_PREFIX and nums.size and nums.min() >= 0:
        return text.padded(ID_PREFIX[table], nums).to_pylist()
    return nums.tolist()


def partitions_of(days: np.ndarray, k: int = 3) -> str:
    """The first `k` partitions of these day numbers, as a failure names them."""
    return ",".join(f"ingest_dt={day_partition(int(d))}" for d in np.unique(days)[:k])


def _rows_mentioning(table: str, t: pa.Table, values: list) -> np.ndarray | None:
    """Rows of `t` whose primary key (else another *_id column) holds one of `values`, to place a failure."""
    if not values or t.num_rows == 0:
        return None
    for name in dict.fromkeys([PRIMARY_KEY[table][0], *(c for c in t.column_names if c.endswith("_id"))]):
        try:
            mask = pc.is_in(t[name], value_set=pa.array(values, t[name].type)).to_numpy(zero_copy_only=False)
        except (pa.ArrowException, TypeError, ValueError):
            continue
        if mask.any():
            return mask
    return None


def _rows_keyed(t: pa.Table, examples: list[dict]) -> np.ndarray | None:
    """Rows of `t` that hold one of the example keys (dicts of columns, as `key_rows` writes them), to place a
    failure exactly where one column alone (a customer with many changes) would name too many partitions."""
    names = list(examples[0]) if examples else []
    if not names or not all(n in t.column_names for n in names):
        return None
    rows = pa.table({**{n: plain(t[n]) for n in names}, "_row": np.arange(t.num_rows)})
    try:
        hit = rows.join(pa.Table.from_pylist(examples).select(names), keys=names, join_type="inner")["_row"]
    except (pa.ArrowException, KeyError, TypeError, ValueError):  # examples of another shape: place by one column
        return None
    mask = np.zeros(t.num_rows, dtype=bool)
    mask[hit.to_numpy()] = True
    return mask if mask.any() else None


def place(f: Failure, tables: dict[str, pa.Table], default: str) -> Failure:
    """Name the partitions of a lake-wide failure's example rows when they can be found, else `default`."""
    t = tables.get(f.table)
    values = [next(iter(e.values())) if isinstance(e, dict) else e for e in f.examples]
    mask = None
    if t is not None and DAY in t.column_names:
        mask = _rows_keyed(t, [e for e in f.examples if isinstance(e, dict)])
        mask = _rows_mentioning(f.table, t, values) if mask is None else mask
    f.partition = f.partition or (partitions_of(t[DAY].to_numpy(zero_copy_only=False)[mask]) if mask is not None
                                  else default)
    return f
