"""Benchmark a backfill end to end: `python scripts/benchmark.py [--repeat N] [--dir D] [--keep] [--out F]
[--versus "k=v ..."] [--peer-scale S | --no-peer] [k=v ...]`.

Runs the backfill bear would run for the given Hydra overrides (default: the full default
config) in-process, into a temporary local lake (under `--dir`, default bench-results/)
unless `sink.root=` is given, and prints and saves (JSON, default
bench-results/<timestamp>.json) what bear's speed is judged by: rows/s and values/s (cells
written: rows times the columns each partition's files hold) end to end, Parquet bytes per
row and MB/s per table, where the wall time went, peak memory of the driver and of a worker,
and how many Ray workers did the work. With `--repeat N` it runs N times, each into a fresh
lake, prints a line per run, the summary of the fastest and the median and spread (min-max)
of wall time, rows/s and values/s over the runs, and saves them with every run's figures:
the development VM's disk makes the same run vary by a third (see README, Performance).
`--versus "k=v ..."` also runs the same backfill with those overrides added, alternating
with the plain runs so both see the same machine, and prints what the difference costs:
`--versus sink.fsync=false` measures what durable commits cost (the order alternates,
A B B A ..., so neither runs on a disk the other always churned first).

A peer runs next to bear by default when `tpchgen-cli` (the Rust TPC-H generator, `pip
install tpchgen-cli`) is on PATH: each repeat also runs `tpchgen-cli parquet -s S -o DIR`
(its defaults: all 8 tables, a file each, snappy, all CPUs; S is `--peer-scale`, default 5,
about bear's default backfill in values) into a fresh directory under the same `--dir`, in
the same alternating order, times the process, counts its rows and values from the Parquet
footers, then removes its output. It prints the peer's values/s (median and spread) and bear
/ peer in values per second: the median of the paired runs' ratios, each listed. tpchgen-cli
does not fsync its files while bear's commits do by default (`sink.fsync=false` for the like
with like). Without tpchgen-cli it prints one line saying the comparison is skipped;
`--no-peer` (or `--peer-scale 0`) skips it. The comparison on a tmpfs, three pairs:

    python scripts/benchmark.py --repeat 3 --dir /dev/shm

`--plan-only` runs just the planning phase on Ray (the skeleton pass over customer shards,
its pieces kept in the object store as in a run) and prints its wall time, shard count and
peak memory of the driver and of a shard's worker; nothing is written and no peer runs.
Large volumes, as in README, Performance:

    python scripts/benchmark.py generator.customers=1200000 generator.scale=4      # 562 M rows, ~5 min
    python scripts/benchmark.py --plan-only generator.customers=1200000 generator.scale=4 ray.num_cpus=1
    python scripts/benchmark.py --plan-only generator.customers=3000000 generator.scale=10   # 5.3 B rows
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from bear.config.load import load_config
from bear.config.schema import BearConfig
from bear.lake.state import lake_rows
from bear.run import memory
from bear.run.backfill import backfill
from bear.run.executors import RayExecutor, start_ray
from bear.run.prepare import prepare, set_up
from bear.run.report import time_lines, time_split

REPO = Path(__file__).resolve().parent.parent
PEER = "tpchgen-cli"
PEER_MISSING = f"peer: {PEER} not installed (pip install {PEER}); comparison skipped"


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10, check=False)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _load() -> str:
    """Load average and, where the kernel reports it, CPU and I/O pressure (the machine is shared)."""
    try:
        text = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"
    for kind in ("cpu", "io"):
        try:
            some = Path(f"/proc/pressure/{kind}").read_text().split("\n")[0].split()
            text += f", {kind} pressure {some[1].split('=')[1]} %"
        except (OSError, IndexError):
            pass
    return text


def _cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU time of this process (the driver) so far, all threads; system time is mostly the
    file system calls of commits, which vary with the disk."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def summarise(report: dict, cfg: BearConfig, overrides: list[str], wall_s: float,
              driver_cpu_s: tuple[float, float], load_before: str) -> dict:
    """The benchmark figures, derived from the run report `backfill` returned."""
    wall = report["wall_seconds"]
    tables = {}
    for table, t in report["tables"].items():
        rows, size = t["rows"], t["bytes"]
        tables[table] = {
            "rows": rows,
            "values": t["values"],
            "bytes": size,
            "bytes_per_row": round(size / max(rows, 1), 2),
            "parquet_mb_per_s": round(size / 2**20 / max(wall, 1e-9), 2),
        }
    driver = report["driver_seconds"]
    worker = report["worker_seconds"]
    driver_work = driver["setup"] + driver["commit"]  # commit_sync is part of commit; the plan runs on workers
    split = time_split(report)
    # what the run waited for the driver's own work: writing the plan and the last commit (the report's critical path)
    driver_critical = split["critical_path"]["plan_written"] + split["critical_path"]["last_commit"]
    total_rows = report["total_rows"]
    serial = {"startup": driver["startup"]}  # Ray's start, then setup and the skeleton pass (on the workers)
    parallel = max(wall - driver["startup"], 0.0)
    task_s = sum(worker.values())
    # the parallel phase (Ray up to the last commit) apportioned to the task phases by their task-seconds
    wall_split = {**serial, **{k: round(parallel * v / max(task_s, 1e-9), 2) for k, v in worker.items()}}
    return {
        "when": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "revision": _git_revision(),
        "overrides": overrides,
        "range": [cfg.run.start, cfg.run.end],
        "mess": cfg.mess.level,
        "chunks": report["chunks"],
        "total_rows": total_rows,
        "total_values": report["total_values"],
        "total_bytes": report["total_bytes"],
        "wall_seconds": wall,
        "process_wall_seconds": round(wall_s, 3),
        "rows_per_second": round(total_rows / max(wall, 1e-9)),
        "values_per_second": round(report["total_values"] / max(wall, 1e-9)),
        "bytes_per_row": round(report["total_bytes"] / max(total_rows, 1), 2),
        "parquet_mb_per_s": round(report["total_bytes"] / 2**20 / max(wall, 1e-9), 2),
        "tables": tables,
        # driver phases are wall time on the driver; worker phases are summed over all tasks (task-seconds)
        "wall_split_seconds": wall_split,
        "time_split": split,  # the run report's critical path and job stages
        "driver_seconds": driver,
        "driver_share_of_wall": round(driver_work / max(wall, 1e-9), 4),
        "driver_critical_seconds": round(driver_critical, 3),
        "driver_critical_share_of_wall": round(driver_critical / max(wall, 1e-9), 4),
        "driver_cpu_seconds": {"user": round(driver_cpu_s[0], 3), "system": round(driver_cpu_s[1], 3)},
        "worker_task_seconds": worker,
        "driver_peak_rss_mb": report["driver_peak_rss_mb"],
        "driver_peak_private_mb": report["driver_peak_private_mb"],
        "worker_peak_rss_mb": report["worker_peak_rss_mb"],
        "worker_peak_private_mb": report["worker_peak_private_mb"],
        "plan_seconds": driver["plan"],
        "plan_shards": report["plan_shards"],
        "plan_worker_peak_rss_mb": report["plan_worker_peak_rss_mb"],
        "plan_worker_peak_private_mb": report["plan_worker_peak_private_mb"],
        "ray_workers": report["worker_count"],
        "ray_nodes": len(report["jobs_per_node"]),
        "load_average_before": load_before,
        "load_average_after": _load(),
    }


def _millions(x: float) -> str:
    """Values per second in millions: bear's and the peer's rates are compared at a glance."""
    return f"{x / 1e6:,.2f} M"


def _spread(xs: list[float]) -> dict:
    """Median and range of a figure over the repeats: one run on the shared VM's disk says little."""
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def _over_runs(runs: list[dict], keys: tuple[str, ...]) -> dict:
    """The median and spread of each of `keys` over `runs`."""
    return {k: _spread([r[k] for r in runs]) for k in keys}


