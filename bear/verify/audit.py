"""`bear verify`: an independent audit of a finished lake, read back from its sink.

Nothing is taken from the run's memory. The plan (`_bear/plan.json`) and the config say what
must exist; the listing, the manifests and the Parquet files say what does. Every check of
the lake's invariants that lives inside one day's partitions (carts with their items, orders with their
lines, all dated that day) runs in a task per day on a thread pool, which reads each file once
(md5 of its bytes, then only the columns the checks need); Parquet decoding and Arrow kernels
release the GIL, so the tasks use every core. The driver walks the plan's chunk windows in
order, one window ahead, and keeps the lake-wide state compact: the ID numbers of one window
(blocks and gaps), the partition day of every cart and order by ID number (for lines that are
not with their parent), customer and product keys, the lake's returns and customer_changes (a
few per cent of its rows) and just the orders and order lines those refer to.

This module is the driver: it reads the run state, lists the sink, checks coverage and walks the
windows, handing each day to a pass and each finished window back to it. The passes are modules of
their own, each with the state it keeps: `partition` (checks inside one partition), `dimensions`,
`returns`, `changes` and `sales` (the day tasks and what the lake-wide checks need of them),
`mess_rates`.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from bear.config.schema import BearConfig
from bear.core.calendar import day_number
from bear.core.schemas import DIMENSIONS, ID_FAMILIES, PARTITION_KEY, TABLES
from bear.lake.layout import PLAN, STATE_DIR, expected_partitions
from bear.lake.recovery import load_checkpoint, read_plan
from bear.lake.sink import Sink, open_sink
from bear.lake.state import StateDamaged, content_config, fingerprint
from bear.verify.changes import ChangesPass
from bear.verify.dimensions import dimension_partition, load_dimensions
from bear.verify.findings import Report
from bear.verify.mess_rates import mess_rates
from bear.verify.profile import profile
from bear.verify.profile import render as render_profile
from bear.verify.read import concat
from bear.verify.returns import ReturnsPass
from bear.verify.sales import SalesPass
from bear.verify.state import AuditState
from bear.verify.window import DayResult, Window


class Audit:
    """One pass over a lake; `run()` returns the report."""

    def __init__(self, sink: Sink, cfg: BearConfig):
        self.sink = sink
        self.cfg = cfg
        self.fp = fingerprint(content_config(cfg))
        self.state = AuditState(sink, cfg, self.fp)
        self.found = self.state.found
        self.skipped = False
        workers = 16 if not sink.is_local else max(3, (os.cpu_count() or 2) + 1)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")

    def run(self) -> Report:
        t0 = time.perf_counter()
        try:
            plan = self._run_state()
            if plan is not None:
                self._lake(plan)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        return Report(self.sink.display, self.cfg.verify.examples, self.found, mess_rates(self.found, self.cfg),
                      self.skipped, time.perf_counter() - t0,
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    def _lake(self, plan: dict) -> None:
        feed = plan.get("feed", {})
        windows = [Window(day_number(c["start"]), day_number(c["end"]), c["first_ids"], c["ids"], c["rows"],
                          feed.get(str(c["index"]), {}).get("in_flight", {})) for c in plan["chunks"]]
        sales, returns = SalesPass(self.state, windows), ReturnsPass(self.state)
        flying = any(c.get("in_flight", {}).get("customer_changes") for c in feed.values())
        changes = ChangesPass(self.state, plan["plan_config"]["run"]["start"],
                              day_number(plan["end"]) - self.cfg.mess.max_lag + 1 if flying else None)
        self._list()
        expected = self._coverage(plan)
        dims = [self.pool.submit(dimension_partition, self.state, t, p) for t in DIMENSIONS for p in expected[t]
                if (t, p) in self.state.listing]
        load_dimensions(self.state, [f.result() for f in dims], plan["customers"])
        self._walk(windows, returns.day, returns.window)
        self._walk(windows, changes.day, changes.window)
        self.state.feed.forget()  # the changes pass's look-ahead is of no use to the sales pass
        # the sales pass keeps the orders that returns and changes refer to
        sales.returned = returns.referred(sales.day_of["orders"].size)
        sales.changed = changes.referred(sales.day_of["orders"].size)
        self._walk(windows, sales.day, sales.window)
        sales.resolve_away()
        returns.lake(windows, sales.returned_rows)
        changes.lake(concat(sales.changed_orders, "orders"))
        self.state.feed.check(self.found)

    def _walk(self, windows: list[Window], task: Callable[[int], DayResult],
              merge: Callable[[Window, list[DayResult]], None]) -> None:
        """Run `task` on every day of the windows, in order and one window ahead; `merge` each window's days."""
        pending = self._submit(task, windows[0]) if windows else []
        for i, w in enumerate(windows):
            results = [f.result() for f in pending]
            if i + 1 < len(windows):
                pending = self._submit(task, windows[i + 1])  # one window ahead
            merge(w, results)

    def _submit(self, task, w: Window) -> list[Future]:
        return [self.pool.submit(task, d) for d in w.days()]

    # ---- run state, listing, coverage (driver) ---------------------------------------------------------------

    def _run_state(self) -> dict | None:
        found = self.found
        found.count("run.state", 1)
        try:
            plan = read_plan(self.sink)
        except StateDamaged as exc:
            found.fail("run.state", "-", f"{exc}; a run with the lake's config recomputes it (bear run)")
            self.skipped = True
            return None
        if plan is None:
            found.fail("run.state", "-", f"no bear run at {self.sink.display} ({PLAN} missing)")
            self.skipped = True
            return None
        if plan.get("fingerprint") != self.fp:
            found.fail("run.state", "-", f"the lake was written by another config (fingerprint "
                       f"{str(plan.get('fingerprint'))[:12]}, this config {self.fp[:12]}); verify with the run's "
                       f"overrides")
        elif plan["end"] != self.cfg.run.end:  # not in the fingerprint: a lake is extended by a later end
            found.fail("run.state", "-", f"the lake holds this config through {plan['end']}, not run.end="
                       f"{self.cfg.run.end}; verify with run.end={plan['end']}"
                       + (f", or extend it first (bear with run.end={self.cfg.run.end})"
                          if self.cfg.run.end > plan["end"] else ""))
        ck, rebuilt = load_checkpoint(self.sink, plan)
        if rebuilt:
            found.fail("run.state", "-", f"checkpoint: {rebuilt}; the next run writes it back")
        done, total = ck["committed_chunks"], len(plan["chunks"])
        if done < total or not ck["dimensions_committed"]:
            found.fail("run.state", "-", f"run incomplete: {done}/{total} chunks committed, dimensions "
                       f"{'committed' if ck['dimensions_committed'] else 'pending'}; rerun `bear` to finish it")
        for fam in ID_FAMILIES:
            firsts = np.array([c["first_ids"][fam] for c in plan["chunks"]])
            ends = firsts + np.array([c["ids"][fam] for c in plan["chunks"]])
            found.count("keys.plan_blocks", len(firsts))
            if firsts.size and (firsts[0] != 1 or not np.array_equal(firsts[1:], ends[:-1])):
                found.fail("keys.plan_blocks", "-", f"the plan's {fam} blocks are not contiguous from 1")
        return plan

    def _list(self) -> None:
        listing: dict[tuple[str, str], set[str]] = defaultdict(set)
        for rel in self.sink.find(""):
            parts = rel.split("/")
            if parts[0] == STATE_DIR:
                continue
            if len(parts) == 3 and parts[0] in TABLES and parts[1].startswith(f"{PARTITION_KEY[parts[0]]}="):
                listing[(parts[0], parts[1])].add(parts[2])
            else:
                self.found.count("manifest.orphans", 1)
                self.found.fail("manifest.orphans", parts[0] if parts[0] in TABLES else "-",
                                "file outside any table partition", [rel])
        self.state.listing = {k: frozenset(v) for k, v in listing.items()}

    def _coverage(self, plan: dict) -> dict[str, list[str]]:
        """Every partition the plan makes is there, and nothing else is."""
        found: dict[str, set[str]] = defaultdict(set)
        for t, p in self.state.listing:
            found[t].add(p)
        expected = expected_partitions(plan)
        for t in TABLES:
            want = expected[t]
            self.found.count("coverage.partitions", len(want))
            missing = [p for p in want if p not in found[t]]
            extra = sorted(found[t] - set(want))
            if missing:
                self.found.fail("coverage.partitions", t, f"{len(missing)} planned partitions missing", missing,
                                len(missing), missing[0])
            if extra:
                self.found.fail("coverage.partitions", t, f"{len(extra)} unexpected partitions (not audited)",
                                extra, len(extra), extra[0])
        return expected


def verify_lake(sink: Sink, cfg: BearConfig) -> Report:
    """Audit the lake at `sink` against `cfg` (any Sink: a local directory or GCS)."""
    return Audit(sink, cfg).run()


def verify_command(cfg: BearConfig) -> int:
    """`bear verify`: the report on stdout (text, or JSON with --json); exit 0 only when every check passes."""
    sink = open_sink(cfg.sink)
    report = verify_lake(sink, cfg)
    as_json = cfg.json or cfg.verify.json
    measures = profile(sink, cfg) if cfg.verify.profile and not report.skipped else []
    doc = {**report.to_json(), "profile": [{**vars(x), "ok": x.ok} for x in measures]} if measures else None
    print(json.dumps(doc or report.to_json(), indent=2) if as_json else report.render(), file=sys.stdout)
    if measures and not as_json:
        print("\n" + render_profile(measures), file=sys.stdout)
    return 0 if report.ok and all(x.ok for x in measures) else 1
