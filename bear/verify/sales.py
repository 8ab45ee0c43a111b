"""The sales pass: carts, cart items, orders and order lines, day by day, then the links left over.

Every check that lives inside one day's sales partitions runs in a day task (`SalesPass.day`).
The driver merges a window's days (`SalesPass.window`): its IDs against the plan's blocks, the
partition day of every cart and order by ID number, the rows whose parent was not in their day,
and the orders and lines that the lake's returns refer to and the orders that customer_changes
name (for the returns and changes passes at the end).
After the last window, `resolve_away` decides for each set-aside row whether its parent is
elsewhere (a misplaced line) or nowhere (a broken key).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from bear.core.schemas import DIMENSIONS, ID_COLUMNS, PLAN_FAMILY, PRIMARY_KEY
from bear.lake.layout import day_partition
from bear.verify.changes import ORDER_COLUMNS
from bear.verify.checks import (
    SALES_RULES,
    id_numbers,
    index_of,
    line_checks,
    link_checks,
    sales_rules,
    sum_by,
    unique_keys,
)
from bear.verify.findings import Findings
from bear.verify.partition import event_partition, partitions_of, values_where
from bear.verify.read import DAY, PartRead
from bear.verify.state import AuditState
from bear.verify.window import SALES, DayResult, Window, check_ids, planned_rows

# Links among the sales tables: resolved inside the day, else set aside and resolved lake-wide at the end.
DAY_LINKS = (("cart_items", "cart_id", "shopping_carts"), ("orders", "cart_id", "shopping_carts"),
             ("order_items", "order_id", "orders"))
LINES = ("cart_items", "order_items", "return_items")  # tables whose rows sit in their parent's partition


class SalesPass:
    """The sales tables of every window, and what the lake-wide checks keep of them."""

    def __init__(self, state: AuditState, windows: list[Window]):
        self.state = state
        self.day_of: dict[str, np.ndarray] = {}  # carts and orders: partition day by ID number (-1: not seen)
        for table in ("shopping_carts", "orders"):
            self.day_of[table] = np.full(sum(w.ids[PLAN_FAMILY[table]] for w in windows) + 1, -1, dtype=np.int32)
        self.away: list[tuple[str, str, str, pa.Table]] = []
        self.returned = np.zeros(1, dtype=bool)  # by order ID number: do the lake's returns refer to it
        self.returned_rows: dict[str, list[pa.Table]] = {"orders": [], "order_items": []}
        self.changed = np.zeros(1, dtype=bool)  # by order ID number: does customer_changes name it
        self.changed_orders: list[pa.Table] = []

    # ---- day tasks (threads) --------------------------------------------------------------------------------

    def day(self, day: int) -> DayResult:
        """Every check that lives inside one day's carts, items, orders and order lines."""
        res = DayResult(day, Findings())
        found, part = res.found, f"ingest_dt={day_partition(day)}"
        t, reads = self.state.day_tables(SALES, day, found)
        res.rows = {name: table.num_rows for name, table in t.items()}
        for name in ("shopping_carts", "cart_items", "orders"):
            res.ids[name] = id_numbers(t[name][ID_COLUMNS[name]])
        for name in ("shopping_carts", "orders"):
            event_partition(name, t[name], day, found, part)
        for child, key, parent in DAY_LINKS:
            here = index_of(t[child][key], t[parent][key]) >= 0
            if not here.all():
                rows = t[child].filter(pa.array(~here)).select(list(dict.fromkeys((*PRIMARY_KEY[child], key, DAY))))
                res.away.append((child, key, parent, rows))
        found.count("integrity.child_partition", t["cart_items"].num_rows + t["order_items"].num_rows)
        self._order_lines_unique(t["order_items"], found, part)
        full = {**t, "customers": self.state.customers_of(t["shopping_carts"]["customer_id"],
                                                          t["orders"]["customer_id"]),
                "product_catalog": self.state.products}
        found.count("integrity.foreign_key", sum(t[n].num_rows for n in SALES))
        found.count("integrity.has_lines", t["orders"].num_rows)
        for name, (table, _) in SALES_RULES.items():
            found.count(name, t[table].num_rows)
        for f in link_checks(full, SALES, DIMENSIONS) + line_checks(t) + sales_rules(full):
            found.add(f, part)
        self._spikes(t, reads, found, day, part)
        res.returned = [order_rows(t["orders"], self.returned).select(["order_id", "order_date", "net_total", DAY]),
                        order_rows(t["order_items"], self.returned).select(["order_id", "product_id", "quantity", DAY])]
        res.changed = order_rows(t["orders"], self.changed).select([*ORDER_COLUMNS, DAY])
        return res

    def _order_lines_unique(self, lines: pa.Table, found: Findings, part: str) -> None:
        """(order_id, product_id) unique, on numbers: lake-wide, since every line sits with its order."""
        found.count("keys.unique", lines.num_rows)
        products = self.state.cfg.generator.catalog_size
        key = id_numbers(lines["order_id"]) * (products + 1) + id_numbers(lines["product_id"])
        s = np.sort(key)
        if s.size and (s[1:] == s[:-1]).any():
            for f in unique_keys("order_items", lines, PRIMARY_KEY["order_items"]):
                found.add(f, part)

    def _spikes(self, t: dict[str, pa.Table], reads: dict[str, PartRead | None], found: Findings, day: int,
                part: str) -> None:
        """total_items is the sum of the order's line quantities, or (spike mess) a multiple of it for every order
        of the day, one day a month; each partition's manifest counts the spiked orders it holds."""
        o, mess = t["orders"], self.state.cfg.mess
        items, qty = id_numbers(o["total_items"]), _quantities(o, t["order_items"])
        spiked = items != qty
        if spiked.any():
            found.spike_days[day_partition(day)[:7]] += 1
            if not spiked.all():
                found.fail("mess.counts", "orders", f"spike hit {int(spiked.sum())} of the day's {spiked.size} orders",
                           partition=part)
        lo, hi = mess.spike_factor
        factor = items // np.maximum(qty, 1)
        plausible = (qty > 0) & (items % np.maximum(qty, 1) == 0) & (factor >= lo) & (factor <= hi)
        bad = spiked & ~(plausible & mess.advanced)
        if bad.any():
            found.fail("mess.counts", "orders", f"{int(bad.sum())} orders whose total_items is neither the sum of "
                       "their lines nor a spike of it", values_where(o["order_id"], bad), int(bad.sum()), part)
        orders, lines = reads["orders"], reads["order_items"]
        if orders is not None and orders.manifest is not None and orders.readable and lines is not None:
            recorded = orders.manifest.get("mess_counts", {}).get("total_items", {}).get("spike", 0)
            here = int(_spiked(orders.table_data(), lines.table_data()).sum())  # the partition's own orders
            if recorded != here:
                found.fail("mess.counts", "orders", f"total_items.spike: manifest {recorded}, data {here}",
                           partition=part)

    # ---- windows and the lake (driver) ----------------------------------------------------------------------

    def window(self, w: Window, results: list[DayResult]) -> None:
        found = self.state.found
        planned_rows(found, w, results, SALES)
        for r in results:
            found.merge(r.found)
            self.away += r.away
            for name, rows in zip(("orders", "order_items"), r.returned, strict=True):
                self.returned_rows[name].append(rows)
            self.changed_orders.append(r.changed)
        for name in ("shopping_carts", "cart_items", "orders"):
            ids = np.concatenate([r.ids[name] for r in results]) if results else np.array([], np.int64)
            days = np.concatenate([np.full(r.ids[name].size, r.day) for r in results]) if results else ids
            lo = w.first_ids[PLAN_FAMILY[name]]
            hi = lo + w.ids[PLAN_FAMILY[name]]
            check_ids(found, name, ids, days, lo, hi, lo, hi - 1, w.name, w.in_flight.get(name, 0))
            if name in self.day_of:
                day_of = self.day_of[name]
                ok = (ids > 0) & (ids < day_of.size)
                day_of[ids[ok]] = days[ok]

    def resolve_away(self) -> None:
        """Rows whose parent was not in their day: a parent elsewhere means a misplaced line, none a broken key."""
        for child, key, parent, rows in self.away:
            ids = id_numbers(rows[key])
            day_of = self.day_of[parent]
            ok = (ids > 0) & (ids < day_of.size)
            day = np.full(ids.size, -1, dtype=np.int32)
            day[ok] = day_of[ids[ok]]
            lost = day < 0
            where = rows[DAY].to_numpy(zero_copy_only=False)
            if lost.any():
                self.state.found.fail("integrity.foreign_key", child, f"{int(lost.sum())} rows whose {key} is not "
                                      f"in {parent}", values_where(rows[key], lost), int(lost.sum()),
                                      partitions_of(where[lost]))
            elsewhere = ~lost & (day != where)
            if child in LINES and elsewhere.any():
                self.state.found.fail("integrity.child_partition", child, f"{int(elsewhere.sum())} lines outside "
                                      f"their {key}'s partition", values_where(rows[PRIMARY_KEY[child][0]], elsewhere),
                                      int(elsewhere.sum()), partitions_of(where[elsewhere]))


def _quantities(orders: pa.Table, lines: pa.Table) -> np.ndarray:
    """Each order's units, summed over its lines."""
    return sum_by(lines["order_id"], id_numbers(lines["quantity"]), orders["order_id"].combine_chunks())


def _spiked(orders: pa.Table, lines: pa.Table) -> np.ndarray:
    """Orders whose total_items is not the sum of their lines' quantities."""
    return id_numbers(orders["total_items"]) != _quantities(orders, lines)


def order_rows(t: pa.Table, orders: np.ndarray) -> pa.Table:
    """Rows of `t` (orders or their lines) whose order is in `orders` (a set by ID number, see `id_set`): a hash
    set of every such order ID per day would cost more than the day; the checks that use them compare the full
    ID strings."""
    nums = id_numbers(t["order_id"])
    ok = (nums >= 0) & (nums < orders.size)
    mask = np.zeros(nums.size, dtype=bool)
    mask[ok] = orders[nums[ok]]
    return t.filter(pa.array(mask))
