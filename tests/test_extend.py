"""A living lake: extending a finished lake in time appends the new days and equals a fresh run of the longer range."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
from conftest import (
    BEAR,
    SHORT_LEASE,
    TESTS,
    assert_same_local_lake,
    await_lease_expiry,
    compose_cfg,
    read_table,
    run_bear,
)

from bear.config.load import resolved_end
from bear.lake.sink import open_sink
from bear.run.backfill import backfill
from bear.verify.audit import verify_lake

SMOKE = ("+preset=smoke", "ray=inprocess")  # the extension is the driver's logic: the in-process executor runs it
END = "2020-02-29"  # the smoke preset's end


def _build(root: Path, *ends: str, chunk_days: int = 10) -> None:
    """A smoke lake built up to each end in turn (one run per end)."""
    for end in ends:
        backfill(compose_cfg(*SMOKE[1:], f"sink.root={root}", f"run.end={end}", f"run.chunk_days={chunk_days}"))


def _committed(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every lake file outside the run state, with what a rewrite, rename or delete would change."""
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(root.rglob("*")) if p.is_file() and "_bear" not in p.parts}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """One uninterrupted run over the whole smoke range, chunked differently from every extension below."""
    root = tmp_path_factory.mktemp("fresh") / "lake"
    _build(root, END, chunk_days=7)
    return root


@pytest.mark.slow
def test_an_extended_lake_equals_a_fresh_run_and_never_touches_what_was_committed(fresh, tmp_path):
    """Items 1, 2, 5, 6: 2020-01-01..02-07 in chunks of 10 days (the last one short), extended to 02-29: only new
    partitions appear, nothing committed is rewritten, renamed or deleted, and the lake equals the fresh run's
    file for file (data, manifests apart from created_at, markers). New signups land in the new days' partitions."""
    lake = tmp_path / "lake"
    _build(lake, "2020-02-07")
    before = _committed(lake)
    customers_before = read_table(lake, "customers").num_rows
    status = run_bear("status", *SMOKE, f"sink.root={lake}", f"run.end={END}", cwd=tmp_path)
    assert "committed 2020-01-01 .. 2020-02-07 of the planned 2020-01-01 .. 2020-02-07" in status.stdout
    assert f"run.end={END}: bear would extend the lake" in status.stdout
    planned = run_bear("plan", "--json", *SMOKE, f"sink.root={lake}", f"run.end={END}", cwd=tmp_path)
    assert [c["end"] for c in json.loads(planned.stdout)["chunks"]][3:6] == ["2020-02-07", "2020-02-17", "2020-02-27"]

    dry = backfill(compose_cfg(*SMOKE[1:], f"sink.root={lake}", "sink.dry_run=true"))
    assert "extending it by the days after 2020-02-07" in dry["state"]
    listed = {o["path"].split("/")[1].split("=")[1] for o in dry["objects"]}
    assert listed and min(listed) == "2020-02-08" and max(listed) == END, "the dry run lists only the new days"
    assert "product_catalog" not in dry["tables"]
    assert _committed(lake) == before

    _build(lake, END)
    after = _committed(lake)
    assert {k: v for k, v in after.items() if k in before} == before, "an extension touched a committed file"
    assert all(k.split("/")[1].split("=")[1] > "2020-02-07" for k in set(after) - set(before))
    assert_same_local_lake(lake, fresh)
    customers = read_table(lake, "customers")
    late = customers.filter(pc.greater(customers["signup_date"], dt.date(2020, 2, 7)))
    assert customers.num_rows > customers_before and late.num_rows == customers.num_rows - customers_before > 0
    plan = json.loads((lake / "_bear" / "plan.json").read_text())
    assert plan["end"] == END and [c["end"] for c in plan["chunks"]][:5] == [
        "2020-01-10", "2020-01-20", "2020-01-30", "2020-02-07", "2020-02-17"]
    cfg = compose_cfg(*SMOKE[1:], f"sink.root={lake}")
    report = verify_lake(open_sink(cfg.sink), cfg)
    assert report.ok, report.render()


@pytest.mark.slow
def test_a_lake_extended_day_by_day_equals_the_fresh_run(fresh, tmp_path):
    """Item 2: a week and two days of daily refreshes after 2020-02-20, chunks of 3 days that divide nothing."""
    lake = tmp_path / "lake"
    days = [dt.date(2020, 2, 20) + dt.timedelta(days=k) for k in range(10)]
    _build(lake, *(d.isoformat() for d in days), chunk_days=3)
    assert_same_local_lake(lake, fresh)


def test_a_shorter_end_is_refused_and_the_same_end_does_nothing(fresh, tmp_path):
    """Item 1's refusal (one line, exit 2, nothing touched) and item 4's "already there" (says so, exit 0)."""
    lake = tmp_path / "lake"
    _build(lake, "2020-02-10")
    before = _committed(lake)
    res = run_bear(*SMOKE, f"sink.root={lake}", "run.end=2020-02-09", cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        f"bear: {lake} holds this config through 2020-02-10; run.end=2020-02-09 is earlier: bear extends a lake "
        f"but never cuts it back. Use run.end=2020-02-10 or later, add run.restart=true to delete that lake and "
        f"start over (bear run only), or pick another sink location."]
    res = run_bear(*SMOKE, f"sink.root={lake}", "run.end=2020-02-10", cwd=tmp_path)
    assert res.returncode == 0 and "complete through 2020-02-10: nothing to do" in res.stdout
    assert _committed(lake) == before


