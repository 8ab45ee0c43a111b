"""The returns pass: returns and their lines, read day by day first, checked lake-wide at the end.

Returns are a few per cent of the lake's rows, so the pass keeps them all: a day task checks
what lives in one partition (`ReturnsPass.day`), the driver counts a window's rows against the
plan (`ReturnsPass.window`), and the set of orders the returns refer to (`referred`) tells the
sales pass which orders and lines to keep. With those, `lake` checks the returns' IDs, links,
lines and rules against just the orders they refer to.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from bear.core.schemas import ID_COLUMNS, PLAN_FAMILY
from bear.lake.layout import day_partition
from bear.verify.checks import RETURN_RULES, id_numbers, id_set, index_of, line_checks, link_checks, return_rules
from bear.verify.findings import Findings
from bear.verify.partition import event_partition, partitions_of, place, values_where
from bear.verify.read import DAY, concat
from bear.verify.state import AuditState
from bear.verify.window import RETURNS, DayResult, Window, check_ids, planned_rows


class ReturnsPass:
    """The lake's returns and return lines, gathered window by window."""

    def __init__(self, state: AuditState):
        self.state = state
        self.returns: dict[str, list[pa.Table]] = {name: [] for name in RETURNS}

    def day(self, day: int) -> DayResult:
        """A day's returns partitions, checked on their own (a task on the pool); their rows go to the driver."""
        res = DayResult(day, Findings())
        res.tables, _ = self.state.day_tables(RETURNS, day, res.found)
        res.rows = {name: table.num_rows for name, table in res.tables.items()}
        event_partition("returns", res.tables["returns"], day, res.found, f"ingest_dt={day_partition(day)}")
        return res

    def window(self, w: Window, results: list[DayResult]) -> None:
        planned_rows(self.state.found, w, results, RETURNS)
        for r in results:
            self.state.found.merge(r.found)
            for name in RETURNS:
                self.returns[name].append(r.tables[name])

    def referred(self, size: int) -> np.ndarray:
        """By order ID number (below `size`): do the lake's returns refer to the order."""
        return id_set((t["order_id"] for name in RETURNS for t in self.returns[name]), size)

    def lake(self, windows: list[Window], returned_rows: dict[str, list[pa.Table]]) -> None:
        """Returns against just the orders and lines they refer to: IDs lake-wide, each from the block of the
        window it is dated in (return IDs follow return time, like carts and orders); links, lines with their
        return and the rules batch by batch of orders (one plan chunk's block each), so the joins hold one
        chunk's returns at a time. A return line whose order_id disagrees with its return's lands in another
        batch than its return and fails to resolve, which it should."""
        found = self.state.found
        if not windows:
            return
        t = {"returns": concat(self.returns["returns"], "returns"),
             "return_items": concat(self.returns["return_items"], "return_items"),
             "orders": concat(returned_rows["orders"], "orders"),
             "order_items": concat(returned_rows["order_items"], "order_items")}
        order_firsts = np.array([w.first_ids["orders"] for w in windows])
        batch = {name: np.clip(np.searchsorted(order_firsts, id_numbers(table["order_id"]), side="right") - 1, 0,
                               len(windows) - 1) for name, table in t.items()}
        starts = np.array([w.start for w in windows])
        for name in RETURNS:  # an ID comes from the block of the window its row is dated in (its partition's)
            days = t[name][DAY].to_numpy(zero_copy_only=False)
            dated = np.clip(np.searchsorted(starts, days, side="right") - 1, 0, len(windows) - 1)
            firsts = np.array([w.first_ids[PLAN_FAMILY[name]] for w in windows])
            counts = np.array([w.ids[PLAN_FAMILY[name]] for w in windows])
            check_ids(found, name, id_numbers(t[name][ID_COLUMNS[name]]), days, firsts[dated],
                      firsts[dated] + counts[dated], 1, int(counts.sum()), "ingest_dt=*")
        found.count("integrity.child_partition", t["return_items"].num_rows)
        found.count("integrity.foreign_key", t["returns"].num_rows + t["return_items"].num_rows)
        found.count("integrity.has_lines", t["returns"].num_rows)
        for name, (table, _) in RETURN_RULES.items():
            found.count(name, t[table].num_rows)
        order = {name: np.argsort(b, kind="stable") for name, b in batch.items()}
        bounds = {name: np.searchsorted(batch[name][order[name]], np.arange(len(windows) + 1)) for name in t}
        for k in range(len(windows)):
            part = {name: table.take(pa.array(order[name][bounds[name][k]:bounds[name][k + 1]]))
                    for name, table in t.items()}
            part["customers"] = self.state.customers_of(part["returns"]["customer_id"])
            part["product_catalog"] = self.state.products
            self._return_lines_placed(part["return_items"], part["returns"])
            for f in link_checks(part, RETURNS) + line_checks({n: part[n] for n in RETURNS}) + return_rules(part):
                found.add(place(f, part, "ingest_dt=*"))

    def _return_lines_placed(self, items: pa.Table, rets: pa.Table) -> None:
        """Every return line sits in its return's partition."""
        idx = index_of(items["return_id"], rets["return_id"])
        here = idx >= 0
        day = items[DAY].to_numpy(zero_copy_only=False)
        bad = np.zeros(items.num_rows, dtype=bool)
        bad[here] = day[here] != rets[DAY].to_numpy(zero_copy_only=False)[idx[here]]
        if bad.any():
            self.state.found.fail("integrity.child_partition", "return_items", f"{int(bad.sum())} lines outside "
                                  "their return_id's partition", values_where(items["return_item_id"], bad),
                                  int(bad.sum()), partitions_of(day[bad]))
