"""The GCS sink against a real emulator (fake-gcs-server): same lake, retries, auth, kills, dry runs.

Every lake here is compared with one local smoke backfill: same objects, same Parquet bytes,
same manifests (their wall-clock created_at aside). Faults come from a loopback proxy
between gcsfs and the emulator (tests/gcs_support.py).
"""

from __future__ import annotations

import json
import os
import signal
import time

import pyarrow.dataset as ds
import pytest
from conftest import SHORT_LEASE, await_lease_expiry, compose_cfg, start_bear
from gcs_support import Emulator, FaultProxy, Faults

from bear.config.schema import SinkConfig
from bear.core.schemas import DAILY, TABLES
from bear.lake.errors import SinkAuthError, SinkError
from bear.lake.layout import CHECKPOINT, LEASE, MANIFEST, PLAN, STATE_DIR, SUCCESS, expected_partitions
from bear.lake.sink import Sink, Writes, open_sink
from bear.run.backfill import backfill
from bear.run.errors import RunError
from bear.run.prepare import prepare_plan
from bear.verify.audit import verify_lake
from bear.verify.checks import check_tables

pytestmark = pytest.mark.slow  # real Ray runs or the GCS emulator: the full lane

FAST_RETRIES = ("sink.backoff_base_s=0.01", "sink.backoff_max_s=0.1")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """fake-gcs-server on loopback; STORAGE_EMULATOR_HOST points at it for this module only."""
    em = Emulator(tmp_path_factory.mktemp("gcs"))
    before = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = em.url
    yield em
    em.stop()
    if before is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = before


@pytest.fixture(scope="module")
def proxy(emulator):
    px = FaultProxy(emulator.url)
    yield px
    px.stop()


def gcs_cfg(bucket: str, *overrides: str, endpoint: str | None = None):
    """`bear sink=gcs sink.bucket=...`; through `endpoint` (a proxy) when given, else STORAGE_EMULATOR_HOST."""
    via = [f"sink.endpoint={endpoint}", "sink.token=anon"] if endpoint else []
    return compose_cfg("sink=gcs", f"sink.bucket={bucket}", *via, *overrides)


def gcs_sink(emulator: Emulator, bucket: str) -> Sink:
    """Direct access to a lake in the emulator (default prefix), bypassing any proxy."""
    return open_sink(SinkConfig(kind="gcs", bucket=bucket, token="anon", endpoint=emulator.url))


def snapshot(sink: Sink) -> dict[str, object]:
    """Every lake object (run state aside): Parquet bytes, manifests without created_at, markers."""
    rels = [r for r in sink.find("") if not r.startswith(f"{STATE_DIR}/")]
    blobs = sink.fs.cat([sink.path(r) for r in rels]) if not sink.is_local else {
        sink.path(r): sink.read(r) for r in rels}
    out: dict[str, object] = {}
    for rel in rels:
        data = blobs[sink.path(rel)]
        if rel.endswith(MANIFEST):
            doc = json.loads(data)
            doc.pop("created_at")
            out[rel] = doc
        else:
            out[rel] = data
    return out


def assert_same_lake(sink: Sink, reference: dict[str, object]) -> dict[str, object]:
    """The lake at `sink` equals the reference, object for object; returns its snapshot."""
    got = snapshot(sink)
    assert sorted(got) == sorted(reference)
    differ = [r for r in got if got[r] != reference[r]]
    assert not differ, f"{len(differ)} of {len(got)} objects differ from the local lake, e.g. {differ[:3]}"
    return got


@pytest.fixture(scope="module")
def reference(ray_local, tmp_path_factory):
    """The same smoke run to the local sink: what every GCS lake must equal."""
    root = tmp_path_factory.mktemp("ref") / "lake"
    backfill(compose_cfg(f"sink.root={root}"))
    return snapshot(open_sink(SinkConfig(root=str(root))))


@pytest.fixture(scope="module")
def gcs_lake(ray_local, emulator):
    """`bear sink=gcs sink.bucket=lake` with STORAGE_EMULATOR_HOST set (anonymous access implied)."""
    emulator.create_bucket("lake")
    report = backfill(gcs_cfg("lake"))
    return gcs_sink(emulator, "lake"), report