def print_summary(s: dict) -> None:
    print(f"bear benchmark {s['range'][0]} .. {s['range'][1]}, mess {s['mess']}, {s['chunks']} chunks, "
          f"{s['ray_workers']} Ray workers on {s['ray_nodes']} node(s), revision {s['revision']}")
    print(f"  {s['total_rows']:,} rows, {s['total_values']:,} values in {s['wall_seconds']:.1f} s: "
          f"{s['rows_per_second']:,} rows/s, {_millions(s['values_per_second'])} values/s end to end, "
          f"{s['parquet_mb_per_s']:.1f} MB/s Parquet, {s['bytes_per_row']:.1f} bytes/row")
    if len(s["runs"]) > 1:
        w, r, v = (s["repeats"][k] for k in ("wall_seconds", "rows_per_second", "values_per_second"))
        print(f"  over {len(s['runs'])} runs, median (spread): {w['median']:.1f} s ({w['min']:.1f}–{w['max']:.1f}), "
              f"{r['median']:,.0f} rows/s ({r['min']:,}–{r['max']:,}), {_millions(v['median'])} values/s "
              f"({_millions(v['min'])}–{_millions(v['max'])})")
    print(f"  {'table':<16}{'rows':>14}{'values':>15}{'MiB':>10}{'bytes/row':>11}{'MB/s':>8}")
    for table, t in s["tables"].items():
        print(f"  {table:<16}{t['rows']:>14,}{t['values']:>15,}{t['bytes'] / 2**20:>10.1f}{t['bytes_per_row']:>11.1f}"
              f"{t['parquet_mb_per_s']:>8.1f}")
    print("  driver (wall s): " + ", ".join(f"{k} {v:.2f}" for k, v in s["driver_seconds"].items())
          + f"; setup+commit = {100 * s['driver_share_of_wall']:.1f} % of wall, of which the run waited "
          f"{s['driver_critical_seconds']:.2f} s = {100 * s['driver_critical_share_of_wall']:.1f} %; driver CPU "
          f"{s['driver_cpu_seconds']['user']:.1f} s user + {s['driver_cpu_seconds']['system']:.1f} s system")
    print("  workers (task s): " + ", ".join(f"{k} {v:.2f}" for k, v in s["worker_task_seconds"].items()))
    for line in time_lines(s["time_split"]):
        print(f"  {line}")
    print("  wall split (s; tasks share the parallel phase by task-seconds, commits overlap it): "
          + ", ".join(f"{k} {v:.1f}" for k, v in s["wall_split_seconds"].items()))
    print(f"  plan: skeleton pass over {s['plan_shards']} customer shard(s) in {s['plan_seconds']:.1f} s wall")
    print(f"  peak memory, private / RSS with object-store pages (MiB): driver {s['driver_peak_private_mb']:.0f} / "
          f"{s['driver_peak_rss_mb']:.0f}, chunk worker {s['worker_peak_private_mb']:.0f} / "
          f"{s['worker_peak_rss_mb']:.0f}, shard worker {s['plan_worker_peak_private_mb']:.0f} / "
          f"{s['plan_worker_peak_rss_mb']:.0f}; "
          f"load average before {s['load_average_before']}, after {s['load_average_after']}")


