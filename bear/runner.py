"""The backfill driver: plan, reserve IDs, fan chunks out to Ray, commit strictly in order.

The driver owns every decision that needs the whole picture (the skeleton walk, ID
blocks, the order of commits, the checkpoint); workers own everything that scales
(generating, messing, encoding and writing chunk files). A crash anywhere loses at most
uncommitted chunks, which a rerun regenerates byte for byte.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import resource
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bear import report
from bear.config import BearConfig
from bear.jobs import Context, JobResult, run_chunk, run_dimensions
from bear.lookups import Lookups, build_lookups
from bear.model import Model, day_to_date
from bear.plan import ChunkWork, make_chunks, walk
from bear.progress import Progress
from bear.schemas import DIMENSIONS, TRANSACTIONS
from bear.sink import Sink, SinkError, Writes, open_sink
from bear.state import (
    CHECKPOINT,
    HOOKS_DIR,
    PLAN,
    STATE_DIR,
    SUCCESS,
    bear_files,
    config_change,
    content_config,
    empty_checkpoint,
    fingerprint,
    is_complete,
    now_iso,
    other_config,
    plan_document,
    read_json,
    sweep_temporaries,
    write_json,
)

log = logging.getLogger("bear")


class RunError(RuntimeError):
    """A run stopped for a reason the user can act on; `exit_code` is what the CLI returns."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Prepared:
    """Everything the driver knows before any chunk runs."""

    cfg: BearConfig
    sink: Sink
    model: Model
    lookups: Lookups
    works: list[ChunkWork]
    final_spend_c: np.ndarray
    plan: dict[str, Any]
    fp: str
    seconds: dict[str, float] = field(default_factory=dict)


def prepare(cfg: BearConfig, base_dir: str | None = None) -> Prepared:
    """Lookups and the skeleton walk: chunks, exact counts, ID blocks and each chunk's start state."""
    t0 = time.perf_counter()
    sink = open_sink(cfg.sink, base_dir)
    cfg.sink = sink.cfg  # resolved (absolute root, GCS endpoint and token) so workers open the same lake
    model = Model.build(cfg)
    lookups = build_lookups(model)
    t1 = time.perf_counter()
    chunks = make_chunks(model.start_day, model.end_day, cfg.run.chunk_days)
    final: list = []
    works = list(walk(model, lookups.customers, lookups.products, chunks, final))
    plan = plan_document(cfg, [w.plan for w in works])
    t2 = time.perf_counter()
    return Prepared(cfg, sink, model, lookups, works, final[0].spend_c, plan, fingerprint(content_config(cfg)),
                    {"lookups": t1 - t0, "plan": t2 - t1})


def _preflight(sink: Sink, cfg: BearConfig) -> dict[str, Any] | None:
    """Before any planning or Ray: the location is usable, and holds nothing or a lake of this config (returns
    its plan); a lake of another config is refused, or with run.restart=true emptied of what bear wrote; a
    location that holds anything else is always refused."""
    sink.check_writable()
    sweep_temporaries(sink, [STATE_DIR, report.CHUNKS_DIR, HOOKS_DIR])  # state a killed run left half-written
    old = read_json(sink, PLAN)
    change = config_change(old, cfg) if old is not None else None
    if change:
        if not cfg.run.restart:
            raise RunError(other_config(sink.display, change), exit_code=2)
        everything = sink.find("")
        own = bear_files(everything)
        log.warning("run.restart=true: deleting the previous lake at %s (%d files bear wrote; %d others kept)",
                    sink.display, len(own), len(everything) - len(own))
        sink.delete(own)
        return None
    if old is None and sink.find(""):
        raise RunError(
            f"{sink.display} is not empty and is not a bear lake (no {PLAN}); bear writes only into an empty "
            f"location or a lake it wrote, and deletes nothing else, run.restart=true included: point "
            f"sink.root/sink.prefix at an empty or new location",
            exit_code=2,
        )
    return old


