"""The run's dated timeline: campaigns, business rates that drift, columns that appear.

Dated settings of `generator` (its schema in `bear.config.schema`): each entry names the days it acts
on, so the lake's days up to any end are the same whatever the end (extension-safe).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bear.core.calendar import day_number


@dataclass
class CampaignConfig:
    """A dated event of the shop's calendar, acting through the visit and basket process (no resampling)."""

    name: str = "campaign"
    start: str = "2020-01-01"  # first and last day, inclusive (YYYY-MM-DD)
    end: str = "2020-01-01"
    # Multiplies visit intensity on its days, like seasonality (more visits, so more carts and orders).
    volume: float = 1.0
    # Multiplies a category's share of the lines put in carts on its days (keys: books, clothing, electronics, home,
    # toys).
    category_boost: dict[str, float] = field(default_factory=dict)
    # Share of lines discounted and their discount range on its days (default: generator.orders').
    discount_share: float | None = None
    discount_pct: list[float] | None = None
    # SKUs launched on its first day: product_ids after every earlier one, sold from that day on.
    new_products: int = 0


def _campaign(name: str, start: str, end: str, **kw: Any) -> CampaignConfig:
    return CampaignConfig(name=name, start=start, end=end, **kw)


YEARS = range(2020, 2036)  # the default calendar's years: a lake extended day by day meets its events as it goes


def black_friday(year: int) -> dt.date:
    """The Friday after US Thanksgiving (the fourth Thursday of November)."""
    first = dt.date(year, 11, 1)
    return first + dt.timedelta(days=(3 - first.weekday()) % 7 + 21 + 1)


def default_campaigns() -> list[CampaignConfig]:
    """Black Friday to Cyber Monday and a mid-July summer sale each year, and one product launch."""
    bfcm = [_campaign(f"bfcm_{y}", black_friday(y).isoformat(), (black_friday(y) + dt.timedelta(days=3)).isoformat(),
                      volume=2.5, category_boost={"electronics": 1.6, "toys": 1.4}, discount_share=0.55,
                      discount_pct=[0.15, 0.40]) for y in YEARS]
    summer = [_campaign(f"summer_sale_{y}", f"{y}-07-11", f"{y}-07-17", volume=1.4,
                        category_boost={"clothing": 1.5, "home": 1.2}, discount_share=0.40, discount_pct=[0.10, 0.30])
              for y in YEARS]
    launch = [_campaign("smart_home_launch", "2023-09-12", "2023-09-25", volume=1.15,
                        category_boost={"electronics": 1.8}, new_products=150)]
    return sorted([*bfcm, *summer, *launch], key=lambda c: c.start)


def _points(*points: tuple[str, float]):
    return field(default_factory=lambda: [list(p) for p in points])


@dataclass
class DriftConfig:
    """Business rates that move over the years: [month "YYYY-MM", multiplier] points, linear between the first days
    of those months and flat outside them; an empty list is no drift (a list override replaces the whole line)."""

    conversion: list[Any] = _points(("2020-01", 1.0), ("2022-01", 1.08), ("2025-12", 0.92))
    return_rate: list[Any] = _points(("2020-01", 0.9), ("2025-12", 1.1))
    discount_share: list[Any] = _points(("2020-01", 1.0), ("2025-12", 1.25))
    # Registered and guest signups per day (the signup window still holds generator.customers in all).
    new_customers: list[Any] = _points(("2019-01", 0.8), ("2021-06", 1.2), ("2025-12", 1.0))


@dataclass
class SchemaChangeConfig:
    """Schema evolution: from `since` (YYYY-MM-DD) the partitions of `table` hold these nullable `columns`
    (bear.core.schemas.ADDED_COLUMNS lists what can be added); earlier ones lack them."""

    table: str = "orders"
    columns: list[str] = field(default_factory=list)
    since: str = "2024-07-01"


def during(days: np.ndarray, campaign: CampaignConfig) -> np.ndarray:
    """Which of `days` (day numbers) the campaign runs on."""
    return (days >= day_number(campaign.start)) & (days <= day_number(campaign.end))


def month_points(points: list, days: np.ndarray) -> np.ndarray:
    """Multiplier per day from [["YYYY-MM", m], ...]: linear between the first days of those months, flat outside."""
    if not points:
        return np.ones(days.size)
    xs = sorted((day_number(f"{k}-01"), float(v)) for k, v in points)
    return np.interp(days, [x for x, _ in xs], [v for _, v in xs])


def intensity(generator: Any, days: np.ndarray) -> np.ndarray:
    """Visit intensity per day (`generator`: a GeneratorConfig): the month's seasonality times the volume of every
    campaign running then. The visit process reads it as a time warp, so campaigns act through it."""
    months = (days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12) + 1
    season = np.ones(13)
    for m, f in generator.visits.seasonality.items():
        season[int(m)] = float(f)
    f = season[months]
    for c in generator.campaigns:
        f[during(days, c)] *= c.volume
    return f
