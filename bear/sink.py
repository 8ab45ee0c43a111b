"""Where the lake lives: a local directory or gs://bucket/prefix, both through fsspec.

One mechanism for both: files are published whole (local: temporary name then rename;
GCS: single-request upload, which is atomic) and checked after writing (local: size;
GCS: the server's md5). Transient failures are retried with exponential backoff and
jitter; authentication failures stop the run with a message saying how to fix them.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import fsspec

from bear.config import SinkConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class SinkError(RuntimeError):
    """A sink failure that retrying will not fix; the message says what to do."""


class SinkAuthError(SinkError):
    pass


def _status_of(exc: BaseException) -> int | None:
    for attr in ("code", "status", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    return None


def classify(exc: BaseException) -> str:
    """'auth', 'missing', 'transient' or 'fatal' for an exception raised by a filesystem call."""
    status = _status_of(exc)
    name = type(exc).__name__
    if status in (401, 403) or name in ("RefreshError", "DefaultCredentialsError") or isinstance(exc, PermissionError):
        return "auth"
    if status in TRANSIENT_STATUS:
        return "transient"
    if isinstance(exc, FileNotFoundError) or status == 404:
        return "missing"
    transient_types = (ConnectionError, TimeoutError)
    if isinstance(exc, transient_types) or name in (
        "ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "ClientPayloadError",
        "ServerTimeoutError", "ChecksumError", "TransientError",
    ):
        return "transient"
    if isinstance(exc, OSError) and status is None and "ecksum" in str(exc):
        return "transient"
    return "fatal"


AUTH_HELP = (
    "GCS refused the credentials ({detail}). Fix: run `gcloud auth application-default login`, or set "
    "GOOGLE_APPLICATION_CREDENTIALS / sink.token to a service-account key file with write access to the bucket; "
    "then rerun the same command to resume from the last committed chunk."
)


class Sink:
    """A lake root on some filesystem; paths given to methods are relative to the root."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, cfg: SinkConfig, *, display: str):
        self.fs = fs
        self.root = root.rstrip("/")
        self.cfg = cfg
        self.display = display
        self.is_local = cfg.kind == "local"

    def __repr__(self) -> str:
        return f"Sink({self.display})"

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def retrying(self, what: str, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as exc:
                kind = classify(exc)
                if kind == "auth":
                    raise SinkAuthError(AUTH_HELP.format(detail=f"{type(exc).__name__} on {what}")) from exc
                if kind != "transient" or attempt >= self.cfg.max_attempts:
                    raise
                delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** (attempt - 1))
                delay *= 0.5 + random.random()  # jitter; timing only, never data
                log.warning("transient failure on %s (%s), retry %d in %.1fs", what, exc, attempt, delay)
                time.sleep(delay)

    def write(self, rel: str, data: bytes) -> str:
        """Publish `data` at `rel` whole and verified; returns its md5 (hex)."""
        md5 = hashlib.md5(data).hexdigest()
        target = self.path(rel)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{target}.tmp-{os.getpid()}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
            return md5
        self.retrying(f"upload {rel}", lambda: self._upload_verified(target, data, md5))
        return md5

    def _upload_verified(self, target: str, data: bytes, md5: str) -> None:
        self.fs.pipe_file(target, data)
        self.fs.invalidate_cache(target)
        info = self.fs.info(target)
        remote = info.get("md5Hash")
        if remote is not None:
            remote_hex = base64.b64decode(remote).hex()
            if remote_hex != md5:
                raise OSError(f"checksum mismatch after upload of {target}: {remote_hex} != {md5}")
        elif int(info.get("size", -1)) != len(data):
            raise OSError(f"checksum mismatch after upload of {target}: size {info.get('size')} != {len(data)}")

    def read(self, rel: str) -> bytes:
        return self.retrying(f"read {rel}", lambda: self.fs.cat_file(self.path(rel)))

    def exists(self, rel: str) -> bool:
        return self.retrying(f"stat {rel}", lambda: self.fs.exists(self.path(rel)))

    def find(self, rel: str) -> list[str]:
        """Every file under `rel`, relative to the root, sorted."""
        base = self.path(rel)
        if not self.retrying(f"list {rel}", lambda: self.fs.exists(base)):
            return []
        self.fs.invalidate_cache(base)
        found = self.retrying(f"list {rel}", lambda: self.fs.find(base))
        prefix = self.root.rstrip("/") + "/"
        strip = prefix if self.is_local else prefix.split("://", 1)[-1]
        return sorted(p[len(strip):] if p.startswith(strip) else p for p in found)

    def delete(self, rels: list[str]) -> None:
        if rels:
            self.retrying("delete", lambda: self.fs.rm([self.path(r) for r in rels]))

    def check_writable(self) -> None:
        """Fail fast (auth, missing bucket) before any work starts."""
        if self.is_local:
            Path(self.root).mkdir(parents=True, exist_ok=True)
            return
        bucket = self.root.split("/", 1)[0]
        try:
            exists = self.retrying(f"bucket {bucket}", lambda: self.fs.exists(bucket))
        except SinkAuthError:
            raise
        if not exists:
            raise SinkError(
                f"GCS bucket gs://{bucket} does not exist or is not visible to these credentials; "
                f"create it (`gcloud storage buckets create gs://{bucket}`) or set sink.bucket to an existing one"
            )


def open_sink(cfg: SinkConfig, base_dir: str | None = None) -> Sink:
    """The configured sink; a relative local root resolves against `base_dir` (a Hydra sweep job's folder)."""
    if cfg.kind == "local":
        root = Path(cfg.root)
        if not root.is_absolute() and base_dir is not None:
            root = Path(base_dir) / root
        root = root.resolve()
        return Sink(fsspec.filesystem("file"), str(root), cfg, display=str(root))
    import gcsfs  # imported lazily: local runs never pay for it

    token = cfg.token
    kwargs = {}
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        token = "anon"
        kwargs["endpoint_url"] = emulator if emulator.startswith("http") else f"http://{emulator}"
    fs = gcsfs.GCSFileSystem(token=token, retries=1, skip_instance_cache=True, **kwargs)
    prefix = cfg.prefix.strip("/")
    root = f"{cfg.bucket}/{prefix}" if prefix else str(cfg.bucket)
    return Sink(fs, root, cfg, display=f"gs://{root}")
