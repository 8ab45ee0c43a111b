"""Reading a lake back for `bear verify`: a partition's manifest and files, each file read once.

The bytes of a file give its md5; Parquet then decodes only the columns the checks need, with
the stylistic columns as dictionaries so the mess they carry is measured once per distinct
value. The partition column is inside every file too; the audit checks it equals the path.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bear.core.calendar import day_number
from bear.core.schemas import (
    BASE_SHAPE,
    CASINGS,
    DAILY,
    EVENT_ID_PREFIX,
    NULL_COLUMNS,
    PARTITION_KEY,
    SCHEMAS,
    STYLE_COLUMNS,
    TABLE_CODE,
    TABLES,
    TableShape,
    shaped,
)
from bear.lake.layout import MANIFEST, SUCCESS, ingestion_seconds
from bear.lake.sink import Sink

# Columns the checks need once a file is read (the mess columns are measured, then dropped).
KEEP = {
    "customers": ("customer_id", "is_guest", "signup_date", "loyalty_tier", "initial_loyalty_tier", "clv_bucket"),
    "product_catalog": ("product_id",),
    "shopping_carts": ("cart_id", "customer_id", "created_at", "updated_at", "cart_total", "status"),
    "cart_items": ("cart_item_id", "cart_id", "product_id", "quantity", "unit_price"),
    "orders": ("order_id", "customer_id", "cart_id", "total_items", "order_date", "gross_total", "net_total",
               "total_discount_amount", "clv_bucket"),
    "order_items": ("order_id", "product_id", "quantity", "unit_price", "discount_amount"),
    "returns": ("return_id", "order_id", "customer_id", "return_date", "refunded_amount"),
    "return_items": ("return_item_id", "return_id", "order_id", "product_id", "quantity_returned", "refunded_amount"),
    "customer_changes": ("customer_id", "valid_from", "loyalty_tier", "clv_bucket", "changed", "order_id"),
}
LINEAGE = ("batch_id", "source_file", "ingestion_ts", "event_id")
READ = {t: tuple(dict.fromkeys(KEEP[t] + STYLE_COLUMNS.get(t, ()) + NULL_COLUMNS.get(t, ()) + LINEAGE
                                + (PARTITION_KEY[t],))) for t in TABLES}
# Read as dictionaries: the stylistic columns (their mess is measured once per distinct value) and the per-file
# lineage constants (one value each, not a copy per row).
AS_DICTIONARY = {t: (*STYLE_COLUMNS.get(t, ()), "batch_id", "source_file") for t in TABLES}
# The schema a file must have, as read with those columns dictionary-encoded.
READ_SCHEMA = {
    t: pa.schema([f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in AS_DICTIONARY[t] else f
                  for f in SCHEMAS[t]])
    for t in TABLES
}
DAY = "_day"  # partition day number added to the daily tables' rows, so checks and failures know their partition
MARKERS = (MANIFEST, SUCCESS)


@dataclass
class FileRead:
    """One data file as found: md5 and row count of its bytes, the kept columns, the mess measured in it."""

    name: str
    present: bool = True
    size: int = 0
    md5: str = ""
    rows: int = -1
    error: str = ""
    data: pa.Table | None = None
    mess: Counter = field(default_factory=Counter)
    lineage: list[str] = field(default_factory=list)  # what is wrong with its lineage columns
    partition_value: str = ""  # what is wrong with its partition column ("" when it equals the path)
    batch_ids: list[str] = field(default_factory=list)  # distinct batch_id values (one, the manifest's)


@dataclass
class PartRead:
    table: str
    partition: str
    names: frozenset[str]  # what the listing found in the partition's directory
    manifest: dict | None = None
    manifest_error: str = ""
    files: list[FileRead] = field(default_factory=list)
    shape: TableShape = BASE_SHAPE  # the schema version and added columns the config gives this partition

    @property
    def readable(self) -> bool:
        return all(f.data is not None for f in self.files)

    def table_data(self) -> pa.Table:
        """The kept columns of every readable file; a daily table's rows with their partition's day number."""
        pieces = [f.data for f in self.files if f.data is not None]
        t = pa.concat_tables(pieces) if pieces else empty_table(self.table, with_day=False)
        if self.table in DAILY:
            return t.append_column(DAY, pa.array(np.full(t.num_rows, partition_day(self.partition), np.int32)))
        return t


def empty_table(table: str, with_day: bool = True) -> pa.Table:
    t = SCHEMAS[table].empty_table().select(list(KEEP[table]))
    if with_day and table in DAILY:
        return t.append_column(DAY, pa.array([], pa.int32()))
    return t


def concat(tables: list[pa.Table], table: str) -> pa.Table:
    return pa.concat_tables(tables) if tables else empty_table(table)


def partition_day(partition: str) -> int:
    return day_number(partition.split("=", 1)[1])


def measure_mess(table: str, t: pa.Table) -> Counter:
    """Null and whitespace mess as found in the data, and how many casing styles would change each value.

    Stylistic columns arrive dictionary-encoded, so the string functions run once per distinct
    value, weighted by its count.
    """
    out: Counter = Counter()
    for col in NULL_COLUMNS.get(table, ()):
        out[(col, "null")] = t[col].null_count
    for col in STYLE_COLUMNS.get(table, ()):
        for chunk in t[col].chunks:
            values = chunk.dictionary
            counts = np.bincount(pc.drop_null(chunk.indices).to_numpy(zero_copy_only=False), minlength=len(values))
            spaced = pc.or_(pc.starts_with(values, " "), pc.ends_with(values, " ")).to_numpy(zero_copy_only=False)
            trimmed = pc.utf8_trim_whitespace(values)
            changes = sum(pc.not_equal(fn(trimmed), trimmed).to_numpy(zero_copy_only=False).astype(np.int64)
                          for fn in CASINGS)
            out[(col, "whitespace")] += int(counts @ spaced)
            out[(col, "casing_capacity")] += int(counts @ changes)
    return out


def schema_problem(table: str, shape: TableShape, found: pa.Schema, want: pa.Schema) -> str:
    """How a file's schema differs from its partition's: columns missing or unexpected (an added column before or
    from its since day), else types or nullability."""
    missing = [n for n in want.names if n not in found.names]
    extra = [n for n in found.names if n not in want.names]
    detail = "; ".join(part for part in (missing and f"missing {', '.join(missing)}",
                                         extra and f"unexpected {', '.join(extra)}") if part)
    return f"schema differs from {table}'s version {shape.version} ({detail or 'types or nullability'})"


def read_file(sink: Sink, table: str, rel: str, shape: TableShape = BASE_SHAPE) -> FileRead:
    data = sink.read(rel)
    fr = FileRead(rel.rsplit("/", 1)[1], size=len(data), md5=hashlib.md5(data).hexdigest())
    try:
        pf = pq.ParquetFile(pa.BufferReader(data), read_dictionary=AS_DICTIONARY[table])
        fr.rows = pf.metadata.num_rows
        want = shaped(READ_SCHEMA[table], table, shape.added)
        if not pf.schema_arrow.equals(want):
            fr.error = schema_problem(table, shape, pf.schema_arrow, want)
            return fr
        t = pf.read(columns=list(READ[table]), use_threads=False)  # the audit's own threads use the cores
        # Parquet readers do not validate UTF-8: a damaged page can decode into strings Python cannot read
        fr.mess = measure_mess(table, t)
        fr.lineage, fr.batch_ids = lineage_of(table, rel, t)
        fr.partition_value = partition_value_problem(table, rel, t)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        fr.error = f"unreadable Parquet ({type(exc).__name__}: {str(exc)[:80]})"
        return fr
    keep = t.select(list(KEEP[table]))
    for i, f in enumerate(keep.schema):
        if pa.types.is_dictionary(f.type):
            # keep the field's nullability: a day whose files are all unreadable contributes empty_table()
            keep = keep.set_column(i, f.with_type(f.type.value_type), keep.column(i).cast(f.type.value_type))
    fr.data = keep
    return fr


def lineage_of(table: str, rel: str, t: pa.Table) -> tuple[list[str], list[str]]:
    """Problems with a file's lineage columns, and its distinct batch ids.

    Every row names its own file, carries one ingestion time per file (for a day partition: 02:00 the next
    morning), and an event_id that is unique and carries the table's code in its top bits.
    """
    problems = []
    if t.num_rows == 0:
        return problems, []
    for name in LINEAGE:
        if t[name].null_count:
            problems.append(f"{name} has {t[name].null_count} nulls")
    if distinct(t["source_file"]) != [rel]:
        problems.append(f"source_file is not {rel}")
    ingest = pc.unique(t["ingestion_ts"]).cast(pa.int64()).to_pylist()
    partition = rel.split("/")[1]
    if len(ingest) != 1:
        problems.append(f"{len(ingest)} different ingestion_ts values")
    elif table in DAILY and ingest[0] != ingestion_seconds(partition_day(partition)) * 1_000_000:
        problems.append(f"ingestion_ts is not 02:00 after {partition.split('=', 1)[1]}")
    event = event_numbers(t["event_id"])
    if event is None:
        problems.append("event_id values are not all evt_ + 16 hex digits")
    else:
        rising = bool(np.all(event[1:] > event[:-1]))  # as bear writes them; else sort to find duplicates
        if not (np.all(event >> 52 == TABLE_CODE[table]) and (rising or len(np.unique(event)) == len(event))):
            problems.append(f"event_id values are not unique with table code {TABLE_CODE[table]}")
    return problems, distinct(t["batch_id"])


EVENT_PREFIX = EVENT_ID_PREFIX.encode()
EVENT_WIDTH = len(EVENT_PREFIX) + 16
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)


def event_numbers(col: pa.ChunkedArray) -> np.ndarray | None:
    """`evt_<16 hex digits>` -> the int64 they spell; None if any value has another form (or is null)."""
    arr = col.combine_chunks()
    if arr.null_count or not len(arr):
        return None if arr.null_count else np.array([], dtype=np.int64)
    if pc.min_max(pc.binary_length(arr)).as_py() != {"min": EVENT_WIDTH, "max": EVENT_WIDTH}:
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=4 * arr.offset)
    raw = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(len(arr), EVENT_WIDTH)
    nibbles = _HEX[raw[:, len(EVENT_PREFIX):]]
    if (raw[:, :len(EVENT_PREFIX)] != np.frombuffer(EVENT_PREFIX, np.uint8)).any() or (nibbles == 255).any():
        return None
    shifts = np.arange(60, -1, -4, dtype=np.uint64)
    return (nibbles.astype(np.uint64) << shifts).sum(axis=1, dtype=np.uint64).astype(np.int64)


def partition_value_problem(table: str, rel: str, t: pa.Table) -> str:
    """The partition column inside the file must hold the path's value in every row."""
    key = PARTITION_KEY[table]
    value = rel.split("/")[1].split("=", 1)[1]
    col = t[key]
    found = {str(v) for v in pc.unique(col.cast(pa.string()) if pa.types.is_date(col.type) else col).to_pylist()}
    if t.num_rows and (col.null_count or found != {value}):
        return f"{key} inside the file is {sorted(found, key=str)[:3]}, not the path's {value}"
    return ""


