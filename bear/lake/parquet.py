"""Rows -> Hive partitions of Parquet files, with the statistics the manifests need.

Every partition of a table is written by exactly one chunk (returns travel to the chunk
that owns their date), so file names need no chunk number: `part-00000.parquet`, then
`part-00001...` where a partition rolls over the target size. A retried or resumed chunk
rewrites the same names with the same bytes.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bear.config.schema import OutputConfig
from bear.core import text
from bear.core.calendar import timestamps
from bear.core.rows import COPY_BIT, Ledger, Rows
from bear.core.schemas import (
    BASE_SHAPE,
    CHANGES,
    DELIVERED,
    DELIVERY_KINDS,
    EVENT_ID_PREFIX,
    PARTITION_KEY,
    SCHEMAS,
    TABLE_CODE,
    TableShape,
    dictionary_columns,
    shaped,
)
from bear.lake.layout import DATA_FILE, partition_name
from bear.lake.sink import Writes


@dataclass
class FileStat:
    path: str  # relative to the lake root
    rows: int
    bytes: int
    md5: str


@dataclass
class PartitionStat:
    table: str
    partition: str  # e.g. "ingest_dt=2020-01-05"
    files: list[FileStat] = field(default_factory=list)
    rows: int = 0
    min_event_s: int | None = None
    max_event_s: int | None = None
    id_range: list[int] | None = None
    mess: dict[str, dict[str, int]] = field(default_factory=dict)
    # the order feed's tables: rows delivered late (ordered on an earlier day) and re-delivered copies
    delivery: dict[str, int] | None = None
    shape: TableShape = BASE_SHAPE  # the table schema version of its files and the added columns they hold

    @property
    def dir(self) -> str:
        return f"{self.table}/{self.partition}"

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def values(self) -> int:
        """Cells written (rows x the columns its files hold): the unit generators are compared in."""
        return self.rows * len(shaped(SCHEMAS[self.table], self.table, self.shape.added))


LINEAGE_CONSTANT = ("batch_id", "source_file")  # one value per file: written as one-entry dictionaries
ID_STRINGS = frozenset({"customer_id", "cart_id", "order_id", "return_id"})


def _write_schema(table: str) -> pa.Schema:
    """SCHEMAS with the per-file constants dictionary-typed. Files store no Arrow schema, so a
    reader sees the SCHEMAS types: Parquet has one string type, dictionary-encoded or not."""
    return pa.schema([f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in LINEAGE_CONSTANT else f
                      for f in SCHEMAS[table]])


WRITE_SCHEMAS = {t: _write_schema(t) for t in SCHEMAS}


def _plain(arr: pa.Array) -> pa.Array:
    """Label columns arrive as dictionary arrays (bear.text.labels); Parquet's own dictionary encoder is
    faster on plain strings than its path for Arrow dictionaries, and it drops unused or repeated entries."""
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def statistics_columns(table: str) -> list[str]:
    """Columns whose min/max go into the Parquet footer: what a query prunes on (times, numbers, IDs).

    Statistics of names, labels and lineage strings would cost a third of the encoding time and prune nothing.
    """
    return [f.name for f in SCHEMAS[table] if not pa.types.is_string(f.type) or f.name in ID_STRINGS]


def column_encodings(table: str) -> dict[str, str]:
    """Integer-backed columns (IDs, counts, timestamps, dates, money) get DELTA_BINARY_PACKED: rising IDs shrink
    to almost nothing and the column encodes faster than PLAIN, with less left for the compressor to do. The
    event_id strings (`evt_` + fixed-width hex, rising within a file) get DELTA_BYTE_ARRAY, which stores each as
    the suffix after its predecessor's prefix: 0.04 bytes a row against 0.65 PLAIN + zstd."""
    integral = (pa.types.is_integer, pa.types.is_timestamp, pa.types.is_date32, pa.types.is_decimal)
    delta = {f.name: "DELTA_BINARY_PACKED" for f in SCHEMAS[table] if any(is_(f.type) for is_ in integral)}
    return delta | {"event_id": "DELTA_BYTE_ARRAY"}


@cache
def _encodings(table: str) -> dict:
    # Money is decimal(12, 2): stored as INT64 (the Parquet form for precision <= 18, what Spark writes too) it
    # encodes several times faster than 16-byte FIXED_LEN_BYTE_ARRAY and reads back as the same decimal.
    return {"use_dictionary": dictionary_columns(table), "column_encoding": column_encodings(table),
            "write_statistics": statistics_columns(table), "store_decimal_as_integer": True}


def encode(table: pa.Table, out: OutputConfig, name: str) -> bytes:
    sink = pa.BufferOutputStream()
    compression = None if out.compression == "none" else out.compression
    pq.write_table(
        table, sink, compression=compression, compression_level=out.compression_level,
        row_group_size=out.row_group_rows, store_schema=False, **_encodings(name),
    )
    return sink.getvalue().to_pybytes()


def _id_numbers(table: str, key: np.ndarray) -> np.ndarray | None:
    """The ID each row's key stands for (an order line's key is order_id * 256 + line); None for a table whose
    rows have no ID of their own (customer_changes: its keys only make event IDs unique)."""
    if table in CHANGES:
        return None
    key = key & (COPY_BIT - 1)  # a re-delivered copy has its first delivery's ID
    return key >> 8 if table == "order_items" else key


