"""When the order feed delivers an order: late arrivals and re-deliveries, as real at-least-once feeds do.

An order (with its lines and the customer_changes it causes) normally lands in the partition of
its order_date. A share lands late, `late_days` after it; a share is delivered a second time,
`redelivery_days` after its first delivery, as an identical copy with its own event_id (the row
key's COPY_BIT) and, landing on a later day, a later ingestion_ts. Every decision is keyed by
the order's cart, so any chunk that generates the order places it the same way, and an order is
never late past its first return (the lake never holds a return whose order has not landed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from bear.core.calendar import DAY_S
from bear.core.rows import COPY_BIT, Ledger, Rows
from bear.gen.lookups import Customers
from bear.gen.model import Model
from bear.gen.returns import first_returns
from bear.gen.rng import Key

NO_COPY = -1


@dataclass
class Delivery:
    """Per order: the days from its order_date to its first delivery (0: on time) and to its copy (NO_COPY)."""

    lag: np.ndarray
    copy_lag: np.ndarray


def delivery(model: Model, cust: Customers, c: np.ndarray, key: Key, order_s: np.ndarray) -> Delivery:
    """How the feed delivers the orders of customers `c` with cart visit keys `key`, ordered at `order_s`."""
    n = c.size
    lag = np.zeros(n, dtype=np.int64)
    copy_lag = np.full(n, NO_COPY, dtype=np.int64)
    if not model.max_lag or not n:
        return Delivery(lag, copy_lag)
    rng = model.rng
    if model.late_share:
        late = rng.uniform("feed/late", key) < model.late_share
        lag = np.where(late, rng.integers("feed/late_days", *model.late_days, key), 0)
        returned, days = first_returns(model, cust, c, key, order_s)
        lag[returned] = np.minimum(lag[returned], days)  # landed by its first return
    if model.redelivery_share:
        again = rng.uniform("feed/redeliver", key) < model.redelivery_share
        copy_lag = np.where(again, lag + rng.integers("feed/redeliver_days", *model.redelivery_days, key), NO_COPY)
    return Delivery(lag, copy_lag)


def delivered(lag: np.ndarray, copy_lag: np.ndarray) -> dict:
    """What `deliver` reads off rows (their `related`): their orders' lags, one per row."""
    return {"lag": lag, "copy_lag": copy_lag}


def deliver(rows: Rows, ledger: Ledger) -> tuple[Rows, Ledger]:
    """Messed `rows` and their `ledger` as the feed delivers them: each row on its landing day, then identical
    copies of the re-delivered orders' rows (mess included: a re-delivery repeats the payload). Rows without
    lags (`delivered`) land on their event day."""
    if rows.related is None or "lag" not in rows.related:
        return rows, ledger
    day = rows.event_s // DAY_S
    lag, copy_lag = rows.related["lag"], rows.related["copy_lag"]
    again = np.flatnonzero(copy_lag != NO_COPY)
    late = lag > 0
    if not again.size:
        return Rows(rows.cols, rows.event_s, rows.key, None, day + lag, {"late": late}), ledger
    take = np.concatenate([np.arange(day.size), again])
    copy = np.arange(take.size) >= day.size
    ta = pa.array(take)
    out = Rows({name: arr.take(ta) for name, arr in rows.cols.items()}, rows.event_s[take],
               np.where(copy, rows.key[take] | COPY_BIT, rows.key[take]), None,
               np.concatenate([day + lag, day[again] + copy_lag[again]]),
               {"late": np.concatenate([late, np.zeros(again.size, bool)]), "redelivered": copy})
    return out, {col: {kind: mask[take] for kind, mask in kinds.items()} for col, kinds in ledger.items()}
