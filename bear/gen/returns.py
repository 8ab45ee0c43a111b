"""Which orders come back, when, and which of their lines.

Decided from draws keyed by the order's cart (customer, visit) and line number, so the
planner can count returns and return items without building any rows, and the chunk that
owns the return's date can rebuild exactly those rows later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bear.core.calendar import DAY_S
from bear.gen.baskets import lex_order, line_positions, line_quantities
from bear.gen.lookups import Customers
from bear.gen.model import Model
from bear.gen.rng import Key


@dataclass
class ReturnPlan:
    """Returns of a set of orders; `order` indexes the orders passed in."""

    order: np.ndarray
    seq: np.ndarray  # 0: first return of the order, 1: second
    seconds: np.ndarray
    item_ret: np.ndarray  # per returned line: index into the returns above
    item_line: np.ndarray  # the order line returned
    item_qty: np.ndarray


def _at_least_one(chosen: np.ndarray, eligible: np.ndarray, u: np.ndarray, owner: np.ndarray, k: int) -> np.ndarray:
    """Where a group has eligible lines but none chosen, choose its eligible line with the smallest u.

    `owner` is sorted (a group's lines are consecutive), so group minima need no sort.
    """
    out = chosen.copy()
    if not owner.size:
        return out
    score = np.where(eligible, u, np.inf)
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    run = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, owner.size]))
    low = np.minimum.reduceat(score, starts)
    cand = np.flatnonzero((score == low[run]) & np.isfinite(score))
    first = np.ones(cand.size, dtype=bool)
    first[1:] = run[cand][1:] != run[cand][:-1]
    best = cand[first]  # the first minimum of each group
    has = np.bincount(owner[chosen], minlength=k) > 0
    out[best[~has[owner[best]]]] = True
    return out


def first_returns(model: Model, cust: Customers, c: np.ndarray, key: Key,
                  order_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which orders (of customers `c`, cart visit keys `key`) come back: their positions, and the days from the
    order to the first return."""
    rng = model.rng
    rate = model.return_rate[cust.channel[c]] * model.at_day(model.return_day, order_s // DAY_S)
    o = np.flatnonzero(rng.uniform("return/returned", key) < rate)
    k = rng.choice("return/timing", model.timing_cum, key[o])
    return o, rng.integers("return/delay", model.timing_lo[k], model.timing_hi[k], key[o])


def plan_returns(model: Model, cust: Customers, c: np.ndarray, key: Key, n_lines: np.ndarray,
                 order_s: np.ndarray) -> ReturnPlan:
    """Returns (dated no later than the run's end) of orders identified by customer `c` and cart visit `key`."""
    rng = model.rng
    o, delay1 = first_returns(model, cust, c, key, order_s)
    ok = key[o]
    second = (rng.uniform("return/second", ok) < model.second_return_share) & (delay1 < 365)
    delay2 = delay1 + rng.integers("return/delay2", 1, np.maximum(365 - delay1, 1), ok)

    owner, j = line_positions(n_lines[o])
    lk = rng.key(ok[owner], j)  # the same line keys build_lines derives
    u1 = rng.uniform("return/line1", lk)
    every = np.ones(owner.size, dtype=bool)
    sel1 = _at_least_one(u1 < model.line_share, every, u1, owner, o.size)
    u2 = rng.uniform("return/line2", lk)
    remaining = ~sel1
    second &= np.bincount(owner[remaining], minlength=o.size) > 0
    sel2 = _at_least_one(remaining & (u2 < model.line_share), remaining, u2, owner, o.size) & second[owner]

    order_day = order_s[o] // DAY_S
    ret_order = np.concatenate([o, o[second]])
    seq = np.concatenate([np.zeros(o.size, np.int64), np.ones(int(second.sum()), np.int64)])
    day = np.concatenate([order_day + delay1, (order_day + delay2)[second]])
    seconds = day * DAY_S + rng.integers("return/time", 0, DAY_S - 1, key[ret_order], seq)
    keep = day <= model.end_day
    # canonical order: by order position (orders come in canonical order), then seq
    idx = np.flatnonzero(keep)
    idx = idx[lex_order(ret_order[idx], seq[idx])]
    new_pos = np.full(ret_order.size, -1)
    new_pos[idx] = np.arange(idx.size)

    pos_of_first = np.arange(o.size)  # first return of returned order i is row i before filtering
    pos_of_second = np.full(o.size, -1)
    pos_of_second[np.flatnonzero(second)] = o.size + np.arange(int(second.sum()))
    item_ret = np.concatenate([pos_of_first[owner[sel1]], pos_of_second[owner[sel2]]])
    item_line = np.concatenate([j[sel1], j[sel2]])
    item_ret = new_pos[item_ret]
    live = item_ret >= 0
    item_ret, item_line = item_ret[live], item_line[live]
    item_order = lex_order(item_ret, item_line)
    item_ret, item_line = item_ret[item_order], item_line[item_order]
    ro = ret_order[idx]
    item_key = rng.key(key[ro][item_ret], item_line)
    qty = line_quantities(model, cust, c[ro][item_ret], item_key)
    item_qty = rng.integers("return/qty", 1, qty, item_key)
    return ReturnPlan(ro, seq[idx], seconds[idx], item_ret, item_line, item_qty)