def _strings(values: list[str]) -> pa.Array:
    """Python strings -> Arrow, via one UTF-8 buffer (pa.array on str probes optional imports on every call)."""
    data = [v.encode() for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def write_partitions(
    writes: Writes, out: OutputConfig, fingerprint: str, table: str, rows: Rows, ledger: Ledger,
    part_code: np.ndarray, part_names: dict[int, str], ingest_s: dict[int, int],
    seconds: dict[str, float] | None = None, shapes: dict[int, TableShape] | None = None,
) -> list[PartitionStat]:
    """Write `rows` grouped by `part_code`; every code in `part_names` gets a stat, empty or not.

    Rows are put in partition order once (usually they already are, and nothing is copied),
    so each file is a zero-copy slice; per-partition statistics come from cumulative sums.
    `seconds`, when given, accumulates time spent encoding ("encode") and publishing ("write").
    `shapes`: each code's table shape (default: the base columns); a column added by a schema change not live in a
    partition is absent from its files.
    """
    t_start = time.perf_counter()
    write_s = 0.0
    schema = WRITE_SCHEMAS[table]
    n = len(rows.key)
    part_code = np.asarray(part_code, dtype=np.int64)
    order = None if n < 2 or bool(np.all(part_code[1:] >= part_code[:-1])) else np.argsort(part_code, kind="stable")

    def ordered(a: np.ndarray) -> np.ndarray:
        return a if order is None else a[order]

    codes = ordered(part_code)
    key, event_s = ordered(rows.key), ordered(rows.event_s)
    wanted = np.fromiter(part_names, dtype=np.int64, count=len(part_names))
    lo, hi = np.searchsorted(codes, wanted, "left"), np.searchsorted(codes, wanted, "right")
    if int((hi - lo).sum()) != n:
        raise ValueError(f"{table}: rows outside the given partitions")
    data_cols = {f.name: _plain(rows.cols[f.name]) for f in schema if f.name in rows.cols}
    base = pa.table(list(data_cols.values()), names=list(data_cols))
    if order is not None:
        base = base.take(pa.array(order))
    event_id = text.hexadecimal(EVENT_ID_PREFIX, (np.int64(TABLE_CODE[table]) << 52) | key)
    ingest = timestamps(np.repeat(np.fromiter((ingest_s[c] for c in part_names), np.int64, len(part_names)), hi - lo))
    key_name = PARTITION_KEY[table]
    # Rows that do not carry their partition column (the daily tables) get it from their partition's day.
    added = {} if key_name in data_cols else {key_name: pa.array(np.repeat(wanted, hi - lo).astype(np.int32)).cast(
        pa.date32())}
    mess_counts = {col: {kind: np.concatenate([[0], np.cumsum(ordered(mask))]) for kind, mask in kinds.items()}
                   for col, kinds in ledger.items()}
    delivered = None if table not in DELIVERED else {
        kind: np.concatenate([[0], np.cumsum(ordered((rows.delivery or {}).get(kind, np.zeros(n, bool))))])
        for kind in DELIVERY_KINDS}
    ids = _id_numbers(table, key)
    est_row = max(base.nbytes / max(n, 1), 1.0)
    per_file = max(1, int(out.target_file_mb * 2**20 / est_row))
    zeros = pa.array(np.zeros(min(n, per_file), dtype=np.int32))
    values = list(part_names.values())
    part_shapes = [(shapes or {}).get(c, BASE_SHAPE) for c in part_names]
    batch_ids = _strings([f"{fingerprint[:12]}-{table}-{v}" for v in values])
    stats = []
    for i, (value, a, b) in enumerate(zip(values, lo.tolist(), hi.tolist(), strict=True)):
        stat = PartitionStat(table, partition_name(table, value), shape=part_shapes[i],
                             delivery=None if delivered is None else {k: int(cs[b] - cs[a])
                                                                      for k, cs in delivered.items()})
        file_schema = shaped(schema, table, stat.shape.added)
        if b > a:
            stat.min_event_s, stat.max_event_s = int(event_s[a:b].min()), int(event_s[a:b].max())
            stat.id_range = None if ids is None else [int(ids[a:b].min()), int(ids[a:b].max())]
            stat.mess = {col: {kind: int(cs[b] - cs[a]) for kind, cs in kinds.items()}
                         for col, kinds in mess_counts.items()}
        starts = list(range(a, b, per_file))
        rels = _strings([f"{stat.dir}/{DATA_FILE.format(k)}" for k in range(len(starts))])
        for k, (start, rel) in enumerate(zip(starts, rels.to_pylist(), strict=True)):
            m = min(per_file, b - start)
            derived = {  # the columns the writer adds: lineage and the partition column
                "batch_id": pa.DictionaryArray.from_arrays(zeros.slice(0, m), batch_ids.slice(i, 1)),
                "source_file": pa.DictionaryArray.from_arrays(zeros.slice(0, m), rels.slice(k, 1)),
                "ingestion_ts": ingest.slice(start, m),
                "event_id": event_id.slice(start, m),
                **{name: col.slice(start, m) for name, col in added.items()},
            }
            part = base.slice(start, m)
            arrays = [part.column(f.name) if f.name in data_cols else derived[f.name] for f in file_schema]
            data = encode(pa.Table.from_arrays(arrays, schema=file_schema), out, table)
            w0 = time.perf_counter()
            writes.write(rel, data)
            stat.files.append(FileStat(rel, m, len(data), hashlib.md5(data).hexdigest()))
            write_s += time.perf_counter() - w0
            stat.rows += m
        stats.append(stat)
    if seconds is not None:
        seconds["write"] = seconds.get("write", 0.0) + write_s
        seconds["encode"] = seconds.get("encode", 0.0) + time.perf_counter() - t_start - write_s
    return stats

