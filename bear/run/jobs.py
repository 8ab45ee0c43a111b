"""The unit of work every executor runs: one chunk, or the dimension tables' first partitions.

A job is generation (pure: `bear.gen`) followed by an output step: the backfill writes a
chunk's partitions, files and manifests; `generate()` keeps its tables in memory. Both
go through `chunk_rows`/`dimension_rows`, so the lake and the in-memory tables are the same
rows. Nothing here knows which executor runs it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from bear.config.schema import BearConfig
from bear.core.calendar import DAY_S
from bear.core.rows import Ledger, Rows, concat_rows, take_rows
from bear.core.schemas import DAILY, SCHEMAS, TABLES, shape_on
from bear.core.vocab import CATEGORIES
from bear.gen.delivery import deliver
from bear.gen.lookups import Customers, Lookups, Products, product_columns
from bear.gen.mess import apply_mess
from bear.gen.model import Model
from bear.gen.planner import ChunkPlan, ChunkWork, DatedReturns, chunk_work, date_returns, day_batches, landing_windows
from bear.gen.skeleton import Chunk, ShardPiece, walk_shard
from bear.gen.tables import chunk_tables, customer_rows, feed_tables
from bear.lake.layout import MANIFEST, day_partition, ingestion_seconds, partition_dir
from bear.lake.parquet import PartitionStat, write_partitions
from bear.lake.sink import Sink, Writes, open_sink
from bear.lake.state import json_bytes, manifest_document, sweep_temporaries
from bear.run import memory


@dataclass
class JobResult:
    index: int  # chunk index; -1 for the dimensions
    partitions: list[PartitionStat]
    manifests: list[dict]  # the `_MANIFEST.json` written for each of `partitions`, in the same order
    seconds: dict[str, float] = field(default_factory=dict)
    node: str = ""  # where it ran (Ray node id, else host name)
    peak_rss_mb: float = 0.0  # the worker process's peak resident memory so far (object-store pages included)
    peak_private_mb: float = 0.0  # its peak private memory so far (bear.run.memory)


@dataclass
class Context:
    """What a worker needs to run jobs: built once per process and run from picklable parts."""

    cfg: BearConfig
    model: Model
    lookups: Lookups
    sink: Sink
    fingerprint: str


_CONTEXTS: dict[str, Context] = {}


def context(cfg: BearConfig, lookups: Lookups, fp: str) -> Context:
    """This process's Context for a run (the model and sink are cheap but not free; a worker runs many jobs)."""
    memory.watch()
    key = f"{fp}:{cfg.run.end}:{cfg.sink!r}"  # the fingerprint leaves out run.end, which the model is built for
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[key] = Context(cfg, Model.build(cfg), lookups, open_sink(cfg.sink), fp)
    ctx = _CONTEXTS[key]
    ctx.lookups = lookups
    return ctx


def _where() -> tuple[str, float, float]:
    """Node and peak memory (RSS, private) of the current process, for the run report."""
    try:
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else socket.gethostname()
    except Exception:
        node = socket.gethostname()
    return node, *memory.peaks()


def chunk_rows(ctx: Context, work: ChunkWork, first_day: int, last_day: int, mess: bool = True,
               seconds: dict[str, float] | None = None, feed: bool = True) -> dict[str, tuple[Rows, Ledger]]:
    """The rows of a chunk that land on days [first_day, last_day] per table (daily tables, new customers), messed
    (unless `mess=False`), with their ledgers: the rows dated then, less the orders the feed delivers later, plus
    those of the days before that it delivers late or again then (`bear.gen.delivery`). With `feed=False` (the
    in-memory tables, which have no partitions) every row is there once, on its event day."""
    parts: dict[str, list[tuple[Rows, Ledger]]] = {}
    for w, feed_only in landing_windows(work, first_day, last_day, ctx.model.max_lag if feed else 0):
        t0 = time.perf_counter()
        tables = (feed_tables if feed_only else chunk_tables)(ctx.model, ctx.lookups, w)
        t1 = time.perf_counter()
        for name, rows in tables.items():
            ledger = apply_mess(ctx.model, name, rows.cols, rows.key, rows.event_s, rows.related) if mess else {}
            if feed:
                rows, ledger = deliver(rows, ledger)
            day = rows.landing_day()
            here = (day >= first_day) & (day <= last_day)
            parts.setdefault(name, []).append((rows, ledger) if here.all() else take_rows(rows, ledger,
                                                                                           np.flatnonzero(here)))
        if seconds is not None:
            seconds["generate"] = seconds.get("generate", 0.0) + t1 - t0
            seconds["mess"] = seconds.get("mess", 0.0) + time.perf_counter() - t1
    return {name: concat_rows(p) for name, p in parts.items()}


