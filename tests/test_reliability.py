"""One writer per lake, run state that cannot strand a run, durable commits, full disks survived.

Local sinks here; the lease and commit faults on GCS are in test_gcs.py, which owns the emulator.
The commit protocol and resume logic need no Ray, so these runs use the in-process executor.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import SHORT_LEASE, assert_same_local_lake, await_lease_expiry, compose_cfg, run_bear, start_bear

from bear.cli.commands import cmd_status
from bear.config.schema import SinkConfig
from bear.lake import localdisk
from bear.lake.layout import CHECKPOINT, LEASE, MANIFEST, PLAN, REPORT_JSON, SUCCESS, hooks_journal, summary_name
from bear.lake.lease import Lease, LeaseHeld, LeaseLost, read_lease
from bear.lake.sink import open_sink
from bear.lake.state import StateDamaged, read_state
from bear.run.backfill import backfill
from bear.run.errors import RunError

SMOKE = ("+preset=smoke", "ray=inprocess")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted smoke lake: what every recovered lake must equal."""
    root = tmp_path_factory.mktemp("reference") / "lake"
    backfill(compose_cfg(f"sink.root={root}", "ray=inprocess"))
    return root


@pytest.fixture(scope="module")
def half_done(tmp_path_factory) -> Path:
    """The smoke lake stopped by a failing post-export hook at chunk 3 of 6 (copy it before changing it)."""
    root = tmp_path_factory.mktemp("half") / "lake"
    with pytest.raises(RunError):
        backfill(compose_cfg(f"sink.root={root}", "ray=inprocess", "hooks.post_export=[kill_hooks:fail_on_february]"))
    assert read_state(_sink(root), CHECKPOINT, "checkpoint")["committed_chunks"] == 3
    return root


def bear_lines(res: subprocess.CompletedProcess) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("bear:")]


def _sink(root: Path):
    return open_sink(SinkConfig(root=str(root)))


def _write_lease(root: Path, **fields) -> None:
    """A lease file as a run on another host left it (killed, or still running)."""
    now = time.time()
    doc = {"holder": "elsewhere:4242", "run_id": "feedfacecafe", "started_at": "2026-01-01T00:00:00.000+00:00",
           "renewed_at": "2026-01-01T00:00:00.000+00:00", "lease_s": 180.0, "nonce": "0",
           "expires_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now + 600)), **fields}
    (root / LEASE).parent.mkdir(parents=True, exist_ok=True)
    (root / LEASE).write_text(json.dumps(doc))


# ---- the writer lease ---------------------------------------------------------------------------------------------


def test_a_live_lease_refuses_a_second_writer_and_a_dead_or_damaged_one_is_taken_over(tmp_path):
    root = tmp_path / "lake"
    sink = _sink(root)
    with Lease(sink, 30) as first:
        doc = read_lease(sink)
        assert doc["run_id"] == first.run_id and doc["live"] and doc["holder"] == first.holder
        with pytest.raises(LeaseHeld) as err:
            Lease(sink, 30).acquire()
        line = str(err.value)
        assert err.value.exit_code == 2 and "\n" not in line
        assert f"held by {first.holder} (run {first.run_id}) since {first.started_at}; expires" in line
        first.ensure()
    assert read_lease(sink) is None, "a finished run releases its lease"

    _write_lease(root)  # another host's live lease
    with pytest.raises(LeaseHeld, match="held by elsewhere:4242"):
        Lease(sink, 30).acquire()
    _write_lease(root, expires_at="2026-01-01T00:03:00+00:00")  # its run was killed long ago
    with Lease(sink, 30) as taker:
        assert read_lease(sink)["run_id"] == taker.run_id
    (root / LEASE).write_text('{"holder": "elsewh')  # damaged: nobody can be shown to hold it
    with Lease(sink, 30) as taker:
        assert read_lease(sink)["run_id"] == taker.run_id


def test_a_failed_commit_write_is_reported_as_the_lost_lease_when_another_run_took_it(tmp_path):
    """A holder frozen between writing its checkpoint's temporary and renaming it wakes to find the temporary swept
    by the run that took over: the error to report is the lost lease, not the missing file."""
    root = tmp_path / "lake"
    with Lease(_sink(root), 30) as holder:
        gone = FileNotFoundError(2, "No such file or directory")
        holder.explain(gone)  # still ours: the caller's own error stands
        (root / LEASE).unlink()  # the run that took over finished and released it
        with pytest.raises(LeaseLost, match="another run took over the writer lease"):
            holder.explain(gone)
        with pytest.raises(LeaseLost):
            holder.ensure()  # and no later commit goes through
    with Lease(_sink(root), 30) as holder:
        _write_lease(root)  # another run holds it now
        with pytest.raises(LeaseLost, match="another run took over the writer lease"):
            holder.explain(gone)


def _race(root: str, go, results) -> None:
    lease = Lease(_sink(Path(root)), 60)
    go.wait()
    try:
        lease.acquire()
        results.put(lease.run_id)
    except LeaseHeld:
        results.put(None)


@pytest.mark.parametrize("found", ["nothing", "an expired lease"])
def test_of_processes_racing_for_the_lease_exactly_one_wins(tmp_path, found):
    root = tmp_path / "lake"
    if found == "an expired lease":
        _write_lease(root, expires_at="2026-01-01T00:03:00+00:00")
    ctx = multiprocessing.get_context("fork")
    go, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(root), go, results)) for _ in range(6)]
    for p in procs:
        p.start()
    go.set()
    won = [r for r in (results.get(timeout=60) for _ in procs) if r]
    for p in procs:
        p.join(timeout=60)
    assert len(won) == 1, won
    assert read_lease(_sink(root))["run_id"] == won[0]