def test_gcs_lake_equals_the_local_lake_object_for_object(reference, gcs_lake):
    sink, report = gcs_lake
    got = assert_same_lake(sink, reference)
    assert report["lake"] == "gs://lake/ecom/raw"
    # run state lives with the lake, so another machine can resume it
    state = sink.find(STATE_DIR)
    assert {PLAN, CHECKPOINT} <= set(state)
    ck = json.loads(sink.read(CHECKPOINT))
    assert ck["committed_chunks"] == ck["total_chunks"] and ck["dimensions_committed"]
    # every partition of the range is there and complete: manifest and _SUCCESS
    p = prepare_plan(gcs_cfg("lake"))
    parts = {r.rsplit("/", 1)[0] for r in got if r.endswith(SUCCESS)}
    assert {t: sum(d.startswith(f"{t}/") for d in parts) for t in TABLES} == {
        t: len(v) for t, v in expected_partitions(p.plan).items()}
    assert all(f"{d}/{MANIFEST}" in got for d in parts)


def test_invariants_hold_on_the_lake_read_back_from_gcs(gcs_lake):
    sink, report = gcs_lake
    tables = {t: ds.dataset(sink.path(t), filesystem=sink.fs, format="parquet").to_table()
              for t in TABLES}
    assert sum(t.num_rows for t in tables.values()) == report["total_rows"] > 0
    failures = check_tables(tables)
    assert not failures, "\n".join(map(str, failures))
    audit = verify_lake(sink, gcs_cfg("lake"))  # `bear verify`: manifests, checksums, markers, the range, mess
    assert audit.ok, audit.render()


def test_sink_alone_decides_retries_and_says_how_to_fix_auth(emulator, proxy):
    """One HTTP request per attempt (gcsfs's own retry loop is off), bounded by sink.max_attempts."""
    emulator.create_bucket("unit")
    cfg = SinkConfig(kind="gcs", bucket="unit", token="anon", endpoint=proxy.url, max_attempts=3,
                     backoff_base_s=0.01, backoff_max_s=0.02, timeout_s=0.5)
    sink = open_sink(cfg)

    for status in (408, 429, 500, 502, 503, 504):  # gcsfs raises HttpError(code) or, for 502, ProxyError
        proxy.set(Faults(error=1.0, status=status))
        with pytest.raises(SinkError, match="failed after 3 attempts"):
            sink.write("a.json", b"{}")
        assert proxy.counts.requests == 3, status

    proxy.set(Faults(error=1.0, status=401))
    with pytest.raises(SinkAuthError) as err:
        sink.write("a.json", b"{}")
    assert proxy.counts.requests == 1
    assert "HTTP 401 on upload a.json" in str(err.value) and "gcloud auth application-default login" in str(err.value)
    assert "\n" not in str(err.value)
    proxy.set(Faults(error=1.0, status=403))  # gcsfs raises a bare OSError("Forbidden: ...") for this one
    with pytest.raises(SinkAuthError, match="GCS denied access to gs://unit/ecom/raw .*roles/storage.objectAdmin"):
        sink.write("a.json", b"{}")
    assert proxy.counts.requests == 1
    proxy.set(Faults(error=1.0, status=400))
    with pytest.raises(SinkError, match="upload a.json on gs://unit/ecom/raw failed: "):
        sink.write("a.json", b"{}")
    assert proxy.counts.requests == 1

    # a corrupted upload is caught by the server's md5 and sent again; so is a lost answer or a silent server
    direct = gcs_sink(emulator, "unit")
    for kind in ("corrupt_upload", "drop_after", "stall"):
        proxy.set(Faults(**{kind: 1.0}))
        with pytest.raises(SinkError, match="failed after 3 attempts"):
            sink.write("x/part-00000.parquet", b"PAR1-payload-PAR1")
        assert proxy.counts.injected == {kind: 3}
        proxy.set(Faults(**{kind: 1.0}, until=3))  # two failures, then through
        sink.write("x/part-00000.parquet", b"PAR1-payload-PAR1")
        assert proxy.counts.injected == {kind: 2}
        assert direct.read("x/part-00000.parquet") == b"PAR1-payload-PAR1"

    proxy.set(Faults())
    missing = open_sink(SinkConfig(kind="gcs", bucket="no-such-bucket", token="anon", endpoint=proxy.url))
    for attempt in (missing.check_writable, lambda: missing.write("a.json", b"{}")):
        with pytest.raises(SinkError, match=r"bucket gs://no-such-bucket does not exist; create it"):
            attempt()
    keyless = open_sink(SinkConfig(kind="gcs", bucket="unit", token="/secret/key-file.json", endpoint=proxy.url))
    with pytest.raises(SinkAuthError, match="no service-account key file exists") as err:
        keyless.check_writable()  # credentials are loaded on first use, so `bear plan` needs none
    assert "/secret" not in str(err.value)


