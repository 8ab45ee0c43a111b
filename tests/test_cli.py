"""The `bear` command as a user meets it (issue 13): it deletes only what it wrote, every failure a user can cause
is one line with the right exit code (before Ray starts where it can be), Ctrl-C and closed pipes are clean, and
it explains itself."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    BEAR,
    SHORT_LEASE,
    TESTS,
    await_lease_expiry,
    compose_cfg,
    processes_mentioning,
    run_bear,
    short_tmpdir,
)

from bear.config.load import conf_dir, load_config
from bear.lake.sink import open_sink

QUICK = ("+preset=smoke", "run.end=2020-01-10")  # one chunk


def one_line(res: subprocess.CompletedProcess, code: int) -> str:
    """The single `bear:` line of a failed command (and nothing else on stderr), with its exit code."""
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bear: "), res.stderr
    return lines[0]


def run_without_ray(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`bear args`, asserting it never started Ray (Ray puts its session under RAY_TMPDIR when it starts)."""
    ray_dir = cwd.parent / f"{cwd.name}-ray"
    ray_dir.mkdir(exist_ok=True)
    res = run_bear(*args, cwd=cwd, env={"RAY_TMPDIR": str(ray_dir), **(env or {})})
    assert not any(ray_dir.iterdir()), f"Ray was started: {res.stderr}"
    return res


def test_restart_never_deletes_a_directory_bear_did_not_write(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    for extra in ([], ["run.restart=true"]):
        res = run_bear(*QUICK, f"sink.root={home}", *extra, cwd=tmp_path)
        line = one_line(res, 2)
        assert str(home) in line and "not a bear lake" in line
        assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]
        assert (home / "thesis.tex").read_text() == "years of work"


