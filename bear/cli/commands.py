"""What each `bear` command does once the config is composed and valid."""

from __future__ import annotations

import contextlib
import json
import logging
import sys

from bear.config.schema import BearConfig
from bear.gen.skeleton import FAMILIES
from bear.lake.errors import SinkAuthError
from bear.lake.layout import REPORT_HTML, expected_partitions
from bear.lake.lease import describe, read_lease
from bear.lake.recovery import load_checkpoint, read_plan
from bear.lake.sink import Sink, open_sink
from bear.lake.state import StateDamaged, config_change, is_complete, lake_rows, other_config, shortening
from bear.run.report import summary_table

log = logging.getLogger("bear")


def _out(line: str = "") -> None:
    print(line, file=sys.stdout)


def cmd_run(cfg: BearConfig) -> int:
    from bear.run.backfill import backfill

    doc = backfill(cfg)
    if doc.get("nothing_to_do"):
        _out(f"lake {doc['lake']} is complete through {doc['end']}: nothing to do (bear status shows it; bear "
             f"verify audits it)")
        return 0
    if doc.get("dry_run"):
        from bear.run.dryrun import format_dry_run

        for line in format_dry_run(doc):
            _out(line)
        return 0
    _out(summary_table(doc))
    _out(f"report: {doc['lake']}/{REPORT_HTML}")
    return 0


def same_config_lake(cfg: BearConfig) -> tuple[Sink, dict | None]:
    """The sink and its lake's plan (None: no lake yet); a lake of another config is one line and exit 2, at once,
    before any planning or reading. A damaged plan raises StateDamaged."""
    from bear.run.errors import RunError

    sink = open_sink(cfg.sink)
    plan = read_plan(sink)
    change = config_change(plan, cfg) if plan is not None else None
    if change:
        raise RunError(other_config(sink.display, change), exit_code=2)
    return sink, plan


def cmd_plan(cfg: BearConfig) -> int:
    from bear.run.errors import RunError
    from bear.run.prepare import prepare_plan

    lake, committed = None, 0
    try:
        sink, lake = same_config_lake(cfg)
        if lake is not None:  # the lake's committed chunks stay as they are; a run plans the days after them
            ck = load_checkpoint(sink, lake)[0]
            if refusal := shortening(sink.display, ck, cfg.run.end):
                raise RunError(refusal, exit_code=2)
            committed = ck["committed_chunks"]
    except SinkAuthError:  # a plan needs no credentials: without them there is no lake to compare with
        log.debug("plan: the lake is not readable without credentials; not compared")
    except StateDamaged as exc:  # nothing to compare with; bear status says what to do
        log.debug("plan: %s; not compared", exc)
    p = prepare_plan(cfg, lake, committed)
    sink = open_sink(cfg.sink)
    parts = {t: len(names) for t, names in expected_partitions(p.plan).items()}
    if cfg.json:
        _out(json.dumps({**p.plan, "partitions": parts, "lake": sink.display}, indent=2))
        return 0
    days = p.model.end_day - p.model.start_day + 1
    _out(f"plan for {sink.display}: {cfg.run.start} .. {cfg.run.end} ({days} days) in {len(p.plans)} chunks "
         f"of {cfg.run.chunk_days} days, seed {cfg.run.seed}, mess {cfg.mess.level}")
    _out(f"fingerprint {p.fp[:16]}  plan {p.plan['plan_fingerprint'][:16]}")
    _out(f"{'chunk':>5}  {'window':<22}" + "".join(f" {f:>13}" for f in FAMILIES) + "   first cart/order/return id")
    for pl in p.plans:
        ids = pl.first_ids
        _out(f"{pl.chunk.index:>5}  {pl.chunk.name:<22}" + "".join(f" {pl.rows[f]:>13,}" for f in FAMILIES)
             + f"   {ids['carts']}/{ids['orders']}/{ids['returns']}")
    totals = p.plan["totals"]
    _out(f"{'total':>5}  {'':<22}" + "".join(f" {totals[f]:>13,}" for f in FAMILIES))
    _out(f"{'/day':>5}  {'':<22}" + "".join(f" {totals[f] / days:>13,.0f}" for f in FAMILIES))
    _out(f"dimensions: customers {p.plan['customers']:,}, product_catalog {cfg.generator.catalog_size:,}")
    feed = {kind: sum(n for c in p.plan["feed"].values() for n in c[kind].values())
            for kind in ("in_flight", "redelivered")}
    _out(f"rows in the finished lake: {lake_rows(p.plan, cfg.generator.catalog_size):,} (the order feed: "
         f"{feed['in_flight']:,} still on their way at the end, {feed['redelivered']:,} re-delivered copies)")
    _out("partitions: " + ", ".join(f"{t} {n:,}" for t, n in parts.items()))
    _out("nothing written (dry run)")
    return 0


