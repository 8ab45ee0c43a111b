"""Post-export hooks that SIGKILL the driver (or fill its disk) at chosen moments (crash tests, via PYTHONPATH).

Hooks run in the driver after a chunk's _SUCCESS markers are written and before the checkpoint moves, which is
exactly the window the crash tests need; BEAR_TEST_* environment variables pick the moment.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def kill_at_partition(context: dict) -> None:
    """Die when the partition named by BEAR_TEST_KILL_PARTITION (e.g. orders/ingest_dt=2020-01-15) commits."""
    if f"{context['table']}/{context['partition']}" == os.environ["BEAR_TEST_KILL_PARTITION"]:
        os.kill(os.getpid(), signal.SIGKILL)


def kill_when_file_exists(context: dict) -> None:
    """During the first commit, wait until BEAR_TEST_WAIT_FILE exists (a later chunk's data), then die.

    That leaves data files (and manifests) of uncommitted chunks on disk without their _SUCCESS.
    """
    target = Path(os.environ["BEAR_TEST_WAIT_FILE"])
    deadline = time.time() + 60
    while not target.exists() and time.time() < deadline:
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)


def record(context: dict) -> None:
    """Append every committed partition to BEAR_TEST_RECORD (one line each)."""
    with open(os.environ["BEAR_TEST_RECORD"], "a") as f:
        f.write(f"{context['table']}/{context['partition']} {context['manifest']['total_rows']}\n")


def fail_on_february(context: dict) -> None:
    if context["table"] == "orders" and context["partition"].endswith("2020-02-01"):
        raise ValueError("downstream catalog rejected the partition")


def fill_disk_at_partition(context: dict) -> None:
    """Fill the disk the lake is on (writing BEAR_TEST_FILLER, beside it) when the partition named by
    BEAR_TEST_FILL_PARTITION commits: the rest of that commit meets a full disk."""
    if f"{context['table']}/{context['partition']}" != os.environ["BEAR_TEST_FILL_PARTITION"]:
        return
    with open(os.environ["BEAR_TEST_FILLER"], "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
