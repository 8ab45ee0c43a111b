"""The rules of the customers' history: a customer row is as at signup, and customer_changes only climbs.

Pure functions on Arrow tables like `bear.verify.checks` (whose helpers they use); the changes
pass (`bear.verify.changes`) and the dimensions pass run them on the lake read back.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bear.core.vocab import CHANGED, CLV_BUCKETS, EARNED_TIERS
from bear.verify.checks import Failure, examples, index_of, key_rows, ts_micros

CHANGE_RULES = {
    "integrity.change_order": ("customer_changes", "a change's order is its customer's, placed at valid_from, "
                                                   "with the change's CLV bucket"),
    "time.opening_at_start": ("customer_changes", "a change without an order is at the run's start, 00:00"),
    "time.change_after_signup": ("customer_changes", "no change before its customer's signup"),
    "history.never_down": ("customer_changes", "per customer, loyalty tier and CLV bucket never go down (no tier "
                                               "for a customer without one)"),
    "history.changed": ("customer_changes", "changed names what differs from the customer's previous values"),
}
CUSTOMER_RULES = {
    "history.customers_at_signup": ("customers", "a customer row as at signup: initial tier, CLV bucket Low"),
}
HISTORY_RULES = CHANGE_RULES | CUSTOMER_RULES


def customer_rules(cu: pa.Table) -> list[Failure]:
    """Customers are written once, as they signed up: the tier they started with and the lowest CLV bucket (later
    values are rows of customer_changes). clv_bucket carries stylistic mess, so it is compared trimmed and
    case-folded; the tiers carry none."""
    same = pc.fill_null(pc.equal(cu["loyalty_tier"], cu["initial_loyalty_tier"]), False).to_numpy(
        zero_copy_only=False) | (pc.is_null(cu["loyalty_tier"]).to_numpy(zero_copy_only=False)
                                 & pc.is_null(cu["initial_loyalty_tier"]).to_numpy(zero_copy_only=False))
    low = pc.fill_null(pc.equal(pc.utf8_lower(pc.utf8_trim_whitespace(cu["clv_bucket"])), "low"), False)
    bad = ~(same & low.to_numpy(zero_copy_only=False))
    if bad.any():
        return [Failure("history.customers_at_signup", "customers", f"{int(bad.sum())} customers whose tier is not "
                        "their initial tier or whose CLV bucket is not Low", examples(cu["customer_id"], bad),
                        int(bad.sum()))]
    return []


def change_rules(t: dict[str, pa.Table], start_us: int, unsettled_us: int | None = None) -> list[Failure]:
    """Rules of customer_changes (`start_us`: the run's start; `unsettled_us`: from when the feed may still have
    changes of the lake's last days on their way, None when it has none). `orders` needs only the orders the
    changes refer to and `customers` only their customers (customer_id, signup_date, initial_loyalty_tier); keys
    that resolve nowhere are the foreign-key check's, not these rules'."""
    return _change_orders(t) + _change_times(t, start_us) + _change_history(t, unsettled_us)


def _change_orders(t: dict[str, pa.Table]) -> list[Failure]:
    ch, orders = t["customer_changes"], t["orders"]
    idx = index_of(ch["order_id"], orders["order_id"])
    rows = np.flatnonzero(idx >= 0)
    if not rows.size:
        return []
    o = orders.take(pa.array(idx[rows]))
    other = ~pc.fill_null(pc.equal(ch["customer_id"].take(pa.array(rows)), o["customer_id"]), False).to_numpy(
        zero_copy_only=False)
    when = ts_micros(ch["valid_from"])[rows] != ts_micros(o["order_date"])
    # the order's CLV bucket is the one its spend earned, which the change says (the order's carries mess)
    bucket = ~pc.fill_null(pc.equal(pc.utf8_lower(ch["clv_bucket"].take(pa.array(rows))),
                                    pc.utf8_lower(pc.utf8_trim_whitespace(o["clv_bucket"]))), False).to_numpy(
        zero_copy_only=False)
    bad = np.zeros(ch.num_rows, dtype=bool)
    bad[rows] = other | when | bucket
    if bad.any():
        return [Failure("integrity.change_order", "customer_changes", f"{int(bad.sum())} changes whose order is "
                        f"another customer's ({int(other.sum())}), not placed at valid_from ({int(when.sum())}) or "
                        f"of another CLV bucket ({int(bucket.sum())})", examples(ch["order_id"], bad),
                        int(bad.sum()))]
    return []


def _change_times(t: dict[str, pa.Table], start_us: int) -> list[Failure]:
    out = []
    ch, cu = t["customer_changes"], t["customers"]
    valid = ts_micros(ch["valid_from"])
    bad = pc.is_null(ch["order_id"]).to_numpy(zero_copy_only=False) & (valid != start_us)
    if bad.any():
        out.append(Failure("time.opening_at_start", "customer_changes", f"{int(bad.sum())} changes without an order "
                           "not at the run's start", key_rows(ch.filter(pa.array(bad)).select(["customer_id",
                                                                                              "valid_from"])),
                           int(bad.sum())))
    idx = index_of(ch["customer_id"], cu["customer_id"])
    known = idx >= 0
    signup = ts_micros(pc.cast(cu["signup_date"], pa.timestamp("us")))
    bad = np.zeros(ch.num_rows, dtype=bool)
    bad[known] = valid[known] < signup[idx[known]]
    if bad.any():
        out.append(Failure("time.change_after_signup", "customer_changes", f"{int(bad.sum())} changes before their "
                           "customer's signup", key_rows(ch.filter(pa.array(bad)).select(["customer_id",
                                                                                          "valid_from"])),
                           int(bad.sum())))
    return out


def _ladder_rank(col: pa.ChunkedArray | pa.Array, ladder: tuple[str, ...]) -> np.ndarray:
    """Position on the ladder (lowest 0); null -1; a value off the ladder -2, below anything."""
    rank = pc.fill_null(pc.index_in(col, value_set=pa.array(ladder)), -2).to_numpy(zero_copy_only=False)
    return np.where(pc.is_null(col).to_numpy(zero_copy_only=False), -1, rank).astype(np.int64)


def _change_history(t: dict[str, pa.Table], unsettled_us: int | None) -> list[Failure]:
    """Each customer's changes in valid_from order, every row against the one before (the first against the
    customer's values at signup: its initial tier, CLV bucket Low). A change of the last days may follow one still
    in flight: from `unsettled_us` on, `changed` may name less than what differs from the row before (never more)."""
    ch, cu = t["customer_changes"], t["customers"]
    if ch.num_rows == 0:
        return []
    s = ch.take(pc.sort_indices(ch, sort_keys=[("customer_id", "ascending"), ("valid_from", "ascending")]))
    idx = index_of(s["customer_id"], cu["customer_id"])
    known = idx >= 0
    first = np.ones(s.num_rows, dtype=bool)
    first[1:] = ~pc.fill_null(pc.equal(s["customer_id"][1:], s["customer_id"][:-1]), False).to_numpy(
        zero_copy_only=False)
    tier, clv = _ladder_rank(s["loyalty_tier"], EARNED_TIERS), _ladder_rank(s["clv_bucket"], CLV_BUCKETS)
    initial = np.full(s.num_rows, -1, dtype=np.int64)
    initial[known] = _ladder_rank(cu["initial_loyalty_tier"], EARNED_TIERS)[idx[known]]
    prev_tier, prev_clv = np.roll(tier, 1), np.roll(clv, 1)
    prev_tier[first], prev_clv[first] = initial[first], 0
    out = []
    down = known & ((tier < prev_tier) | (clv < prev_clv) | ((tier == -1) != (initial == -1)))
    if down.any():
        out.append(Failure("history.never_down", "customer_changes", f"{int(down.sum())} changes to a lower or "
                           "unknown tier or CLV bucket, or a tier for a customer without one (or none for one with)",
                           key_rows(s.filter(pa.array(down)).select(["customer_id", "valid_from"])),
                           int(down.sum())))
    moved = (tier != prev_tier).astype(np.int64) + 2 * (clv != prev_clv) - 1
    said = pc.fill_null(pc.index_in(s["changed"], value_set=pa.array(CHANGED)), -1).to_numpy(zero_copy_only=False)
    wrong = known & ((said != moved) | (moved < 0))
    if unsettled_us is not None:  # as bits: 1 loyalty_tier, 2 clv_bucket
        late = ts_micros(s["valid_from"]) >= unsettled_us
        wrong &= ~(late & (said >= 0) & (moved >= 0) & (((said + 1) & (moved + 1)) == said + 1))
    if wrong.any():
        out.append(Failure("history.changed", "customer_changes", f"{int(wrong.sum())} changes whose `changed` is not "
                           "what differs from the customer's previous values (or where nothing does)",
                           key_rows(s.filter(pa.array(wrong)).select(["customer_id", "valid_from"])),
                           int(wrong.sum())))
    return out
