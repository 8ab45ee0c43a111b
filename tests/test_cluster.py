"""Issue 6: the cluster launcher config, and `ray job submit` of bear to a real two-node Ray."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml
from conftest import GOLDEN, lake_digest, processes_mentioning, short_tmpdir
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CLUSTER_YAML = REPO / "cluster.yaml"
SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"


def _validate(text: str) -> None:
    """What `ray up` checks before it touches the cloud: Ray's JSON schema, then Ray's own consistency checks."""
    config = yaml.safe_load(text)
    jsonschema.validate(config, json.loads(SCHEMA.read_text()))
    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_yaml_validates_against_the_schema_shipped_with_ray():
    text = CLUSTER_YAML.read_text()
    _validate(text)
    config = yaml.safe_load(text)
    assert config["provider"]["type"] == "gcp"
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert workers and all(t["max_workers"] > t.get("min_workers", 0) for t in workers), "workers autoscale"
    # The image pins the Ray and Python that bear is tested with here.
    assert config["docker"]["image"] == f"rayproject/ray:{ray.__version__}-py{sys.version_info.major}" \
                                        f"{sys.version_info.minor}-cpu"
    # Token authentication as Ray documents it for the cluster launcher: the local token on every node and
    # RAY_AUTH_MODE=token wherever the launcher runs `ray start`.
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert any("export RAY_AUTH_MODE=token" in c for c in config["setup_commands"])
    # Setup installs bear from sources that exist in this repository.
    assert any(c.startswith("pip install") and "~/bear" in c for c in config["setup_commands"])
    sources = [local for remote, local in config["file_mounts"].items() if remote.startswith("~/bear")]
    assert sources and all((REPO / local).exists() for local in sources)
    assert {"./bear", "./conf", "./pyproject.toml"} <= set(sources)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("max_workers: 8                                   # ADAPT", "max_workers: eight"),
        ("upscaling_speed: 1.0", "upscaling_sped: 1.0"),
        ('resources: {"CPU": 16}', 'resources: {"CPU": "sixteen"}'),
        ("  container_name: ray_container", "  containername: ray_container"),
        ("head_node_type: head", "head_node_type: gpu_head"),
        ("provider:\n  type: gcp", "provider:\n  kind: gcp"),
    ],
)
def test_a_broken_copy_does_not_validate(old, new):
    text = CLUSTER_YAML.read_text()
    assert text.count(old) == 1, f"{old!r} no longer in cluster.yaml; update this test"
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        _validate(text.replace(old, new))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    address: str  # the head's GCS, as RAY_ADDRESS holds it inside `ray job submit`
    dashboard: str
    node_ids: set[str]
    env: dict[str, str]


def _alive_nodes(dashboard: str) -> set[str]:
    try:
        with urllib.request.urlopen(f"{dashboard}/api/v0/nodes?detail=0", timeout=5) as resp:
            nodes = json.load(resp)["data"]["result"]["result"]
    except OSError:
        return set()
    return {n["node_id"] for n in nodes if n["state"] == "ALIVE"}


@pytest.fixture(scope="module")
def two_node_ray() -> Iterator[Cluster]:
    """A head and a second node (one CPU each) started with `ray start`, on private ports and temp dirs.

    Each node is a `ray start --block` process; stopping it (SIGTERM, no drain) takes down exactly the
    processes it started. `ray stop` is not used: it would stop every Ray on the machine.
    """
    base = short_tmpdir("rc")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"RAY_AUTH_MODE": "disabled", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"}
    gcs, dash = _free_port(), _free_port()
    dashboard = f"http://127.0.0.1:{dash}"
    nodes: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        ports = [f"--{flag}={_free_port()}" for flag in (
            "node-manager-port", "object-manager-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
            "runtime-env-agent-port", "metrics-export-port")]
        cmd = [str(VENV_BIN / "ray"), "start", "--block", "--num-cpus=1", "--object-store-memory=200000000",
               "--disable-usage-stats", f"--temp-dir={base / name}", *ports, *args]
        with open(base / f"{name}.log", "w") as log:
            nodes.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def wait_for(count: int) -> set[str]:
        deadline = time.monotonic() + 90
        while len(alive := _alive_nodes(dashboard)) < count:
            logs = {p.name: p.read_text()[-2000:] for p in base.glob("*.log")}
            assert time.monotonic() < deadline and all(n.poll() is None for n in nodes), logs
            time.sleep(0.5)
        return alive

    try:
        start("head", "--head", f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
              f"--ray-client-server-port={_free_port()}")
        wait_for(1)
        start("node2", f"--address=127.0.0.1:{gcs}")
        yield Cluster(f"127.0.0.1:{gcs}", dashboard, wait_for(2), env)
    finally:
        for node in reversed(nodes):
            node.terminate()
        for node in nodes:
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        time.sleep(1)
        leftovers = processes_mentioning(str(base))
        shutil.rmtree(base, ignore_errors=True)
    assert not leftovers, f"processes of the test cluster still running: {leftovers}"


@pytest.mark.slow
def test_job_submitted_with_the_repo_as_working_dir_plans_and_runs_chunks_on_both_nodes(two_node_ray, tmp_path):
    lake = tmp_path / "lake"
    # After the run, the same job prints where conf/ was found: it must be the uploaded copy of the repo.
    script = (f"bear ray=cluster +preset=smoke ray.plan_shards=2 sink.root={lake} && "
              "python -c 'import bear.config.load as c; print(\"conf_dir:\", c.conf_dir())'")
    result = subprocess.run(
        [str(VENV_BIN / "ray"), "job", "submit", f"--address={two_node_ray.dashboard}", "--working-dir", str(REPO),
         "--", "sh", "-c", script],
        env=two_node_ray.env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert re.search(r"Job '\S+' succeeded", result.stdout), result.stdout[-4000:]

    # both "nodes" share this machine's disk, so the lake is whole; bear still says what a real cluster would do
    assert "sink=local on a 2-node Ray cluster" in result.stdout, result.stdout[-4000:]
    conf = re.search(r"^conf_dir: (\S+)$", result.stdout, re.M)
    assert conf and "working_dir_files" in conf[1] and not conf[1].startswith(str(REPO)), result.stdout[-4000:]

    report = json.loads((lake / "_bear" / "report.json").read_text())
    assert set(report["jobs_per_node"]) == two_node_ray.node_ids, "chunks ran on both nodes"
    assert report["plan_shards_per_node"] == dict.fromkeys(two_node_ray.node_ids, 1), "the skeleton pass too"
    assert lake_digest(lake) == json.loads(GOLDEN.read_text())["tables"], "the lake a single process writes"
    assert sum(report["jobs_per_node"].values()) == report["chunks"] + 1  # + the dimension tables
    checkpoint = json.loads((lake / "_bear" / "checkpoint.json").read_text())
    assert checkpoint["committed_chunks"] == report["chunks"] and checkpoint["dimensions_committed"]

    audit = subprocess.run([str(VENV_BIN / "bear"), "verify", "+preset=smoke", f"sink.root={lake}"],
                           capture_output=True, text=True, timeout=120)
    assert audit.returncode == 0 and re.search(r"^OK: all \d+ checks passed$", audit.stdout, re.M), \
        audit.stdout[-4000:] + audit.stderr[-2000:]


@pytest.mark.slow
def test_ray_local_starts_a_ray_of_its_own_where_a_cluster_is_running(two_node_ray, tmp_path):
    """ray=local (the default) starts its own Ray even where RAY_ADDRESS names a running cluster: it would
    otherwise join that cluster's nodes, and ray.num_cpus would fail there with a traceback."""
    ray_dir = short_tmpdir("rl")
    lake = tmp_path / "lake"
    try:
        result = subprocess.run(
            [str(VENV_BIN / "bear"), "+preset=smoke", "run.end=2020-01-10", "ray.num_cpus=1", f"sink.root={lake}"],
            env={**two_node_ray.env, "RAY_ADDRESS": two_node_ray.address, "RAY_TMPDIR": str(ray_dir)},
            cwd=tmp_path, capture_output=True, text=True, timeout=300)
        sessions = list((ray_dir / "ray").glob("session_2*"))
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(sessions) == 1, "the run started one Ray of its own"
    report = json.loads((lake / "_bear" / "report.json").read_text())
    assert len(report["jobs_per_node"]) == 1 and not set(report["jobs_per_node"]) & two_node_ray.node_ids