def run_once(overrides: list[str], keep: bool, parent: Path) -> dict:
    """One backfill into a fresh temporary lake under `parent` (or `sink.root=` when given); its summary."""
    tmp = None
    lake = []
    if not any(o.startswith("sink.root=") for o in overrides):
        parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="bear-bench-", dir=parent)
        lake = [f"sink.root={tmp}/lake"]
    cfg = load_config(["command=run", *overrides, *lake])
    os.sync()  # flush what earlier runs left (a removed lake is ~40,000 files) so this run does not pay for it
    load_before = _load()
    try:
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        report = backfill(cfg)
        wall_s = time.perf_counter() - t0
        driver_cpu_s = tuple(b - a for a, b in zip(cpu0, _cpu_seconds(), strict=True))
    finally:
        if tmp is not None and not keep:
            shutil.rmtree(tmp, ignore_errors=True)
            os.sync()
    summary = summarise(report, cfg, overrides, wall_s, driver_cpu_s, load_before)
    if tmp is not None and keep:
        summary["lake"] = f"{tmp}/lake"
    return summary


def plan_once(overrides: list[str]) -> dict:
    """The planning phase alone on Ray (as a run does it, pieces included); nothing is written."""
    import ray

    cfg = load_config(["command=run", *overrides])
    memory.watch()
    started = start_ray(cfg.ray)
    try:
        executor = RayExecutor(cfg.ray)
        p = prepare(set_up(cfg), executor)
        cpus = executor.workers
        driver = memory.peaks()
    finally:
        if started:
            ray.shutdown()
    rows = lake_rows(p.plan, cfg.generator.catalog_size)
    return {"plan_only": True, "overrides": overrides, "revision": _git_revision(), "chunks": len(p.plans),
            "total_rows": rows, "ray_cpus": cpus, "plan_shards": p.shards, "plan_shards_per_node": p.shard_nodes,
            "setup_seconds": round(p.seconds["setup"], 3), "plan_seconds": round(p.seconds["plan"], 3),
            "driver_peak_rss_mb": round(driver[0], 1), "driver_peak_private_mb": round(driver[1], 1),
            "plan_worker_peak_rss_mb": round(p.shard_peak_mb[0], 1),
            "plan_worker_peak_private_mb": round(p.shard_peak_mb[1], 1)}


