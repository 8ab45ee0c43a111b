"""The backfill runner on a real local Ray: lake layout, manifests, determinism, crashes and resume."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import (
    BEAR,
    GOLDEN,
    SHORT_LEASE,
    TESTS,
    assert_same_local_lake,
    await_lease_expiry,
    compose_cfg,
    lake_digest,
    lake_files,
    lake_manifests,
    read_table,
    run_bear,
)

from bear import __version__
from bear.config.validate import ConfigError
from bear.core.calendar import day_number, day_to_date
from bear.core.schemas import DAILY, TABLES, TableShape, compile_changes, shape_on
from bear.run.backfill import backfill
from bear.run.errors import RunError
from bear.run.executors import RayExecutor
from bear.run.prepare import prepare, prepare_plan, set_up
from bear.verify.checks import check_tables


@pytest.fixture(scope="module")
def reference(ray_local, tmp_path_factory):
    """One uninterrupted smoke backfill every other lake is compared with."""
    root = tmp_path_factory.mktemp("ref") / "lake"
    report = backfill(compose_cfg(f"sink.root={root}"))
    return root, report


@pytest.mark.slow
def test_lake_has_every_table_and_partition_with_matching_manifests(reference):
    root, report = reference
    cfg = compose_cfg()
    days = [day_to_date(d).isoformat() for d in range(day_number(cfg.run.start), day_number(cfg.run.end) + 1)]
    for table in DAILY:
        parts = sorted(p.name for p in (root / table).iterdir())
        assert parts == [f"ingest_dt={d}" for d in days], table
    assert sorted(p.name for p in (root / "product_catalog").iterdir()) == [
        f"category={c}" for c in ("Books", "Clothing", "Electronics", "Home", "Toys")]
    assert not (root / "customers" / "signup_date=__HIVE_DEFAULT_PARTITION__").exists(), "guests have a signup_date"
    listed = set()
    for table in TABLES:
        for part in (root / table).iterdir():
            assert (part / "_SUCCESS").exists(), part
            manifest = json.loads((part / "_MANIFEST.json").read_text())
            assert manifest["table"] == table and manifest["partition"] == part.name
            assert manifest["config_fingerprint"] == report["fingerprint"]
            for f in manifest["files"]:
                data = (part / f["path"]).read_bytes()
                assert len(data) == f["bytes"] and hashlib.md5(data).hexdigest() == f["md5"]
                listed.add(str((part / f["path"]).relative_to(root)))
            total = sum(f["rows"] for f in manifest["files"])
            assert total == manifest["total_rows"]
            if manifest["files"]:
                assert read_table(root, f"{table}/{part.name}").num_rows == total
    assert listed == set(lake_files(root)), "every data file is in exactly one manifest"
    assert report["total_rows"] == sum(read_table(root, t).num_rows for t in TABLES)


@pytest.mark.slow
def test_invariants_hold_on_the_lake_read_back(reference):
    root, _ = reference
    tables = {t: read_table(root, t) for t in TABLES}
    failures = check_tables(tables)
    assert not failures, "\n".join(map(str, failures))
    # each row sits in the partition of its event date, but the order feed's late rows (medium mess: 2 % of orders,
    # with their changes, 1-3 days later, as the manifests count); children with their parent
    for table, col in (("shopping_carts", "created_at"), ("orders", "order_date"), ("returns", "return_date"),
                       ("customer_changes", "valid_from")):
        t = tables[table]
        lag = [(d - v.date()).days for v, d in zip(t[col].to_pylist(), t["ingest_dt"].to_pylist(), strict=True)]
        late = sum(json.loads(m.read_text()).get("delivery", {}).get("late", 0)
                   for m in (root / table).glob("*/_MANIFEST.json"))
        assert sum(x > 0 for x in lag) == late and all(0 <= x <= 3 for x in lag), table
        assert (late > 0) == (table in ("orders", "customer_changes")), table
    carts = dict(zip(tables["shopping_carts"]["cart_id"].to_pylist(), tables["shopping_carts"]["ingest_dt"].to_pylist(),
                     strict=True))
    items = tables["cart_items"]
    assert [carts[c] for c in items["cart_id"].to_pylist()] == items["ingest_dt"].to_pylist()


@pytest.mark.slow
def test_money_is_an_int64_backed_decimal_and_integers_are_delta_encoded(reference):
    """The storage forms the encoder's speed depends on, and that every Parquet reader understands."""
    root, _ = reference
    path = max((root / "orders").glob("*/part-00000.parquet"), key=lambda p: p.stat().st_size)
    pf = pq.ParquetFile(path)
    names = pf.schema.names
    chunk = pf.metadata.row_group(0)
    for name in ("gross_total", "net_total", "shipping_cost"):
        col = pf.schema.column(names.index(name))
        assert (col.physical_type, col.converted_type, col.precision, col.scale) == ("INT64", "DECIMAL", 12, 2)
        assert "DELTA_BINARY_PACKED" in chunk.column(names.index(name)).encodings
        assert pf.schema_arrow.field(name).type == pa.decimal128(12, 2)
    for name in ("total_items", "order_date", "ingest_dt"):
        assert "DELTA_BINARY_PACKED" in chunk.column(names.index(name)).encodings, name
    assert "DELTA_BYTE_ARRAY" in chunk.column(names.index("event_id")).encodings