def dimension_rows(ctx: Context, mess: bool = True) -> dict[str, tuple[Rows, Ledger]]:
    """The product catalog and the customers who signed up before the run's start, messed (unless `mess=False`)
    with their ledgers."""
    model, lk = ctx.model, ctx.lookups
    pk = np.arange(1, len(lk.products) + 1, dtype=np.int64)
    prows = Rows(product_columns(lk.products), np.full(pk.size, model.start_day * DAY_S), pk)
    rows = customer_rows(model, lk, model.cal_day0, model.start_day - 1)
    return {name: (r, apply_mess(model, name, r.cols, r.key, r.event_s) if mess else {})
            for name, r in (("customers", rows), ("product_catalog", prows))}


def write_manifests(ctx: Context, writes: Writes, stats: list[PartitionStat]) -> list[dict]:
    """Each partition's manifest, next to its files. Written here, where the statistics are, so the driver's
    commit is one `_SUCCESS` per partition: until that marker exists no reader trusts the manifest, and a
    rerun of an uncommitted chunk rewrites both."""
    manifests = [manifest_document(ctx.cfg, ctx.fingerprint, stat) for stat in stats]
    for stat, manifest in zip(stats, manifests, strict=True):
        writes.write(f"{stat.dir}/{MANIFEST}", json_bytes(manifest, indent=None))
    return manifests


def _write_days(writes: Writes, ctx: Context, table: str, rows: Rows, ledger: Ledger, days: range,
                seconds: dict[str, float] | None = None) -> list[PartitionStat]:
    """A table's rows of `days` into their day partitions: every day for the daily tables (empty days included),
    the days that have signups for customers."""
    day = rows.landing_day()
    codes = days if table in DAILY else np.unique(day).tolist()
    names = {d: day_partition(d) for d in codes}
    shapes = {d: shape_on(ctx.model.schema_changes, table, d) for d in codes}
    return write_partitions(writes, ctx.cfg.output, ctx.fingerprint, table, rows, ledger, day, names,
                            {d: ingestion_seconds(d) for d in codes}, seconds, shapes)


def run_chunk(ctx: Context, work: ChunkWork) -> JobResult:
    """Generate, mess and write one chunk's partitions (every day of its window, empty days included, and the
    signup days of its new customers).

    A chunk of more than `ray.batch_rows` rows goes in groups of days, so a worker's memory follows that, not
    the chunk's volume (a 30-day chunk of a run ten times the default would need several GB at once).
    """
    seconds = {"generate": 0.0, "mess": 0.0, "encode": 0.0, "write": 0.0}
    chunk = work.plan.chunk
    days = range(chunk.start_day, chunk.end_day + 1)
    sweep_temporaries(ctx.sink, [partition_dir(t, day_partition(d)) for t in (*DAILY, "customers") for d in days])
    stats: list[PartitionStat] = []
    with Writes(ctx.sink) as writes:
        for first, last in day_batches(work.plan, ctx.cfg.ray.batch_rows):
            for table, (rows, ledger) in chunk_rows(ctx, work, first, last, seconds=seconds).items():
                stats += _write_days(writes, ctx, table, rows, ledger, range(first, last + 1), seconds)
        stats.sort(key=lambda s: (TABLES.index(s.table), s.partition))  # table by table, day by day
        w0 = time.perf_counter()
        manifests = write_manifests(ctx, writes, stats)
    w1 = time.perf_counter()
    seconds["write"] += w1 - w0  # manifests, and waiting for the last uploads
    ctx.sink.sync()  # on the disk before the driver's commit makes it visible
    seconds["sync"] = time.perf_counter() - w1
    return JobResult(chunk.index, stats, manifests, seconds, *_where())


