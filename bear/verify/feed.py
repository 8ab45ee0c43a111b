"""The order feed as the audit reads it: each day's orders, lines and changes wherever the feed delivered them.

The feed lands a share of orders (with their lines and the customer_changes they cause) late, and
delivers a share twice (`bear.gen.delivery`). The passes judge a day's rows by their event day, so
for the feed's tables a day's data is gathered from the partitions of that day and the `lag` days
after it: the rows of that event day, each first delivery once. What the gathering sees is tallied
per partition (late first deliveries, re-delivered copies) and compared with the manifests' `delivery`
counts at the end; a copy must repeat its first delivery's values. A row the feed cannot have put
where it lies (before its event day, or more than `lag` days after it) stays with its partition's
day, where the passes' event-partition check reports it.
"""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pyarrow as pa

from bear.core.schemas import DELIVERED, DELIVERY_KINDS, EVENT_COLUMN, PRIMARY_KEY, REDELIVERED
from bear.lake.layout import day_partition
from bear.verify.checks import DAY_US, id_numbers, ts_micros
from bear.verify.findings import Findings
from bear.verify.partition import values_where
from bear.verify.read import DAY, LINEAGE, PartRead

CACHED = 256  # partitions' data kept for the days after theirs (a day gathers lag + 1 of each feed table)


def _key(t: pa.Table, table: str) -> np.ndarray:
    """Each row's primary key as one integer: the order number, and the product for a line (malformed IDs are -1,
    which the key checks report)."""
    key = id_numbers(t["order_id"])
    return key * (1 << 21) + id_numbers(t["product_id"]) if table == "order_items" else key


def _in_partition(order_id: pa.ChunkedArray, day: pa.ChunkedArray) -> np.ndarray:
    """(order number, partition day) as one integer."""
    return id_numbers(order_id) * 100_000 + day.to_numpy(zero_copy_only=False).astype(np.int64)


