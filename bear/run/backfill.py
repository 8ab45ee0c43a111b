"""The backfill driver: check the location, plan, fan chunks out to an executor, commit strictly in order.

The driver owns every decision that needs the whole picture (the skeleton walk, ID
blocks, the order of commits, the checkpoint); jobs own everything that scales
(generating, messing, encoding and writing chunk files). A crash anywhere loses at most
uncommitted chunks, which a rerun regenerates byte for byte.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bear.config.schema import BearConfig
from bear.lake.layout import (
    CHECKPOINT,
    CHUNKS_DIR,
    HOOKS_DIR,
    PLAN,
    REPORT_JSON,
    STATE_DIR,
    SUCCESS,
    bear_files,
    dated_after,
    is_lease,
)
from bear.lake.lease import Lease
from bear.lake.recovery import load_checkpoint, plan_recoverable, read_plan
from bear.lake.sink import Sink, open_sink
from bear.lake.state import (
    StateDamaged,
    config_change,
    content_config,
    fingerprint,
    is_complete,
    lake_rows,
    now_iso,
    other_config,
    plan_config,
    read_state,
    shortening,
    sweep_temporaries,
    write_state,
)
from bear.run import memory, report
from bear.run.commit import Committer, load_hooks
from bear.run.errors import RunError
from bear.run.executors import Executor, InProcessExecutor, Job, RayExecutor, commit_in_order, start_ray
from bear.run.jobs import JobResult, chunk_job, dimensions_job
from bear.run.prepare import Prepared, prepare, set_up
from bear.run.progress import Progress

log = logging.getLogger("bear")


Found = tuple[dict[str, Any] | None, dict[str, Any] | None, StateDamaged | None]


def preflight(sink: Sink, cfg: BearConfig) -> Found:
    """With the lease held, before any planning or Ray: the location holds nothing or a lake of this config (its
    plan and checkpoint, or the damage to a plan the config can recompute); a lake of another config, or one
    committed past run.end, is refused, or with run.restart=true emptied of what bear wrote."""
    sweep_temporaries(sink, [STATE_DIR, CHUNKS_DIR, HOOKS_DIR])  # state a killed run left half-written
    old, ck, damage, refusal = None, None, None, None
    try:
        old = read_plan(sink)
        change = config_change(old, cfg) if old is not None else None
        if change:
            refusal = other_config(sink.display, change)
        elif old is not None:
            ck = _checkpoint(sink, old)
            refusal = shortening(sink.display, ck, cfg.run.end)
    except StateDamaged as exc:
        damage = exc
        later = dated_after([r for r in sink.find("") if r.endswith(f"/{SUCCESS}")], cfg.run.end)
        if later:  # the plan's end is lost, but the markers say how far the lake is committed
            refusal = (f"{sink.display}: {exc}, and the lake holds committed partitions after run.end={cfg.run.end} "
                       f"(e.g. {later[-1].rsplit('/', 1)[0]}): rerun with run.end at or after the lake's last day")
        elif not plan_recoverable(sink, fingerprint(content_config(cfg)), fingerprint(plan_config(cfg))):
            refusal = (f"{sink.display}: {exc}, and the lake's manifests or checkpoint were written by another "
                       f"config, so it cannot be recomputed from this one: rerun with the lake's original settings, "
                       f"add run.restart=true to delete that lake and start over, or pick another sink location")
    if refusal:
        if not cfg.run.restart:
            raise RunError(refusal, exit_code=2)
        everything = [r for r in sink.find("") if not is_lease(r)]
        # all but the plan, which the new one replaces: a crash before that leaves a location still seen as bear's
        own = [r for r in bear_files(everything) if r != PLAN]
        log.warning("run.restart=true: deleting the previous lake at %s (%d files bear wrote; %d others kept)",
                    sink.display, len(own), len(everything) - len(own))
        sink.delete(own)
        return None, None, None
    return old, ck, damage


def refuse_foreign(sink: Sink) -> None:
    """Before the lease (which writes under `_bear/`): a location that holds files but no bear run is refused,
    run.restart=true included, and nothing is written there."""
    if not sink.exists(PLAN) and any(not is_lease(r) for r in sink.find("")):
        raise RunError(
            f"{sink.display} is not empty and is not a bear lake (no {PLAN}); bear writes only into an empty "
            f"location or a lake it wrote, and deletes nothing else, run.restart=true included: point "
            f"sink.root/sink.prefix at an empty or new location",
            exit_code=2,
        )


def _checkpoint(sink: Sink, plan: dict[str, Any]) -> dict[str, Any]:
    """The run's checkpoint; one rebuilt from the lake is said in a warning and written back at once."""
    ck, rebuilt = load_checkpoint(sink, plan)
    if rebuilt:
        log.warning("%s", rebuilt)
        sink.sync()  # what the rebuild counted (markers a killed run wrote) on the disk before the checkpoint
        write_state(sink, CHECKPOINT, ck, durable=True)
    return ck


