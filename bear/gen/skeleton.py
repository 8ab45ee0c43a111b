"""The skeleton pass over one shard of customers: every chunk's visits, counts and returns, without a string.

A customer's visits carry from chunk to chunk (the next visit, the spell, whether they
have bought, what they have spent), but every draw is keyed by (customer, visit), so
customers are independent: the population splits into contiguous shards [lo, hi) that
walk the whole calendar in parallel, each carrying only its own customers' state. For each
chunk a shard yields two things: `ShardCounts`, small and additive over shards (what the
driver needs to reserve the chunk's ID blocks and to list its partitions), and
`ShardPiece`, the shard's part of the chunk's work (its visits, buyers' spend so far, and
the sort keys of its orders and returns that numbering needs), which goes to the object
store and from there to the jobs, never through the driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bear.core.calendar import DAY_S, day_to_date
from bear.core.columns import Columns
from bear.core.schemas import DAILY, DELIVERED, PLAN_FAMILY
from bear.gen.baskets import add_spend, build_window, orders_in_order, running_spend
from bear.gen.delivery import delivery
from bear.gen.lookups import Customers, Products, change_codes
from bear.gen.model import Model
from bear.gen.returns import plan_returns
from bear.gen.visits import Visits, VisitState, advance, initial_state


@dataclass(frozen=True)
class Chunk:
    index: int
    start_day: int
    end_day: int

    @property
    def name(self) -> str:
        return f"{day_to_date(self.start_day)}..{day_to_date(self.end_day)}"


def make_chunks(start_day: int, end_day: int, chunk_days: int, first_index: int = 0) -> list[Chunk]:
    return [
        Chunk(i, s, min(s + chunk_days - 1, end_day))
        for i, s in enumerate(range(start_day, end_day + 1, chunk_days), start=first_index)
    ]


def chunk_of(chunks: list[Chunk], day: np.ndarray) -> np.ndarray:
    """Index of the chunk each day falls in."""
    return np.searchsorted(np.array([c.start_day for c in chunks]), day, side="right") - 1


FAMILIES = tuple(PLAN_FAMILY[t] for t in DAILY)  # what a chunk counts: carts, cart_items, ... customer_changes


@dataclass
class ShardCounts:
    """One shard's share of one chunk, summed over shards by the driver."""

    day_rows: np.ndarray  # int64 [family (FAMILIES order), day of the chunk]: rows dated that day (its ID blocks)
    due: np.ndarray  # sorted indices of the chunks that the returns of its orders are dated in
    # int64 [DELIVERED]: rows of its orders the feed delivers only after the run's end, and re-delivered copies it
    # delivers by then
    in_flight: np.ndarray
    redelivered: np.ndarray
    landed: np.ndarray  # int64 [DELIVERED, day of the chunk]: the feed's rows that land that day (its partitions)


@dataclass
class OrderKeys(Columns):
    """Orders of one chunk (a shard's, or all of them), in order-ID order; the ID order is (seconds, cust, vidx)."""

    cust: np.ndarray
    vidx: np.ndarray
    seconds: np.ndarray
    net_c: np.ndarray  # what the order paid: carries the customer's spend from one day to the next


@dataclass
class ShardReturns:
    """Returns of a shard's orders of one chunk, in (order, seq) order."""

    order: np.ndarray  # index into the shard's OrderKeys
    seq: np.ndarray
    seconds: np.ndarray
    n_items: np.ndarray


@dataclass
class ShardPiece:
    """One shard's part of one chunk's work."""

    visits: Visits  # its carts, in no particular order
    buyers: np.ndarray  # sorted global indices of its customers who order in the chunk
    buyer_spend_c: np.ndarray  # their cumulative net spend before the chunk
    orders: OrderKeys
    returns: ShardReturns
    # The run's first chunk only: customers who had spent before the run's start, and how much (their tier and
    # CLV bucket at the start open the customer_changes history).
    opening: np.ndarray
    opening_spend_c: np.ndarray


WARM_UP_DAYS = 90  # history before the run is walked in windows this long, so memory stays bounded


def warm_up(model: Model, cust: Customers, products: Products, lo: int, hi: int) -> VisitState:
    """State of customers [lo, hi) at the run's start: visits before it happened, but only their spend is kept."""
    state = initial_state(model, cust, lo, hi)
    for end in range(model.cal_day0 + WARM_UP_DAYS - 1, model.start_day - 1 + WARM_UP_DAYS, WARM_UP_DAYS):
        visits = advance(model, state, min(end, model.start_day - 1))
        add_spend(state, build_window(model, cust, products, visits, all_lines=False))
    return state