class Feed:
    """Gathers the feed's tables by event day; tallies what it saw per partition (thread-safe)."""

    def __init__(self, read, full, lag: int):
        self.read, self.lag = read, lag  # read(table, partition) -> PartRead | None
        self.full = full  # full(table, day) -> every column of a partition's rows (pa.Table | None)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int], pa.Table | None] = {}
        self.seen: dict[tuple[str, str], Counter] = {}  # (table, partition) -> kind -> rows the data shows
        self.recorded: dict[tuple[str, str], dict] = {}  # (table, partition) -> its manifest's delivery counts

    def _data(self, table: str, day: int, own: PartRead | None = None) -> pa.Table | None:
        key = (table, day)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        pr = own if own is not None else self.read(table, f"ingest_dt={day_partition(day)}")
        data = pr.table_data() if pr is not None and pr.readable else None
        if not self.lag:
            return data  # a day reads only its own partitions
        with self._lock:
            if len(self._cache) >= CACHED:
                for k in sorted(self._cache, key=lambda k: k[1])[:CACHED // 4]:
                    del self._cache[k]
            self._cache[key] = data
        return data

    def forget(self) -> None:
        """Drop the cached partitions (between passes: one pass's look-ahead is no use to the next)."""
        with self._lock:
            self._cache.clear()

    def _event_days(self, table: str, t: pa.Table, orders: pa.Table | None) -> np.ndarray:
        """Each row's event day; an order line's is its order's in the same partition (its own partition's day
        where that order is missing: the links checks report it)."""
        col = EVENT_COLUMN[table]
        if col is not None:
            return ts_micros(t[col]) // DAY_US
        own = t[DAY].to_numpy(zero_copy_only=False).astype(np.int64)
        if orders is None or not orders.num_rows:
            return own
        parents = _in_partition(orders["order_id"], orders[DAY])
        order = np.argsort(parents, kind="stable")
        keys = _in_partition(t["order_id"], t[DAY])
        pos = np.minimum(np.searchsorted(parents[order], keys), parents.size - 1)
        found = parents[order][pos] == keys
        days = ts_micros(orders["order_date"]) // DAY_US
        return np.where(found, days[order[pos]], own)

    def gather(self, tables: dict[str, pa.Table], reads: dict[str, PartRead | None], day: int,
               found: Findings) -> dict[str, pa.Table]:
        """`tables` (a day's data, read from its own partitions `reads`) with each feed table replaced by the
        first deliveries of the rows ordered on `day`, from that day's partition and the `lag` days after it, and
        the rows of its own partition the feed cannot have delivered there."""
        out = dict(tables)
        spans = {}
        for table in (t for t in DELIVERED if t in tables):
            parts = [self._data(table, d, reads.get(table) if d == day else None)
                     for d in range(day, day + self.lag + 1)]
            spans[table] = [p for p in parts if p is not None]
        for table, parts in spans.items():
            orders = pa.concat_tables(spans["orders"]) if table == "order_items" and spans.get("orders") else None
            t = pa.concat_tables(parts) if parts else tables[table]
            event = self._event_days(table, t, orders)
            lands = t[DAY].to_numpy(zero_copy_only=False).astype(np.int64)
            misplaced = (lands == day) & ((event > day) | (event < day - self.lag))
            mine = np.flatnonzero((event == day) | misplaced)
            t, lands = t.take(pa.array(mine)), lands[mine]
            first = self._first_deliveries(table, t, lands, found)
            self._tally(table, lands, first, day)
            out[table] = t.filter(pa.array(first))
        if "orders" in spans and "order_items" in spans:
            self._lines_with_orders(out["orders"], out["order_items"], day, found)
        for table, pr in reads.items():
            if table in DELIVERED and pr is not None and pr.manifest is not None:
                with self._lock:
                    self.recorded[(table, pr.partition)] = pr.manifest.get("delivery", {})
        return out

    def _first_deliveries(self, table: str, t: pa.Table, lands: np.ndarray, found: Findings) -> np.ndarray:
        """Which rows are not re-delivered copies (rows come in partition order): a copy is a later day's repeat of
        an order or line's key (a repeat on the same day, or of another table, is a duplicate key, which the
        passes report); it must repeat its first delivery's values."""
        first = np.ones(t.num_rows, dtype=bool)
        if not t.num_rows or table not in REDELIVERED:
            return first
        _, idx, codes = np.unique(_key(t, table), return_index=True, return_inverse=True)
        first = lands <= lands[idx][codes]  # rows come in partition order: idx holds each key's first delivery
        copies = np.flatnonzero(~first)
        found.count("feed.delivery", t.num_rows)
        if copies.size:
            self._same_values(table, t, lands, idx[codes[copies]], copies, found)
        return first

    def _same_values(self, table: str, t: pa.Table, lands: np.ndarray, originals: np.ndarray, copies: np.ndarray,
                     found: Findings) -> None:
        """Copies hold every value of their first delivery (all columns but lineage and the partition's: the
        partitions are read again whole, since the passes keep only the columns they check; rare, copies are)."""
        keys = _key(t, table)

        def rows(sel: np.ndarray) -> pa.Table | None:
            parts = []
            for d in np.unique(lands[sel]).tolist():
                whole = self.full(table, d)
                if whole is None:
                    return None  # unreadable: the file checks report it
                parts.append(whole.filter(pa.array(np.isin(_key(whole, table), keys[sel][lands[sel] == d]))))
            got = pa.concat_tables(parts, promote_options="default")
            return got.take(pa.array(np.argsort(_key(got, table), kind="stable")))

        a, b = rows(originals), rows(copies)
        if a is None or b is None or a.num_rows != b.num_rows:
            return
        names = [c for c in dict.fromkeys(a.column_names + b.column_names) if c not in (*LINEAGE, "ingest_dt")]
        differ = [c for c in names if not (a[c].equals(b[c]) if c in a.column_names and c in b.column_names
                                           else (a if c in a.column_names else b)[c].null_count == a.num_rows)]
        if differ:
            found.fail("feed.delivery", table, f"re-delivered copies differ from their first delivery in "
                       f"{', '.join(differ)}", values_where(b[PRIMARY_KEY[table][0]], np.ones(b.num_rows, bool)),
                       b.num_rows, f"ingest_dt={day_partition(int(lands[copies][0]))}")

    def _lines_with_orders(self, orders: pa.Table, lines: pa.Table, day: int, found: Findings) -> None:
        """A day's order lines sit in the partition their order landed in (a late order's lines land with it)."""
        if not orders.num_rows or not lines.num_rows:
            return
        onum, lnum = id_numbers(orders["order_id"]), id_numbers(lines["order_id"])
        order = np.argsort(onum, kind="stable")
        pos = np.minimum(np.searchsorted(onum[order], lnum), onum.size - 1)
        here = onum[order][pos] == lnum
        oday = orders[DAY].to_numpy(zero_copy_only=False)[order[pos]]
        bad = here & (oday != lines[DAY].to_numpy(zero_copy_only=False))
        if bad.any():
            found.fail("integrity.child_partition", "order_items", f"{int(bad.sum())} lines outside their order's "
                       "partition", values_where(lines["order_id"], bad), int(bad.sum()),
                       f"ingest_dt={day_partition(day)}")

    def _tally(self, table: str, lands: np.ndarray, first: np.ndarray, day: int) -> None:
        late = first & (lands > day)
        with self._lock:
            for kind, mask in (("late", late), ("redelivered", ~first)):
                for d, n in zip(*np.unique(lands[mask], return_counts=True), strict=True):
                    self.seen.setdefault((table, f"ingest_dt={day_partition(int(d))}"), Counter())[kind] += int(n)

    def check(self, found: Findings) -> None:
        """Every feed partition's manifest counts the late and re-delivered rows the data shows."""
        for key in sorted(set(self.seen) | set(self.recorded)):
            seen, recorded = self.seen.get(key, Counter()), self.recorded.get(key, {})
            wrong = [f"{k}: manifest {recorded.get(k, 0)}, data {seen.get(k, 0)}" for k in DELIVERY_KINDS
                     if recorded.get(k, 0) != seen.get(k, 0)]
            if wrong:
                found.fail("feed.delivery", key[0], "; ".join(wrong), partition=key[1])