def run_dimensions(ctx: Context) -> JobResult:
    """Generate, mess and write the catalog (one partition per category) and the customers who signed up before
    the run's start (one per signup day); later signups go with the chunk they sign up in."""
    t0 = time.perf_counter()
    dims = dimension_rows(ctx)
    (rows, ledger), (prows, pledger) = dims["customers"], dims["product_catalog"]
    signup_days = np.unique(rows.event_s // DAY_S).tolist()
    sweep_temporaries(ctx.sink, [partition_dir("customers", day_partition(d)) for d in signup_days]
                      + [partition_dir("product_catalog", c) for c in CATEGORIES])
    with Writes(ctx.sink) as writes:
        stats = _write_days(writes, ctx, "customers", rows, ledger, range(0))
        stats += write_partitions(writes, ctx.cfg.output, ctx.fingerprint, "product_catalog", prows, pledger,
                                  ctx.lookups.products.category.astype(np.int64), dict(enumerate(CATEGORIES)),
                                  dict.fromkeys(range(len(CATEGORIES)), ctx.model.start_day * DAY_S))
        manifests = write_manifests(ctx, writes, stats)
    ctx.sink.sync()
    return JobResult(-1, stats, manifests, {"dimensions": time.perf_counter() - t0}, *_where())


def in_memory(name: str, rows: Rows) -> pa.Table:
    """A table's rows as `generate()` returns them: the data columns in schema order, plain (not dictionary)
    types, no lineage."""
    fields = [f for f in SCHEMAS[name] if f.name in rows.cols]
    return pa.Table.from_arrays([rows.cols[f.name].cast(f.type) for f in fields], schema=pa.schema(fields))


# The jobs as executors submit them: module-level functions of picklable arguments (or handles of them).
InMemory = dict[str, tuple[pa.Table, Ledger]]


def shard_job(cfg: BearConfig, customers: Customers, products: Products, chunks: list[Chunk], lo: int, hi: int,
              pieces: bool) -> Iterator[Any]:
    """The skeleton pass over customers [lo, hi): a generator (on Ray, a streaming task), then where it ran."""
    memory.watch()
    yield from walk_shard(Model.build(cfg), customers, products, chunks, lo, hi, pieces)
    yield _where()


def returns_job(plan: ChunkPlan, chunks: list[Chunk], *pieces: ShardPiece) -> DatedReturns | tuple[DatedReturns, ...]:
    """The returns of the chunk's orders with their order IDs, one value per chunk they are dated in (the value
    itself if one)."""
    parts = date_returns(plan, chunks, list(pieces))
    return parts[0] if len(parts) == 1 else tuple(parts)


@dataclass
class Layout:
    """How a chunk job's handles split: its shard pieces, the returns dated in it, then the pieces of each chunk
    it looks back into (with that chunk's plan)."""

    pieces: int
    dues: int
    before: list[tuple[ChunkPlan, int]]


def _work(plan: ChunkPlan, layout: Layout, parts: tuple) -> ChunkWork:
    at = layout.pieces + layout.dues
    before = []
    for p, n in layout.before:
        before.append(chunk_work(p, list(parts[at:at + n]), []))
        at += n
    return chunk_work(plan, list(parts[:layout.pieces]), list(parts[layout.pieces:layout.pieces + layout.dues]),
                      before)


def chunk_job(cfg: BearConfig, lookups: Lookups, fp: str, plan: ChunkPlan, layout: Layout, *parts: Any) -> JobResult:
    return run_chunk(context(cfg, lookups, fp), _work(plan, layout, parts))


def dimensions_job(cfg: BearConfig, lookups: Lookups, fp: str) -> JobResult:
    return run_dimensions(context(cfg, lookups, fp))


def chunk_in_memory_job(cfg: BearConfig, lookups: Lookups, fp: str, mess: bool, plan: ChunkPlan, layout: Layout,
                        *parts: Any) -> InMemory:
    rows = chunk_rows(context(cfg, lookups, fp), _work(plan, layout, parts), plan.chunk.start_day, plan.chunk.end_day,
                      mess, feed=False)
    return {n: (in_memory(n, r), led) for n, (r, led) in rows.items()}


def dimensions_in_memory_job(cfg: BearConfig, lookups: Lookups, fp: str, mess: bool) -> InMemory:
    rows = dimension_rows(context(cfg, lookups, fp), mess)
    return {n: (in_memory(n, r), led) for n, (r, led) in rows.items()}
