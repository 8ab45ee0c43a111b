"""Where jobs run, and the one loop that commits their results in order, whichever runs them.

`commit_in_order` keeps up to `limit` jobs in flight and hands each result to `commit`
strictly in submission order (the checkpoint's order), however the jobs finish. An executor
only schedules: `InProcessExecutor` runs each job in this process when its result is
awaited (tests, `generate()`, `ray=inprocess`); `RayExecutor` runs them as Ray tasks on
every core or node. A failed job stops the loop with one line naming the job and the
place in bear's code it failed; what was committed stays committed.
"""

from __future__ import annotations

import logging
import os
import re
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from bear.config.schema import RayConfig
from bear.lake.errors import SinkError
from bear.run.errors import RunError

log = logging.getLogger("bear")


class Executor(Protocol):
    """Schedules jobs. A handle returned by `submit`, `submit_many` or `stream` can be passed as an argument to
    later jobs, which then receive its value; the driver reads a value only with `results`."""

    @property
    def workers(self) -> int:
        """How many jobs can run at once (sizes how many are kept in flight)."""

    def share(self, obj: Any) -> Any:
        """A handle every job can take as an argument instead of `obj` (Ray: one copy in the object store)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Start `fn(*args)`; returns a handle."""

    def submit_many(self, fn: Callable[..., Any], n: int, *args: Any) -> list[Any]:
        """Start `fn(*args)`, which returns `n` values (a tuple, or the value itself when n is 1); a handle each."""

    def stream(self, fn: Callable[..., Iterator[Any]], *args: Any) -> Iterator[Any]:
        """Start the generator `fn(*args)`; iterating gives a handle per value it yields, as it yields them."""

    def next_done(self, handles: Sequence[Any]) -> Any:
        """One of `handles` whose job has finished (waiting for it)."""

    def results(self, handles: Sequence[Any]) -> list[Any]:
        """The finished jobs' values (waiting for them), or the first one's exception raised."""

    def cancel(self, handles: Sequence[Any]) -> None:
        """Stop these jobs (after a failure: their results would not be committed)."""


class _Call:
    """A job of the in-process executor, run at most once, when a value of it is first needed."""

    def __init__(self, fn: Callable[..., Any] | None, args: tuple, n: int, order: int):
        self.fn, self.args, self.n, self.order = fn, args, n, order
        self.values: list[Any] | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        if self.values is not None or self.error is not None:
            return
        try:
            out = self.fn(*(a.value() if isinstance(a, _Ref) else a for a in self.args))
            self.values = [out] if self.n == 1 else list(out)
        except Exception as exc:
            self.error = exc
        self.fn = self.args = None  # its inputs can go once it ran


class _Ref:
    """A handle of the in-process executor; the value lives as long as some handle of its job does."""

    __slots__ = ("call", "index")

    def __init__(self, call: _Call, index: int = 0):
        self.call, self.index = call, index

    def value(self) -> Any:
        self.call.run()
        if self.call.error is not None:
            raise self.call.error
        return self.call.values[self.index]


class InProcessExecutor:
    """Runs each job in this process when a value of it is needed, oldest first: one job in memory at a time."""

    def __init__(self) -> None:
        self._next = 0

    def _call(self, fn: Callable[..., Any] | None, args: tuple, n: int) -> _Call:
        self._next += 1
        return _Call(fn, args, n, self._next)

    @property
    def workers(self) -> int:
        return 1

    def share(self, obj: Any) -> Any:
        return obj

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Ref:
        return _Ref(self._call(fn, args, 1))

    def submit_many(self, fn: Callable[..., Any], n: int, *args: Any) -> list[_Ref]:
        call = self._call(fn, args, n)
        return [_Ref(call, i) for i in range(n)]

    def stream(self, fn: Callable[..., Iterator[Any]], *args: Any) -> Iterator[_Ref]:
        for value in fn(*(a.value() if isinstance(a, _Ref) else a for a in args)):
            call = self._call(None, (), 1)
            call.values = [value]
            yield _Ref(call)

    def next_done(self, handles: Sequence[_Ref]) -> _Ref:
        handle = min(handles, key=lambda h: h.call.order)
        handle.call.run()
        return handle

    def results(self, handles: Sequence[_Ref]) -> list[Any]:
        return [h.value() for h in handles]

    def cancel(self, handles: Sequence[_Ref]) -> None:
        for handle in handles:
            if handle.call.values is None:
                handle.call.fn = handle.call.args = None
                handle.call.error = RuntimeError("cancelled")