@pytest.mark.slow
def test_golden_digest_changes_only_with_the_generator_version(reference):
    """The smoke lake's Parquet bytes are pinned per generator version (tests/golden/smoke.json), so a change that
    alters every run alike (and so passes every comparison between runs) still fails here. To change the output on
    purpose: bump bear.__version__, then `BEAR_UPDATE_GOLDEN=1 pytest tests/test_runner.py -k golden`."""
    root, _ = reference
    got = {"generator_version": __version__, "pyarrow": pa.__version__, "tables": lake_digest(root)}
    if os.environ.get("BEAR_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=2) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert want["generator_version"] == __version__, "new generator version: pin its output (see the docstring)"
    # pyarrow writes its version into every footer: a new pyarrow changes the bytes too, and is worth knowing
    assert got["tables"] == want["tables"], (f"the lake's bytes changed without a new generator version (pinned "
                                             f"with pyarrow {want['pyarrow']}, this is {pa.__version__})")


@pytest.mark.slow
def test_chunk_size_does_not_change_a_byte(reference, tmp_path):
    root, _ = reference
    other = tmp_path / "lake7"
    backfill(compose_cfg(f"sink.root={other}", "run.chunk_days=7"))
    assert lake_files(other) == lake_files(root)
    assert lake_manifests(other) == lake_manifests(root)


@pytest.mark.slow
def test_in_process_executor_writes_the_same_lake(reference, tmp_path):
    """ray=inprocess (what generate() and the tests that need no parallelism use) goes through the same jobs and
    the same ordered commit as Ray: the same bytes, manifests and checkpoint."""
    root, _ = reference
    other = tmp_path / "inprocess"
    cfg = compose_cfg(f"sink.root={other}", "ray=inprocess")
    before = copy.deepcopy(cfg)
    report = backfill(cfg)
    assert cfg == before, "a run changed its config object"
    assert report["worker_count"] == 1
    assert lake_files(other) == lake_files(root)
    assert lake_manifests(other) == lake_manifests(root)
    assert _checkpoint(other) == _checkpoint(root)


def _checkpoint(root: Path) -> dict:
    doc = json.loads((root / "_bear" / "checkpoint.json").read_text())
    doc.pop("updated_at")
    doc.pop("checksum")  # of the whole document, updated_at included
    return doc


@pytest.mark.slow
def test_worker_shard_and_batch_counts_do_not_change_a_byte(reference, tmp_path):
    """One worker walking all customers in one shard, and two workers walking three shards of them and writing
    each chunk a few days at a time, write the reference lake byte for byte."""
    root, _ = reference
    for cpus, shards in ((1, None), (2, 3)):
        lake = tmp_path / str(cpus)
        sharded = [f"ray.plan_shards={shards}", "ray.batch_rows=3000"] if shards else []
        res = run_bear("+preset=smoke", f"ray.num_cpus={cpus}", f"sink.root={lake}", *sharded, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert json.loads((lake / "_bear" / "report.json").read_text())["plan_shards"] == (shards or 1)
        assert lake_files(lake) == lake_files(root), cpus


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["between_markers_and_checkpoint", "after_files_before_commit",
                                    "while_chunks_run"])
def test_driver_killed_then_rerun_gives_the_same_lake(reference, tmp_path, moment):
    ref_root, _ = reference
    lake = tmp_path / "lake"
    args = ["+preset=smoke", f"sink.root={lake}", SHORT_LEASE]
    if moment == "between_markers_and_checkpoint":  # the driver's own moment: no Ray needed
        args.append("ray=inprocess")
        env = {"BEAR_TEST_KILL_PARTITION": "orders/ingest_dt=2020-01-25"}
        res = run_bear(*args, "hooks.post_export=[kill_hooks:kill_at_partition]", cwd=tmp_path, env=env)
        assert res.returncode == -signal.SIGKILL
        ck = json.loads((lake / "_bear" / "checkpoint.json").read_text())
        assert ck["committed_chunks"] == 2  # chunk 2's _SUCCESS markers are written, its checkpoint is not
        assert (lake / "orders" / "ingest_dt=2020-01-25" / "_SUCCESS").exists()
        # what a writer killed mid-file leaves: hidden temporaries, in an uncommitted partition and in the state
        (lake / "orders" / "ingest_dt=2020-02-05").mkdir(parents=True, exist_ok=True)
        (lake / "orders" / "ingest_dt=2020-02-05" / ".part-00000.parquet.tmp-999999").write_bytes(b"half")
        (lake / "_bear" / ".checkpoint.json.tmp-999999").write_bytes(b"{")
        (lake / "orders" / "ingest_dt=2020-02-05" / ".mine.tmp-1").write_text("a user's file: not bear's to delete")
    elif moment == "after_files_before_commit":
        wait = lake / "orders" / "ingest_dt=2020-02-15" / "part-00000.parquet"  # chunk 4, the 6th job
        env = {"BEAR_TEST_WAIT_FILE": str(wait)}
        # every job in flight from the start: the hook holds the driver inside the first commit, so nothing
        # more would be submitted and chunk 4 could otherwise never run
        res = run_bear(*args, "ray.max_in_flight=8", "hooks.post_export=[kill_hooks:kill_when_file_exists]",
                       cwd=tmp_path, env=env)
        assert res.returncode == -signal.SIGKILL
        assert wait.exists() and not (wait.parent / "_SUCCESS").exists()  # written by a worker, not committed
        assert not (lake / "_bear" / "checkpoint.json").exists()
    else:
        proc = subprocess.Popen([BEAR, *args], cwd=tmp_path, env={**os.environ, "PYTHONPATH": TESTS},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while not list(lake.glob("shopping_carts/*/part-*.parquet")) and time.time() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the run ended before it was killed"
        ck = lake / "_bear" / "checkpoint.json"
        assert not ck.exists() or json.loads(ck.read_text())["committed_chunks"] < 6, "killed after it finished"
    await_lease_expiry(lake)
    status = run_bear("status", *args, cwd=tmp_path)
    assert status.returncode == 0 and str(lake) in status.stdout
    res = run_bear(*args, "ray=inprocess", cwd=tmp_path)  # resuming is the driver's: no second Ray start needed
    assert res.returncode == 0, res.stderr
    mine = lake / "orders" / "ingest_dt=2020-02-05" / ".mine.tmp-1"
    if moment == "between_markers_and_checkpoint":
        assert mine.exists(), "the sweep deleted a file bear did not write"
        mine.unlink()
    assert_same_local_lake(lake, ref_root)


def _worker_pids(task: bytes) -> list[int]:
    """Ray workers running `task` now (a worker's command line is `ray::<task>` while it runs one)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"ray::" + task in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_the_driver_plans_from_counts_and_holds_only_handles_of_the_skeleton(ray_local):
    """On Ray the shards' pieces, the dated returns and the lookups stay in the object store: the driver gets
    counts (its plans) and handles, and the shards ran as tasks, not in the driver."""
    cfg = compose_cfg("ray.plan_shards=3")
    p = prepare(set_up(cfg), RayExecutor(cfg.ray))
    handles = [p.lookups, *(h for hs in p.pieces + p.dues for h in hs)]
    assert p.shards == 3 and all(len(hs) == 3 for hs in p.pieces)
    assert any(p.dues) and all(isinstance(h, ray_local.ObjectRef) for h in handles)
    assert sum(p.shard_nodes.values()) == 3 and p.plan["totals"] == prepare_plan(cfg).plan["totals"]


@pytest.mark.slow
def test_workers_killed_mid_plan_and_mid_chunk_are_retried_and_the_lake_is_identical(ray_local, tmp_path):
    """A worker walking a customer shard (a streaming task, replayed by Ray) and one generating a chunk are
    killed; the run retries both and writes the lake an undisturbed run writes."""
    overrides = ("generator.customers=30000", "run.chunk_days=20", "ray.plan_shards=2")
    expected = tmp_path / "expected"
    backfill(compose_cfg(f"sink.root={expected}", *overrides))
    killed: dict[bytes, int] = {}
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set() and len(killed) < 2:
            for task in (b"shard_job", b"chunk_job"):
                for pid in _worker_pids(task)[:1] if task not in killed else []:
                    os.kill(pid, signal.SIGKILL)
                    killed[task] = pid
            time.sleep(0.002)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    lake = tmp_path / "lake"
    try:
        backfill(compose_cfg(f"sink.root={lake}", *overrides))
    finally:
        stop.set()
        thread.join()
    assert set(killed) == {b"shard_job", b"chunk_job"}, f"caught running: {killed}"
    assert_same_local_lake(lake, expected)


BAD = [
    ("run.end=2019-01-01", "run.end"),
    ("run.start=2020-13-01", "run.start"),
    ("run.chunk_days=0", "run.chunk_days"),
    ("run.chunk_days=abc", "run.chunk_days"),
    ("generator.customer.guest_share=1.5", "generator.customer.guest_share"),
    ("generator.orders.channel_mix.web=0.9", "generator.orders.channel_mix"),
    ("mess=extreme", "mess"),
    ("sink=gcs", "sink.bucket"),
    ("nonsense=1", "nonsense"),
    ("generator.carts.lines.gold=[9,3]", "generator.carts.lines.gold"),
    ("ray.plan_shards=0", "ray.plan_shards"),
    ("ray.batch_rows=0", "ray.batch_rows"),
    ("generator.schema_changes=[{table: carts, columns: [utm_source], since: '2020-01-05'}]",
     "generator.schema_changes.0.table"),
    ("generator.schema_changes.0.since=2020-02-30", "generator.schema_changes.0.since"),
    ("generator.campaigns.0.volume=-2", "generator.campaigns.0.volume"),
    ("generator.drift.conversion=[[2021-01,-0.5]]", "generator.drift.conversion.0"),
    ("mess.redelivery_share=1.2", "mess.redelivery_share"),
]
CAMPAIGN = "generator.campaigns=[{{name: sale, start: '{}', end: '{}', {}}}]"


@pytest.mark.parametrize(("override", "line"), [
    (CAMPAIGN.format("2020-12-05", "2020-12-03", "volume: 2"),
     "generator.campaigns.0.end: must be on or after its start (2020-12-05) (got '2020-12-03')"),
    (CAMPAIGN.format("2020-02-30", "2020-12-03", "volume: 2"),
     "generator.campaigns.0.start: must be a date YYYY-MM-DD (got '2020-02-30')"),
    (CAMPAIGN.format("2020-12-01", "2020-12-03", "volume: 0"),
     "generator.campaigns.0.volume: must be a number >= 0.01 (got 0.0)"),
    (CAMPAIGN.format("2020-12-01", "2020-12-03", "category_boost: {garden: 2}"),
     "generator.campaigns.0.category_boost: keys must be among books, clothing, electronics, home, toys (got "
     "'garden')"),
    (CAMPAIGN.format("2020-12-01", "2020-12-03", "category_boost: {toys: -1}"),
     "generator.campaigns.0.category_boost.toys: must be a number >= 0.01 (got -1.0)"),
    (CAMPAIGN.format("2020-12-01", "2020-12-03", "discount_share: 1.5"),
     "generator.campaigns.0.discount_share: must be a probability in [0, 1] (got 1.5)"),
    (CAMPAIGN.format("2020-12-01", "2020-12-03", "discount_pct: [0.2, 1.4]"),
     "generator.campaigns.0.discount_pct: must lie within [0, 1] (got [0.2, 1.4])"),
    (CAMPAIGN.format("2020-12-01", "2020-12-03", "new_products: -5"),
     "generator.campaigns.0.new_products: must be a whole number >= 0 (got -5)"),
    ("generator.drift.return_rate=[[2021-13, 1]]", "generator.drift.return_rate.0: must start with a month YYYY-MM "
     "(got '2021-13')"),
    ("generator.drift.new_customers=[[2021-01, 0]]",
     "generator.drift.new_customers.0: must be a number >= 0.01 (got 0)"),
    ("mess.late_share=-0.1", "mess.late_share: must be a probability in [0, 1] (got -0.1)"),
    ("mess.late_days=[1, 9]", "mess.late_days: must lie within [1, 7] days (got [1, 9])"),
])
def test_bad_campaigns_drift_and_feed_name_the_key_and_what_is_allowed(override, line):
    with pytest.raises(ConfigError) as err:
        compose_cfg(override)
    assert str(err.value) == line

SCHEMA_CHANGE = "generator.schema_changes=[{{table: {}, columns: [{}], since: '{}'}}]"


@pytest.mark.parametrize(("change", "line"), [
    (("carts", "utm_source", "2020-01-05"), "generator.schema_changes.0.table: must be one of orders (got 'carts')"),
    (("orders", "utm_medium", "2020-01-05"),
     "generator.schema_changes.0.columns: must be among utm_source, referral_code (got 'utm_medium')"),
    (("orders", "", "2020-01-05"),
     "generator.schema_changes.0.columns: must list some of utm_source, referral_code (got [])"),
    (("orders", "utm_source, utm_source", "2020-01-05"),
     "generator.schema_changes.0.columns: must add each column of orders at most once (got 'utm_source')"),
    (("orders", "utm_source", "2020-7-1x"),
     "generator.schema_changes.0.since: must be a date YYYY-MM-DD (got '2020-7-1x')"),
])
def test_bad_schema_changes_name_the_key_and_what_is_allowed(change, line):
    with pytest.raises(ConfigError) as err:
        compose_cfg(SCHEMA_CHANGE.format(*change))
    assert str(err.value) == line


def test_a_schema_change_before_the_run_start_holds_from_its_first_day():
    """A since on or before run.start is valid (the default, 2024-07-01, precedes later starts): every partition of
    the run has the columns, at version 2."""
    cfg = compose_cfg("run.start=2025-01-01", "run.end=2025-01-31")
    changes = compile_changes(cfg.generator.schema_changes)
    assert shape_on(changes, "orders", day_number(cfg.run.start)) == TableShape(2, ("utm_source", "referral_code"))
    assert shape_on(changes, "orders", day_number("2024-06-30")).version == 1
    assert shape_on(changes, "order_items", day_number(cfg.run.start)).version == 1


@pytest.mark.parametrize(("override", "key"), BAD)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, override, key):
    res = run_bear("+preset=smoke", override, cwd=tmp_path, timeout=60)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_plan_and_status_on_fresh_and_half_finished_lakes(tmp_path):
    args = ["+preset=smoke", f"sink.root={tmp_path / 'lake'}", "ray=inprocess"]  # resume logic: no Ray needed
    plan = run_bear("plan", *args, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "2020-01-01..2020-01-10" in plan.stdout and "total" in plan.stdout and "nothing written" in plan.stdout
    assert list(tmp_path.iterdir()) == []
    status = run_bear("status", *args, cwd=tmp_path)
    assert "no bear run" in status.stdout
    assert "writer lease: none" in status.stdout
    env = {"BEAR_TEST_KILL_PARTITION": "returns/ingest_dt=2020-01-31"}
    run_bear(*args, "hooks.post_export=[kill_hooks:kill_at_partition]", "run.lease_s=30", cwd=tmp_path, env=env)
    status = run_bear("status", *args, cwd=tmp_path)
    assert "in progress" in status.stdout and "committed 3/6" in status.stdout, status.stdout
    assert "2020-01-30" in status.stdout
    assert re.search(r"writer lease: held by \S+:\d+ \(run \w+\) since \S+; expires \S+ \(in \d+ s\)", status.stdout)
    refused = run_bear(*args, cwd=tmp_path)  # the killed run's lease is live for 30 s: nobody else writes
    assert refused.returncode == 2 and "is being written by another run" in refused.stderr, refused.stderr
    lease = tmp_path / "lake" / "_bear" / "lease.json"  # as if the 30 s had passed
    lease.write_text(lease.read_text().replace('"expires_at": "20', '"expires_at": "19'))
    assert "(its run stopped; the next run takes it over)" in run_bear("status", *args, cwd=tmp_path).stdout
    res = run_bear(*args, cwd=tmp_path)
    assert res.returncode == 0 and "taking over the writer lease" in res.stderr, res.stderr
    status = run_bear("status", *args, cwd=tmp_path)
    assert "complete" in status.stdout and "committed 6/6" in status.stdout and "writer lease: none" in status.stdout


@pytest.mark.slow
def test_changed_config_refuses_then_restart_starts_over(reference, tmp_path, ray_local):
    lake = tmp_path / "lake"
    backfill(compose_cfg(f"sink.root={lake}", "run.end=2020-01-15"))
    with pytest.raises(RunError) as err:
        backfill(compose_cfg(f"sink.root={lake}", "run.end=2020-01-15", "run.seed=7"))
    assert "run.seed: 42 -> 7" in str(err.value) and err.value.exit_code == 2
    backfill(compose_cfg(f"sink.root={lake}", "run.end=2020-01-15", "run.seed=7", "run.restart=true"))
    manifest = json.loads(next(lake.rglob("_MANIFEST.json")).read_text())
    assert manifest["seed"] == 7


@pytest.mark.slow
def test_hook_sees_every_partition_exactly_once_across_resume(tmp_path):
    record = tmp_path / "calls.txt"
    args = ["+preset=smoke", f"sink.root={tmp_path / 'lake'}", "ray=inprocess"]  # resume logic: no Ray needed
    env = {"BEAR_TEST_KILL_PARTITION": "cart_items/ingest_dt=2020-02-05", "BEAR_TEST_RECORD": str(record)}
    res = run_bear(*args, "hooks.post_export=[kill_hooks:kill_at_partition,kill_hooks:record]", SHORT_LEASE,
                   cwd=tmp_path, env=env)
    assert res.returncode == -signal.SIGKILL
    await_lease_expiry(tmp_path / "lake")
    res = run_bear(*args, "hooks.post_export=[kill_hooks:record]", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    calls = [line.split()[0] for line in record.read_text().splitlines()]
    partitions = sorted(str(p.parent.relative_to(tmp_path / "lake")) for p in (tmp_path / "lake").rglob("_SUCCESS"))
    assert sorted(calls) == partitions  # every partition exactly once, across the crash


@pytest.mark.slow
def test_failing_hook_stops_before_the_checkpoint_moves(tmp_path):
    args = ["+preset=smoke", f"sink.root={tmp_path / 'lake'}", "ray=inprocess"]  # resume logic: no Ray needed
    res = run_bear(*args, "hooks.post_export=[kill_hooks:fail_on_february]", cwd=tmp_path)
    assert res.returncode == 1
    assert "kill_hooks:fail_on_february failed on" in res.stderr and "Traceback" not in res.stderr
    ck = json.loads((tmp_path / "lake" / "_bear" / "checkpoint.json").read_text())
    assert ck["last_committed_date"] == "2020-01-30"  # chunk 3 (01-31..02-09) holds the first February day
