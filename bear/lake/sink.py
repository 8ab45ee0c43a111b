"""Where the lake lives: a local directory or gs://bucket/prefix, both through fsspec.

One mechanism for both: files are published whole (local: temporary name then rename;
GCS: a single-object upload, which the server makes visible atomically) and GCS uploads
are checked against the md5 the server computed over what it stored. Remote calls are
retried here, and only here (gcsfs is made to attempt each request once, see bear.gcs):
transient failures (HTTP 408/429/5xx, resets, timeouts, a checksum mismatch) with
exponential backoff and jitter up to sink.max_attempts; anything else stops at once with
one line saying what failed, and for credentials or permissions, how to fix it.
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

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Exception classes (matched anywhere in the MRO, so aiohttp, requests and google-auth need not be
# imported here) that mean "the request may not have reached GCS or its answer was lost".
TRANSIENT_TYPES = frozenset({
    "ClientConnectionError",  # aiohttp: refused, reset, server disconnected, socket timeouts
    "ClientPayloadError",  # aiohttp: response body cut short
    "ConnectionError", "Timeout", "ChunkedEncodingError",  # requests (gcsfs maps HTTP 502 to ProxyError)
    "TransportError",  # google-auth could not reach the token endpoint
    "ChecksumError",  # gcsfs: the server's md5 of the stored object differs from ours
})
# Credentials that could not be found, loaded or refreshed.
AUTH_TYPES = frozenset({"RefreshError", "DefaultCredentialsError", "NonRetryableError"})
RESUME = "rerun the same command to resume from the last committed chunk"


class SinkError(RuntimeError):
    """A sink failure that retrying will not fix; `str()` is one line saying what to do."""

    exit_code = 1  # a runtime failure; the checkpoint stays and a rerun resumes


class SinkSettingError(SinkError):
    """A sink setting that cannot work (an unwritable root, a missing bucket or key file): exit code 2."""

    exit_code = 2


class SinkAuthError(SinkError):
    """GCS refused the credentials or their permissions; the message says how to fix it."""


class SinkKeyFileError(SinkAuthError, SinkSettingError):
    """sink.token names a key file that does not exist."""


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (gcsfs HttpError.code, aiohttp .status), if any."""
    for attr in ("code", "status", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    if isinstance(exc, OSError) and str(exc).startswith("Forbidden:"):
        return 403  # gcsfs raises OSError("Forbidden: <path>...") for 403 without a status attribute
    return None


def classify(exc: BaseException) -> str:
    """'auth', 'transient', 'missing' or 'fatal' for an exception raised by a filesystem call."""
    status = _status_of(exc)
    types = {c.__name__ for c in type(exc).__mro__}
    if status in (401, 403) or types & AUTH_TYPES:
        return "auth"
    if status in TRANSIENT_STATUS or types & TRANSIENT_TYPES or isinstance(exc, ConnectionError | TimeoutError):
        return "transient"
    if status == 404 or isinstance(exc, FileNotFoundError):
        return "missing"
    return "fatal"


def brief(exc: BaseException, limit: int = 240) -> str:
    """`Type: message` on one line, shortened (server messages can be long or multi-line)."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def auth_message(exc: BaseException, what: str, display: str) -> str:
    """One line: what GCS refused and how to fix it. Names no credential, only where they come from."""
    status = _status_of(exc)
    bucket = display.removeprefix("gs://").split("/", 1)[0]
    if status == 403:
        return (f"GCS denied access to {display} (HTTP 403 on {what}: {brief(exc)}): the credentials work but lack "
                f"permission. Fix: grant the account roles/storage.objectAdmin on gs://{bucket}, or set sink.token "
                f"to the key file of an account that has it; then {RESUME}")
    fix = ("Fix: run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS or sink.token to "
           f"a service-account key file; then {RESUME}")
    if status == 401:
        return f"GCS rejected the credentials for {display} (HTTP 401 on {what}): they are invalid or expired. {fix}"
    return f"no usable Google credentials for {display} ({brief(exc)}, on {what}). {fix}"


def temporary_name(target: str) -> str:
    """Where a local file is written before its rename: hidden beside it, named after the writing process."""
    folder, _, name = target.rpartition("/")
    return f"{folder}/.{name}.tmp-{os.getpid()}"


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

        Local calls run once: an OS error on a local disk is not transient.
        """
        if self.is_local:
            return fn()
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
                if kind == "missing":
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

    def write(self, rel: str, data: bytes) -> None:
        """Publish `data` at `rel` whole (and, on GCS, verified)."""
        target = self.path(rel)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            if not data:  # a marker (_SUCCESS): an empty file is whole the moment it exists, no rename needed
                open(target, "wb").close()
                return
            tmp = temporary_name(target)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
            return
        try:
            # consistency="md5": gcsfs compares the md5 the server reports for the stored object with the
            # bytes sent and raises ChecksumError (transient: uploaded again) when they differ.
            self.retrying(f"upload {rel}", lambda: self.fs.pipe_file(target, data, consistency="md5"))
        except FileNotFoundError as exc:
            raise SinkError(self._missing_bucket()) from exc

    def temporaries(self, dirs: list[str]) -> list[str]:
        """Hidden temporary files (see temporary_name) in these folders, relative to the root: what writers that
        died before their rename left. A temporary is renamed into place whole or never. GCS has none."""
        if not self.is_local:
            return []
        return [f"{d}/{p.name}" for d in dirs for p in Path(self.path(d)).glob(".*.tmp-*")]

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
