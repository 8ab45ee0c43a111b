"""The benchmark scripts run and report what issue 7 asks for (figures are not asserted: speed is not a test)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose_cfg

from bear.lake.state import lake_rows
from bear.run.prepare import prepare_plan

pytestmark = pytest.mark.slow  # real Ray runs or the GCS emulator: the full lane

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
SKIPPED = "peer: tpchgen-cli not installed (pip install tpchgen-cli); comparison skipped"
# TPC-H's tables and their columns (the specification's, as tpchgen-cli writes them)
TPCH_COLUMNS = {"region": 3, "nation": 4, "supplier": 7, "customer": 8, "part": 9, "partsupp": 5, "orders": 9,
                "lineitem": 16}


def _without_peer() -> dict[str, str]:
    """The environment with tpchgen-cli off PATH (the venv's python is run by its path, sys.executable)."""
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                           if d and not (Path(d) / "tpchgen-cli").exists())
    return {**os.environ, "PATH": path}


def run_script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """scripts/<name> with these arguments, run to a clean exit by this venv's Python, output captured."""
    result = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_benchmark_reports_every_figure_for_each_run_and_removes_its_lakes(tmp_path):
    """Without tpchgen-cli the peer is skipped with one line, and bear's figures are all there."""
    out = tmp_path / "bench.json"
    lakes = tmp_path / "lakes"
    result = run_script("benchmark.py", "--repeat", "1", "--dir", str(lakes), "--out", str(out),
                        "--versus", "sink.fsync=false", "+preset=smoke", env=_without_peer())
    assert result.stdout.count(SKIPPED) == 1 and "bear / peer" not in result.stdout
    s = json.loads(out.read_text())
    p = prepare_plan(compose_cfg())
    expected = lake_rows(p.plan, p.cfg.generator.catalog_size)
    assert s["total_rows"] == expected == sum(t["rows"] for t in s["tables"].values())
    assert len(s["runs"]) == 1 and s["wall_seconds"] == s["runs"][0]["wall_seconds"]
    assert s["rows_per_second"] == round(expected / s["wall_seconds"])
    assert s["total_values"] == sum(t["values"] for t in s["tables"].values()) > s["total_rows"]
    assert s["values_per_second"] == round(s["total_values"] / s["wall_seconds"])
    assert all(t["bytes_per_row"] > 0 for t in s["tables"].values())
    assert set(s["driver_seconds"]) >= {"setup", "plan", "ray_start", "startup", "commit", "after_last_job"}
    assert set(s["worker_task_seconds"]) == {"dimensions", "generate", "mess", "encode", "write", "sync"}
    assert s["worker_peak_rss_mb"] > 0 and s["driver_peak_rss_mb"] > 0 and s["ray_workers"] >= 1
    # the plan phase (skeleton pass on the workers) and memory without the object store's pages
    assert s["plan_seconds"] > 0 and s["plan_shards"] >= 1 and "plan: skeleton pass over" in result.stdout
    for who in ("driver", "worker", "plan_worker"):
        assert 0 < s[f"{who}_peak_private_mb"] <= s[f"{who}_peak_rss_mb"], who
    assert 0 < s["driver_critical_share_of_wall"] <= s["driver_share_of_wall"] < 1
    assert f"{expected:,} rows, {s['total_values']:,} values in" in result.stdout and "run 1/1:" in result.stdout
    versus = s["versus"]  # the same run without durable commits, paired with the plain one
    assert versus["overrides"] == ["sink.fsync=false"] and len(versus["runs"]) == 1
    assert versus["wall_seconds"] == versus["runs"][0]["wall_seconds"] == versus["median_wall_seconds"]
    assert "versus sink.fsync=false: fastest" in result.stdout and "run 1/1 sink.fsync=false:" in result.stdout
    assert list(lakes.iterdir()) == [], "temporary lakes are removed"
    assert s["peer"] == {"tool": "tpchgen-cli", "skipped": "not installed"}
    assert "critical path (s): ray start" in result.stdout and "job stages (task-s on" in result.stdout
    assert s["time_split"]["task_seconds"] == s["worker_task_seconds"]