def test_today_and_yesterday_resolve_once_to_utc_dates_and_a_lake_at_that_date_does_nothing(tmp_path):
    """Item 4: `run.end=today` is the UTC date at load, recorded in the plan; rerun the same day, nothing to do."""
    noon = dt.datetime(2026, 12, 3, 23, 59, 59, tzinfo=dt.UTC)
    assert (resolved_end("today", noon), resolved_end("yesterday", noon)) == ("2026-12-03", "2026-12-02")
    assert resolved_end("2026-01-08", noon) == "2026-01-08"
    today = dt.datetime.now(dt.UTC).date()
    window = [f"run.start={today - dt.timedelta(days=12)}", f"generator.customer.signup_end={today}",
              f"generator.customer.signup_start={today - dt.timedelta(days=90)}", "generator.customers=1500"]
    lake = tmp_path / "lake"
    res = run_bear(*SMOKE, f"sink.root={lake}", "run.end=today", *window, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    end = json.loads((lake / "_bear" / "plan.json").read_text())["end"]
    assert end in (today.isoformat(), dt.datetime.now(dt.UTC).date().isoformat())
    res = run_bear(*SMOKE, f"sink.root={lake}", "run.end=today", *window, cwd=tmp_path)
    assert res.returncode == 0 and f"complete through {end}: nothing to do" in res.stdout, res.stderr
    bad = run_bear(*SMOKE, f"sink.root={lake}", "run.end=tomorrow", cwd=tmp_path)
    assert bad.returncode == 2 and "run.end" in bad.stderr and "today or yesterday" in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["between_markers_and_checkpoint", "while_extension_chunks_run"])
def test_an_extension_killed_at_any_point_then_rerun_equals_the_fresh_run(fresh, tmp_path, moment):
    """Item 7: kill -9 during an extension (its plan already rewritten), rerun the same command: identical lake."""
    lake = tmp_path / "lake"
    _build(lake, "2020-02-07")
    before = _committed(lake)
    args = [*SMOKE, f"sink.root={lake}", f"run.end={END}", "run.chunk_days=10", SHORT_LEASE]
    if moment == "between_markers_and_checkpoint":
        env = {"BEAR_TEST_KILL_PARTITION": "orders/ingest_dt=2020-02-20"}  # the extension's second chunk
        res = run_bear(*args, "hooks.post_export=[kill_hooks:kill_at_partition]", cwd=tmp_path, env=env)
        assert res.returncode == -signal.SIGKILL
        assert (lake / "orders" / "ingest_dt=2020-02-20" / "_SUCCESS").exists()
        assert json.loads((lake / "_bear" / "checkpoint.json").read_text())["committed_chunks"] == 5
    else:
        proc = subprocess.Popen([BEAR, *args], cwd=tmp_path, env={**os.environ, "PYTHONPATH": TESTS},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first_new = lake / "cart_items" / "ingest_dt=2020-02-08"
        deadline = time.time() + 120
        while not list(first_new.glob("part-*.parquet")) and time.time() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the extension ended before it was killed"
        assert json.loads((lake / "_bear" / "plan.json").read_text())["end"] == END
    after = _committed(lake)
    assert {k: v for k, v in after.items() if k in before} == before
    await_lease_expiry(lake)
    res = run_bear(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert_same_local_lake(lake, fresh)


@pytest.mark.slow
def test_an_extension_stopped_on_its_way_can_end_earlier_but_not_before_what_is_committed(fresh, tmp_path):
    """A run killed on its way to a (say, mistyped) later end: a rerun may end anywhere from the committed end on,
    and bear deletes what the killed run wrote after it; an end before the committed one is refused."""
    lake = tmp_path / "lake"
    _build(lake, "2020-02-07")
    args = [*SMOKE, f"sink.root={lake}", SHORT_LEASE]
    env = {"BEAR_TEST_KILL_PARTITION": "orders/ingest_dt=2020-02-20"}  # 02-08..17 committed, 02-18..27 not
    res = run_bear(*args, f"run.end={END}", "hooks.post_export=[kill_hooks:kill_at_partition]", cwd=tmp_path,
                   env=env)
    assert res.returncode == -signal.SIGKILL
    await_lease_expiry(lake)
    res = run_bear(*args, "run.end=2020-02-16", cwd=tmp_path)
    assert res.returncode == 2 and "holds this config through 2020-02-17" in res.stderr
    res = run_bear(*args, "run.end=2020-02-19", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not [p for p in lake.rglob("*") if p.is_file() and p.parent.name.startswith(("ingest_dt=", "signup_date="))
                and p.parent.name.split("=")[1] > "2020-02-19"], "files of the abandoned end outlived the rerun"
    cfg = compose_cfg(*SMOKE[1:], f"sink.root={lake}", "run.end=2020-02-19")
    report = verify_lake(open_sink(cfg.sink), cfg)
    assert report.ok, report.render()
    _build(lake, END)
    assert_same_local_lake(lake, fresh)


@pytest.mark.slow
def test_a_damaged_plan_of_an_extended_lake_is_recomputed_but_never_to_an_earlier_end(fresh, tmp_path):
    """The plan's record of how an extended lake was chunked is lost: the rerun redoes what the lake cannot prove
    (same bytes) and finishes identical; an end before the lake's committed partitions is refused."""
    lake = tmp_path / "lake"
    _build(lake, "2020-02-03", "2020-02-15", chunk_days=4)
    plan = lake / "_bear" / "plan.json"
    plan.write_text(plan.read_text()[:200])
    res = run_bear(*SMOKE, f"sink.root={lake}", "run.end=2020-02-03", "run.chunk_days=4", cwd=tmp_path)
    assert res.returncode == 2 and "committed partitions after run.end=2020-02-03" in res.stderr, res.stderr
    _build(lake, END, chunk_days=4)
    assert_same_local_lake(lake, fresh)
