"""Publishing finished work strictly in chunk order: markers, hooks, chunk summary, then the checkpoint.

A chunk's files and manifests are written (and flushed to disk) by its job; nothing trusts
them until the driver's commit writes each partition's `_SUCCESS` and then the checkpoint.
Each commit first makes sure this run still holds the writer lease, and flushes the markers
and the summary to disk before the checkpoint advances, so the checkpoint is never ahead of
what a power cut leaves. A crash between the steps leaves a chunk a rerun regenerates byte
for byte (or, if its summary and markers made it, one the rebuilt checkpoint counts), and
post-export hooks are journaled per chunk so a resumed chunk does not call them twice.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bear.lake.layout import CHECKPOINT, SUCCESS, hooks_journal, summary_name
from bear.lake.lease import Lease, LeaseLost
from bear.lake.sink import Sink, Writes
from bear.lake.state import StateDamaged, advance, read_state, write_state
from bear.run.errors import RunError
from bear.run.jobs import JobResult
from bear.run.report import chunk_summary

Hook = Callable[[dict[str, Any]], Any]
log = logging.getLogger(__name__)


def load_hooks(specs: list[str]) -> list[Hook]:
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
    """Publishes finished work strictly in order: `_SUCCESS` (the worker wrote files and manifest), hooks, the
    chunk summary, then the checkpoint."""

    def __init__(self, sink: Sink, plan: dict[str, Any], checkpoint: dict[str, Any], hooks: list[Hook],
                 lease: Lease):
        self.sink = sink
        self.plan = plan
        self.checkpoint = checkpoint
        self.hooks = hooks
        self.lease = lease
        self.commit_s = 0.0
        self.sync_s = 0.0  # of commit_s: flushing markers and summaries to disk (the price of durable commits)

    def commit(self, result: JobResult) -> None:
        t0 = time.perf_counter()
        self.lease.ensure()
        try:
            self._publish(result)
        except LeaseLost:
            raise
        except Exception as exc:  # a write of a holder that froze and lost its lease meanwhile: say that
            self.lease.explain(exc)
            raise
        self.commit_s += time.perf_counter() - t0

    def _publish(self, result: JobResult) -> None:
        with Writes(self.sink) as writes:
            for stat in result.partitions:
                writes.write(f"{stat.dir}/{SUCCESS}", b"")
        if self.hooks:
            self._run_hooks(result)
        summary = chunk_summary(self.plan["plan_fingerprint"], result.index, result.partitions)
        write_state(self.sink, summary_name(result.index), summary, indent=None)
        t_sync = time.perf_counter()
        self.sink.sync()  # markers and summary on the disk before the checkpoint counts them
        self.sync_s += time.perf_counter() - t_sync
        advance(self.checkpoint, self.plan, result.index, summary["partitions"])
        self.lease.ensure()  # again: a run frozen since the first check must not move a checkpoint it lost
        write_state(self.sink, CHECKPOINT, self.checkpoint, durable=True)

    def _run_hooks(self, result: JobResult) -> None:
        """Call each hook once per partition, journaled per chunk so a resumed chunk skips what already ran."""
        sink = self.sink
        journal = hooks_journal(result.index)
        try:
            done = set((read_state(sink, journal, "journal") or {"done": []})["done"])
        except StateDamaged as exc:  # which hooks ran is lost: at least once beats never
            log.warning("%s: the post-export hooks run again for every partition of this chunk", exc)
            done = set()
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
            write_state(sink, journal, {"done": sorted(done)})
