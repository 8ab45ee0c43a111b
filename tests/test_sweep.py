"""Issue 6: a Hydra sweep writes one complete lake per job, one job after another, each with its own Ray."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import processes_mentioning, read_table, run_bear, short_tmpdir

from bear.core.schemas import DELIVERED

pytestmark = pytest.mark.slow  # real Ray runs or the GCS emulator: the full lane

MESS = ("light_mess", "heavy_mess")
SEEDS = (1, 2)
FIXED = ("+preset=smoke", "run.end=2020-01-20")  # a shorter range keeps four runs quick
# A fixed sweep folder lets a second sweep (`bear verify --multirun` with the same overrides) find the lakes.
SWEEP = (f"mess={','.join(MESS)}", f"run.seed={','.join(map(str, SEEDS))}", *FIXED, "hydra.sweep.dir=sweep")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """`bear --multirun mess=light_mess,heavy_mess run.seed=1,2` with Ray's files in a private temp dir."""
    cwd = tmp_path_factory.mktemp("sweep")
    ray_tmp = short_tmpdir("sw")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": str(ray_tmp)}
    try:
        result = run_bear("--multirun", *SWEEP, cwd=cwd, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        # Hydra numbers the jobs in sweep order and names each folder after its overrides.
        jobs = {(mess, seed): cwd / "sweep" / f"{i}_{','.join(sorted([*FIXED, f'mess={mess}', f'run.seed={seed}']))}"
                for i, (mess, seed) in enumerate(itertools.product(MESS, SEEDS))}
        assert sorted((cwd / "sweep").iterdir()) == sorted([*jobs.values(), cwd / "sweep" / "multirun.yaml"])
        yield cwd, jobs, ray_tmp
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _manifests(lake: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(lake.rglob("_MANIFEST.json"))]


def test_each_job_folder_holds_a_complete_lake_that_verifies(sweep):
    cwd, jobs, _ = sweep
    for folder in jobs.values():
        checkpoint = json.loads((folder / "lake-smoke" / "_bear" / "checkpoint.json").read_text())
        assert checkpoint["dimensions_committed"] and checkpoint["committed_chunks"] == checkpoint["total_chunks"]
    # The same sweep with `verify` audits each job's lake in its own folder.
    result = run_bear("verify", "--multirun", *SWEEP, cwd=cwd)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    audited = re.findall(r"^bear verify (\S+):", result.stdout, re.M)
    assert sorted(audited) == sorted(str(folder / "lake-smoke") for folder in jobs.values())
    assert len(re.findall(r"^OK: all \d+ checks passed$", result.stdout, re.M)) == 4, result.stdout[-6000:]


def test_lakes_differ_exactly_where_their_overrides_differ(sweep):
    _, jobs, _ = sweep
    manifests = {key: _manifests(folder / "lake-smoke") for key, folder in jobs.items()}
    for (mess, seed), docs in manifests.items():
        assert {(d["mess_level"], d["seed"]) for d in docs} == {(mess, seed)}

    def rows(key):
        return {(d["table"], d["partition"]): d["total_rows"] for d in manifests[key]}

    def mess_share(key, kind):
        touched = sum(n for d in manifests[key] for kinds in d["mess_counts"].values() for k, n in kinds.items()
                      if k == kind)
        return touched / sum(d["total_rows"] for d in manifests[key])

    def plain(key):  # the partitions of the tables the order feed does not touch
        return {k: n for k, n in rows(key).items() if k[0] not in DELIVERED}

    def first_deliveries(key, table):  # the feed's rows, less its re-delivered copies
        return sum(d["total_rows"] - d["delivery"]["redelivered"] for d in manifests[key] if d["table"] == table)

    for seed in SEEDS:
        # Same seed: the same rows (mess never adds or drops one; heavy's feed delivers some orders late or twice,
        # and the ones still on their way at the end are not there yet); heavier mess touches more values.
        assert plain(("light_mess", seed)) == plain(("heavy_mess", seed))
        plan = json.loads((jobs["heavy_mess", seed] / "lake-smoke" / "_bear" / "plan.json").read_text())
        for table in DELIVERED:
            in_flight = sum(c["in_flight"][table] for c in plan["feed"].values())
            assert first_deliveries(("light_mess", seed), table) - in_flight == first_deliveries(("heavy_mess", seed),
                                                                                                 table)
        for kind in ("null", "whitespace", "casing"):
            assert mess_share(("heavy_mess", seed), kind) > 2 * mess_share(("light_mess", seed), kind) > 0
        # Only heavy (like medium) adds the advanced injections.
        assert mess_share(("light_mess", seed), "redrawn") == 0 < mess_share(("heavy_mess", seed), "redrawn")
    for mess in MESS:
        # Another seed is another history.
        assert rows((mess, 1)) != rows((mess, 2))
        orders = [read_table(jobs[mess, seed] / "lake-smoke", "orders").sort_by("order_id") for seed in SEEDS]
        assert not orders[0].column("gross_total").equals(orders[1].column("gross_total"))


def test_every_job_started_its_own_ray_and_none_outlives_the_sweep(sweep):
    _, jobs, ray_tmp = sweep
    nodes = [json.loads((f / "lake-smoke" / "_bear" / "report.json").read_text())["jobs_per_node"]
             for f in jobs.values()]
    assert all(len(n) == 1 for n in nodes)
    assert len({node for n in nodes for node in n}) == 4, "a job reused the previous job's Ray"
    assert len(list((ray_tmp / "ray").glob("session_2*"))) == 4
    running = processes_mentioning(str(ray_tmp))
    assert not running, f"Ray processes of the sweep still running: {running}"