def test_writes_overlap_uploads_up_to_sink_concurrency_and_stop_at_the_first_failure(emulator, proxy):
    emulator.create_bucket("fanout")
    sink = open_sink(SinkConfig(kind="gcs", bucket="fanout", token="anon", endpoint=proxy.url, concurrency=6,
                                max_attempts=1))
    proxy.set(Faults(latency_s=0.1))
    with Writes(sink) as writes:
        for i in range(30):
            writes.write(f"many/{i:02d}.json", str(i).encode())
    assert proxy.counts.peak_active == 6  # uploads overlap, never more than sink.concurrency at once
    direct = gcs_sink(emulator, "fanout")
    assert {r: direct.read(r) for r in direct.find("many")} == {f"many/{i:02d}.json": str(i).encode()
                                                                  for i in range(30)}

    proxy.set(Faults(error=1.0, status=403, latency_s=0.05))
    with pytest.raises(SinkAuthError, match="GCS denied access to gs://fanout"), Writes(sink) as writes:
        for i in range(100):
            writes.write(f"denied/{i:03d}.json", b"{}")
    assert proxy.counts.requests <= 12  # the first failure stops the rest: at most one more round goes out
    assert direct.find("denied") == []


def test_run_through_transient_faults_completes_with_an_identical_lake(reference, emulator, proxy, ray_local):
    emulator.create_bucket("flaky")
    proxy.set(Faults(error=0.06, drop_before=0.03, drop_after=0.03, corrupt_upload=0.05, stall=0.002))
    backfill(gcs_cfg("flaky", "sink.max_attempts=10", "sink.timeout_s=1", *FAST_RETRIES, endpoint=proxy.url))
    assert set(proxy.counts.injected) == {"error", "drop_before", "drop_after", "corrupt_upload", "stall"}, \
        proxy.counts.injected
    assert_same_lake(gcs_sink(emulator, "flaky"), reference)


def test_auth_failure_stops_keeps_the_checkpoint_and_a_rerun_resumes(reference, emulator, proxy, ray_local,
                                                                      tmp_path):
    emulator.create_bucket("auth")
    direct = gcs_sink(emulator, "auth")
    # credentials expire mid-run: one chunk at a time, every answer is 401 after the 250th data file (the
    # dimensions make 184 files, each chunk ~50), so while a worker uploads the second chunk
    proxy.set(Faults(error=1.0, status=401, after_uploads=250))
    with pytest.raises((RunError, SinkAuthError), match="GCS rejected the credentials") as err:
        backfill(gcs_cfg("auth", "ray.max_in_flight=1", SHORT_LEASE, *FAST_RETRIES, endpoint=proxy.url))
    assert "\n" not in str(err.value)
    checkpoint = direct.read(CHECKPOINT)
    ck = json.loads(checkpoint)
    assert 0 < ck["committed_chunks"] < ck["total_chunks"]

    # the CLI: every request refused -> exit code 1, one line saying how to fix it, checkpoint untouched
    proxy.set(Faults(error=1.0, status=401))
    proc = start_bear("+preset=smoke", "sink=gcs", "sink.bucket=auth", cwd=tmp_path,
                    env={"STORAGE_EMULATOR_HOST": proxy.url})
    out, errs = proc.communicate(timeout=120)
    lines = [line for line in errs.splitlines() if line.startswith("bear: ")]
    assert proc.returncode == 1, errs
    assert len(lines) == 1 and "GCS rejected the credentials for gs://auth/ecom/raw (HTTP 401" in lines[0], errs
    assert "GOOGLE_APPLICATION_CREDENTIALS" in lines[0] and "Traceback" not in errs
    assert direct.read(CHECKPOINT) == checkpoint

    # a dry run of the half-done lake lists exactly what the resume still has to write
    cfg = gcs_cfg("auth", "sink.dry_run=true")
    listing = backfill(cfg)
    first_day = prepare_plan(cfg).plans[ck["committed_chunks"]].chunk.name.split("..")[0]
    assert {o["path"] for o in listing["objects"]} == {
        r for r in reference if r.split("/")[0] in (*DAILY, "customers")
        and r.split("/")[1].split("=")[1] >= first_day}

    proxy.set(Faults())
    await_lease_expiry(direct)  # the stopped run could not release it: GCS refused that too
    backfill(gcs_cfg("auth"))
    assert_same_lake(direct, reference)