def distinct(col: pa.ChunkedArray) -> list:
    """Distinct values of a dictionary-read column, from its indices (the dictionary may hold unused entries)."""
    values = set()
    for chunk in col.chunks:
        used = pc.unique(chunk.indices).to_numpy(zero_copy_only=False)
        values.update(chunk.dictionary.take(pa.array(used)).to_pylist())
    return sorted(values)


def manifest_shape_error(doc) -> str:
    """What is malformed in a manifest document ("" when the fields the audit relies on are well-formed)."""
    if not isinstance(doc, dict):
        return "manifest is not a JSON object"
    files = doc.get("files")
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("rows"), int) for f in files):
        return "manifest files must be a list of {path, rows, bytes, md5}"
    if not isinstance(doc.get("total_rows"), int):
        return "manifest total_rows must be an integer"
    mess = doc.get("mess_counts", {})
    if not isinstance(mess, dict) or not all(
            isinstance(kinds, dict) and all(isinstance(n, int) for n in kinds.values()) for kinds in mess.values()):
        return "manifest mess_counts must map column -> kind -> count"
    return ""


def read_partition(sink: Sink, table: str, partition: str, names: frozenset[str],
                   shape: TableShape = BASE_SHAPE) -> PartRead:
    """The manifest and the files it lists (every data file present when there is no readable manifest), the files
    checked against the partition's table `shape`."""
    pr = PartRead(table, partition, names, shape=shape)
    base = f"{table}/{partition}"
    listed: list[str] = []
    if MANIFEST in names:
        try:
            pr.manifest = json.loads(sink.read(f"{base}/{MANIFEST}"))
            pr.manifest_error = manifest_shape_error(pr.manifest)
        except ValueError as exc:
            pr.manifest_error = f"unreadable manifest ({exc})"
        if pr.manifest_error:
            pr.manifest = None
        else:
            listed = [f["path"] for f in pr.manifest["files"]]
    if pr.manifest is None:
        listed = sorted(n for n in names if n not in MARKERS)
    for name in listed:
        pr.files.append(read_file(sink, table, f"{base}/{name}", shape) if name in names
                        else FileRead(name, present=False))
    return pr
