"""Days and instants as bear stores them: day numbers since 1970-01-01 (UTC) and unix seconds.

Generation, the lake layout and the audit all count days this way, so a partition's date, a
row's day and a chunk's window never disagree.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

EPOCH = dt.date(1970, 1, 1)
DAY_S = 86_400

def day_number(d: dt.date | str) -> int:
    if isinstance(d, str):
        d = dt.date.fromisoformat(d)
    return (d - EPOCH).days


def day_to_date(day: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(day))


def timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array((np.asarray(seconds, dtype=np.int64) * 1_000_000).astype("datetime64[us]"))


def iso_ts(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None).isoformat()
