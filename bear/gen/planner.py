"""The planner's skeleton pass: chunks, exact row counts and contiguous ID blocks.

One sequential walk over the calendar carries every customer's visit state and spend
from chunk to chunk without building a single string. For each chunk it yields the
chunk's visits, what its buyers had spent before it, the first ID of each family, and the
returns (from this or earlier chunks' orders) dated inside it, which is everything a
worker needs to generate the chunk on its own, in any order, any number of times. A
chunk's work holds only that chunk's visits, never every customer's state, so what a
worker receives depends on the chunk's volume, not on the run's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from bear.core.calendar import DAY_S, day_to_date
from bear.core.schemas import ID_FAMILIES
from bear.gen.baskets import add_spend, build_window, orders_in_order
from bear.gen.lookups import Customers, Products
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


def make_chunks(start_day: int, end_day: int, chunk_days: int) -> list[Chunk]:
    return [
        Chunk(i, s, min(s + chunk_days - 1, end_day))
        for i, s in enumerate(range(start_day, end_day + 1, chunk_days))
    ]


@dataclass
class ReturnsDue:
    """Returns to be written in a chunk (dated inside it), identified by their order's cart."""

    return_id: np.ndarray
    first_item_id: np.ndarray
    order_id: np.ndarray
    cust: np.ndarray
    vidx: np.ndarray
    seq: np.ndarray
    seconds: np.ndarray
    order_seconds: np.ndarray
    n_items: np.ndarray

    @classmethod
    def empty(cls) -> ReturnsDue:
        return cls(*(np.array([], dtype=np.int64) for _ in range(9)))

    def take(self, idx: np.ndarray) -> ReturnsDue:
        return ReturnsDue(*(a[idx] for a in self.__dict__.values()))

    @staticmethod
    def concat(parts: list[ReturnsDue]) -> ReturnsDue:
        return ReturnsDue(*(np.concatenate([getattr(p, f) for p in parts]) for f in ReturnsDue.empty().__dict__))

    def __len__(self) -> int:
        return len(self.return_id)


@dataclass
class ChunkPlan:
    chunk: Chunk
    first_ids: dict[str, int]
    counts: dict[str, int]  # ID-family sizes of the chunk's block (returns: of its orders)
    rows: dict[str, int]  # rows the chunk writes (returns: dated inside it)
    # The same rows per day of the chunk (index 0 = start_day): which partitions get data files (dry run).
    day_rows: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def record(self) -> dict:
        """The chunk as the run's plan document lists it (plain JSON values)."""
        start, end = self.chunk.name.split("..")
        return {"index": self.chunk.index, "start": start, "end": end, "first_ids": self.first_ids,
                "ids": self.counts, "rows": self.rows}


@dataclass
class ChunkWork:
    plan: ChunkPlan
    visits: Visits = field(repr=False)  # the chunk's carts, in no particular order
    buyers: np.ndarray = field(repr=False)  # sorted customers who order in the chunk
    buyer_spend_c: np.ndarray = field(repr=False)  # their cumulative net spend before the chunk
    due: ReturnsDue = field(repr=False)


WARM_UP_DAYS = 90  # history before the run is walked in windows this long, so memory stays bounded


def warm_up(model: Model, cust: Customers, products: Products) -> VisitState:
    """State at the run's start: visits before it happened, but only their spend is kept."""
    state = initial_state(model, cust)
    for end in range(model.cal_day0 + WARM_UP_DAYS - 1, model.start_day - 1 + WARM_UP_DAYS, WARM_UP_DAYS):
        visits = advance(model, state, min(end, model.start_day - 1))
        add_spend(state.spend_c, build_window(model, cust, products, visits, all_lines=False))
    return state


def walk(model: Model, cust: Customers, products: Products, chunks: list[Chunk],
         final: list[VisitState] | None = None) -> Iterator[ChunkWork]:
    """Yield every chunk's work in order; the state after the last chunk is appended to `final`."""
    state = warm_up(model, cust, products)
    next_id = dict.fromkeys(ID_FAMILIES, 1)
    pending = ReturnsDue.empty()
    for chunk in chunks:
        visits = advance(model, state, chunk.end_day)
        bought = np.zeros(len(cust), dtype=bool)
        bought[visits.cust[visits.converted]] = True
        buyers = np.flatnonzero(bought)
        buyer_spend_c = state.spend_c[buyers]
        win = build_window(model, cust, products, visits, all_lines=False)
        add_spend(state.spend_c, win)
        vs = win.visits
        conv = orders_in_order(win)
        rp = plan_returns(model, cust, vs.cust[conv], win.key[conv], win.n_lines[conv], win.order_seconds[conv])
        n_items = np.bincount(rp.item_ret, minlength=len(rp.order))
        counts = {
            "carts": len(vs.cust),
            "cart_items": int(win.n_lines.sum()),
            "orders": conv.size,
            "order_items": int(win.n_lines[conv].sum()),
            "returns": len(rp.order),
            "return_items": int(n_items.sum()),
        }
        first = dict(next_id)
        for fam in ID_FAMILIES:
            next_id[fam] += counts[fam]
        ro = conv[rp.order]
        mine = ReturnsDue(
            return_id=first["returns"] + np.arange(len(rp.order)),
            first_item_id=first["return_items"] + np.cumsum(n_items) - n_items,
            order_id=first["orders"] + rp.order,
            cust=vs.cust[ro],
            vidx=vs.vidx[ro],
            seq=rp.seq,
            seconds=rp.seconds,
            order_seconds=win.order_seconds[ro],
            n_items=n_items,
        )
        pending = ReturnsDue.concat([pending, mine])
        now = pending.seconds < (chunk.end_day + 1) * DAY_S
        due, pending = pending.take(np.flatnonzero(now)), pending.take(np.flatnonzero(~now))
        rows = dict(counts, returns=len(due), return_items=int(due.n_items.sum()))
        n_days = chunk.end_day - chunk.start_day + 1
        cart_day, order_day = vs.seconds // DAY_S - chunk.start_day, win.order_seconds[conv] // DAY_S - chunk.start_day
        return_day = due.seconds // DAY_S - chunk.start_day
        day_rows = {
            fam: np.bincount(day, weights, minlength=n_days).astype(np.int64)
            for fam, day, weights in (("carts", cart_day, None), ("cart_items", cart_day, win.n_lines),
                                      ("orders", order_day, None), ("order_items", order_day, win.n_lines[conv]),
                                      ("returns", return_day, None), ("return_items", return_day, due.n_items))
        }
        yield ChunkWork(ChunkPlan(chunk, first, counts, rows, day_rows), visits, buyers, buyer_spend_c, due)
    if final is not None:
        final.append(state)
