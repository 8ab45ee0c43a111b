"""Where the lake lives: a local directory or gs://bucket/prefix, both through fsspec.

One mechanism for both: files are published whole (local: temporary name then rename;
GCS: a single-object upload, which the server makes visible atomically) and GCS uploads
are checked against the md5 the server computed over what it stored. Remote calls are
retried here, and only here (gcsfs is made to attempt each request once, see bear.gcs):
transient failures (HTTP 408/429/5xx, resets, timeouts, a checksum mismatch) with
exponential backoff and jitter up to sink.max_attempts; anything else stops at once with
one line saying what failed, and for credentials or permissions, how to fix it (bear.lake.errors).

Locally, durability is batched (`sync`: one syncfs for everything written so far) and a
full disk is one line; the writer lease gets conditional writes on both kinds (`write_if`:
GCS generation preconditions, a compare-and-swap under a lock file locally).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import fsspec

from bear.config.schema import SinkConfig
from bear.lake import localdisk
from bear.lake.errors import (
    RESUME,
    SinkAuthError,
    SinkError,
    SinkKeyFileError,
    SinkSettingError,
    auth_message,
    brief,
    classify,
    disk_message,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class Sink:
    """A lake root on some filesystem; paths given to methods are relative to the root.

    `cfg` is the resolved sink config (absolute local root; GCS endpoint and token as used),
    so workers handed it open exactly the same location as the driver.
    """

    def __init__(self, connect: Callable[[], fsspec.AbstractFileSystem], root: str, cfg: SinkConfig, *,
                 display: str):
        self._connect = connect
        self._fs: fsspec.AbstractFileSystem | None = None
        self._lock = threading.Lock()
        self.root = root.rstrip("/")
        self.cfg = cfg
        self.display = display
        self.is_local = cfg.kind == "local"

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The filesystem, connected on first use: `bear plan` and config checks need no credentials."""
        with self._lock:
            if self._fs is None:
                self._fs = self._connect()
            return self._fs

    def __repr__(self) -> str:
        return f"Sink({self.display})"

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def retrying(self, what: str, fn: Callable[[], T]) -> T:
        """Run a remote call; retry transient failures with exponential backoff and jitter.

        Local calls run once: an OS error on a local disk is not transient (a missing file keeps its meaning).
        """
        if self.is_local:
            return self.local(what, fn, keep_missing=True)
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except SinkError:
                raise  # already decided (connecting: credentials)
            except Exception as exc:
                kind = classify(exc)
                if kind == "auth":
                    raise SinkAuthError(auth_message(exc, what, self.display)) from exc
                if kind in ("missing", "precondition"):
                    raise
                if kind == "fatal":
                    raise SinkError(f"{what} on {self.display} failed: {brief(exc)}") from exc
                if attempt >= self.cfg.max_attempts:
                    raise SinkError(f"{what} on {self.display} failed after {attempt} attempts: {brief(exc)}; "
                                    f"GCS or the network kept failing; {RESUME}") from exc
                delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** (attempt - 1))
                delay *= 0.5 + random.random()  # jitter spreads retries of many workers; timing only, never data
                log.warning("transient failure on %s (%s); retry %d/%d in %.2fs", what, brief(exc), attempt,
                            self.cfg.max_attempts - 1, delay)
                time.sleep(delay)

    def local(self, what: str, fn: Callable[[], T], keep_missing: bool = False) -> T:
        """Run a local disk call; an OS error (a full disk, a read-only file system) becomes one line.
        `keep_missing`: a missing file stays FileNotFoundError (reads, listings, deletes: the caller decides)."""
        try:
            return fn()
        except OSError as exc:
            if keep_missing and isinstance(exc, FileNotFoundError):
                raise
            raise SinkError(disk_message(exc, what, self.display)) from exc

    def write(self, rel: str, data: bytes, durable: bool = False) -> None:
        """Publish `data` at `rel` whole (and, on GCS, verified). `durable` (local, with sink.fsync): on the disk
        before this returns, for state that must survive on its own; other files are flushed by `sync()`."""
        target = self.path(rel)
        if self.is_local:
            if self.cfg.fsync:
                self.local("opening the lake root", lambda: localdisk.watch(self.root))
            self.local(f"writing {rel}", lambda: localdisk.publish(target, data, durable and self.cfg.fsync))
            return
        try:
            # consistency="md5": gcsfs compares the md5 the server reports for the stored object with the
            # bytes sent and raises ChecksumError (transient: uploaded again) when they differ.
            self.retrying(f"upload {rel}", lambda: self.fs.pipe_file(target, data, consistency="md5"))
        except FileNotFoundError as exc:
            raise SinkError(self._missing_bucket()) from exc

    def sync(self) -> None:
        """Make everything written so far durable: one syncfs of the lake's disk (local, with sink.fsync). GCS
        has acknowledged each object only once it was stored durably, so there it is a no-op."""
        if self.is_local and self.cfg.fsync:
            self.local("flushing the lake to disk", lambda: localdisk.sync_filesystem(self.root))

    # Conditional writes (the writer lease): a generation is GCS's object generation, or a local file's digest.

    def read_versioned(self, rel: str) -> tuple[bytes, str] | None:
        """The bytes at `rel` and their generation, or None."""
        if self.is_local:
            return self.local(f"reading {rel}", lambda: localdisk.read_versioned(self.path(rel)))
        from bear.lake import gcs

        return self.retrying(f"read {rel}", lambda: gcs.read_versioned(self.fs, self.path(rel)))

    def write_if(self, rel: str, data: bytes, generation: str | None) -> str | None:
        """Write `data` at `rel` only if it is at `generation` (None: only if absent). Returns the new generation,
        or None when another writer's version is there. A retried request whose first attempt landed but whose
        answer was lost fails its precondition against its own write: the object then holds exactly `data`,
        which counts as success."""
        target = self.path(rel)
        if self.is_local:
            return self.local(f"writing {rel}", lambda: localdisk.create_exclusive(target, data) if generation is None
                              else localdisk.replace_if(target, data, generation))
        from bear.lake import gcs

        try:
            return self.retrying(f"conditional upload {rel}",
                                 lambda: gcs.upload_if(self.fs, target, data, generation or "0"))
        except FileExistsError:
            current = self.read_versioned(rel)
            return current[1] if current is not None and current[0] == data else None

    def delete_if(self, rel: str, generation: str) -> None:
        """Delete `rel` if it still is `generation` (a missing object is fine)."""
        if self.is_local:
            self.local(f"deleting {rel}", lambda: localdisk.delete_if(self.path(rel), generation))
            return
        from bear.lake import gcs

        with contextlib.suppress(FileNotFoundError, FileExistsError):
            self.retrying(f"delete {rel}", lambda: gcs.delete_if(self.fs, self.path(rel), generation))

    def temporaries(self, dirs: list[str], older_than_s: float = 0.0) -> list[str]:
        """Hidden temporary files (localdisk.temporary_name) in these folders, relative to the root, last written at
        least `older_than_s` ago: what writers that died before their rename left. A temporary is renamed into
        place whole or never. GCS has none."""
        if not self.is_local:
            return []
        now, out = time.time(), []
        for d in dirs:
            for p in Path(self.path(d)).glob(".*.tmp-*"):
                with contextlib.suppress(FileNotFoundError):  # its writer renamed or removed it meanwhile
                    if now - p.stat().st_mtime >= older_than_s:
                        out.append(f"{d}/{p.name}")
        return out

    def read(self, rel: str) -> bytes:
        return self.retrying(f"read {rel}", lambda: self.fs.cat_file(self.path(rel)))

    def exists(self, rel: str) -> bool:
        return self.retrying(f"stat {rel}", lambda: self.fs.exists(self.path(rel)))

    def find(self, rel: str) -> list[str]:
        """Every file under `rel`, relative to the root, sorted."""
        base = self.path(rel)
        if not self.exists(rel):
            return []
        self.fs.invalidate_cache(base)
        found = self.retrying(f"list {rel or '/'}", lambda: self.fs.find(base))
        prefix = self.root + "/"
        strip = prefix if self.is_local else prefix.split("://", 1)[-1]
        return sorted(p[len(strip):] if p.startswith(strip) else p for p in found)

    def delete(self, rels: list[str]) -> None:
        """Delete these files; locally also the folders they leave empty (never the root, never a folder that
        still holds something)."""
        if not rels:
            return
        self.retrying(f"delete {len(rels)} objects", lambda: self.fs.rm([self.path(r) for r in rels]))
        if self.is_local:
            folders = {p for r in rels for p in Path(r).parents if str(p) != "."}
            for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):  # not empty: something else lives there
                    os.rmdir(self.path(str(folder)))

    def _missing_bucket(self) -> str:
        bucket = self.root.split("/", 1)[0]
        return (f"sink.bucket: GCS bucket gs://{bucket} does not exist; create it "
                f"(`gcloud storage buckets create gs://{bucket}`) or set sink.bucket to an existing bucket")

    def check_writable(self) -> None:
        """Fail fast, before any work starts: unusable credentials, a missing bucket, an uncreatable directory.

        On GCS this asks for one object under the lake root (objects.list, which any writer of a lake needs to
        resume it): 404 means no bucket, while an account without bucket-level permissions still gets through.
        """
        if self.is_local:
            probe = Path(self.root) / f".bear-probe-{os.getpid()}"
            try:
                probe.parent.mkdir(parents=True, exist_ok=True)
                probe.touch()
                probe.unlink()
            except OSError as exc:
                raise SinkSettingError(
                    f"sink.root: cannot write a lake at {self.root} ({type(exc).__name__}: "
                    f"{exc.strerror or exc}); set sink.root to a directory you can write, or one that can be "
                    f"created") from None
            return
        bucket, _, prefix = self.root.partition("/")
        try:
            self.retrying("list the lake root", lambda: self.fs.call(
                "GET", "b/{}/o", bucket, json_out=True, prefix=f"{prefix}/" if prefix else None, maxResults=1))
        except FileNotFoundError:
            raise SinkSettingError(self._missing_bucket()) from None