def _fastest(runs: list[dict]) -> dict:
    """The fastest run's summary, listing every run's main figures and their median and spread."""
    summary = dict(min(runs, key=lambda r: r["wall_seconds"]))
    summary["runs"] = [{k: r[k] for k in ("wall_seconds", "rows_per_second", "values_per_second", "plan_seconds",
                                          "driver_seconds", "worker_task_seconds", "load_average_before")}
                       for r in runs]
    summary["repeats"] = _over_runs(runs, ("wall_seconds", "rows_per_second", "values_per_second"))
    summary["median_wall_seconds"] = summary["repeats"]["wall_seconds"]["median"]
    return summary


def peer_version() -> str | None:
    """`tpchgen-cli --version`, or None when it is not on PATH: the comparison is optional."""
    if shutil.which(PEER) is None:
        return None
    return subprocess.run([PEER, "--version"], capture_output=True, text=True, timeout=30,
                          check=True).stdout.strip()


def peer_once(scale: float, parent: Path) -> dict:
    """One reference run of the peer (`tpchgen-cli parquet -s S -o DIR`, its defaults otherwise) into a fresh
    directory under `parent`, the disk bear's lakes use, timed as a process; what it wrote is counted from the
    Parquet footers (values = rows x columns, as bear counts them), then removed like a bear lake."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="peer-bench-", dir=parent))
    os.sync()  # as before a bear run: do not pay for what earlier runs left
    try:
        t0 = time.perf_counter()
        # stderr captured, so no progress bars and the reason if it fails
        done = subprocess.run([PEER, "parquet", "-s", f"{scale:g}", "-o", str(tmp)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=False)
        wall = round(time.perf_counter() - t0, 3)  # the rates follow from the figures saved, as bear's do
        if done.returncode != 0:
            raise RuntimeError(f"{PEER} exited with {done.returncode}: {done.stderr[-2000:]}")
        tables = {}
        for f in sorted(tmp.rglob("*.parquet")):
            meta = pq.ParquetFile(f).metadata
            tables[f.stem] = {"rows": meta.num_rows, "columns": meta.num_columns, "bytes": f.stat().st_size}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.sync()
    rows = sum(t["rows"] for t in tables.values())
    values = sum(t["rows"] * t["columns"] for t in tables.values())
    return {"wall_seconds": wall, "rows": rows, "values": values,
            "bytes": sum(t["bytes"] for t in tables.values()), "rows_per_second": round(rows / wall),
            "values_per_second": round(values / wall), "tables": tables}


def peer_summary(version: str, scale: float, peer_runs: list[dict], bear_runs: list[dict]) -> dict:
    """The peer's figures over its runs and bear / peer in values per second: each pair's ratio (runs of a pair
    saw the same machine), then their median."""
    ratios = [round(b["values_per_second"] / p["values_per_second"], 4)
              for b, p in zip(bear_runs, peer_runs, strict=True)]
    last = peer_runs[-1]  # the output is deterministic: every run writes the same rows
    repeats = _over_runs(peer_runs, ("wall_seconds", "rows_per_second", "values_per_second"))
    return {"tool": PEER, "version": version, "scale": scale, "rows": last["rows"], "values": last["values"],
            "bytes": last["bytes"], "tables": last["tables"],
            "runs": [{k: v for k, v in r.items() if k != "tables"} for r in peer_runs], "repeats": repeats,
            "median_values_per_second": repeats["values_per_second"]["median"],
            "ratios": ratios, "median_ratio": statistics.median(ratios)}


def print_peer(p: dict) -> None:
    """The peer's figures, then the comparison the issue asks for: bear / peer in values per second."""
    w, v = p["repeats"]["wall_seconds"], p["repeats"]["values_per_second"]
    print(f"peer {p['tool']} -s {p['scale']:g}: {p['rows']:,} rows, {p['values']:,} values in {w['median']:.1f} s = "
          f"{_millions(v['median'])} values/s (median of {len(p['runs'])}; spread {_millions(v['min'])}–"
          f"{_millions(v['max'])}), {p['bytes'] / p['rows']:.1f} bytes/row; {p['version']}")
    print(f"bear / peer: {p['median_ratio']:#.3g}× values per second (median of the paired runs' ratios: "
          + ", ".join(f"{r:#.3g}×" for r in p["ratios"]) + ")")


