"""Generator speed on one core: `python scripts/bench_generator.py [--repeat N] [key=value ...]`.

Generates one mid-range 30-day chunk of the default config (generation and mess, no
files) and the default lookups in this process, and prints rows/s per table and stage.
Targets (issue 2): >= 3 M rows/s for a chunk, mess included; <= 5 s for the lookups.
Each figure is the best of `--repeat` runs (the machine is shared; the best run is the
one least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bear.config.load import load_config
from bear.gen.lookups import build_lookups, customer_columns
from bear.gen.mess import apply_mess
from bear.gen.model import Model
from bear.gen.planner import chunk_work
from bear.gen.tables import chunk_tables
from bear.run.executors import InProcessExecutor
from bear.run.prepare import prepare, set_up


def best_of(repeat: int, fn):
    """(best seconds, per-stage seconds of the best run, result of the last run)."""
    best, best_clock, out = float("inf"), {}, None
    for _ in range(repeat):
        clock: dict[str, float] = {}
        t0 = time.perf_counter()
        out = fn(clock)
        took = time.perf_counter() - t0
        if took < best:
            best, best_clock = took, clock
    return best, best_clock, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for `bear run`")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    cfg = load_config(["command=run", *args.overrides])
    model = Model.build(cfg)

    def lookups(clock):
        t0 = time.perf_counter()
        lk = build_lookups(model)
        clock["build_lookups"] = time.perf_counter() - t0
        customer_columns(model, lk, np.zeros(len(lk.customers), dtype=np.int64))
        clock["customer_columns"] = time.perf_counter() - t0 - clock["build_lookups"]
        return lk

    lk_s, lk_clock, lk = best_of(args.repeat, lookups)
    executor = InProcessExecutor()
    p = prepare(set_up(cfg), executor)  # the skeleton pass, one shard on this core
    plan_s = p.seconds["plan"] / len(p.plans)
    k = len(p.plans) // 2  # a mid-range chunk
    layout, *parts = p.chunk_args(k)
    parts = executor.results(parts)
    work = chunk_work(p.plans[k], parts[:layout.pieces], parts[layout.pieces:layout.pieces + layout.dues])

    def chunk(clock):
        tables = chunk_tables(model, lk, work, clock)
        for name, rows in tables.items():
            t0 = time.perf_counter()
            apply_mess(model, name, rows.cols, rows.key, rows.event_s, rows.related)
            clock[f"mess {name}"] = time.perf_counter() - t0
        return tables

    chunk_s, clock, tables = best_of(args.repeat, chunk)
    rows = {name: len(r.key) for name, r in tables.items()}
    total = sum(rows.values())
    print(f"chunk {work.plan.chunk.index} ({work.plan.chunk.name}), mess {cfg.mess.level}, best of {args.repeat}")
    print(f"  {'table':<16}{'rows':>10}{'generate s':>12}{'mess s':>9}{'rows/s':>12}")
    for pair in ("shopping_carts+cart_items", "orders+order_items", "returns+return_items"):
        gen = clock[pair]
        pair_rows = sum(rows[t] for t in pair.split("+"))
        for name in pair.split("+"):
            # a table's share of its builder's time follows its share of the builder's rows
            own = gen * rows[name] / max(pair_rows, 1) + clock[f"mess {name}"]
            print(f"  {name:<16}{rows[name]:>10,}{gen * rows[name] / max(pair_rows, 1):>12.4f}"
                  f"{clock[f'mess {name}']:>9.4f}{rows[name] / max(own, 1e-9):>12,.0f}")
    shared = clock["window"]
    print(f"  shared by the tables: carts and their lines {shared:.4f} s")
    status = "ok" if total / chunk_s >= 3e6 else "below target"
    print(f"  chunk: {total:,} rows in {chunk_s:.3f} s (shared {shared:.3f}, mess "
          f"{sum(v for k, v in clock.items() if k.startswith('mess')):.3f}) = {total / chunk_s:,.0f} rows/s "
          f"[target >= 3,000,000: {status}]")
    print(f"  the skeleton pass per chunk (visits, counts, ID blocks; one shard, average of the run): {plan_s:.3f} s; "
          f"both together {total / (chunk_s + plan_s):,.0f} rows/s")
    n_cust = len(lk.customers)
    status = "ok" if lk_s <= 5 else "above target"
    print(f"lookups: {n_cust:,} customers and {len(lk.products):,} products in {lk_s:.3f} s (build_lookups "
          f"{lk_clock['build_lookups']:.3f}, customer_columns {lk_clock['customer_columns']:.3f}) = "
          f"{n_cust / lk_s:,.0f} customers/s [target <= 5 s: {status}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