class Writes:
    """Writes to a sink with up to `sink.concurrency` in flight: one GCS upload waits tens of milliseconds on the
    network, so a worker or a commit that wrote one object at a time would mostly wait.

    Use as a context manager: leaving it waits for every write and raises the first failure; a write after a
    failure raises it at once, so a run stopped by (say) revoked credentials stops uploading the rest. At most
    `concurrency` encoded files are held in memory waiting for their upload.
    """

    def __init__(self, sink: Sink):
        self.sink = sink
        n = max(1, sink.cfg.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="bear-write") if n > 1 else None
        self._slots = threading.Semaphore(n)
        self._failure: BaseException | None = None

    def write(self, rel: str, data: bytes) -> None:
        if self._pool is None:
            self.sink.write(rel, data)
            return
        self._slots.acquire()
        if self._failure is not None:
            self._slots.release()
            raise self._failure
        future = self._pool.submit(self.sink.write, rel, data)
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        if future.exception() is not None and self._failure is None:
            self._failure = future.exception()
        self._slots.release()

    def __enter__(self) -> Writes:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._failure is not None and exc_info[0] is None:
            raise self._failure


def _gcs_connect(token: str, endpoint: str | None, timeout_s: float,
                 display: str) -> Callable[[], fsspec.AbstractFileSystem]:
    """A connector for the GCS filesystem that turns credential problems into one actionable line."""

    def connect() -> fsspec.AbstractFileSystem:
        from google.auth.exceptions import GoogleAuthError

        from bear.lake.gcs import gcs_filesystem  # imported lazily: local runs never load gcsfs

        if token not in ("google_default", "anon") and not Path(token).is_file():
            raise SinkKeyFileError("sink.token is neither google_default nor anon, and no service-account key file "
                                "exists at the path it gives; set it to the path of a JSON key file, or to "
                                "google_default")
        try:
            return gcs_filesystem(token, endpoint, timeout_s)
        except (GoogleAuthError, ValueError, KeyError, OSError) as exc:  # no usable credentials, or a bad key file
            raise SinkAuthError(auth_message(exc, "loading credentials", display)) from exc

    return connect


def bucket_and_prefix(bucket: str, prefix: str) -> tuple[str, str]:
    """sink.bucket may be `B`, `gs://B` or `gs://B/some/prefix` (a path there replaces sink.prefix)."""
    name, _, path = bucket.removeprefix("gs://").strip("/").partition("/")
    return name, (path or prefix).strip("/")


def open_sink(cfg: SinkConfig) -> Sink:
    """The configured sink (settings as `bear.config.load` resolved them: an absolute root, the endpoint and
    token). Nothing is written, and nothing is asked of GCS (credentials included) before first use."""
    if cfg.kind == "local":
        return Sink(lambda: fsspec.filesystem("file"), cfg.root, cfg, display=cfg.root)
    bucket, prefix = bucket_and_prefix(str(cfg.bucket), cfg.prefix)
    root = f"{bucket}/{prefix}" if prefix else bucket
    display = f"gs://{root}"
    return Sink(_gcs_connect(cfg.token, cfg.endpoint, cfg.timeout_s, display), root, cfg, display=display)
