"""What each `bear` command does once the config is composed and valid."""

from __future__ import annotations

import logging
import sys

from bear.config import BearConfig
from bear.report import REPORT_HTML, summary_table
from bear.sink import open_sink
from bear.state import CHECKPOINT, PLAN, read_json

log = logging.getLogger("bear")
FAMILIES = ("carts", "cart_items", "orders", "order_items", "returns", "return_items")


def _out(line: str = "") -> None:
    print(line, file=sys.stdout)


def cmd_run(cfg: BearConfig, base_dir: str | None) -> int:
    from bear.runner import backfill

    doc = backfill(cfg, base_dir)
    if doc.get("dry_run"):
        from bear.dryrun import format_dry_run

        for line in format_dry_run(doc):
            _out(line)
        return 0
    _out(summary_table(doc))
    _out(f"report: {doc['lake']}/{REPORT_HTML}")
    return 0


def cmd_plan(cfg: BearConfig, base_dir: str | None) -> int:
    from bear.runner import expected_partitions, prepare

    p = prepare(cfg, base_dir)
    days = p.model.end_day - p.model.start_day + 1
    _out(f"plan for {p.sink.display}: {cfg.run.start} .. {cfg.run.end} ({days} days) in {len(p.works)} chunks "
         f"of {cfg.run.chunk_days} days, seed {cfg.run.seed}, mess {cfg.mess.level}")
    _out(f"fingerprint {p.fp[:16]}  plan {p.plan['plan_fingerprint'][:16]}")
    _out(f"{'chunk':>5}  {'window':<22}" + "".join(f"{f:>13}" for f in FAMILIES) + "   first cart/order/return id")
    for w in p.works:
        pl = w.plan
        ids = pl.first_ids
        _out(f"{pl.chunk.index:>5}  {pl.chunk.name:<22}" + "".join(f"{pl.rows[f]:>13,}" for f in FAMILIES)
             + f"   {ids['carts']}/{ids['orders']}/{ids['returns']}")
    totals = p.plan["totals"]
    _out(f"{'total':>5}  {'':<22}" + "".join(f"{totals[f]:>13,}" for f in FAMILIES))
    _out(f"{'/day':>5}  {'':<22}" + "".join(f"{totals[f] / days:>13,.0f}" for f in FAMILIES))
    _out(f"dimensions: customers {cfg.generator.customers:,}, product_catalog {cfg.generator.products:,}")
    parts = expected_partitions(p)
    _out("partitions: " + ", ".join(f"{t} {n:,}" for t, n in parts.items()))
    _out("nothing written (dry run)")
    return 0


def cmd_status(cfg: BearConfig, base_dir: str | None) -> int:
    sink = open_sink(cfg.sink, base_dir)
    plan = read_json(sink, PLAN)
    if plan is None:
        _out(f"no bear run at {sink.display}")
        return 0
    ck = read_json(sink, CHECKPOINT)
    total = len(plan["chunks"])
    done = ck["committed_chunks"] if ck else 0
    state = "complete" if done == total and ck and ck["dimensions_committed"] else "in progress (resumable)"
    _out(f"lake {sink.display}: {state}")
    _out(f"range {plan['plan_config']['run']['start']} .. {plan['plan_config']['run']['end']}, "
         f"fingerprint {plan['fingerprint'][:16]}")
    _out(f"chunks committed {done}/{total}; last committed date {ck['last_committed_date'] if ck else None}; "
         f"dimensions {'committed' if ck and ck['dimensions_committed'] else 'pending'}")
    if ck:
        _out("id high-water: " + ", ".join(f"{k} {v:,}" for k, v in ck["id_high_water"].items()))
        _out(f"partitions {ck['partitions']:,}; rows so far {sum(ck['rows'].values()):,}; "
             f"bytes {sum(ck['bytes'].values()):,}")
        for table, rows in sorted(ck["rows"].items()):
            _out(f"  {table:<16} {rows:>14,} rows {ck['bytes'][table]:>16,} bytes")
    expected = sum(plan["totals"].values())
    _out(f"planned transactional rows {expected:,}")
    return 0


def cmd_verify(cfg: BearConfig, base_dir: str | None) -> int:
    from bear.verify import verify_command

    return verify_command(cfg, base_dir)


def dispatch(cfg: BearConfig, base_dir: str | None) -> int:
    return {"run": cmd_run, "plan": cmd_plan, "status": cmd_status, "verify": cmd_verify}[cfg.command](cfg, base_dir)