def test_killed_mid_upload_leaves_no_false_success_and_rerun_completes(reference, emulator, proxy, ray_local,
                                                                        tmp_path):
    emulator.create_bucket("killed")
    direct = gcs_sink(emulator, "killed")
    # one chunk at a time; data uploads after the 300th hang in the proxy (the dimensions and the first two
    # chunks make ~280 files), so the run is killed while a worker is uploading the third chunk
    proxy.set(Faults(hold_upload=1.0, after_uploads=300))
    proc = start_bear("+preset=smoke", "sink=gcs", "sink.bucket=killed", "ray.max_in_flight=1", SHORT_LEASE,
                      cwd=tmp_path, env={"STORAGE_EMULATOR_HOST": proxy.url})
    deadline = time.monotonic() + 120
    while not proxy.counts.held and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let the driver finish any commit it had started
    os.killpg(proc.pid, signal.SIGKILL)
    out, errs = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, errs
    time.sleep(2)  # Ray workers (own process groups) exit within ~1 s of their raylet's death
    proxy.release()  # the held uploads now land, after their writer died
    while proxy.counts.active:
        time.sleep(0.05)

    objects = set(direct.find(""))
    done = [r.rsplit("/", 1)[0] for r in objects if r.endswith(SUCCESS)]
    assert done, "the run committed something before it was killed"
    for part in done:
        manifest = json.loads(direct.read(f"{part}/{MANIFEST}"))
        for f in manifest["files"]:
            assert direct.fs.info(direct.path(f"{part}/{f['path']}"))["md5Hash"]
            assert reference[f"{part}/{f['path']}"] == direct.read(f"{part}/{f['path']}")
    orphans = [r for r in objects if r.endswith(".parquet") and r.rsplit("/", 1)[0] not in set(done)]
    assert orphans, "data of uncommitted chunks was on GCS when the run died"

    proxy.set(Faults())
    await_lease_expiry(direct)
    backfill(gcs_cfg("killed"))
    assert_same_lake(direct, reference)


def test_a_missing_bucket_is_one_line_and_exit_2_before_ray(emulator, tmp_path):
    ray_dir = tmp_path / "ray"
    ray_dir.mkdir()
    for bucket in ("no-such-bucket", "gs://no-such-bucket/raw/shop"):
        proc = start_bear("+preset=smoke", "sink=gcs", f"sink.bucket={bucket}", cwd=tmp_path,
                        env={"STORAGE_EMULATOR_HOST": emulator.url, "RAY_TMPDIR": str(ray_dir)})
        _, errs = proc.communicate(timeout=120)
        assert proc.returncode == 2, errs
        assert errs.strip().splitlines() == [
            "bear: sink.bucket: GCS bucket gs://no-such-bucket does not exist; create it "
            "(`gcloud storage buckets create gs://no-such-bucket`) or set sink.bucket to an existing bucket"]
        assert not any(ray_dir.iterdir()), "Ray started before the bucket was checked"


def test_dry_run_writes_nothing_and_lists_what_a_run_writes(reference, emulator, proxy, tmp_path):
    local = tmp_path / "never"
    listing = backfill(compose_cfg(f"sink.root={local}", "sink.dry_run=true"))
    assert not local.exists()
    rows = {o["path"]: o["rows"] for o in listing["objects"]}
    assert sorted(rows) == sorted(reference)
    for rel, doc in reference.items():
        if rel.endswith(MANIFEST):
            for f in doc["files"]:
                assert rows[f"{rel.rsplit('/', 1)[0]}/{f['path']}"] == f["rows"]
    assert sum(t["rows"] for t in listing["tables"].values()) == sum(
        d["total_rows"] for r, d in reference.items() if r.endswith(MANIFEST))

    # the CLI against GCS (through the proxy, which sees every request): reads only, and the same listing
    emulator.create_bucket("dry")
    proxy.set(Faults())
    proc = start_bear("+preset=smoke", "sink=gcs", "sink.bucket=dry", "sink.dry_run=true", cwd=tmp_path,
                    env={"STORAGE_EMULATOR_HOST": proxy.url})
    out, errs = proc.communicate(timeout=120)
    assert proc.returncode == 0, errs
    listed = [line.split()[0].removeprefix("gs://dry/ecom/raw/") for line in out.splitlines()
              if line.startswith("gs://dry/ecom/raw/")]
    assert sorted(listed) == sorted(reference)
    assert "nothing is written" in out.splitlines()[0]
    methods = {method for method, path in proxy.counts.seen if "/b/dry/" in path}
    assert methods == {"GET"}, proxy.counts.seen
    assert gcs_sink(emulator, "dry").find("") == []


