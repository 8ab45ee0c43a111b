"""The customer_changes pass: the customers' dated tier and CLV history, read day by day, checked whole at the end.

customer_changes is small (a row per order that moves a customer's tier or CLV bucket, and the
opening rows of the run's first day), so the pass keeps it all, like the returns pass its
returns: a day task checks what lives in one partition (`ChangesPass.day`), the set of orders
the changes name (`referred`) tells the sales pass which orders to keep, and with those `lake`
checks the history's keys, links and rules: an order's change is that order's customer at that
order's time, each customer's tier and bucket only climb, and `changed` says what moved.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from bear.core.calendar import day_number
from bear.core.schemas import CHANGES, PRIMARY_KEY
from bear.lake.layout import day_partition
from bear.verify.checks import DAY_US, id_set, link_checks, unique_keys
from bear.verify.findings import Findings
from bear.verify.history import CHANGE_RULES, change_rules
from bear.verify.partition import event_partition, place
from bear.verify.read import concat
from bear.verify.state import AuditState
from bear.verify.window import DayResult, Window, planned_rows

TABLE = CHANGES[0]
ORDER_COLUMNS = ("order_id", "customer_id", "order_date", "clv_bucket")  # what the rules need of the named orders


class ChangesPass:
    """The lake's customer_changes, gathered window by window."""

    def __init__(self, state: AuditState, start: str, unsettled: int | None = None):
        self.state = state
        self.start_us = day_number(start) * DAY_US  # the run's start, 00:00: when the opening rows are valid from
        # the first day whose changes may follow one the feed still has on its way (None: nothing in flight)
        self.unsettled_us = None if unsettled is None else unsettled * DAY_US
        self.tables: list[pa.Table] = []

    def day(self, day: int) -> DayResult:
        """A day's customer_changes partition, checked on its own (a task on the pool); its rows go to the driver."""
        res = DayResult(day, Findings())
        res.tables, _ = self.state.day_tables(CHANGES, day, res.found)
        res.rows = {name: table.num_rows for name, table in res.tables.items()}
        event_partition(TABLE, res.tables[TABLE], day, res.found, f"ingest_dt={day_partition(day)}")
        return res

    def window(self, w: Window, results: list[DayResult]) -> None:
        planned_rows(self.state.found, w, results, CHANGES)
        for r in results:
            self.state.found.merge(r.found)
            self.tables.append(r.tables[TABLE])

    def referred(self, size: int) -> np.ndarray:
        """By order ID number (below `size`): does a change name the order."""
        return id_set((t["order_id"] for t in self.tables), size)

    def lake(self, orders: pa.Table) -> None:
        """The whole history against its customers and just the orders it names (their ORDER_COLUMNS)."""
        found = self.state.found
        t = concat(self.tables, TABLE)
        part = {TABLE: t, "customers": self.state.customers_of(t["customer_id"]), "orders": orders}
        found.count("keys.unique", t.num_rows)
        found.count("integrity.foreign_key", t.num_rows + t.num_rows - t["order_id"].null_count)
        for name, (table, _) in CHANGE_RULES.items():
            found.count(name, part[table].num_rows)
        failures = (unique_keys(TABLE, t, PRIMARY_KEY[TABLE]) + link_checks(part, CHANGES)
                    + change_rules(part, self.start_us, self.unsettled_us))
        for f in failures:
            found.add(place(f, part, "ingest_dt=*"))
