"""What the person running a backfill sees while it runs.

On a terminal: one self-rewriting bar (chunks committed, rows, rows/s, ETA). Elsewhere
(CI, `ray job logs`): a log line at most every few seconds. `logging.progress=quiet`
shows neither. Counts start from the checkpoint, so a resumed run shows the whole run's
progress, and the rate counts only rows written by this process.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("bear")


def _eta(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    def __init__(self, mode: str, total_chunks: int, total_rows: int, done_chunks: int, done_rows: int,
                 stream: TextIO | None = None, interval_s: float = 5.0):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "log"
        self.mode = mode
        self.total_chunks, self.total_rows = total_chunks, max(total_rows, 1)
        self.start_rows = done_rows
        self.t0 = time.perf_counter()
        self.last_log = 0.0
        self.interval_s = interval_s
        self.update(done_chunks, done_rows, force=mode == "log")

    def line(self, chunks: int, rows: int) -> str:
        elapsed = time.perf_counter() - self.t0
        rate = (rows - self.start_rows) / elapsed if elapsed > 0 else 0.0
        left = (self.total_rows - rows) / rate if rate > 0 else float("inf")
        pct = 100.0 * min(rows / self.total_rows, 1.0)
        return (f"{chunks}/{self.total_chunks} chunks | {rows:,}/{self.total_rows:,} rows ({pct:.0f}%) | "
                f"{rate:,.0f} rows/s | ETA {_eta(left if chunks < self.total_chunks else 0)}")

    def update(self, chunks: int, rows: int, force: bool = False) -> None:
        if self.mode == "quiet":
            return
        if self.mode == "bar":
            width = 30
            filled = int(width * min(rows / self.total_rows, 1.0))
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.line(chunks, rows)}\033[K")
            self.stream.flush()
            return
        now = time.perf_counter()
        if force or chunks >= self.total_chunks or now - self.last_log >= self.interval_s:
            self.last_log = now
            log.info("progress: %s", self.line(chunks, rows))

    def close(self) -> None:
        if self.mode == "bar":
            self.stream.write("\n")
            self.stream.flush()
