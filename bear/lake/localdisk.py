"""The local-disk primitives a lake needs: whole-file publishing, batched durability, compare-and-swap.

Files are published whole: written under a hidden temporary name beside the target, then
renamed (a crash leaves the old file or the new one, and a hidden temporary that the next
writer of the folder sweeps). Durability is batched: one `syncfs` flushes everything a chunk
wrote (data, manifests, the directory entries of their renames) in a single call, where a
per-file `fsync` would cost a journal commit for each of tens of thousands of files.
State files that must survive on their own (the checkpoint) are fsynced with their folder.

The writer lease needs two atomic operations a plain file system lacks as calls: create-if-absent
(a hard link of a finished temporary: `link` fails if the name exists, and the file appears
whole) and replace-if-unchanged (read, compare, rename while holding a POSIX lock on a lock
file beside it; the kernel drops the lock if its holder dies, and network file systems honour it).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import BinaryIO


def temporary_name(target: str) -> str:
    """Where a local file is written before its rename: hidden beside it, named after the writing process."""
    folder, _, name = target.rpartition("/")
    return f"{folder}/.{name}.tmp-{os.getpid()}"


def _create(path: str) -> BinaryIO:
    """`path` opened for writing, its folder made only when missing: a `mkdir` before every file would cost a
    quarter of what publishing a small file costs, and a lake is tens of thousands of them."""
    try:
        return open(path, "wb")
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return open(path, "wb")


def _write_file(path: str, data: bytes, durable: bool) -> None:
    with _create(path) as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())


def fsync_dir(folder: str) -> None:
    """Make the folder's entries (a rename into it, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(target: str, data: bytes, durable: bool = False) -> None:
    """Write `target` whole: a temporary beside it, then a rename; on any failure the temporary is removed, so a
    full disk leaves no partial file behind. `durable`: fsync the file before and its folder after the rename."""
    if not data and not durable:  # a marker (_SUCCESS): an empty file is whole the moment it exists
        _create(target).close()
        return
    tmp = temporary_name(target)
    try:
        _write_file(tmp, data, durable)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(os.path.dirname(target))


@cache
def _libc_syncfs():
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return getattr(libc, "syncfs", None)


_WATCHED: dict[str, int] = {}  # a descriptor per lake root, open for the life of the process


def watch(path: str) -> None:
    """Open the descriptor `sync_filesystem` reports through, before this process writes under `path`: Linux
    (5.8+) reports a write-back error to a syncfs caller only if it happened after that descriptor was opened."""
    if path not in _WATCHED:
        os.makedirs(path, exist_ok=True)
        _WATCHED[path] = os.open(path, os.O_RDONLY)


def sync_filesystem(path: str) -> None:
    """Flush every file system buffer of the disk that holds `path` (Linux `syncfs`; elsewhere `sync`), and
    raise a write-back error (a full disk, an I/O error) that hit any file there since `watch(path)`, so data
    lost in write-back cannot pass unnoticed."""
    syncfs = _libc_syncfs()
    if syncfs is None:
        os.sync()
        return
    watch(path)
    if syncfs(_WATCHED[path]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


def version(data: bytes) -> str:
    """A local file's generation: the digest of its bytes (documents that can be raced carry a nonce, so two
    writers' versions never coincide)."""
    return hashlib.sha256(data).hexdigest()[:32]


def read_versioned(target: str) -> tuple[bytes, str] | None:
    try:
        data = Path(target).read_bytes()
    except FileNotFoundError:
        return None
    return data, version(data)


def create_exclusive(target: str, data: bytes) -> str | None:
    """Create `target` holding `data` if no file has that name (its generation), else None."""
    folder, _, name = target.rpartition("/")
    tmp = f"{folder}/.{name}.new-{uuid.uuid4().hex}"  # unique across hosts (pids are not), never swept
    try:
        _write_file(tmp, data, durable=True)
        os.link(tmp, target)
    except FileExistsError:  # someone's lease, or ours if a network file system lost the link's reply
        found = read_versioned(target)
        return found[1] if found is not None and found[0] == data else None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(folder)
    return version(data)


LOCK_WAIT_S = 30.0  # a holder is inside its lock for milliseconds; one frozen there must not block others forever


@contextlib.contextmanager
def _locked(target: str) -> Iterator[None]:
    """An exclusive POSIX lock on `.<name>.lock` beside `target`, held for one read-compare-write."""
    folder, _, name = target.rpartition("/")
    fd = os.open(f"{folder}/.{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def replace_if(target: str, data: bytes, generation: str) -> str | None:
    """Replace `target` with `data` if it still is `generation` (returns the new one), else None. The new file is
    written and flushed before the lock is taken, so the lock is held only for a compare and a rename."""
    tmp = temporary_name(target)
    try:
        _write_file(tmp, data, durable=True)
        with _locked(target):
            current = read_versioned(target)
            if current is None or current[1] != generation:
                return None
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # left only when the swap did not happen
    fsync_dir(os.path.dirname(target))
    return version(data)


def delete_if(target: str, generation: str) -> None:
    """Delete `target` if it still is `generation`."""
    with _locked(target):
        current = read_versioned(target)
        if current is not None and current[1] == generation:
            os.unlink(target)
