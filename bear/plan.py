"""The planner's skeleton pass: chunks, exact row counts and contiguous ID blocks.

One sequential walk over the calendar carries every customer's visit state and spend
from chunk to chunk without building a single string. For each chunk it yields the state
the chunk starts from, the first ID of each family, and the returns (from this or earlier
chunks' orders) dated inside it, which is everything a worker needs to generate the
chunk on its own, in any order, any number of times.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from bear.baskets import add_spend, build_window
from bear.lookups import Customers, Products
from bear.model import DAY_S, Model, day_to_date
from bear.returns import plan_returns
from bear.visits import VisitState, advance, initial_state

ID_FAMILIES = ("carts", "cart_items", "orders", "returns", "return_items")


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


@dataclass
class ChunkWork:
    plan: ChunkPlan
    state: VisitState
    due: ReturnsDue = field(repr=False)


def warm_up(model: Model, cust: Customers, products: Products) -> VisitState:
    """State at the run's start: visits before it happened, but only their spend is kept."""
    state = initial_state(model, cust)
    visits = advance(model, cust, state, model.start_day - 1)
    add_spend(state.spend_c, build_window(model, cust, products, visits, all_lines=False))
    return state


def walk(model: Model, cust: Customers, products: Products, chunks: list[Chunk],
         final: list[VisitState] | None = None) -> Iterator[ChunkWork]:
    """Yield every chunk's work in order; the state after the last chunk is appended to `final`."""
    state = warm_up(model, cust, products)
    next_id = dict.fromkeys(ID_FAMILIES, 1)
    pending = ReturnsDue.empty()
    for chunk in chunks:
        start_state = state.copy()
        visits = advance(model, cust, state, chunk.end_day)
        win = build_window(model, cust, products, visits, all_lines=False)
        add_spend(state.spend_c, win)
        vs = win.visits
        conv = np.flatnonzero(vs.converted)
        conv = conv[np.lexsort((vs.vidx[conv], vs.cust[conv], win.order_seconds[conv]))]
        rp = plan_returns(model, cust, vs.cust[conv], vs.vidx[conv], win.n_lines[conv], win.order_seconds[conv])
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
        yield ChunkWork(ChunkPlan(chunk, first, counts, rows), start_state, due)
    if final is not None:
        final.append(state)
