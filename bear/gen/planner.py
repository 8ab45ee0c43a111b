"""From the shards' skeleton pass to chunk plans, ID blocks and each chunk's work.

The shards (`bear.gen.skeleton`) each walk the whole calendar for their customers. What
needs the whole population is small and done here, per chunk, by pure functions:
`plan_chunk` sums the shards' counts and reserves the chunk's contiguous ID blocks (the
driver's only job); `date_returns` gives the returns of the chunk's orders their order IDs,
which depend on where each order falls among all shards' (IDs rise with time), and splits
them by the chunk they are dated in; `chunk_work` puts a chunk's shard pieces and the
returns dated in it together into what the generator takes, numbering those returns
(`number_returns`: by return time, so no ID depends on the run's end). A chunk's work
depends only on the chunk's volume, never on the run's length or on the number of shards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

import numpy as np

from bear.core.calendar import DAY_S
from bear.core.columns import Columns
from bear.core.schemas import DELIVERED, ID_FAMILIES
from bear.gen.baskets import lex_order
from bear.gen.skeleton import FAMILIES, Chunk, OrderKeys, ShardCounts, ShardPiece, chunk_of
from bear.gen.visits import Visits


@dataclass
class DatedReturns(Columns):
    """Returns dated in one chunk, of orders of one chunk: identified by their order's cart, with the order's ID."""

    order_id: np.ndarray
    cust: np.ndarray
    vidx: np.ndarray
    seq: np.ndarray
    seconds: np.ndarray
    order_seconds: np.ndarray
    n_items: np.ndarray

    @classmethod
    def empty(cls) -> Self:
        return cls(*(np.array([], dtype=np.int64) for _ in cls.__dataclass_fields__))

    def __len__(self) -> int:
        return len(self.order_id)


@dataclass
class ReturnsDue(DatedReturns):
    """The returns a chunk writes (dated inside it), in ID order, with their IDs."""

    return_id: np.ndarray
    first_item_id: np.ndarray


@dataclass
class ChunkPlan:
    chunk: Chunk
    first_ids: dict[str, int]
    rows: dict[str, int]  # rows the chunk writes per family: the size of its ID blocks
    # The same rows per day of the chunk (index 0 = start_day): which partitions get data files (dry run).
    day_rows: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    due: list[int] = field(default_factory=list)  # the chunks the returns of its orders are dated in, ascending
    # The feed's rows of its orders per family (DELIVERED): those it delivers only after the run's end
    # (missing until an extension lands them) and the re-delivered copies it delivers by then. Not in the record:
    # both depend on the run's end.
    feed: dict[str, dict[str, int]] = field(default_factory=dict)
    # The feed's rows per family landing on each day of the chunk (what its partitions hold; dry run).
    landed: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def record(self) -> dict:
        """The chunk as the run's plan document lists it (plain JSON values)."""
        start, end = self.chunk.name.split("..")
        return {"index": self.chunk.index, "start": start, "end": end, "first_ids": self.first_ids,
                "ids": {f: self.rows[f] for f in ID_FAMILIES}, "rows": self.rows}


@dataclass
class ChunkWork:
    plan: ChunkPlan
    visits: Visits = field(repr=False)  # the chunk's carts, in no particular order
    buyers: np.ndarray = field(repr=False)  # sorted customers who order in the chunk
    buyer_spend_c: np.ndarray = field(repr=False)  # their cumulative net spend before the chunk
    due: ReturnsDue = field(repr=False)
    orders: OrderKeys = field(repr=False)  # the chunk's orders (what they paid moves spend from day to day)
    opening: np.ndarray = field(repr=False)  # the run's first day only: customers with spend before the start
    opening_spend_c: np.ndarray = field(repr=False)
    # The works of the chunks before it that the feed's late and re-delivered rows come from (`landing_windows`).
    before: list[ChunkWork] = field(default_factory=list, repr=False)


