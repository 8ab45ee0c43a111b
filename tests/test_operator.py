"""Operator experience: progress, run report, logs, failures, secrets (through the real `bear` command)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import BEAR, SHORT_LEASE, TESTS, await_lease_expiry, run_bear

from bear.core.schemas import DAILY
from bear.run.report import time_split

pytestmark = pytest.mark.slow  # real Ray runs or the GCS emulator: the full lane

SMOKE = ("+preset=smoke", "run.end=2020-01-31", "ray=inprocess")  # no parallelism needed: no Ray to start


def _daily_from_manifests(lake: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for m in lake.rglob("_MANIFEST.json"):
        doc = json.loads(m.read_text())
        if doc["partition"].startswith("ingest_dt="):
            out.setdefault(doc["table"], {})[doc["partition"].split("=")[1]] = doc["total_rows"]
    return out


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.data_json = ""
        self.svgs = 0
        self._in_data = False

    def handle_starttag(self, tag, attrs):
        self._in_data = tag == "script" and ("id", "bear-data") in attrs
        self.svgs += tag == "svg"

    def handle_data(self, data):
        if self._in_data:
            self.data_json += data
        else:
            self.text.append(data)

    def handle_endtag(self, tag):
        self._in_data = False


def test_report_json_and_html_match_the_lake_and_progress_logs(tmp_path):
    lake = tmp_path / "lake"
    res = run_bear(*SMOKE, f"sink.root={lake}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "progress: 4/4 chunks" in res.stderr and "rows/s" in res.stderr  # not a terminal: log lines
    assert "cart_items" in res.stdout and "report:" in res.stdout
    report = json.loads((lake / "_bear" / "report.json").read_text())
    manifests = [json.loads(m.read_text()) for m in lake.rglob("_MANIFEST.json")]
    values: dict[str, int] = {}  # cells: each partition's rows times the columns its files hold
    for m in (m for m in manifests if m["files"]):
        columns = len(pq.read_schema(lake / m["table"] / m["partition"] / "part-00000.parquet"))
        values[m["table"]] = values.get(m["table"], 0) + m["total_rows"] * columns
    for table, t in report["tables"].items():
        assert t["rows"] == sum(m["total_rows"] for m in manifests if m["table"] == table)
        assert t["partitions"] == sum(1 for m in manifests if m["table"] == table)
        assert t["values"] == values.get(table, 0), table
    assert report["total_rows"] == sum(m["total_rows"] for m in manifests)
    assert report["total_values"] == sum(values.values()) > report["total_rows"]
    # where the time went: the critical path adds up to the run's wall time; the jobs' stages are their seconds
    split = time_split(report)
    assert abs(sum(split["critical_path"].values()) - report["wall_seconds"]) < 0.05
    assert split["task_seconds"] == report["worker_seconds"] and 0 < split["busy"] <= 1.01
    assert "critical path (s): ray start" in res.stdout and "job stages (task-s on 1 worker(s)" in res.stdout
    page = _Page()
    page.feed((lake / "_bear" / "report.html").read_text())
    text = " ".join(page.text)
    for table in report["tables"]:
        assert table in text
    assert page.svgs == 9, "one chart per daily table, where the time went, the mess bars"
    assert 'aria-label="where the time went"' in (lake / "_bear" / "report.html").read_text()
    for table in DAILY:
        assert f'aria-label="{table} rows per day"' in (lake / "_bear" / "report.html").read_text()
    assert text.count("rows per day") >= len(DAILY), "every chart labels its y axis"
    data = json.loads(page.data_json)
    assert data["daily_rows"] == _daily_from_manifests(lake)
    assert "http://" not in (lake / "_bear" / "report.html").read_text().replace("http://www.w3.org", "")


def test_progress_bar_on_a_terminal_and_sane_on_resume(tmp_path):
    lake = tmp_path / "lake"
    env = {**os.environ, "PYTHONPATH": TESTS, "BEAR_TEST_KILL_PARTITION": "orders/ingest_dt=2020-01-25"}
    crashed = run_bear(*SMOKE, f"sink.root={lake}", "hooks.post_export=[kill_hooks:kill_at_partition]",
                       SHORT_LEASE, cwd=tmp_path, env=env)
    assert crashed.returncode == -signal.SIGKILL
    await_lease_expiry(lake)
    master, slave = pty.openpty()
    proc = subprocess.Popen([BEAR, *SMOKE, f"sink.root={lake}"], cwd=tmp_path, env=env, stdin=slave,
                            stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=60) == 0
    text = out.decode(errors="replace")
    assert "\r[" in text and "#" in text
    frames = [f for f in text.split("\r") if "chunks |" in f]
    assert "2/4 chunks" in frames[0]  # resumes from the checkpoint, not from zero
    assert "4/4 chunks" in frames[-1] and "(100%)" in frames[-1]
    shares = [int(m) for f in frames for m in re.findall(r"\((\d+)%\)", f)]
    assert shares and all(a <= b <= 100 for a, b in zip(shares, shares[1:], strict=False)), shares  # never past 100 %


def test_failing_chunk_is_one_clear_line_and_resumable(tmp_path):
    lake = tmp_path / "lake"
    env = {"BEAR_TEST_KILL_PARTITION": "orders/ingest_dt=2020-01-05"}
    crashed = run_bear(*SMOKE, f"sink.root={lake}", "hooks.post_export=[kill_hooks:kill_at_partition]",
                       SHORT_LEASE, cwd=tmp_path, env=env)
    assert crashed.returncode == -signal.SIGKILL
    await_lease_expiry(lake)
    obstacle = lake / "orders" / "ingest_dt=2020-01-15" / "part-00000.parquet"
    if obstacle.exists():
        obstacle.unlink()
    obstacle.mkdir(parents=True)
    res = run_bear(*SMOKE, f"sink.root={lake}", cwd=tmp_path)
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("bear:")]
    assert len(errors) == 1, res.stderr
    assert ("chunk 1 (2020-01-11..2020-01-20) failed: writing orders/ingest_dt=2020-01-15/part-00000.parquet on "
            f"{lake} failed: Is a directory; fix the cause, then rerun the same command") in errors[0], errors[0]
    assert "Traceback" not in res.stderr
    # the checkpoint stays before the failing chunk 1 (chunk 0 may or may not have committed before it failed)
    assert json.loads((lake / "_bear" / "checkpoint.json").read_text())["committed_chunks"] <= 1
    shutil.rmtree(obstacle)
    res = run_bear(*SMOKE, f"sink.root={lake}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr


def test_planted_token_never_leaks(tmp_path):
    secret = "PLANTED-SECRET-7f3a9c"
    lake = tmp_path / "lake"
    res = run_bear(*SMOKE, f"sink.root={lake}", f"sink.token={secret}", "logging.level=DEBUG", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    cfg = run_bear("--cfg", "job", *SMOKE, f"sink.token={secret}", cwd=tmp_path)
    assert cfg.returncode == 0 and "token: '***'" in cfg.stdout
    status = run_bear("status", *SMOKE, f"sink.root={lake}", f"sink.token={secret}", cwd=tmp_path)
    for output in (res.stdout, res.stderr, cfg.stdout, cfg.stderr, status.stdout, status.stderr):
        assert secret not in output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_json_logs(tmp_path):
    res = run_bear(*SMOKE, f"sink.root={tmp_path / 'lake'}", "logging.format=json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert records and all({"ts", "level", "message"} <= set(r) for r in records)
    assert any("progress:" in r["message"] for r in records)


def test_quiet_shows_no_progress(tmp_path):
    res = run_bear(*SMOKE, f"sink.root={tmp_path / 'lake'}", "logging.progress=quiet", cwd=tmp_path)
    assert res.returncode == 0 and "progress:" not in res.stderr
