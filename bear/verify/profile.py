"""Realism, measured: what the lake's order stream looks like against what the config asks for.

`bear verify --profile` prints it after the audit. Orders are counted by their order_date,
each once (a re-delivered copy is counted as a copy): the daily volume's coefficient of
variation (seasonality, campaigns and noise together) and the feed's late and re-delivered
shares against mess.late_share and mess.redelivery_share. Each campaign's uplift over the weeks
around it is judged on carts (visits, what its volume multiplies) against the uplift the
calendar's intensity predicts (seasonality x campaign volume); its orders' uplift is shown
beside it (conversion differs between first and repeat visits, so it is not judged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds

from bear.config.schema import BearConfig
from bear.config.timeline import intensity
from bear.core.calendar import day_number
from bear.lake.sink import Sink

AROUND = 14  # days before and after a campaign that make its baseline
UPLIFT_TOLERANCE = 0.15  # relative: a campaign of a few days has a few thousand orders at the default volume


@dataclass
class Measure:
    name: str
    measured: float
    expected: float | None  # None: reported, not judged
    allowed: float = 0.0  # absolute deviation allowed

    @property
    def ok(self) -> bool:
        return self.expected is None or abs(self.measured - self.expected) <= self.allowed


def _read(sink: Sink, table: str, columns: list[str]):
    return ds.dataset(sink.path(table), filesystem=sink.fs, format="parquet").to_table(columns=columns)


def _orders(sink: Sink) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order number, order day, partition day) of every order row in the lake."""
    t = _read(sink, "orders", ["order_id", "order_date", "ingest_dt"])
    ids = pc.cast(pc.utf8_slice_codeunits(t["order_id"], 4), "int64").to_numpy()
    event = pc.cast(t["order_date"], "date32").cast("int32").to_numpy().astype(np.int64)
    return ids, event, t["ingest_dt"].cast("int32").to_numpy().astype(np.int64)


def _share(name: str, hits: int, orders: int, p: float) -> Measure:
    """A share of the orders against its configured probability: three standard errors and a little slack (an
    order late past its first return lands with it, so a few land earlier than drawn)."""
    n = max(orders, 1)
    return Measure(name, hits / n, p, 3 * float(np.sqrt(p * (1 - p) / n)) + 0.002)


def profile(sink: Sink, cfg: BearConfig) -> list[Measure]:
    """The realism measures of the lake at `sink`, written with `cfg`."""
    ids, event, lands = _orders(sink)
    order = np.lexsort((lands, ids))
    first = np.ones(ids.size, dtype=bool)
    first[order[1:]] = ids[order][1:] != ids[order][:-1]  # a copy lands after its first delivery
    orders = int(first.sum())
    out = [_share("late share (of orders)", int((first & (lands > event)).sum()), orders, cfg.mess.late_share),
           _share("re-delivered share (of orders)", int((~first).sum()), orders, cfg.mess.redelivery_share)]
    start, end = day_number(cfg.run.start), day_number(cfg.run.end)
    per_day = np.bincount(event[first] - start, minlength=end - start + 1).astype(np.float64)
    out.insert(0, Measure("daily orders: coefficient of variation", float(per_day.std() / max(per_day.mean(), 1e-9)),
                          None))
    carts = pc.cast(_read(sink, "shopping_carts", ["created_at"])["created_at"], "date32").cast("int32").to_numpy()
    carts_per_day = np.bincount(carts.astype(np.int64) - start, minlength=per_day.size).astype(np.float64)
    busy = np.zeros(per_day.size, dtype=bool)
    spans = [(c.name, day_number(c.start), day_number(c.end)) for c in cfg.generator.campaigns]
    for _, a, b in spans:
        busy[max(a - start, 0):max(b - start + 1, 0)] = True
    for name, a, b in spans:
        if a - AROUND < start or b + AROUND > end:
            continue  # its weeks around are not all in the lake
        inside = np.arange(a, b + 1) - start
        near = np.r_[np.arange(a - AROUND, a), np.arange(b + 1, b + AROUND + 1)] - start
        near = near[~busy[near]]
        want = float(intensity(cfg.generator, inside + start).mean() / intensity(cfg.generator, near + start).mean())
        for what, daily, expected in (("carts", carts_per_day, want), ("orders", per_day, None)):
            out.append(Measure(f"campaign {name}: {what} per day / the weeks around", daily[inside].mean() /
                               max(daily[near].mean(), 1e-9), expected, UPLIFT_TOLERANCE * want))
    return out


def render(measures: list[Measure]) -> str:
    lines = ["realism profile (orders by order_date, carts by created_at)",
             f"{'measure':<64}{'measured':>10}{'expected':>10}  result"]
    for x in measures:
        want = "" if x.expected is None else f"{x.expected:.4f}"
        verdict = "-" if x.expected is None else ("ok" if x.ok else f"off by more than {x.allowed:.4f}")
        lines.append(f"{x.name:<64}{x.measured:>10.4f}{want:>10}  {verdict}")
    return "\n".join(lines)