def _bear_line(r: dict) -> str:
    """A bear run's line: its rates and the phases that vary most from run to run (commits, writes, syncs)."""
    task = r["worker_task_seconds"]
    return (f"{r['wall_seconds']:.1f} s, {r['rows_per_second']:,} rows/s, {_millions(r['values_per_second'])} "
            f"values/s, plan {r['plan_seconds']:.1f} s, commit {r['driver_seconds']['commit']:.1f} s, writes "
            f"{task.get('write', 0):.1f} task-s, syncs {task.get('sync', 0):.1f} task-s")


def _peer_line(r: dict) -> str:
    """A peer run's line, in the units of bear's for reading the pair side by side."""
    return f"{r['wall_seconds']:.1f} s, {r['rows_per_second']:,} rows/s, {_millions(r['values_per_second'])} values/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for `bear run`")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs, each into a fresh lake; the fastest is reported, and the median and spread")
    parser.add_argument("--keep", action="store_true", help="keep the temporary lake (ignored with sink.root=)")
    # Default next to the repo, where `bear` writes ./lake, not /tmp: on the development VM, /tmp's corner of the
    # disk creates files 25x slower (~0.9 ms each), which would measure the disk, not bear. /dev/shm leaves the
    # disk out altogether.
    parser.add_argument("--dir", type=Path, default=REPO / "bench-results",
                        help="where temporary lakes and peer outputs go (default bench-results/; /dev/shm: no disk)")
    parser.add_argument("--out", help="where to save the JSON (default bench-results/<timestamp>.json)")
    parser.add_argument("--plan-only", action="store_true", help="time the planning phase alone (writes nothing)")
    parser.add_argument("--versus", default="", metavar='"K=V ..."',
                        help="overrides for a second variant, run alternately with the plain one (paired runs)")
    parser.add_argument("--peer-scale", type=float, default=5.0, metavar="S",
                        help=f"scale factor of the {PEER} run paired with each bear run (default 5; 0: none)")
    parser.add_argument("--no-peer", dest="peer_scale", action="store_const", const=0.0,
                        help=f"no {PEER} comparison (as --peer-scale 0)")
    args = parser.parse_args(argv)
    if args.repeat > 1 and any(o.startswith("sink.root=") for o in args.overrides):
        parser.error("--repeat needs fresh lakes: leave out sink.root= (a second run there would only resume)")
    if args.peer_scale < 0:
        parser.error("--peer-scale must be positive (0: no peer)")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else REPO / "bench-results" / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.plan_only:
        plans = [plan_once(args.overrides) for _ in range(args.repeat)]
        best = dict(min(plans, key=lambda r: r["plan_seconds"]), runs=[r["plan_seconds"] for r in plans])
        b = best
        print(f"bear plan phase: {b['total_rows']:,} rows in {b['chunks']} chunks, {b['plan_shards']} customer "
              f"shard(s) on {b['ray_cpus']} Ray CPU(s): skeleton pass {b['plan_seconds']:.1f} s wall (best of "
              f"{args.repeat}), setup {b['setup_seconds']:.1f} s; peak memory, private / RSS "
              f"with object-store pages: driver {b['driver_peak_private_mb']:.0f} / {b['driver_peak_rss_mb']:.0f} "
              f"MiB, shard worker {b['plan_worker_peak_private_mb']:.0f} / {b['plan_worker_peak_rss_mb']:.0f} MiB")
        out.write_text(json.dumps(best, indent=2) + "\n")
        print(f"  saved {out}")
        return 0
    versus = args.versus.split()
    version = peer_version() if args.peer_scale > 0 else None
    if args.peer_scale > 0 and version is None:
        print(PEER_MISSING, flush=True)
    runs, others, peers = [], [], []
    # (label, run, where its figures go, its line): paired runs, alternated
    steps: list[tuple[str, Callable[[], dict], list[dict], Callable[[dict], str]]] = [
        ("", lambda: run_once(args.overrides, args.keep, args.dir), runs, _bear_line)]
    if versus:
        steps.append((f" {args.versus}", lambda: run_once([*args.overrides, *versus], args.keep, args.dir), others,
                      _bear_line))
    if version is not None:
        steps.append((f" peer {PEER} -s {args.peer_scale:g}", lambda: peer_once(args.peer_scale, args.dir), peers,
                      _peer_line))
    for i in range(args.repeat):
        for label, run, into, line in steps if i % 2 == 0 else steps[::-1]:  # ABBA: none always runs second
            into.append(run())
            if args.repeat > 1 or len(steps) > 1:
                print(f"  run {i + 1}/{args.repeat}{label}: {line(into[-1])}", flush=True)
    summary = _fastest(runs)
    if versus:
        other = _fastest(others)
        summary["versus"] = {"overrides": versus, "wall_seconds": other["wall_seconds"], "median_wall_seconds":
                             other["median_wall_seconds"], "runs": other["runs"]}
    if version is not None:
        summary["peer"] = peer_summary(version, args.peer_scale, peers, runs)
    elif args.peer_scale > 0:
        summary["peer"] = {"tool": PEER, "skipped": "not installed"}
    print_summary(summary)
    if "ratios" in summary.get("peer", {}):
        print_peer(summary["peer"])
    if versus:
        v = summary["versus"]
        print(f"  versus {args.versus}: fastest {v['wall_seconds']:.1f} s against {summary['wall_seconds']:.1f} s, "
              f"median {v['median_wall_seconds']:.1f} s against {summary['median_wall_seconds']:.1f} s: the plain "
              f"run takes {100 * (summary['median_wall_seconds'] / v['median_wall_seconds'] - 1):+.1f} % (median)")
    if "lake" in summary:
        print(f"  lake kept at {summary['lake']}")
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"  saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
