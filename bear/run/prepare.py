"""The driver's part of planning: shard the skeleton pass, sum its counts, reserve the ID blocks.

The skeleton pass (`bear.gen.skeleton`) runs as one streaming job per contiguous customer
shard; each yields, chunk by chunk, small counts that come back here and a piece of the
chunk's work that stays in the executor's store. Per chunk the driver sums the counts
into the chunk's plan and ID blocks and starts the job that numbers the returns of the
chunk's orders; chunk jobs later take the pieces and numbered returns as handles. So the
driver holds the plan and handles, never visits: its memory does not grow with the volume,
and the pass runs on as many cores as there are shards. Plan-only callers (`bear plan`,
the dry run) run the same pass without pieces.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bear import __version__
from bear.config.schema import BearConfig
from bear.core.calendar import day_number, day_to_date
from bear.core.schemas import ID_FAMILIES
from bear.gen.lookups import Customers, Lookups, Products, build_customers, build_lookups, build_products
from bear.gen.model import Model
from bear.gen.planner import ChunkPlan, lookback, plan_chunk
from bear.gen.skeleton import Chunk, make_chunks
from bear.lake.state import content_config, fingerprint, plan_document
from bear.run.errors import RunError
from bear.run.executors import Executor, InProcessExecutor, failure
from bear.run.jobs import Layout, returns_job, shard_job

MIN_SHARD = 20_000  # customers: below this a shard's fixed costs outweigh what it parallelises
MAX_SHARD = 1_000_000  # customers x generator.scale: a shard's working memory per chunk grows with this


def shard_count(cfg: BearConfig, customers: int, workers: int) -> int:
    """`ray.plan_shards`, else one per worker (of at least MIN_SHARD customers), or more to keep each shard's
    memory bounded: then a multiple of the workers, which walk them in turns of equal length."""
    if cfg.ray.plan_shards:
        return cfg.ray.plan_shards
    by_workers = max(1, min(workers, customers // MIN_SHARD))
    by_memory = math.ceil(customers * cfg.generator.scale / MAX_SHARD)
    return by_workers if by_memory <= by_workers else math.ceil(by_memory / workers) * workers


def shard_bounds(model: Model, customers: Customers, shards: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) ranges covering every customer, of about equal work: a customer's walk costs about
    the days from their signup to the run's end (early signups come first and have the longest histories)."""
    work = np.cumsum(np.maximum(model.end_day - customers.signup_day.astype(np.int64), 0) + 30)
    edges = np.searchsorted(work, work[-1] * np.arange(1, shards) / shards).tolist() if len(work) else []
    edges = [0, *edges, len(customers)]
    return list(zip(edges[:-1], edges[1:], strict=True))


@dataclass
class Setup:
    """The driver's own share of planning, done before (or while) the executor starts."""

    cfg: BearConfig
    model: Model
    customers: Customers  # behaviour columns only: the shards walk them, signup days make partitions
    products: Products
    lookups: Lookups | None  # what chunk jobs read about customers and products (None: plan only)
    seconds: float


def set_up(cfg: BearConfig, lookups: bool = True) -> Setup:
    t0 = time.perf_counter()
    model = Model.build(cfg)
    customers, products = build_customers(model), build_products(model)
    lk = build_lookups(model, customers, products) if lookups else None
    return Setup(cfg, model, customers, products, lk, time.perf_counter() - t0)


@dataclass
class Prepared:
    """What the driver knows before any chunk runs: plans and the plan document, and handles of the rest."""

    cfg: BearConfig
    model: Model
    customers: Customers
    products: Products
    plans: list[ChunkPlan]
    plan: dict[str, Any]
    fp: str
    shards: int
    shard_nodes: dict[str, int]  # where the shards ran: node -> shards
    shard_peak_mb: tuple[float, float]  # the largest peak (RSS, private) memory of a process that ran a shard
    lookups: Any = None  # handle of the Lookups (None: plan only)
    pieces: list[list[Any]] = field(default_factory=list)  # per chunk, its shard pieces' handles (to do only)
    dues: list[list[Any]] = field(default_factory=list)  # per chunk, handles of the returns dated in it
    seconds: dict[str, float] = field(default_factory=dict)

    def chunk_args(self, index: int) -> list[Any]:
        """What a chunk job takes after the plan: its Layout, then its pieces, the returns dated in it and the
        pieces of the chunks it looks back into. Chunk jobs are submitted in order, so a handle no later chunk
        needs is dropped here, and the store can free it when the job is done."""
        back = lookback(self.plans, index, self.model.max_lag)
        layout = Layout(len(self.pieces[index]), len(self.dues[index]),
                        [(self.plans[j], len(self.pieces[j])) for j in back])
        args = [layout, *self.pieces[index], *self.dues[index], *(h for j in back for h in self.pieces[j])]
        self.dues[index] = []
        later = index + 1 < len(self.plans) and lookback(self.plans, index + 1, self.model.max_lag)
        for j in [*back, index]:
            if not later or j not in later:
                self.pieces[j] = []
        return args