def load_hooks(specs: list[str]) -> list[Callable[[dict[str, Any]], Any]]:
    """`module:function` for each spec; a module beside the command (the working directory) is importable, as
    with `python -m`."""
    if specs and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    hooks = []
    for spec in specs:
        module, _, name = spec.partition(":")
        try:
            hooks.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError) as exc:
            raise RunError(f"hooks.post_export: cannot load {spec!r} ({exc})", exit_code=2) from None
    return hooks


class Committer:
    """Publishes finished work strictly in order: `_SUCCESS` (the worker wrote files and manifest), hooks, then
    the checkpoint."""

    def __init__(self, p: Prepared, checkpoint: dict[str, Any], hooks: list[Callable[[dict[str, Any]], Any]]):
        self.p = p
        self.checkpoint = checkpoint
        self.hooks = hooks
        self.commit_s = 0.0

    def commit(self, result: JobResult) -> None:
        t0 = time.perf_counter()
        p, ck = self.p, self.checkpoint
        with Writes(p.sink) as writes:
            for stat in result.partitions:
                writes.write(f"{stat.dir}/{SUCCESS}", b"")
        if self.hooks:
            self._run_hooks(result)
        for stat in result.partitions:
            ck["rows"][stat.table] = ck["rows"].get(stat.table, 0) + stat.rows
            ck["bytes"][stat.table] = ck["bytes"].get(stat.table, 0) + stat.bytes
            ck["partitions"] += 1
        write_json(p.sink, report.summary_name(result.index), report.chunk_summary(result.partitions), indent=None)
        if result.index < 0:
            ck["dimensions_committed"] = True
        else:
            chunk = p.works[result.index].plan
            ck["committed_chunks"] = result.index + 1
            ck["last_committed_date"] = day_to_date(chunk.chunk.end_day).isoformat()
            ck["id_high_water"] = {f: chunk.first_ids[f] + chunk.counts[f] - 1 for f in chunk.first_ids}
        ck["updated_at"] = now_iso()
        write_json(p.sink, CHECKPOINT, ck)
        self.commit_s += time.perf_counter() - t0


    def _run_hooks(self, result: JobResult) -> None:
        """Call each hook once per partition, journaled per chunk so a resumed chunk skips what already ran."""
        sink = self.p.sink
        journal = f"{HOOKS_DIR}/{'dimensions' if result.index < 0 else f'chunk-{result.index:05d}'}.json"
        done = set((read_json(sink, journal) or {}).get("done", []))
        for stat, manifest in zip(result.partitions, result.manifests, strict=True):
            if stat.dir in done:
                continue
            context = {"table": stat.table, "partition": stat.partition, "path": sink.path(stat.dir),
                       "manifest": manifest}
            for hook in self.hooks:
                try:
                    hook(context)
                except Exception as exc:
                    raise RunError(
                        f"post-export hook {hook.__module__}:{hook.__name__} failed on {stat.dir}: "
                        f"{type(exc).__name__}: {exc}; the checkpoint stays before this chunk and a rerun retries it"
                    ) from exc
            done.add(stat.dir)
            write_json(sink, journal, {"done": sorted(done)})