def start_until(args: tuple[str, ...], cwd: Path, seen: Callable[[], bool]) -> subprocess.Popen:
    """`bear args` started in its own session, returned once `seen()` holds (or it ended)."""
    proc = start_bear(*args, cwd=cwd)
    deadline = time.monotonic() + 60
    while not seen() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


@pytest.mark.slow
def test_a_second_run_is_refused_while_the_first_writes_and_restart_cannot_bypass_it(reference, tmp_path):
    lake = tmp_path / "lake"
    first = start_until((*SMOKE, f"sink.root={lake}"), tmp_path, (lake / LEASE).exists)
    os.killpg(first.pid, signal.SIGSTOP)  # hold it mid-run: its lease stays live (180 s)
    try:
        for extra in ((), ("run.restart=true", "run.seed=7")):
            res = run_bear(*SMOKE, f"sink.root={lake}", *extra, cwd=tmp_path)
            assert res.returncode == 2, res.stderr
            lines = bear_lines(res)
            assert len(lines) == 1 and "is being written by another run" in lines[0], res.stderr
            assert f":{first.pid} (run " in lines[0] and "expires" in lines[0]
        status = run_bear("status", *SMOKE, f"sink.root={lake}", cwd=tmp_path)
        assert status.returncode == 0 and "writer lease: held by " in status.stdout
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert_same_local_lake(lake, reference)
    assert not (lake / LEASE).exists()