def test_one_writer_per_gcs_lake_and_a_killed_holder_is_taken_over_after_expiry(reference, emulator, tmp_path):
    """The lease on GCS: created with ifGenerationMatch=0, renewed and taken over with generation preconditions."""
    emulator.create_bucket("leased")
    direct = gcs_sink(emulator, "leased")
    env = {"STORAGE_EMULATOR_HOST": emulator.url}
    args = ("+preset=smoke", "ray=inprocess", "sink=gcs", "sink.bucket=leased")
    holder = start_bear(*args, cwd=tmp_path, env=env)
    deadline = time.monotonic() + 60
    while not direct.exists(LEASE) and holder.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(holder.pid, signal.SIGSTOP)  # mid-run, its lease live
    try:
        for extra in ((), ("run.restart=true", "run.seed=7")):
            second = start_bear(*args, *extra, cwd=tmp_path, env=env)
            _, errs = second.communicate(timeout=120)
            lines = [line for line in errs.splitlines() if line.startswith("bear:")]
            assert second.returncode == 2 and len(lines) == 1, errs
            assert "gs://leased/ecom/raw is being written by another run: lease held by " in lines[0]
            assert f":{holder.pid} (run " in lines[0]
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
    holder.communicate(timeout=30)
    lease = json.loads(direct.read(LEASE))  # as if its 180 s had passed since the killed holder's last heartbeat
    direct.write(LEASE, json.dumps({**lease, "expires_at": "2026-01-01T00:00:00.000+00:00"}).encode())
    taker = start_bear(*args, cwd=tmp_path, env=env)
    _, errs = taker.communicate(timeout=120)
    assert taker.returncode == 0 and "taking over the writer lease of gs://leased/ecom/raw" in errs, errs
    assert not direct.exists(LEASE), "released at the end"
    assert_same_lake(direct, reference)


def test_commit_state_and_lease_writes_ride_out_503_storms_and_dropped_connections(reference, emulator, proxy,
                                                                                ray_local):
    emulator.create_bucket("storm")
    # only the run's own bookkeeping misbehaves: markers, checkpoint, plan, summaries, report and the lease,
    # renewed every half second here; a dropped answer to a conditional write must not look like a lost race.
    # Seed 102 gives the checkpoint's first two writes a 503 and the lease's first write a dropped answer
    # (each object draws from its own stream, so this holds whatever the threads' timing)
    proxy.set(Faults(error=0.2, drop_before=0.05, drop_after=0.1, only=f"{SUCCESS}|/{STATE_DIR}/", seed=102))
    backfill(gcs_cfg("storm", "sink.max_attempts=15", "run.lease_s=3", *FAST_RETRIES, endpoint=proxy.url))
    hit = proxy.counts.faulted
    assert {kind for kind, _ in hit} == {"error", "drop_before", "drop_after"}
    for name in (SUCCESS, CHECKPOINT, LEASE):
        assert {kind for kind, target in hit if target.endswith(name) or f"{name}?" in target} >= {"error"}, name
    assert any(kind == "drop_after" and LEASE in target for kind, target in hit), "a lease write landed unanswered"
    direct = gcs_sink(emulator, "storm")
    assert_same_lake(direct, reference)
    ck = json.loads(direct.read(CHECKPOINT))
    assert ck["committed_chunks"] == ck["total_chunks"] and not direct.exists(LEASE)


def test_a_401_in_the_middle_of_a_commit_stops_with_the_auth_message_and_a_rerun_resumes(reference, emulator, proxy,
                                                                                         ray_local):
    emulator.create_bucket("commit401")
    direct = gcs_sink(emulator, "commit401")
    # credentials revoked between a chunk's files and its markers: every _SUCCESS after the 250th data upload
    proxy.set(Faults(error=1.0, status=401, only=SUCCESS, after_uploads=250))
    with pytest.raises(SinkAuthError, match="GCS rejected the credentials") as err:
        backfill(gcs_cfg("commit401", "ray.max_in_flight=1", *FAST_RETRIES, endpoint=proxy.url))
    assert "\n" not in str(err.value) and "_SUCCESS" in str(err.value)
    ck = json.loads(direct.read(CHECKPOINT))
    assert ck["dimensions_committed"] and 0 < ck["committed_chunks"] < ck["total_chunks"]
    assert not direct.exists(LEASE), "the stopped run released its lease"
    proxy.set(Faults())
    backfill(gcs_cfg("commit401"))
    assert_same_lake(direct, reference)
