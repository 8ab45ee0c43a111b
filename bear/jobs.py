"""The unit of work every executor runs: one chunk, or the two dimension tables.

Pure generation in, files and their statistics out. The Ray runner calls these inside
tasks; tests and `bear plan` can call them in-process. Nothing here knows about Ray.
"""

from __future__ import annotations

import resource
import socket
import time
from dataclasses import dataclass, field

import numpy as np

from bear.config import CATEGORIES, BearConfig
from bear.lookups import Lookups, customer_columns, product_columns
from bear.mess import apply_mess
from bear.model import DAY_S, Model
from bear.plan import ChunkWork
from bear.sink import Sink, Writes
from bear.state import MANIFEST, json_bytes, manifest_document, sweep_temporaries
from bear.tables import Rows, chunk_tables
from bear.writer import PartitionStat, day_partition, ingestion_seconds, partition_dir, write_partitions


@dataclass
class JobResult:
    index: int  # chunk index; -1 for the dimensions
    partitions: list[PartitionStat]
    manifests: list[dict]  # the `_MANIFEST.json` written for each of `partitions`, in the same order
    seconds: dict[str, float] = field(default_factory=dict)
    node: str = ""  # where it ran (Ray node id, else host name)
    peak_rss_mb: float = 0.0  # the worker process's peak resident memory so far


def _where() -> tuple[str, float]:
    """Node and peak memory of the current process, for the run report."""
    try:
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else socket.gethostname()
    except Exception:
        node = socket.gethostname()
    return node, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Context:
    """What a worker needs to run jobs; built once per task from picklable parts."""

    cfg: BearConfig
    model: Model
    lookups: Lookups
    sink: Sink
    fingerprint: str


def write_manifests(ctx: Context, writes: Writes, stats: list[PartitionStat]) -> list[dict]:
    """Each partition's manifest, next to its files. Written here, where the statistics are, so the driver's
    commit is one `_SUCCESS` per partition: until that marker exists no reader trusts the manifest, and a
    rerun of an uncommitted chunk rewrites both."""
    manifests = [manifest_document(ctx.cfg, ctx.fingerprint, stat) for stat in stats]
    for stat, manifest in zip(stats, manifests, strict=True):
        writes.write(f"{stat.dir}/{MANIFEST}", json_bytes(manifest, indent=None))
    return manifests


def run_chunk(ctx: Context, work: ChunkWork) -> JobResult:
    t0 = time.perf_counter()
    tables = chunk_tables(ctx.model, ctx.lookups, work)
    t1 = time.perf_counter()
    chunk = work.plan.chunk
    days = range(chunk.start_day, chunk.end_day + 1)
    names = {d: day_partition(d) for d in days}
    ingest = {d: ingestion_seconds(d) for d in days}
    stats: list[PartitionStat] = []
    seconds = {"generate": t1 - t0, "mess": 0.0, "encode": 0.0, "write": 0.0}
    sweep_temporaries(ctx.sink, [partition_dir(t, v) for t in tables for v in names.values()])
    with Writes(ctx.sink) as writes:
        for table, rows in tables.items():
            m0 = time.perf_counter()
            ledger = apply_mess(ctx.model, table, rows.cols, rows.key, rows.event_s, rows.related)
            seconds["mess"] += time.perf_counter() - m0
            stats += write_partitions(writes, ctx.cfg.output, ctx.fingerprint, table, rows, ledger,
                                      rows.event_s // DAY_S, names, ingest, seconds)
        w0 = time.perf_counter()
        manifests = write_manifests(ctx, writes, stats)
    seconds["write"] += time.perf_counter() - w0  # manifests, and waiting for the last uploads
    return JobResult(chunk.index, stats, manifests, seconds, *_where())


def run_dimensions(ctx: Context, final_spend_c: np.ndarray) -> JobResult:
    t0 = time.perf_counter()
    model, lk = ctx.model, ctx.lookups
    cust = lk.customers
    run_start_s = model.start_day * DAY_S
    key = np.arange(1, len(cust) + 1, dtype=np.int64)
    signup = cust.signup_day.astype(np.int64)
    rows = Rows(customer_columns(model, lk, final_spend_c), signup * DAY_S, key)
    codes = np.unique(signup).tolist()
    names = {c: day_partition(c) for c in codes}
    ingest = {c: ingestion_seconds(c) for c in codes}
    ledger = apply_mess(model, "customers", rows.cols, rows.key, rows.event_s)
    pk = np.arange(1, len(lk.products) + 1, dtype=np.int64)
    prows = Rows(product_columns(lk.products), np.full(pk.size, run_start_s), pk)
    pledger = apply_mess(model, "product_catalog", prows.cols, prows.key, prows.event_s)
    cat = lk.products.category.astype(np.int64)
    sweep_temporaries(ctx.sink, [partition_dir("customers", v) for v in names.values()]
                      + [partition_dir("product_catalog", c) for c in CATEGORIES])
    with Writes(ctx.sink) as writes:
        stats = write_partitions(writes, ctx.cfg.output, ctx.fingerprint, "customers", rows, ledger, signup, names,
                                 ingest)
        stats += write_partitions(writes, ctx.cfg.output, ctx.fingerprint, "product_catalog", prows, pledger, cat,
                                  dict(enumerate(CATEGORIES)), dict.fromkeys(range(len(CATEGORIES)), run_start_s))
        manifests = write_manifests(ctx, writes, stats)
    return JobResult(-1, stats, manifests, {"dimensions": time.perf_counter() - t0}, *_where())
