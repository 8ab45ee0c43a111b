"""Rows -> Hive partitions of Parquet files, with the statistics the manifests need.

Every partition of a table is written by exactly one chunk (returns travel to the chunk
that owns their date), so file names need no chunk number: `part-00000.parquet`, then
`part-00001...` where a partition rolls over the target size. A retried or resumed chunk
rewrites the same names with the same bytes.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bear.config import OutputConfig
from bear.mess import Ledger
from bear.model import DAY_S, day_to_date
from bear.schemas import FILE_SCHEMAS, PARTITION_KEY, TABLE_CODE, dictionary_columns
from bear.sink import Sink
from bear.tables import Rows, timestamps


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

    @property
    def dir(self) -> str:
        return f"{self.table}/{self.partition}"

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


def day_partition(day: int) -> str:
    return day_to_date(day).isoformat()


def ingestion_seconds(day: int) -> int:
    """The nightly batch that would have landed a day's data: 02:00 the next morning."""
    return (day + 1) * DAY_S + 2 * 3600


def encode(table: pa.Table, out: OutputConfig, name: str) -> bytes:
    sink = pa.BufferOutputStream()
    compression = None if out.compression == "none" else out.compression
    pq.write_table(
        table, sink, compression=compression, compression_level=out.compression_level,
        use_dictionary=dictionary_columns(name), write_statistics=True, row_group_size=out.row_group_rows,
    )
    return sink.getvalue().to_pybytes()


def _id_range(table: str, key: np.ndarray) -> list[int] | None:
    if key.size == 0:
        return None
    ids = key >> 8 if table == "order_items" else key
    return [int(ids.min()), int(ids.max())]


def write_partitions(
    sink: Sink, out: OutputConfig, fingerprint: str, table: str, rows: Rows, ledger: Ledger,
    part_code: np.ndarray, part_names: dict[int, str], ingest_s: dict[int, int],
    seconds: dict[str, float] | None = None,
) -> list[PartitionStat]:
    """Write `rows` grouped by `part_code`; every code in `part_names` gets a stat, empty or not.

    `seconds`, when given, accumulates time spent encoding ("encode") and publishing ("write").
    """
    clock = seconds if seconds is not None else {}
    t_start = time.perf_counter()
    write_s = 0.0
    schema = FILE_SCHEMAS[table]
    n = len(rows.key)
    cols = dict(rows.cols)
    order = np.argsort(part_code, kind="stable")
    codes = part_code[order]
    bounds = np.searchsorted(codes, list(part_names), side="left"), np.searchsorted(codes, list(part_names), "right")
    base = pa.table([cols[f.name] for f in schema if f.name in cols], names=[f.name for f in schema if f.name in cols])
    est_row = max(base.nbytes / max(n, 1), 1.0)
    per_file = max(1, int(out.target_file_mb * 2**20 / est_row))
    key_name = PARTITION_KEY[table]
    stats = []
    for code, lo, hi in zip(part_names, *bounds, strict=True):
        idx = order[lo:hi]
        value = part_names[code]
        stat = PartitionStat(table, f"{key_name}={value}")
        if idx.size:
            ev = rows.event_s[idx]
            stat.min_event_s, stat.max_event_s = int(ev.min()), int(ev.max())
            stat.id_range = _id_range(table, rows.key[idx])
            for col, kinds in ledger.items():
                stat.mess[col] = {kind: int(mask[idx].sum()) for kind, mask in kinds.items()}
        for f, start in enumerate(range(0, idx.size, per_file)):
            part = idx[start:start + per_file]
            rel = f"{stat.dir}/part-{f:05d}.parquet"
            m = part.size
            lineage = {
                "batch_id": pa.repeat(pa.scalar(f"{fingerprint[:12]}-{table}-{value}"), m),
                "ingestion_ts": timestamps(np.full(m, ingest_s[code], dtype=np.int64)),
                "event_id": pa.array((np.int64(TABLE_CODE[table]) << 52) | rows.key[part]),
                "source_file": pa.repeat(pa.scalar(rel), m),
            }
            t = base.take(pa.array(part))
            arrays = [t.column(f.name) if f.name in cols else lineage[f.name] for f in schema]
            data = encode(pa.Table.from_arrays(arrays, schema=schema), out, table)
            w0 = time.perf_counter()
            stat.files.append(FileStat(rel, m, len(data), sink.write(rel, data)))
            write_s += time.perf_counter() - w0
            stat.rows += m
        stats.append(stat)
    clock["write"] = clock.get("write", 0.0) + write_s
    clock["encode"] = clock.get("encode", 0.0) + time.perf_counter() - t_start - write_s
    return stats


def iso_ts(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None).isoformat()
