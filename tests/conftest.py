"""Shared fixtures: real Hydra composition, a real local Ray per module, temporary lakes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bear.config.load import load_config
from bear.config.schema import BearConfig, SinkConfig, register
from bear.lake.lease import read_lease
from bear.lake.sink import Sink, open_sink

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
register()
BEAR = str(Path(sys.executable).with_name("bear"))  # the installed command, as a user runs it
TESTS = str(Path(__file__).parent)  # on PYTHONPATH of every `bear` a test starts: tests/kill_hooks.py is importable


def _env(env: dict | None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": TESTS, **(env or {})}


def run_bear(*args: str, cwd: Path, env: dict | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
    """`bear args` to completion, output captured."""
    return subprocess.run([BEAR, *args], cwd=cwd, env=_env(env), capture_output=True, text=True, timeout=timeout)


def start_bear(*args: str, cwd: Path, env: dict | None = None, **popen) -> subprocess.Popen:
    """`bear args` started in its own session (so a test can signal or kill it and its children)."""
    return subprocess.Popen([BEAR, *args], cwd=cwd, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **popen)


def short_tmpdir(tag: str) -> Path:
    """A private directory under /tmp for a Ray's files (RAY_TMPDIR, --temp-dir): short, because Ray's socket paths
    must fit 107 bytes, and private, so its path names that Ray's processes (`processes_mentioning`)."""
    return Path(tempfile.mkdtemp(prefix=f"bear-{tag}-", dir="/tmp"))


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (a private temp dir names a Ray's processes)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


SHORT_LEASE = "run.lease_s=1"  # for runs a test kills: the next run may take their lake over a second later


def await_lease_expiry(lake: Path | Sink, timeout: float = 30) -> None:
    """After a run was killed: wait until its writer lease has expired, as the next run on its lake must."""
    sink = lake if isinstance(lake, Sink) else open_sink(SinkConfig(root=str(lake)))
    deadline = time.monotonic() + timeout
    while (lease := read_lease(sink)) is not None and lease["live"]:
        assert time.monotonic() < deadline, f"the lease of {sink.display} stays live: {lease}"
        time.sleep(0.1)


def compose_cfg(*overrides: str, smoke: bool = True) -> BearConfig:
    """The config `bear [overrides]` would run (the smoke preset unless smoke=False), made by bear's own loader."""
    return load_config([*(["+preset=smoke"] if smoke else []), *overrides])


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray with two CPUs, shared by the tests of a module."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def read_table(root, table: str):
    """A lake table read back from Parquet (the partition column is inside the files: no discovery needed)."""
    import pyarrow.dataset as ds

    return ds.dataset(f"{root}/{table}", format="parquet").to_table()


def lake_files(root) -> dict[str, bytes]:
    """Every data file of a local lake by relative path, with its bytes."""
    base = Path(root)
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*.parquet"))}


def lake_manifests(root) -> dict[str, dict]:
    """Every manifest of a local lake, without its wall-clock created_at."""
    import json

    out = {}
    for p in sorted(Path(root).rglob("_MANIFEST.json")):
        doc = json.loads(p.read_text())
        doc.pop("created_at")
        out[str(p.relative_to(root))] = doc
    return out


def assert_same_local_lake(root: Path, reference_root: Path) -> None:
    """Two local lakes hold the same data files, manifests (their created_at aside) and markers, and no temporary."""
    assert not list(root.rglob(".*.tmp-*")), "a killed writer's temporary files outlived the rerun"
    assert lake_files(root) == lake_files(reference_root)
    assert lake_manifests(root) == lake_manifests(reference_root)
    success = sorted(str(p.parent.relative_to(root)) for p in root.rglob("_SUCCESS"))
    assert success == sorted(str(p.parent.relative_to(reference_root)) for p in reference_root.rglob("_SUCCESS"))


GOLDEN = Path(__file__).resolve().parent / "golden" / "smoke.json"


def lake_digest(root) -> dict[str, str]:
    """sha256 per table of its Parquet files' bytes, in path order: what the golden digest pins."""
    import hashlib

    digests: dict[str, hashlib._Hash] = {}
    for rel, data in lake_files(root).items():
        digests.setdefault(rel.split("/", 1)[0], hashlib.sha256()).update(data)
    return {table: h.hexdigest() for table, h in sorted(digests.items())}