def plan_chunks(cfg: BearConfig, model: Model, lake: dict[str, Any] | None, committed: int) -> list[Chunk]:
    """The run's chunks: the first `committed` chunks of the lake's plan `lake` as they were, then chunks of
    run.chunk_days from the day after them to run.end. A fresh run chunks from run.start; an extension keeps the
    committed range and chunks the new days (no row depends on where chunks begin)."""
    kept = [Chunk(i, day_number(c["start"]), day_number(c["end"])) for i, c in enumerate(lake["chunks"][:committed])
            ] if lake is not None else []
    first = kept[-1].end_day + 1 if kept else model.start_day
    return kept + make_chunks(first, model.end_day, cfg.run.chunk_days, len(kept))


def prepare(setup: Setup, executor: Executor, lake: dict[str, Any] | None = None, committed: int = 0) -> Prepared:
    """Plan the run on `executor` (after the first `committed` chunks of the lake's plan `lake`, kept as they
    are); unless `setup` is plan only, also everything chunks from index `committed` on take."""
    cfg, model, customers = setup.cfg, setup.model, setup.customers
    pieces = setup.lookups is not None
    t1 = time.perf_counter()
    shared = executor.share(customers), executor.share(setup.products)
    chunks = plan_chunks(cfg, model, lake, committed)
    shards = shard_count(cfg, len(customers), executor.workers)
    streams = [executor.stream(shard_job, cfg, *shared, chunks, lo, hi, pieces)
               for lo, hi in shard_bounds(model, customers, shards)]
    next_id = dict.fromkeys(ID_FAMILIES, 1)
    first_new = chunks[committed].start_day if committed < len(chunks) else model.end_day + 1
    plans: list[ChunkPlan] = []
    chunk_pieces: list[list[Any]] = []
    dues: list[list[Any]] = [[] for _ in chunks]
    try:
        for chunk in chunks:
            counts, shard_pieces = [], []
            for stream in streams:
                counts.append(next(stream))
                if pieces:
                    shard_pieces.append(next(stream))
            plan = plan_chunk(chunk, next_id, executor.results(counts))
            plans.append(plan)
            if pieces and plan.due and plan.due[-1] >= committed:
                dated = executor.submit_many(returns_job, len(plan.due), plan, chunks, *shard_pieces)
                for k, handle in zip(plan.due, dated, strict=True):
                    if k >= committed:
                        dues[k].append(handle)
            needed = chunk.index >= committed or chunk.end_day >= first_new - model.max_lag  # looked back into
            chunk_pieces.append(shard_pieces if needed else [])
        where = executor.results([next(stream) for stream in streams])
    except Exception as exc:
        raise RunError(f"planning (the skeleton pass over {shards} customer shards) failed: {failure(exc)}") from None
    records = [p.record() for p in plans]
    for k in range(committed):
        if records[k] != lake["chunks"][k]:
            raise RunError(f"the lake's committed chunk {k} ({chunks[k].name}) was planned with other row counts or "
                           f"ID blocks than this bear computes (lake written by generator "
                           f"{lake.get('generator_version')}, this is {__version__}): extend it with the bear that "
                           f"wrote it, or start over with run.restart=true", exit_code=2)
    signup = customers.signup_day[customers.signup_day <= model.end_day]
    plan_doc = plan_document(cfg, records, [day_to_date(d).isoformat() for d in np.unique(signup).tolist()],
                             signup.size, {str(p.chunk.index): p.feed for p in plans
                                           if any(n for kind in p.feed.values() for n in kind.values())})
    t2 = time.perf_counter()
    nodes: dict[str, int] = {}
    for node, *_ in where:
        nodes[node] = nodes.get(node, 0) + 1
    peak = (max(w[1] for w in where), max(w[2] for w in where))
    lookups = executor.share(setup.lookups) if pieces else None
    return Prepared(cfg, model, customers, setup.products, plans, plan_doc, fingerprint(content_config(cfg)),
                    shards, nodes, peak, lookups, chunk_pieces, dues, {"setup": setup.seconds, "plan": t2 - t1})


def prepare_plan(cfg: BearConfig, lake: dict[str, Any] | None = None, committed: int = 0) -> Prepared:
    """The plan alone, on this core: counts without pieces, no Ray (`bear plan`, the dry run)."""
    return prepare(set_up(cfg, lookups=False), InProcessExecutor(), lake, committed)