def plan_chunk(chunk: Chunk, next_id: dict[str, int], shards: list[ShardCounts]) -> ChunkPlan:
    """The chunk's plan from every shard's counts; its ID blocks (one ID per row it writes: IDs follow the rows'
    time) start at `next_id`, which moves past them."""
    day_rows = np.sum([s.day_rows for s in shards], axis=0)
    rows = {f: int(n) for f, n in zip(FAMILIES, day_rows.sum(axis=1).tolist(), strict=True)}
    first = {f: next_id[f] for f in ID_FAMILIES}
    for f in ID_FAMILIES:
        next_id[f] += rows[f]
    due = np.unique(np.concatenate([s.due for s in shards])).tolist()
    feed = {kind: dict(zip(DELIVERED, np.sum([getattr(s, kind) for s in shards], axis=0).tolist(), strict=True))
            for kind in ("in_flight", "redelivered")}
    landed = np.sum([s.landed for s in shards], axis=0)
    return ChunkPlan(chunk, first, rows, dict(zip(FAMILIES, day_rows, strict=True)), due, feed,
                     dict(zip(DELIVERED, landed, strict=True)))


def date_returns(plan: ChunkPlan, chunks: list[Chunk], pieces: list[ShardPiece]) -> list[DatedReturns]:
    """The returns of the chunk's orders with their order IDs, one part per chunk in `plan.due` (where they are
    dated). Order IDs follow (order time, customer, visit) across all shards, so they need every shard's orders."""
    cust = np.concatenate([p.orders.cust for p in pieces]).astype(np.int64)
    vidx = np.concatenate([p.orders.vidx for p in pieces]).astype(np.int64)
    osec = np.concatenate([p.orders.seconds for p in pieces])
    rank = np.empty(cust.size, dtype=np.int64)
    rank[lex_order(osec, cust, vidx)] = np.arange(cust.size)
    offsets = np.cumsum([0] + [p.orders.cust.size for p in pieces])
    order = np.concatenate([p.returns.order.astype(np.int64) + off
                            for p, off in zip(pieces, offsets[:-1].tolist(), strict=True)])
    seconds = np.concatenate([p.returns.seconds for p in pieces])
    dated = DatedReturns(
        order_id=plan.first_ids["orders"] + rank[order],
        cust=cust[order],
        vidx=vidx[order],
        seq=np.concatenate([p.returns.seq for p in pieces]).astype(np.int64),
        seconds=seconds,
        order_seconds=osec[order],
        n_items=np.concatenate([p.returns.n_items for p in pieces]).astype(np.int64),
    )
    dated_in = chunk_of(chunks, seconds // DAY_S)
    return [dated.take(np.flatnonzero(dated_in == k)) for k in plan.due]


def number_returns(plan: ChunkPlan, dated: list[DatedReturns]) -> ReturnsDue:
    """The returns dated in the chunk (from the chunks of their orders) in ID order with their IDs: return IDs
    follow (return time, order ID, seq), so they rise with time whatever the chunking or the run's end, and a
    return's items take consecutive IDs."""
    due = DatedReturns.concat(dated) if dated else DatedReturns.empty()
    due = due.take(lex_order(due.seconds, due.order_id, due.seq))
    first = plan.first_ids
    return ReturnsDue(*(getattr(due, f) for f in DatedReturns.__dataclass_fields__),
                      return_id=first["returns"] + np.arange(len(due)),
                      first_item_id=first["return_items"] + np.cumsum(due.n_items) - due.n_items)


def chunk_work(plan: ChunkPlan, pieces: list[ShardPiece], dated: list[DatedReturns],
               before: list[ChunkWork] | None = None) -> ChunkWork:
    """A chunk's work from its shards' pieces (in shard order), the returns dated in it and the works of the chunks
    it looks back into."""
    visits = Visits.concat([p.visits for p in pieces])
    visits.cust, visits.vidx = visits.cust.astype(np.int64), visits.vidx.astype(np.int64)  # as the generator draws
    return ChunkWork(
        plan,
        visits,
        np.concatenate([p.buyers for p in pieces]).astype(np.int64),
        np.concatenate([p.buyer_spend_c for p in pieces]),
        number_returns(plan, dated),
        OrderKeys.concat([p.orders for p in pieces]),
        np.concatenate([p.opening for p in pieces]).astype(np.int64),
        np.concatenate([p.opening_spend_c for p in pieces]),
        before or [],
    )


def lookback(plans: list[ChunkPlan], index: int, lag: int) -> list[int]:
    """The chunks before chunk `index` whose days lie within `lag` days before its start: where the rows the feed
    delivers in it late (or again) were ordered."""
    start = plans[index].chunk.start_day
    return [j for j in range(index) if plans[j].chunk.end_day >= start - lag]


def landing_windows(work: ChunkWork, first_day: int, last_day: int, lag: int) -> list[tuple[ChunkWork, bool]]:
    """What to generate for the rows that land on days [first_day, last_day] of `work`'s chunk, each with whether
    only the order feed's rows are wanted of it: those days whole, and the `lag` days before them (in this chunk or
    the ones before it), whose late and re-delivered orders land here."""
    out = []
    for w in [*work.before, work]:
        start, end = w.plan.chunk.start_day, w.plan.chunk.end_day
        for a, b, feed_only in ((max(first_day - lag, start), min(first_day - 1, end), True),
                                (max(first_day, start), min(last_day, end), False)):
            if a <= b:
                out.append((w if (a, b) == (start, end) else day_window(w, a, b), feed_only))
    return out


def day_batches(plan: ChunkPlan, max_rows: int) -> list[tuple[int, int]]:
    """The chunk's days in consecutive groups of at most `max_rows` rows (a bigger day is a group of its own)."""
    per_day = np.sum(list(plan.day_rows.values()), axis=0).tolist()
    groups: list[tuple[int, int]] = []
    first, rows = plan.chunk.start_day, 0
    for day, n in enumerate(per_day, start=plan.chunk.start_day):
        if rows and rows + n > max_rows:
            groups.append((first, day - 1))
            first, rows = day, 0
        rows += n
    return [*groups, (first, plan.chunk.end_day)]


def day_window(work: ChunkWork, first_day: int, last_day: int) -> ChunkWork:
    """The part of a chunk dated in days [first_day, last_day], with the IDs and spend so far it would have as a
    chunk of its own: a job generates a big chunk a few days at a time, and since no row depends on how the
    calendar is cut into chunks, the rows are the same."""
    plan = work.plan
    before = slice(0, first_day - plan.chunk.start_day)
    inside = slice(first_day - plan.chunk.start_day, last_day - plan.chunk.start_day + 1)
    first = dict(plan.first_ids)
    for family in ("carts", "cart_items", "orders"):
        first[family] += int(plan.day_rows[family][before].sum())
    day = work.orders.seconds // DAY_S
    earlier = np.flatnonzero(day < first_day)
    spend = work.buyer_spend_c.copy()
    np.add.at(spend, np.searchsorted(work.buyers, work.orders.cust[earlier]), work.orders.net_c[earlier])

    def dated(seconds: np.ndarray) -> np.ndarray:
        return np.flatnonzero((seconds // DAY_S >= first_day) & (seconds // DAY_S <= last_day))

    window = ChunkPlan(Chunk(plan.chunk.index, first_day, last_day), first, plan.rows,
                       {f: rows[inside] for f, rows in plan.day_rows.items()}, plan.due)
    opening = slice(None) if first_day == plan.chunk.start_day else slice(0, 0)
    return ChunkWork(window, work.visits.take(dated(work.visits.seconds)), work.buyers, spend,
                     work.due.take(dated(work.due.seconds)), work.orders.take(dated(work.orders.seconds)),
                     work.opening[opening], work.opening_spend_c[opening])