class RayExecutor:
    """Runs each job as a Ray task (retried `ray.max_retries` times if its worker dies)."""

    def __init__(self, cfg: RayConfig):
        import ray

        self.ray = ray
        self.max_retries = cfg.max_retries
        self._remote: dict[Callable[..., Any], Any] = {}

    @property
    def workers(self) -> int:
        return int(self.ray.cluster_resources().get("CPU", 1))

    def share(self, obj: Any) -> Any:
        return self.ray.put(obj)

    def _task(self, fn: Callable[..., Any]) -> Any:
        if fn not in self._remote:  # a generator function becomes a streaming generator task
            # SPREAD: jobs are CPU-bound and their inputs small beside their work, so every node takes its share
            # rather than the node that holds the most of their arguments (Ray's default, locality)
            self._remote[fn] = self.ray.remote(max_retries=self.max_retries, scheduling_strategy="SPREAD")(fn)
        return self._remote[fn]

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._task(fn).remote(*args)

    def submit_many(self, fn: Callable[..., Any], n: int, *args: Any) -> list[Any]:
        refs = self._task(fn).options(num_returns=n).remote(*args)
        return [refs] if n == 1 else list(refs)

    def stream(self, fn: Callable[..., Iterator[Any]], *args: Any) -> Iterator[Any]:
        return iter(self._task(fn).remote(*args))

    def next_done(self, handles: Sequence[Any]) -> Any:
        ready, _ = self.ray.wait(list(handles), num_returns=1)
        return ready[0]

    def results(self, handles: Sequence[Any]) -> list[Any]:
        return self.ray.get(list(handles))

    def cancel(self, handles: Sequence[Any]) -> None:
        for handle in handles:
            self.ray.cancel(handle, force=True)


def start_ray(cfg: RayConfig) -> bool:
    """Start or join Ray; returns whether this call started it (and so must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    if cfg.kind == "cluster":
        address = cfg.address or os.environ.get("RAY_ADDRESS") or "auto"
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
        # "local": a Ray of this run's own. Without it ray.init joins the cluster RAY_ADDRESS names (set inside
        # `ray job submit`) or the last `ray start` on this machine: its workers may lack bear, and
        # ray.num_cpus would fail there ("num_cpus must not be provided").
        store = cfg.object_store_mb * 2**20 if cfg.object_store_mb else None
        ray.init(address="local", num_cpus=cfg.num_cpus, object_store_memory=store, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    return True


def failure(exc: BaseException) -> str:
    """`ValueError: boom (at bear/gen/tables.py:123 in orders_and_items)` from a (Ray-wrapped) job exception."""
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


Job = tuple[str, Callable[[], Any]]  # what it is (for the failure line), and how to submit it


def commit_in_order(executor: Executor, jobs: list[Job], commit: Callable[[Any], None], limit: int) -> float:
    """Run `jobs` with at most `limit` in flight and `commit` each result in list order; returns the
    perf_counter time the last result arrived (0 without jobs)."""
    inflight: dict[Any, int] = {}
    done: dict[int, Any] = {}
    nxt = submitted = 0
    last_result_at = 0.0
    while nxt < len(jobs):
        while submitted < len(jobs) and len(inflight) < limit:
            inflight[jobs[submitted][1]()] = submitted
            submitted += 1
        handle = executor.next_done(list(inflight))
        i = inflight.pop(handle)
        try:
            done[i] = executor.results([handle])[0]
            last_result_at = time.perf_counter()
        except Exception as exc:
            executor.cancel(list(inflight))
            said = isinstance(getattr(exc, "cause", None) or exc, SinkError)  # its line already says how to go on
            raise RunError(f"{jobs[i][0]} failed: {failure(exc)}" + ("" if said else ". Committed work is kept; fix "
                           "the cause and rerun the same command to resume.")) from None
        while nxt in done:
            try:
                commit(done.pop(nxt))
            except BaseException:  # a lost lease, a full disk: nothing more of this run may be written
                executor.cancel(list(inflight))
                raise
            nxt += 1
    return last_result_at
