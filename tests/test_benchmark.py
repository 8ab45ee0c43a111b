"""The benchmark scripts run and report what issue 7 asks for (figures are not asserted: speed is not a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose_cfg

from bear.lake.state import lake_rows
from bear.run.prepare import prepare_plan

pytestmark = pytest.mark.slow  # real Ray runs or the GCS emulator: the full lane

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_benchmark_reports_every_figure_for_each_run_and_removes_its_lakes(tmp_path):
    out = tmp_path / "bench.json"
    lakes = tmp_path / "lakes"
    result = subprocess.run([sys.executable, str(SCRIPTS / "benchmark.py"), "--repeat", "1", "--dir", str(lakes),
                             "--out", str(out), "--versus", "sink.fsync=false", "+preset=smoke"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    s = json.loads(out.read_text())
    p = prepare_plan(compose_cfg())
    expected = lake_rows(p.plan, p.cfg.generator.catalog_size)
    assert s["total_rows"] == expected == sum(t["rows"] for t in s["tables"].values())
    assert len(s["runs"]) == 1 and s["wall_seconds"] == s["runs"][0]["wall_seconds"]
    assert s["rows_per_second"] == round(expected / s["wall_seconds"])
    assert all(t["bytes_per_row"] > 0 for t in s["tables"].values())
    assert set(s["driver_seconds"]) >= {"setup", "plan", "ray_start", "startup", "commit", "after_last_job"}
    assert set(s["worker_task_seconds"]) == {"dimensions", "generate", "mess", "encode", "write", "sync"}
    assert s["worker_peak_rss_mb"] > 0 and s["driver_peak_rss_mb"] > 0 and s["ray_workers"] >= 1
    # the plan phase (skeleton pass on the workers) and memory without the object store's pages
    assert s["plan_seconds"] > 0 and s["plan_shards"] >= 1 and "plan: skeleton pass over" in result.stdout
    for who in ("driver", "worker", "plan_worker"):
        assert 0 < s[f"{who}_peak_private_mb"] <= s[f"{who}_peak_rss_mb"], who
    assert 0 < s["driver_critical_share_of_wall"] <= s["driver_share_of_wall"] < 1
    assert f"{expected:,} rows in" in result.stdout and "run 1/1:" in result.stdout
    versus = s["versus"]  # the same run without durable commits, paired with the plain one
    assert versus["overrides"] == ["sink.fsync=false"] and len(versus["runs"]) == 1
    assert versus["wall_seconds"] == versus["runs"][0]["wall_seconds"] == versus["median_wall_seconds"]
    assert "versus sink.fsync=false: fastest" in result.stdout and "run 1/1 sink.fsync=false:" in result.stdout
    assert list(lakes.iterdir()) == [], "temporary lakes are removed"


def test_generator_benchmark_prints_rows_per_second_per_table():
    result = subprocess.run([sys.executable, str(SCRIPTS / "bench_generator.py"), "--repeat", "1", "+preset=smoke"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for table in ("shopping_carts", "cart_items", "orders", "order_items", "returns", "return_items"):
        assert table in result.stdout
    assert "rows/s" in result.stdout


def test_plan_only_times_the_skeleton_pass_on_ray_and_writes_no_lake(tmp_path):
    out = tmp_path / "plan.json"
    result = subprocess.run([sys.executable, str(SCRIPTS / "benchmark.py"), "--plan-only", "--out", str(out),
                             "+preset=smoke", "ray.plan_shards=2", f"sink.root={tmp_path / 'lake'}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    s = json.loads(out.read_text())
    p = prepare_plan(compose_cfg())
    assert s["total_rows"] == lake_rows(p.plan, p.cfg.generator.catalog_size)
    assert s["plan_shards"] == 2 and s["plan_seconds"] > 0 and s["ray_cpus"] >= 1
    assert 0 < s["plan_worker_peak_private_mb"] <= s["plan_worker_peak_rss_mb"]
    assert "bear plan phase:" in result.stdout and not (tmp_path / "lake").exists()
