"""A plan chunk as the audit walks it, what its day tasks hand back, and the checks against the plan.

The audit reads the lake window by window (one plan chunk each) so the lake-wide state stays
compact; the sales and returns passes both count a window's rows against the plan and its IDs
against the chunk's ID block, so those checks live here, with the window they judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from bear.core.calendar import day_to_date
from bear.core.schemas import ID_COLUMNS, PLAN_FAMILY
from bear.verify.findings import Findings
from bear.verify.partition import id_text, partitions_of

SALES = ("shopping_carts", "cart_items", "orders", "order_items")
RETURNS = ("returns", "return_items")


@dataclass
class Window:
    """A plan chunk: its days, ID blocks and planned rows."""

    start: int
    end: int
    first_ids: dict[str, int]
    ids: dict[str, int]
    rows: dict[str, int]  # by event day
    in_flight: dict[str, int] = field(default_factory=dict)  # rows of its orders the feed delivers after the end

    @property
    def name(self) -> str:
        return f"ingest_dt={day_to_date(self.start)}..{day_to_date(self.end)}"

    def days(self) -> range:
        return range(self.start, self.end + 1)


@dataclass
class DayResult:
    """What a day task found and hands to the driver."""

    day: int
    found: Findings
    rows: dict[str, int] = field(default_factory=dict)  # rows per table of the day's data (by event day)
    tables: dict[str, pa.Table] = field(default_factory=dict)  # returns days: the day's returns, for the end
    ids: dict[str, np.ndarray] = field(default_factory=dict)  # ID numbers per table
    away: list[tuple[str, str, str, pa.Table]] = field(default_factory=list)  # rows whose parent is not here
    returned: list[pa.Table] = field(default_factory=list)  # the day's orders and lines that returns refer to
    changed: pa.Table | None = None  # the day's orders that customer_changes name


def planned_rows(found: Findings, w: Window, results: list[DayResult], tables: tuple[str, ...]) -> None:
    """Each table has the rows the plan gives the window (less those the feed delivers after the run's end)."""
    for name in tables:
        got = sum(r.rows[name] for r in results)
        want = w.rows[PLAN_FAMILY[name]] - w.in_flight.get(name, 0)
        found.count("coverage.rows", 1)
        if got != want:
            found.fail("coverage.rows", name, f"{got:,} rows, the plan says {want:,}", [], abs(got - want), w.name)


def check_ids(found: Findings, table: str, ids: np.ndarray, days: np.ndarray, lo, hi, first: int, last: int,
              where: str, in_flight: int = 0) -> None:
    """`table`'s IDs are exactly first..last, each inside its block [lo, hi): duplicates, gaps, strays; but for
    the `in_flight` the feed delivers after the run's end."""
    col = ID_COLUMNS[table]
    found.count("keys.unique", ids.size)
    found.count("keys.gap_free", max(last - first + 1, 0))
    found.count("keys.plan_blocks", ids.size)
    inside = (ids >= first) & (ids <= last)
    seen = np.bincount(ids[inside] - first, minlength=max(last - first + 1, 0))
    outside, times = np.unique(ids[~inside], return_counts=True)
    dup = np.concatenate([np.flatnonzero(seen > 1) + first, outside[times > 1]])
    if dup.size:
        found.fail("keys.unique", table, f"{dup.size} duplicated {col}", id_text(table, dup), dup.size,
                   partitions_of(days[np.isin(ids, dup)]))
    missing = np.flatnonzero(seen == 0) + first
    if missing.size != in_flight:
        found.fail("keys.gap_free", table, f"{missing.size} {col} missing from {first}..{last}" + (
                   f" ({in_flight} in flight past the run's end)" if in_flight else ""),
                   id_text(table, missing), missing.size, where)
    stray = (ids < lo) | (ids >= hi)
    if stray.any():
        found.fail("keys.plan_blocks", table, f"{int(stray.sum())} {col} outside their chunk's planned block",
                   id_text(table, ids[stray]), int(stray.sum()), partitions_of(days[stray]))
