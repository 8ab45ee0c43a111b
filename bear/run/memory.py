"""How much memory a process uses, as the run report gives it.

Peak RSS (`ru_maxrss`) counts every page a process touched, including pages of Ray's object
store that it wrote or read: shared memory that Ray accounts to the store (and spills to
disk when the store is full), not to the process. A job that yields a gigabyte of skeleton
pieces into the store shows that gigabyte in its RSS. So the report gives both: peak RSS,
and peak private memory (the process's own anonymous pages: its arrays and heap), sampled
by a background thread every 20 ms from the first job the process runs.
"""

from __future__ import annotations

import resource
import threading
import time
from pathlib import Path

_STATUS = Path("/proc/self/status")
_peak_private_kb = 0
_lock = threading.Lock()
_watching = False


def _private_kb() -> int:
    """RssAnon of this process (Linux); 0 where the kernel does not say."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _sample(interval: float) -> None:
    global _peak_private_kb
    while True:
        _peak_private_kb = max(_peak_private_kb, _private_kb())
        time.sleep(interval)


def watch(interval: float = 0.02) -> None:
    """Start sampling this process's private memory (once per process; later calls do nothing)."""
    global _watching
    with _lock:
        if not _watching:
            _watching = True
            threading.Thread(target=_sample, args=(interval,), name="bear-memory", daemon=True).start()


def peaks() -> tuple[float, float]:
    """(peak RSS, peak private memory) of this process so far, MiB."""
    global _peak_private_kb
    _peak_private_kb = max(_peak_private_kb, _private_kb())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, _peak_private_kb / 1024