def walk_shard(model: Model, cust: Customers, products: Products, chunks: list[Chunk], lo: int, hi: int,
               pieces: bool = True) -> Iterator[ShardCounts | ShardPiece]:
    """For each chunk in order its ShardCounts, then (if `pieces`) its ShardPiece."""
    state = warm_up(model, cust, products, lo, hi)
    day0 = chunks[0].start_day
    n_days = chunks[-1].end_day - day0 + 1
    due = np.zeros((2, n_days), dtype=np.int64)  # per day of the run: returns (and items) dated then, so far
    land = np.zeros((len(DELIVERED), n_days + model.max_lag + 1), dtype=np.int64)  # the feed's rows landing then
    for chunk in chunks:
        counts, piece = _step(model, cust, products, chunks, chunk, state, due, land, pieces)
        yield counts  # a step's working arrays are gone by now: a shard holds its state and one piece
        if pieces:
            yield piece


def _step(model: Model, cust: Customers, products: Products, chunks: list[Chunk], chunk: Chunk, state: VisitState,
          due: np.ndarray, land: np.ndarray, pieces: bool) -> tuple[ShardCounts, ShardPiece | None]:
    """Advance the shard through `chunk`: its counts, and its piece if `pieces`."""
    lo, day0 = state.lo, chunks[0].start_day
    opening = np.flatnonzero(state.spend_c > 0) if chunk.start_day == model.start_day else np.array([], np.int64)
    opening_spend_c = state.spend_c[opening]
    visits = advance(model, state, chunk.end_day)
    bought = np.zeros(len(state.spend_c), dtype=bool)
    bought[visits.cust[visits.converted] - lo] = True
    buyers = np.flatnonzero(bought)
    buyer_spend_c = state.spend_c[buyers]
    win = build_window(model, cust, products, visits, all_lines=False)
    vs = win.visits
    conv = orders_in_order(win)
    oc, net_c = vs.cust[conv], (win.cart_gross_c - win.cart_discount_c)[conv]
    spent_c = running_spend(oc, win.order_seconds[conv], net_c, state.spend_c[oc - lo])
    changed = change_codes(model, cust.tier[oc], spent_c - net_c, spent_c) >= 0
    opened = change_codes(model, cust.tier[opening + lo], np.zeros(opening.size, np.int64), opening_spend_c) >= 0
    add_spend(state, win)
    rp = plan_returns(model, cust, vs.cust[conv], win.key[conv], win.n_lines[conv], win.order_seconds[conv])
    n_items = np.bincount(rp.item_ret, minlength=len(rp.order))
    ret_day = rp.seconds // DAY_S - day0
    np.add.at(due[0], ret_day, 1)
    np.add.at(due[1], ret_day, n_items)
    days = slice(chunk.start_day - day0, chunk.end_day - day0 + 1)
    cart_day, order_day = vs.seconds // DAY_S - chunk.start_day, win.order_seconds[conv] // DAY_S - chunk.start_day
    width = chunk.end_day - chunk.start_day + 1
    day_rows = np.stack([
        np.bincount(cart_day, minlength=width), np.bincount(cart_day, win.n_lines, minlength=width),
        np.bincount(order_day, minlength=width), np.bincount(order_day, win.n_lines[conv], minlength=width),
        due[0, days], due[1, days],
        np.bincount(order_day, changed, minlength=width) + np.eye(1, width, dtype=np.int64)[0] * opened.sum(),
    ]).astype(np.int64)
    d = delivery(model, cust, oc, win.key[conv], win.order_seconds[conv])
    day = order_day + chunk.start_day
    late, again = day + d.lag > model.end_day, (d.copy_lag >= 0) & (day + d.copy_lag <= model.end_day)
    lines = win.n_lines[conv]
    first, copy = day + d.lag - day0, (day + d.copy_lag - day0)[d.copy_lag >= 0]
    for f, (n, copies) in enumerate(((1, 1), (lines, lines[d.copy_lag >= 0]), (changed, 0))):
        np.add.at(land[f], first, n)
        np.add.at(land[f], copy, copies)
    landed = land[:, days].copy()
    landed[2, 0] += opened.sum()  # the run's first day: the opening changes
    counts = ShardCounts(day_rows, np.unique(chunk_of(chunks, ret_day + day0)),
                         np.array([late.sum(), lines[late].sum(), (changed & late).sum()], dtype=np.int64),
                         np.array([again.sum(), lines[again].sum(), 0], dtype=np.int64), landed)
    if not pieces:
        return counts, None
    i32 = np.int32  # customer, visit and order indices travel as int32: a third less to store and move
    orders = OrderKeys(oc.astype(i32), vs.vidx[conv].astype(i32), win.order_seconds[conv], net_c)
    small = Visits(visits.cust.astype(i32), visits.vidx.astype(i32), visits.seconds, visits.react, visits.converted)
    returns = ShardReturns(rp.order.astype(i32), rp.seq.astype(np.int8), rp.seconds, n_items.astype(i32))
    return counts, ShardPiece(small, (buyers + lo).astype(i32), buyer_spend_c, orders, returns,
                              (opening + lo).astype(i32), opening_spend_c)