@pytest.mark.slow
def test_restart_deletes_only_bear_files_of_its_own_lake(tmp_path):
    lake = tmp_path / "lake"
    assert run_bear(*QUICK, f"sink.root={lake}", "ray=inprocess", cwd=tmp_path).returncode == 0
    part = next((lake / "orders").iterdir())
    (part / "notes.md").write_text("mine")
    (lake / "README.txt").write_text("mine too")
    old_day = lake / "orders" / "ingest_dt=2020-01-10"
    assert old_day.is_dir()
    res = run_bear(*QUICK, f"sink.root={lake}", "run.seed=7", "run.end=2020-01-05", "run.restart=true",
                   "ray=inprocess", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (part / "notes.md").read_text() == "mine" and (lake / "README.txt").read_text() == "mine too"
    assert not old_day.exists(), "an old partition folder bear emptied is gone"
    seeds = {json.loads(m.read_text())["seed"] for m in lake.rglob("_MANIFEST.json")}
    assert seeds == {7}


@pytest.mark.parametrize("case", ["file", "unwritable", "hook", "key_file"])
def test_unusable_settings_are_one_line_exit_2_before_ray_and_write_nothing(tmp_path, case):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    args, words = {
        "file": ((f"sink.root={blocker}",), ("sink.root", str(blocker))),
        "unwritable": (("sink.root=/proc/bear/lake",), ("sink.root", "/proc/bear/lake")),
        "hook": (("hooks.post_export=[no_such_module:hook]",), ("hooks.post_export", "no_such_module")),
        "key_file": (("sink=gcs", "sink.bucket=b", f"sink.token={tmp_path}/missing.json"),
                     ("sink.token", "key file")),
    }[case]
    res = run_without_ray(*QUICK, *args, cwd=tmp_path, env={"STORAGE_EMULATOR_HOST": ""})
    line = one_line(res, 2)
    assert all(w in line for w in words), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_sink_bucket_takes_a_name_a_url_or_a_url_with_prefix():
    for bucket, display in (("b", "gs://b/ecom/raw"), ("gs://b", "gs://b/ecom/raw"),
                            ("gs://b/raw/shop/", "gs://b/raw/shop")):
        cfg = compose_cfg("sink=gcs", f"sink.bucket={bucket}")
        sink = open_sink(cfg.sink)
        assert sink.display == display and sink.root.split("/")[0] == "b", bucket


@pytest.mark.slow
def test_ctrl_c_is_one_line_exit_130_and_ray_stops(tmp_path):
    def default_sigint():  # a background job from a non-interactive shell ignores SIGINT; a terminal would not
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    lake = tmp_path / "lake"
    ray_dir = short_tmpdir("cc")  # names this run's Ray processes (another test's Ray may run meanwhile)
    proc = subprocess.Popen([BEAR, "run.end=2022-12-31", f"sink.root={lake}", "logging.progress=log"], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": TESTS, "RAY_TMPDIR": str(ray_dir)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not (lake / "_bear" / "plan.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("bear:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    ck = json.loads((lake / "_bear" / "checkpoint.json").read_text()) if (lake / "_bear/checkpoint.json").exists() \
        else {"committed_chunks": 0}
    assert lines[0] == (f"bear: interrupted: {ck['committed_chunks']} of 37 chunks committed; rerun the same command "
                        f"to resume")
    assert list((ray_dir / "ray").glob("session_2*")), "the run never started its Ray"
    deadline = time.monotonic() + 5
    while (left := processes_mentioning(str(ray_dir))) and time.monotonic() < deadline:
        time.sleep(0.2)
    shutil.rmtree(ray_dir, ignore_errors=True)
    assert not left, f"Ray processes outlived the run: {left}"


def test_a_closed_pipe_is_quiet(tmp_path):
    proc = subprocess.Popen([BEAR, "plan", "+preset=smoke"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # `bear plan | head -0`: the reader is gone before bear writes
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 128 + signal.SIGPIPE and "Traceback" not in err and "Error" not in err, err


def test_help_lists_commands_groups_and_main_settings(tmp_path):
    for args in (["--help"], ["help"], ["-h"]):
        res = run_bear(*args, cwd=tmp_path)
        assert res.returncode == 0
        text = res.stdout
        assert len(text.splitlines()) < 40
        for word in ("run", "plan", "status", "verify", "mess", "sink", "ray", "+preset", "smoke",
                     "medium_mess (default)", "run.chunk_days", "30", "sink.root", "./lake"):
            assert word in text, word
    for command in ("plan", "status", "verify", "run"):
        res = run_bear(command, "--help", cwd=tmp_path)
        assert res.returncode == 0 and res.stdout.startswith(f"bear {command} ") and "Hydra" not in res.stdout
    assert run_bear("help", "verify", cwd=tmp_path).stdout.startswith("bear verify ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "expected"), [
    (("run.sed=7",), "run.sed: no such setting; did you mean run.seed"),
    (("run.chunk_days=abc",), "run.chunk_days: expected an integer (got 'abc')"),
    (("generator.scale=x",), "generator.scale: expected a number (got 'x')"),
    (("run.restart=maybe",), "run.restart: expected true or false (got 'maybe')"),
    (("output.compression=lzo",), "output.compression: expected one of zstd, snappy, gzip, lz4, brotli, none"),
    (("ray.kind=spark",), "ray.kind: expected one of local, cluster, inprocess (got 'spark')"),
    (("stauts",), "unknown command 'stauts'; did you mean 'status'?"),
    (("+preset=smoke", "status"), "the command goes first: bear status +preset=smoke"),
])
def test_mistakes_say_what_is_allowed(tmp_path, args, expected):
    line = one_line(run_bear(*args, cwd=tmp_path), 2)
    assert expected in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_status_plan_verify_refuse_another_config_at_once_and_speak_json(tmp_path):
    lake = tmp_path / "lake"
    assert run_bear(*QUICK, f"sink.root={lake}", "ray=inprocess", cwd=tmp_path).returncode == 0
    for command in ("status", "plan", "verify"):
        t0 = time.monotonic()
        line = one_line(run_bear(command, *QUICK, f"sink.root={lake}", "run.seed=7", cwd=tmp_path), 2)
        assert "changed: run.seed: 42 -> 7" in line and time.monotonic() - t0 < 5, (command, line)
    status = json.loads(run_bear("status", *QUICK, f"sink.root={lake}", "--json", cwd=tmp_path).stdout)
    assert status["state"] == "complete" and status["checkpoint"]["committed_chunks"] == 1
    plan = json.loads(run_bear("plan", *QUICK, f"sink.root={lake}", "--json", cwd=tmp_path).stdout)
    assert len(plan["chunks"]) == 1 and plan["plan_fingerprint"] == status["plan"]["plan_fingerprint"]


@pytest.mark.slow
def test_a_complete_lake_is_left_alone_and_a_resumed_report_counts_its_own_rows(tmp_path):
    lake = tmp_path / "lake"
    args = ("+preset=smoke", f"sink.root={lake}")
    crashed = run_bear(*args, "ray=inprocess", "hooks.post_export=[kill_hooks:kill_at_partition]", SHORT_LEASE,
                       cwd=tmp_path, env={"BEAR_TEST_KILL_PARTITION": "orders/ingest_dt=2020-02-01"})
    assert crashed.returncode == -signal.SIGKILL
    await_lease_expiry(lake)
    assert run_bear(*args, "ray=inprocess", cwd=tmp_path).returncode == 0
    report = json.loads((lake / "_bear" / "report.json").read_text())
    assert 0 < report["rows_written_by_this_run"] < report["total_rows"]
    assert report["rows_per_second"] == round(report["rows_written_by_this_run"] / report["wall_seconds"])
    before = (lake / "_bear" / "report.json").read_bytes()
    res = run_without_ray(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines() == [f"lake {lake} is complete through 2020-02-29: nothing to do (bear "
                                               f"status shows it; bear verify audits it)"]
    assert (lake / "_bear" / "report.json").read_bytes() == before


@pytest.mark.slow
def test_smoke_has_its_own_lake_and_a_hook_beside_the_command_is_importable(tmp_path):
    assert compose_cfg().sink.root == str(Path("lake-smoke").resolve())
    assert compose_cfg(smoke=False).sink.root == str(Path("lake").resolve())
    (tmp_path / "myhooks.py").write_text(
        "def seen(context):\n    open('seen.txt', 'a').write(context['partition'] + '\\n')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([BEAR, *QUICK, "hooks.post_export=[myhooks:seen]"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "lake-smoke" / "_bear" / "plan.json").exists() and not (tmp_path / "lake").exists()
    assert "ingest_dt=2020-01-10" in (tmp_path / "seen.txt").read_text()
    assert Path(tmp_path / "lake-smoke").is_dir()


def _override(key: str, value) -> str:
    """`key=value` in Hydra's override grammar, for a default value."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif value is None:
        text = "null"
    elif isinstance(value, list):
        text = "[" + ",".join(_override("", v)[1:] for v in value) + "]"
    elif dataclasses.is_dataclass(value):  # an entry of a list of records (campaigns, schema changes)
        text = "{" + ",".join(f"{f.name}:{_override('', getattr(value, f.name))[1:]}"
                              for f in dataclasses.fields(value)) + "}"
    elif isinstance(value, dict):
        text = "{" + ",".join(f"{k}:{_override('', v)[1:]}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    return f"{key}={text}"


def test_every_setting_can_be_overridden_on_the_command_line():
    """Every leaf key is an identifier Hydra can name (the labels in the data are mapped from them); the dated
    cohort_shocks keys are the exception: `++key={...}` merges months into that map (new ones too), and a factor
    of 1 is no shock."""
    from bear.cli.usage import leaf_keys
    from bear.config.validate import validate

    cfg = compose_cfg(smoke=False)
    named = [k for k in leaf_keys() if not k.startswith("generator.visits.cohort_shocks.")]
    assert len(named) > 200 and all(" " not in k and "/" not in k for k in named)
    overrides = []
    for key in named:
        value = cfg
        for part in key.split("."):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        overrides.append(_override(key, value))
    got = compose_cfg(*overrides, smoke=False)  # one composition: a key Hydra cannot name fails it, by name
    validate(got)
    assert got == cfg
    shocks = compose_cfg("++generator.visits.cohort_shocks={2024-03: 0.7, 2024-05: 1, 2025-01: 0.6}", smoke=False)
    validate(shocks)
    assert shocks.generator.visits.cohort_shocks == {"2024-03": 0.7, "2024-05": 1, "2025-01": 0.6}


@pytest.mark.parametrize("option", sorted(f"{p.parent.name}={p.stem}" for p in Path(conf_dir()).glob("*/*.yaml")))
def test_every_conf_option_composes_and_validates(option):
    """Each option of each config group (conf/<group>/<option>.yaml) loads through bear's loader: composed, typed,
    validated (sink=gcs needs its bucket)."""
    group, name = option.split("=")
    extra = ["sink.bucket=b"] if option == "sink=gcs" else []
    cfg = load_config([f"+{option}" if group == "preset" else option, *extra])
    chosen = {"sink": cfg.sink.kind, "ray": cfg.ray.kind, "mess": cfg.mess.level,
              "preset": "smoke" if cfg.sink.root.endswith("lake-smoke") else None}
    assert chosen[group] == name