def test_benchmark_pairs_each_run_with_tpchgen_cli_and_reports_the_ratio_of_values_per_second(tmp_path):
    out = tmp_path / "bench.json"
    lakes = tmp_path / "lakes"
    result = run_script("benchmark.py", "--repeat", "2", "--dir", str(lakes), "--out", str(out),
                        "--peer-scale", "0.01", "+preset=smoke")
    s = json.loads(out.read_text())
    walls = [r["wall_seconds"] for r in s["runs"]]
    assert s["repeats"]["wall_seconds"] == {"median": statistics.median(walls), "min": min(walls), "max": max(walls)}
    assert s["median_wall_seconds"] == statistics.median(walls) and s["wall_seconds"] == min(walls)
    vps = [r["values_per_second"] for r in s["runs"]]
    assert vps == [round(s["total_values"] / w) for w in walls]
    assert s["repeats"]["values_per_second"]["median"] == statistics.median(vps)
    peer = s["peer"]
    assert peer["tool"] == "tpchgen-cli" and peer["version"].startswith("tpchgen-cli ") and peer["scale"] == 0.01
    assert {t: v["columns"] for t, v in peer["tables"].items()} == TPCH_COLUMNS
    assert peer["tables"]["region"]["rows"] == 5 and peer["tables"]["orders"]["rows"] == 15_000  # 1.5 M x scale
    assert peer["rows"] == sum(t["rows"] for t in peer["tables"].values())
    assert peer["values"] == sum(t["rows"] * t["columns"] for t in peer["tables"].values()) > peer["rows"] > 0
    assert len(peer["runs"]) == 2 and all(r["values"] == peer["values"] for r in peer["runs"])
    assert [r["values_per_second"] for r in peer["runs"]] == [round(peer["values"] / r["wall_seconds"])
                                                              for r in peer["runs"]]
    assert peer["median_values_per_second"] == statistics.median(r["values_per_second"] for r in peer["runs"])
    assert len(peer["ratios"]) == 2  # a ratio per pair: bear values/s over the peer's in the same repeat
    for ratio, b, p in zip(peer["ratios"], s["runs"], peer["runs"], strict=True):
        assert ratio == pytest.approx(b["values_per_second"] / p["values_per_second"], abs=1e-4)
    assert peer["median_ratio"] == statistics.median(peer["ratios"])
    out_lines = result.stdout.splitlines()
    order = [line.split(":")[0].strip() for line in out_lines if line.strip().startswith("run ")]
    assert order == ["run 1/2", "run 1/2 peer tpchgen-cli -s 0.01", "run 2/2 peer tpchgen-cli -s 0.01", "run 2/2"]
    assert "over 2 runs, median (spread):" in result.stdout
    assert any(line.startswith(f"peer tpchgen-cli -s 0.01: {peer['rows']:,} rows, {peer['values']:,} values in ")
               and "(median of 2; spread " in line for line in out_lines)
    assert any(line.startswith(f"bear / peer: {peer['median_ratio']:#.3g}× values per second") for line in out_lines)
    assert SKIPPED not in result.stdout
    assert list(lakes.iterdir()) == [], "bear's lakes and the peer's output are removed"


def test_no_peer_runs_bear_alone_though_tpchgen_cli_is_installed(tmp_path):
    out = tmp_path / "bench.json"
    lakes = tmp_path / "lakes"
    assert shutil.which("tpchgen-cli"), "the test extra installs the peer"
    result = run_script("benchmark.py", "--no-peer", "--dir", str(lakes), "--out", str(out), "+preset=smoke",
                        "run.end=2020-01-10")
    s = json.loads(out.read_text())
    assert "peer" not in s and len(s["runs"]) == 1 and s["values_per_second"] > 0
    assert "tpchgen" not in result.stdout, result.stdout[-3000:]  # in every peer line, the skipped one too
    assert list(lakes.iterdir()) == []


def test_generator_benchmark_prints_rows_per_second_per_table():
    result = run_script("bench_generator.py", "--repeat", "1", "+preset=smoke")
    for table in ("shopping_carts", "cart_items", "orders", "order_items", "returns", "return_items"):
        assert table in result.stdout
    assert "rows/s" in result.stdout


def test_plan_only_times_the_skeleton_pass_on_ray_and_writes_no_lake(tmp_path):
    out = tmp_path / "plan.json"
    result = run_script("benchmark.py", "--plan-only", "--out", str(out), "+preset=smoke", "ray.plan_shards=2",
                        f"sink.root={tmp_path / 'lake'}")
    s = json.loads(out.read_text())
    p = prepare_plan(compose_cfg())
    assert s["total_rows"] == lake_rows(p.plan, p.cfg.generator.catalog_size)
    assert s["plan_shards"] == 2 and s["plan_seconds"] > 0 and s["ray_cpus"] >= 1
    assert 0 < s["plan_worker_peak_private_mb"] <= s["plan_worker_peak_rss_mb"]
    assert "bear plan phase:" in result.stdout and not (tmp_path / "lake").exists()