def _report_of(sink: Sink) -> dict[str, Any]:
    """The finished lake's last run report (derived data: a damaged one is simply not shown)."""
    try:
        return read_state(sink, REPORT_JSON, "report") or {}
    except StateDamaged as exc:
        log.warning("%s; bear verify audits the lake itself", exc)
        return {}


class Tally:
    """What the jobs reported, summed over this run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.nodes: dict[str, int] = {}
        self.peak_rss_mb = self.peak_private_mb = 0.0

    def add(self, result: JobResult) -> None:
        for k, v in result.seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v
        self.nodes[result.node] = self.nodes.get(result.node, 0) + 1
        self.peak_rss_mb = max(self.peak_rss_mb, result.peak_rss_mb)
        self.peak_private_mb = max(self.peak_private_mb, result.peak_private_mb)


def _jobs(executor: Executor, p: Prepared, ck: dict[str, Any]) -> list[Job]:
    """What is left to do, in commit order: the dimension tables (unless committed), then uncommitted chunks."""
    cfg = p.cfg
    jobs: list[Job] = []
    if not ck["dimensions_committed"]:
        jobs.append(("dimension tables", lambda: executor.submit(dimensions_job, cfg, p.lookups, p.fp)))
    jobs += [(f"chunk {k} ({p.plans[k].chunk.name})",
              lambda k=k: executor.submit(chunk_job, cfg, p.lookups, p.fp, p.plans[k], *p.chunk_args(k)))
             for k in range(ck["committed_chunks"], len(p.plans))]
    return jobs


def backfill(cfg: BearConfig) -> dict:
    """Run (or resume) the configured backfill; returns the run report (dry run: the listing, nothing written)."""
    t_start = time.perf_counter()
    memory.watch()
    hooks = load_hooks(list(cfg.hooks.post_export))
    sink = open_sink(cfg.sink)
    if cfg.sink.dry_run:
        from bear.run.dryrun import dry_run

        return dry_run(cfg, sink)
    sink.check_writable()
    refuse_foreign(sink)
    with Lease(sink, cfg.run.lease_s) as lease:
        return _backfill(cfg, sink, lease, hooks, t_start)


def _backfill(cfg: BearConfig, sink: Sink, lease: Lease, hooks: list, t_start: float) -> dict:
    old, ck, damage = preflight(sink, cfg)
    if old is not None and cfg.run.end < old["end"]:  # not before what is committed (preflight): a new plan
        beyond = dated_after(bear_files(sink.find("")), cfg.run.end)
        log.warning("run.end=%s is before the end %s this lake was planned to: deleting %d files of its uncommitted "
                    "chunks dated after %s", cfg.run.end, old["end"], len(beyond), cfg.run.end)
        sink.delete(beyond)
    if is_complete(old, ck) and old["end"] == cfg.run.end:
        return {**_report_of(sink), "nothing_to_do": True, "lake": sink.display, "end": cfg.run.end}
    with contextlib.ExitStack() as stack:
        executor: Executor = InProcessExecutor()
        with ThreadPoolExecutor(max_workers=1) as driver:
            setup = driver.submit(set_up, cfg)  # the model and lookups, on the driver while Ray starts
            if cfg.ray.kind != "inprocess":
                if start_ray(cfg.ray):
                    import ray

                    stack.callback(ray.shutdown)
                executor = RayExecutor(cfg.ray)
            t_ray = time.perf_counter()
            p = prepare(setup.result(), executor, old, ck["committed_chunks"] if ck else 0)
        if old is None or old["end"] != cfg.run.end:  # a new lake, or an extension: its plan before any file
            lease.ensure()  # planning and Ray's start took a while: still ours
            write_state(sink, PLAN, p.plan, durable=True)
            if damage is not None:
                log.warning("%s; recomputed it from the config, which wrote the lake's manifests", damage)
            if old is not None:
                log.info("extending %s from %s to %s", sink.display, old["end"], cfg.run.end)
            ck = _checkpoint(sink, p.plan) if ck is None else ck
            ck["total_chunks"] = len(p.plans)
        committer = Committer(sink, p.plan, ck, hooks, lease)
        total_rows = lake_rows(p.plan, cfg.generator.catalog_size)
        log.info("plan: %d chunks (%d to do), %s rows, lake %s", len(p.plans),
                 len(p.plans) - ck["committed_chunks"], f"{total_rows:,}", sink.display)
        progress = Progress(cfg.logging.progress, len(p.plans), total_rows, ck["committed_chunks"],
                            sum(ck["rows"].values()))
        stack.callback(progress.close)
        workers = executor.workers
        if isinstance(executor, RayExecutor):
            import ray

            nodes = sum(1 for n in ray.nodes() if n["Alive"])
            if sink.is_local and nodes > 1:
                log.warning("sink=local on a %d-node Ray cluster: every node writes its chunks under %s on its own "
                            "disk, so the lake is whole only if that path is one shared file system on all nodes; "
                            "otherwise use sink=gcs", nodes, sink.display)
        tally = Tally()

        def commit(result: JobResult) -> None:
            tally.add(result)
            committer.commit(result)
            progress.update(ck["committed_chunks"], sum(ck["rows"].values()))

        t_ready = time.perf_counter()
        last_result_at = commit_in_order(executor, _jobs(executor, p, ck), commit,
                                         cfg.ray.max_in_flight or max(2, 2 * workers))
        t_done = time.perf_counter()
    t_end = time.perf_counter()
    driver_rss, driver_private = memory.peaks()
    run = {
        "lake": sink.display,
        "fingerprint": p.fp,
        "chunks": len(p.plans),
        "plan_shards": p.shards,
        "plan_shards_per_node": p.shard_nodes,
        "wall_seconds": round(t_end - t_start, 3),
        "rows_written_by_this_run": sum(ck["rows"].values()) - progress.start_rows,
        "driver_seconds": {**{k: round(v, 3) for k, v in p.seconds.items()},
                           "ray_start": round(t_ray - t_start, 3),  # setup runs alongside, the plan phase after
                           "startup": round(t_ready - t_start, 3),  # until the first job could go out
                           "commit": round(committer.commit_s, 3),
                           "commit_sync": round(committer.sync_s, 3),  # part of commit
                           "after_last_job": round(t_done - (last_result_at or t_done), 3),  # its commit
                           "ray_stop": round(t_end - t_done, 3)},
        "worker_seconds": {k: round(v, 3) for k, v in tally.seconds.items()},
        "jobs_per_node": tally.nodes,
        "worker_count": workers,
        # peak memory (bear/run/memory.py): RSS counts object-store pages a process mapped, private does not
        "worker_peak_rss_mb": round(tally.peak_rss_mb, 1),
        "worker_peak_private_mb": round(tally.peak_private_mb, 1),
        "plan_worker_peak_rss_mb": round(p.shard_peak_mb[0], 1),  # in-process: the driver's
        "plan_worker_peak_private_mb": round(p.shard_peak_mb[1], 1),
        "driver_peak_rss_mb": round(driver_rss, 1),
        "driver_peak_private_mb": round(driver_private, 1),
        "finished_at": now_iso(),
    }
    doc = report.build(sink, p.plan, run)
    lease.ensure()
    report.publish(sink, doc)
    return doc