def _ray_init(cfg: BearConfig) -> bool:
    """Start or join Ray; returns whether this call started it (and so must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    if cfg.ray.kind == "cluster":
        address = cfg.ray.address or os.environ.get("RAY_ADDRESS") or "auto"
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError:
            raise RunError(
                f"ray=cluster: no running Ray cluster found at address {address!r}. Submit the run to a cluster "
                f"(`ray job submit --working-dir . -- bear ray=cluster ...`), point RAY_ADDRESS or "
                f"ray.address=HOST:PORT at its head node, or use ray=local to run on this machine; committed work "
                f"is kept"
            ) from None
    else:
        ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
    return True


_CONTEXTS: dict[str, Context] = {}


def _context(cfg: BearConfig, lookups: Lookups, fp: str) -> Context:
    """One Context per worker process and run (model and sink are cheap but not free)."""
    key = f"{fp}:{cfg.sink!r}"
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[key] = Context(cfg, Model.build(cfg), lookups, open_sink(cfg.sink), fp)
    ctx = _CONTEXTS[key]
    ctx.lookups = lookups
    return ctx


def _chunk_task(cfg: BearConfig, lookups: Lookups, fp: str, work: ChunkWork) -> JobResult:
    return run_chunk(_context(cfg, lookups, fp), work)


def _dimension_task(cfg: BearConfig, lookups: Lookups, fp: str, final_spend_c: np.ndarray) -> JobResult:
    return run_dimensions(_context(cfg, lookups, fp), final_spend_c)


def _failure(exc: BaseException) -> str:
    """`ValueError: boom (at bear/tables.py:123 in orders_and_items)` from a (Ray-wrapped) task exception."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, SinkError):
        return str(cause)  # already one line saying what failed (a GCS call) and how to fix it
    text = str(exc) + "".join(traceback.format_tb(cause.__traceback__))  # Ray puts the remote traceback in str()
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', text)
    ours = [f for f in frames if "/bear/" in f[0]] or frames
    where = ""
    if ours:
        path, line, func = ours[-1]
        where = f" (at {'bear/' + path.rsplit('/bear/', 1)[-1] if '/bear/' in path else path}:{line} in {func})"
    return f"{type(cause).__name__}: {cause}{where}"


@dataclass
class Tally:
    """What the workers reported, summed over the jobs of this run."""

    seconds: dict[str, float] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    last_result_at: float = 0.0  # perf_counter when the last job's result came in

    def add(self, result: JobResult) -> None:
        for k, v in result.seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v
        self.nodes[result.node] = self.nodes.get(result.node, 0) + 1
        self.peak_rss_mb = max(self.peak_rss_mb, result.peak_rss_mb)


def _run_jobs(p: Prepared, ck: dict[str, Any], committer: Committer, progress: Progress, limit: int) -> Tally:
    """Keep up to `limit` jobs in flight and commit their results strictly in chunk order."""
    import ray

    cfg = p.cfg
    chunk_remote = ray.remote(max_retries=cfg.ray.max_retries)(_chunk_task)
    dims_remote = ray.remote(max_retries=cfg.ray.max_retries)(_dimension_task)
    lk_ref = ray.put(p.lookups)
    queue: list[tuple[int, Callable[[], Any]]] = []
    if not ck["dimensions_committed"]:
        queue.append((-1, lambda: dims_remote.remote(cfg, lk_ref, p.fp, p.final_spend_c)))
    queue += [(w.plan.chunk.index, lambda w=w: chunk_remote.remote(cfg, lk_ref, p.fp, ray.put(w)))
              for w in p.works if w.plan.chunk.index >= ck["committed_chunks"]]
    tally = Tally()
    inflight: dict[Any, int] = {}
    done: dict[int, JobResult] = {}
    nxt = submitted = 0
    while nxt < len(queue):
        while submitted < len(queue) and len(inflight) < limit:
            idx, submit = queue[submitted]
            inflight[submit()] = idx
            submitted += 1
        ready, _ = ray.wait(list(inflight), num_returns=1)
        for ref in ready:
            idx = inflight.pop(ref)
            try:
                done[idx] = ray.get(ref)
                tally.last_result_at = time.perf_counter()
            except Exception as exc:
                for other in inflight:
                    ray.cancel(other, force=True)
                where = "dimension tables" if idx < 0 else f"chunk {idx} ({p.works[idx].plan.chunk.name})"
                raise RunError(f"{where} failed: {_failure(exc)}. Committed work is kept; fix the cause and "
                               f"rerun the same command to resume.") from None
        while nxt < len(queue) and queue[nxt][0] in done:
            result = done.pop(queue[nxt][0])
            tally.add(result)
            committer.commit(result)
            nxt += 1
            progress.update(ck["committed_chunks"], sum(ck["rows"].values()))
    return tally