def cmd_status(cfg: BearConfig) -> int:
    """What the lake holds, who writes it (the lease) and how far its run is; reads only, needs no lease. A damaged
    checkpoint is shown as the lake proves it (a run writes that back); a damaged plan is one line, exit 1."""
    try:
        sink, plan = same_config_lake(cfg)
    except StateDamaged as exc:
        _out(f"lake {open_sink(cfg.sink).display}: {exc}; run bear with the lake's config: it recomputes the plan "
             f"when the lake's manifests were written by that config")
        return 1
    lease = read_lease(sink)
    ck, rebuilt = load_checkpoint(sink, plan) if plan is not None else (None, None)
    if cfg.json:
        state = None if plan is None else "complete" if is_complete(plan, ck) else "in progress"
        _out(json.dumps({"lake": sink.display, "state": state, "checkpoint": ck, "checkpoint_rebuilt": rebuilt,
                         "lease": lease,
                         "plan": None if plan is None else {k: plan[k] for k in ("fingerprint", "plan_fingerprint",
                                                                                  "totals", "created_at")}
                         | {"chunks": len(plan["chunks"]),
                            "range": {"start": plan["plan_config"]["run"]["start"], "end": plan["end"]},
                            "committed_range": {"start": plan["plan_config"]["run"]["start"],
                                                "end": ck["last_committed_date"]}}}, indent=2))
        return 0
    lease_line = f"writer lease: {describe(lease) if lease else 'none (no run is writing)'}"
    if plan is None:
        _out(f"no bear run at {sink.display}")
        _out(lease_line)
        return 0
    total = len(plan["chunks"])
    done = ck["committed_chunks"]
    state = "complete" if is_complete(plan, ck) else "in progress (resumable)"
    _out(f"lake {sink.display}: {state}")
    _out(lease_line)
    if rebuilt:
        _out(f"checkpoint: {rebuilt} (the next run writes it back)")
    start = plan["plan_config"]["run"]["start"]
    _out(f"committed {start} .. {ck['last_committed_date'] or '(nothing yet)'} of the planned {start} .. "
         f"{plan['end']}; fingerprint {plan['fingerprint'][:16]}")
    if cfg.run.end > plan["end"]:
        _out(f"run.end={cfg.run.end}: bear would extend the lake by the days after {plan['end']}")
    _out(f"chunks committed {done}/{total}; last committed date {ck['last_committed_date']}; "
         f"dimensions {'committed' if ck['dimensions_committed'] else 'pending'}")
    if ck["id_high_water"]:
        _out("id high-water: " + ", ".join(f"{k} {v:,}" for k, v in ck["id_high_water"].items()))
    _out(f"partitions {ck['partitions']:,}; rows so far {sum(ck['rows'].values()):,}; "
         f"bytes {sum(ck['bytes'].values()):,}")
    for table, rows in sorted(ck["rows"].items()):
        _out(f"  {table:<16} {rows:>14,} rows {ck['bytes'][table]:>16,} bytes")
    expected = sum(plan["totals"].values())
    _out(f"planned rows in the daily tables {expected:,}")
    return 0


def cmd_verify(cfg: BearConfig) -> int:
    from bear.verify.audit import verify_command

    with contextlib.suppress(StateDamaged):  # the audit's run-state check names it
        same_config_lake(cfg)
    return verify_command(cfg)


def interrupted(cfg: BearConfig) -> str:
    """The one line for Ctrl-C: how far a run got (its checkpoint) and how to go on."""
    if cfg.command != "run" or cfg.sink.dry_run:
        return "interrupted"
    try:
        sink = open_sink(cfg.sink)
        plan = read_plan(sink)
        done = load_checkpoint(sink, plan)[0]["committed_chunks"] if plan is not None else 0
    except Exception:  # the state itself is out of reach or damaged: say what is certain
        return "interrupted; rerun the same command to resume"
    if plan is None:
        return "interrupted before the run started; nothing was committed"
    return f"interrupted: {done} of {len(plan['chunks'])} chunks committed; rerun the same command to resume"


def dispatch(cfg: BearConfig) -> int:
    return {"run": cmd_run, "plan": cmd_plan, "status": cmd_status, "verify": cmd_verify}[cfg.command](cfg)