@pytest.mark.slow
def test_a_killed_holder_is_taken_over_after_its_lease_expires(reference, tmp_path):
    lake = tmp_path / "lake"
    args = (*SMOKE, f"sink.root={lake}", "run.lease_s=6")
    first = start_until(args, tmp_path, lambda: any(lake.glob(f"orders/*/{SUCCESS}")))
    os.killpg(first.pid, signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    refused = run_bear(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "is being written by another run" in refused.stderr, refused.stderr
    await_lease_expiry(lake)
    res = run_bear(*args, cwd=tmp_path)
    assert res.returncode == 0 and "taking over the writer lease" in res.stderr, res.stderr
    assert_same_local_lake(lake, reference)


@pytest.mark.slow
def test_a_holder_that_froze_past_its_lease_stops_before_committing_again(reference, tmp_path):
    lake = tmp_path / "lake"
    args = (*SMOKE, f"sink.root={lake}", "run.lease_s=1")
    frozen = start_until(args, tmp_path, lambda: any(lake.glob(f"orders/*/{SUCCESS}")))
    os.killpg(frozen.pid, signal.SIGSTOP)  # a long GC pause, a suspended VM: its heartbeat stops
    try:
        await_lease_expiry(lake)
        taker = run_bear(*args, cwd=tmp_path)
        assert taker.returncode == 0 and "taking over the writer lease" in taker.stderr, taker.stderr
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    out, errs = frozen.communicate(timeout=120)
    assert frozen.returncode == 1, errs
    lines = [line for line in errs.splitlines() if line.startswith("bear:")]
    assert len(lines) == 1 and "another run took over the writer lease" in lines[0], errs
    assert_same_local_lake(lake, reference)
    # frozen inside its last checkpoint write (after its final lease check), it may have moved the checkpoint
    # back when it woke: nothing is lost, the next run redoes those chunks byte for byte
    assert run_bear(*args, cwd=tmp_path).returncode == 0
    assert_same_local_lake(lake, reference)
    assert read_state(_sink(lake), CHECKPOINT, "checkpoint")["committed_chunks"] == 6


# ---- recoverable state ------------------------------------------------------------------------------------------


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        path.write_bytes(b"")
    else:  # garbled: still JSON, one digit changed (what bit rot or a hand edit does)
        i = next(i for i in range(len(data) // 2, len(data)) if chr(data[i]).isdigit())
        path.write_bytes(data[:i] + str((int(chr(data[i])) + 1) % 10).encode() + data[i + 1:])
        json.loads(path.read_bytes())


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "emptied", "garbled"])
@pytest.mark.parametrize("state", ["plan", "checkpoint", "summary"])
def test_damaged_state_is_named_then_rebuilt_or_recomputed_and_the_lake_completes(reference, half_done, tmp_path,
                                                                                   state, how, capsys, caplog):
    """A half-done lake with one damaged state file."""
    lake = tmp_path / "lake"
    shutil.copytree(half_done, lake)
    sink = _sink(lake)
    rel = {"plan": PLAN, "checkpoint": CHECKPOINT, "summary": summary_name(1)}[state]
    if state == "summary":
        _damage(lake / CHECKPOINT, how)  # summaries are read when a checkpoint is rebuilt
    _damage(lake / rel, how)
    with pytest.raises(StateDamaged, match=f"{rel} is damaged"):
        read_state(sink, rel, state)

    cfg = compose_cfg(f"sink.root={lake}", "ray=inprocess")  # in-process: the CLI's side is tested below
    code, out = cmd_status(cfg), capsys.readouterr().out
    if state == "plan":
        assert code == 1 and f"{PLAN} is damaged" in out, out
    else:  # the damaged summary is chunk 1's: only the dimensions and chunk 0 are proven
        proven = "1/6" if state == "summary" else "3/6"
        assert code == 0 and f"rebuilt from the lake's _SUCCESS markers and chunk summaries: dimensions committed, " \
                             f"{proven}" in out, out

    with caplog.at_level(logging.WARNING, logger="bear"):
        backfill(cfg)
    assert ("recomputed it from the config" if state == "plan" else "rebuilt from the lake") in caplog.text
    assert_same_local_lake(lake, reference)
    assert read_state(sink, CHECKPOINT, "checkpoint")["committed_chunks"] == 6
    read_state(sink, PLAN, "plan")
    read_state(sink, REPORT_JSON, "report")


@pytest.mark.slow
def test_a_damaged_report_or_hooks_journal_costs_nothing_but_its_figures(reference, tmp_path):
    """Derived state: a damaged report is left out of `nothing to do`; a damaged hooks journal reruns the hooks."""
    lake = tmp_path / "lake"
    shutil.copytree(reference, lake)
    report = (lake / REPORT_JSON).read_bytes()
    for how in ("truncated", "emptied", "garbled"):
        (lake / REPORT_JSON).write_bytes(report)
        _damage(lake / REPORT_JSON, how)
        res = run_bear(*SMOKE, f"sink.root={lake}", cwd=tmp_path)
        assert res.returncode == 0 and f"{REPORT_JSON} is damaged" in res.stderr, res.stderr
        assert "nothing to do" in res.stdout

    record = tmp_path / "calls.txt"
    args = (*SMOKE, f"sink.root={tmp_path / 'hooked'}")
    env = {"BEAR_TEST_KILL_PARTITION": "orders/ingest_dt=2020-01-25", "BEAR_TEST_RECORD": str(record)}
    crashed = run_bear(*args, "hooks.post_export=[kill_hooks:record,kill_hooks:kill_at_partition]", SHORT_LEASE,
                       cwd=tmp_path, env=env)
    assert crashed.returncode == -signal.SIGKILL
    _damage(tmp_path / "hooked" / hooks_journal(2), "garbled")
    await_lease_expiry(tmp_path / "hooked")
    res = run_bear(*args, "hooks.post_export=[kill_hooks:record]", cwd=tmp_path, env=env)
    assert res.returncode == 0 and f"{hooks_journal(2)} is damaged" in res.stderr, res.stderr
    calls = [line.split()[0] for line in record.read_text().splitlines()]
    assert len(set(calls)) == len(list((tmp_path / "hooked").rglob(SUCCESS))), "every partition's hooks ran"


@pytest.mark.slow
def test_a_lake_in_the_previous_state_format_is_recomputed_rebuilt_and_finished(reference, tmp_path, caplog):
    lake = tmp_path / "lake"
    shutil.copytree(reference, lake)
    for path in [lake / PLAN, lake / CHECKPOINT, *(lake / "_bear" / "chunks").iterdir()]:
        doc = json.loads(path.read_text())  # as the previous bear wrote them: no checksum, older versions
        doc.pop("checksum")
        if "schema_version" in doc:
            doc["schema_version"] -= 1
        path.write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, logger="bear"):
        backfill(compose_cfg(f"sink.root={lake}", "ray=inprocess"))
    assert f"{PLAN} is damaged (no checksum: written by an earlier bear" in caplog.text
    assert "recomputed it from the config" in caplog.text and "rebuilt from the lake" in caplog.text
    assert_same_local_lake(lake, reference)
    assert read_state(_sink(lake), CHECKPOINT, "checkpoint")["committed_chunks"] == 6


@pytest.mark.slow
def test_a_damaged_plan_of_another_config_is_refused_and_nothing_changes(reference, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(reference, lake)
    _damage(lake / PLAN, "emptied")
    before = sorted(str(p) for p in lake.rglob("*"))
    res = run_bear(*SMOKE, f"sink.root={lake}", "run.seed=7", cwd=tmp_path)
    assert res.returncode == 2 and len(bear_lines(res)) == 1, res.stderr
    assert f"{PLAN} is damaged (empty), and the lake's manifests or checkpoint were written by another config" \
           in bear_lines(res)[0]
    dry = run_bear(*SMOKE, f"sink.root={lake}", "sink.dry_run=true", cwd=tmp_path)
    assert dry.returncode == 0 and f"{PLAN} is damaged (empty): a real run would recompute it" in dry.stdout
    assert sorted(str(p) for p in lake.rglob("*")) == before
    verify = run_bear("verify", *SMOKE, f"sink.root={lake}", cwd=tmp_path)
    assert verify.returncode == 1 and f"{PLAN} is damaged" in verify.stdout + verify.stderr
    status = run_bear("status", *SMOKE, f"sink.root={lake}", cwd=tmp_path)
    assert status.returncode == 1 and status.stdout.count("\n") == 1 and "Traceback" not in status.stderr
    assert f"{PLAN} is damaged (empty); run bear with the lake's config" in status.stdout


# ---- durable commits ----------------------------------------------------------------------------------------------


def test_files_reach_the_disk_before_their_markers_and_markers_before_the_checkpoint(tmp_path, monkeypatch):
    """The order of what a local run publishes and flushes, seen at the disk primitives (which still do their work)."""
    events: list[tuple[str, str, bool]] = []
    publish, sync = localdisk.publish, localdisk.sync_filesystem

    def spy_publish(target: str, data: bytes, durable: bool = False) -> None:
        publish(target, data, durable)
        events.append(("publish", target, durable))

    def spy_sync(path: str) -> None:
        sync(path)
        events.append(("sync", path, True))

    monkeypatch.setattr(localdisk, "publish", spy_publish)
    monkeypatch.setattr(localdisk, "sync_filesystem", spy_sync)
    lake = tmp_path / "lake"
    backfill(compose_cfg(f"sink.root={lake}", "ray=inprocess"))

    last_sync = -1
    synced: set[str] = set()  # files flushed by a sync so far
    pending: set[str] = set()
    checkpoints = 0
    for i, (what, target, durable) in enumerate(events):
        rel = os.path.relpath(target, lake)
        if what == "sync":
            synced |= pending
            pending.clear()
            last_sync = i
            continue
        if rel.endswith(SUCCESS):
            folder = os.path.dirname(rel)
            own = {r for r in synced | pending if os.path.dirname(r) == folder}
            assert own and own <= synced, f"{rel} was published before its partition's files were flushed"
        if rel == CHECKPOINT:
            checkpoints += 1
            assert durable, "the checkpoint is fsynced with its folder"
            assert not [r for r in pending if r.endswith(SUCCESS) or "/chunks/" in r], \
                "markers or a summary were not flushed before the checkpoint counted them"
        pending.add(rel)
    assert checkpoints == 7 and last_sync > 0  # the dimensions and six chunks

    events.clear()
    backfill(compose_cfg(f"sink.root={tmp_path / 'scratch'}", "ray=inprocess", "sink.fsync=false"))
    assert not [e for e in events if e[0] == "sync" or e[2]], "sink.fsync=false flushes nothing"


# ---- full disks -----------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 1.8 MB (the smoke lake is ~2.6 MB): mounted here as root; resize with remount."""
    disk = tmp_path / "disk"
    disk.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1800k", "tmpfs", str(disk)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {res.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _grow(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)


def _no_partial_file(lake: Path) -> None:
    assert not list(lake.rglob(".*.tmp-*")), "a temporary outlived the failure"
    for f in lake.rglob("*.parquet"):
        pq.read_metadata(f)  # whole: a file is published by rename or not at all
    for f in lake.rglob(MANIFEST):
        json.loads(f.read_text())


@pytest.mark.slow
def test_a_disk_that_fills_mid_chunk_stops_with_one_line_and_a_rerun_completes(reference, small_disk, tmp_path):
    lake = small_disk / "lake"
    res = run_bear(*SMOKE, f"sink.root={lake}", cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    lines = bear_lines(res)
    assert len(lines) == 1 and f"no space left on the disk of {lake}" in lines[0], res.stderr
    assert "free space" in lines[0] and "rerun the same command" in lines[0]
    ck = read_state(_sink(lake), CHECKPOINT, "checkpoint")
    assert ck is None or ck["committed_chunks"] < 6
    _no_partial_file(lake)
    _grow(small_disk)
    assert run_bear(*SMOKE, f"sink.root={lake}", cwd=tmp_path).returncode == 0
    assert_same_local_lake(lake, reference)


@pytest.mark.slow
def test_a_disk_that_fills_during_a_commit_keeps_the_checkpoint_and_a_rerun_completes(reference, small_disk,
                                                                                       tmp_path):
    _grow(small_disk)
    lake, filler = small_disk / "lake", small_disk / "filler"
    env = {"BEAR_TEST_FILL_PARTITION": "orders/ingest_dt=2020-01-25", "BEAR_TEST_FILLER": str(filler)}
    res = run_bear(*SMOKE, f"sink.root={lake}", "hooks.post_export=[kill_hooks:fill_disk_at_partition]",
                   cwd=tmp_path, env=env)
    assert res.returncode == 1 and filler.exists(), res.stderr
    lines = bear_lines(res)
    assert len(lines) == 1 and f"no space left on the disk of {lake}" in lines[0], res.stderr
    ck = read_state(_sink(lake), CHECKPOINT, "checkpoint")
    assert ck["committed_chunks"] == 2, "chunk 2's commit failed: the checkpoint stays after chunk 1"
    _no_partial_file(lake)
    filler.unlink()
    assert run_bear(*SMOKE, f"sink.root={lake}", cwd=tmp_path).returncode == 0
    assert_same_local_lake(lake, reference)