def backfill(cfg: BearConfig, base_dir: str | None = None) -> dict:
    """Run (or resume) the configured backfill; returns the run report (dry run: the listing, nothing written)."""
    import ray

    t_start = time.perf_counter()
    hooks = load_hooks(list(cfg.hooks.post_export))
    if cfg.sink.dry_run:
        from bear.dryrun import dry_run

        return dry_run(prepare(cfg, base_dir))
    sink = open_sink(cfg.sink, base_dir)
    old = _preflight(sink, cfg)
    ck = read_json(sink, CHECKPOINT) if old is not None else None
    if is_complete(old, ck):
        return {**(read_json(sink, report.REPORT_JSON) or {}), "nothing_to_do": True, "lake": sink.display}
    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(max_workers=1) as planner:
            planning = planner.submit(prepare, cfg, base_dir)  # one core's work: Ray starts meanwhile
            if _ray_init(cfg):
                stack.callback(ray.shutdown)
            t_ray = time.perf_counter()
            p = planning.result()
        if old is None:
            write_json(p.sink, PLAN, p.plan)
        ck = ck or empty_checkpoint(p.plan)
        t_ready = time.perf_counter()
        committer = Committer(p, ck, hooks)
        total_rows = sum(p.plan["totals"].values()) + cfg.generator.customers + cfg.generator.products
        log.info("plan: %d chunks (%d to do), %s rows, lake %s", len(p.works),
                 len(p.works) - ck["committed_chunks"], f"{total_rows:,}", p.sink.display)
        progress = Progress(cfg.logging.progress, len(p.works), total_rows, ck["committed_chunks"],
                            sum(ck["rows"].values()))
        stack.callback(progress.close)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        nodes = sum(1 for n in ray.nodes() if n["Alive"])
        if p.sink.is_local and nodes > 1:
            log.warning("sink=local on a %d-node Ray cluster: every node writes its chunks under %s on its own disk, "
                        "so the lake is whole only if that path is one shared file system on all nodes; otherwise "
                        "use sink=gcs", nodes, p.sink.display)
        tally = _run_jobs(p, ck, committer, progress, cfg.ray.max_in_flight or max(2, 2 * cpus))
        t_done = time.perf_counter()
    t_end = time.perf_counter()
    wall = t_end - t_start
    run = {
        "lake": p.sink.display,
        "fingerprint": p.fp,
        "chunks": len(p.works),
        "wall_seconds": round(wall, 3),
        "rows_written_by_this_run": sum(ck["rows"].values()) - progress.start_rows,
        "driver_seconds": {**{k: round(v, 3) for k, v in p.seconds.items()},
                           "ray_start": round(t_ray - t_start, 3),  # in parallel with lookups and plan
                           "startup": round(t_ready - t_start, 3),  # until the first job could go out
                           "commit": round(committer.commit_s, 3),
                           "after_last_job": round(t_done - (tally.last_result_at or t_done), 3),  # its commit
                           "ray_stop": round(t_end - t_done, 3)},
        "worker_seconds": {k: round(v, 3) for k, v in tally.seconds.items()},
        "jobs_per_node": tally.nodes,
        "worker_count": cpus,
        "worker_peak_rss_mb": round(tally.peak_rss_mb, 1),
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "finished_at": now_iso(),
    }
    doc = report.build(p.sink, p.plan, run)
    report.publish(p.sink, doc)
    return doc


def expected_partitions(p: Prepared) -> dict[str, int]:
    """Partitions a finished lake has per table (empty days included)."""
    days = p.model.end_day - p.model.start_day + 1
    out = dict.fromkeys(TRANSACTIONS, days)
    out["customers"] = len(np.unique(p.lookups.customers.signup_day))
    out["product_catalog"] = 5
    return {t: out[t] for t in (*DIMENSIONS, *TRANSACTIONS)}

