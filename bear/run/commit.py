"""Publishing finished work strictly in chunk order: markers, hooks, chunk summary, then the checkpoint.

A chunk's files and manifests are written by its job; nothing trusts them until the driver's
commit writes each partition's `_SUCCESS` and then the checkpoint. A crash between the two
leaves a chunk a rerun regenerates byte for byte, and post-export hooks are journaled per
chunk so a resumed chunk does not call them twice.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bear.core.calendar import day_to_date
from bear.gen.planner import ChunkWork
from bear.lake.layout import CHECKPOINT, SUCCESS, hooks_journal, summary_name
from bear.lake.sink import Sink, Writes
from bear.lake.state import now_iso, read_json, write_json
from bear.run.jobs import JobResult
from bear.run.prepare import RunError
from bear.run.report import chunk_summary

Hook = Callable[[dict[str, Any]], Any]


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
    """Publishes finished work strictly in order: `_SUCCESS` (the worker wrote files and manifest), hooks, then
    the checkpoint."""

    def __init__(self, sink: Sink, works: list[ChunkWork], checkpoint: dict[str, Any], hooks: list[Hook]):
        self.sink = sink
        self.works = works
        self.checkpoint = checkpoint
        self.hooks = hooks
        self.commit_s = 0.0

    def commit(self, result: JobResult) -> None:
        t0 = time.perf_counter()
        ck = self.checkpoint
        with Writes(self.sink) as writes:
            for stat in result.partitions:
                writes.write(f"{stat.dir}/{SUCCESS}", b"")
        if self.hooks:
            self._run_hooks(result)
        for stat in result.partitions:
            ck["rows"][stat.table] = ck["rows"].get(stat.table, 0) + stat.rows
            ck["bytes"][stat.table] = ck["bytes"].get(stat.table, 0) + stat.bytes
            ck["partitions"] += 1
        write_json(self.sink, summary_name(result.index), chunk_summary(result.partitions), indent=None)
        if result.index < 0:
            ck["dimensions_committed"] = True
        else:
            chunk = self.works[result.index].plan
            ck["committed_chunks"] = result.index + 1
            ck["last_committed_date"] = day_to_date(chunk.chunk.end_day).isoformat()
            ck["id_high_water"] = {f: chunk.first_ids[f] + chunk.counts[f] - 1 for f in chunk.first_ids}
        ck["updated_at"] = now_iso()
        write_json(self.sink, CHECKPOINT, ck)
        self.commit_s += time.perf_counter() - t0

    def _run_hooks(self, result: JobResult) -> None:
        """Call each hook once per partition, journaled per chunk so a resumed chunk skips what already ran."""
        sink = self.sink
        journal = hooks_journal(result.index)
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
