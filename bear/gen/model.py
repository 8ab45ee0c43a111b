"""The behaviour parameters of a config, compiled into numpy lookup tables.

Generation indexes these tables by segment (signup channel x tier) instead of branching
per row. The model also owns the calendar: visit gaps are drawn in "activity days" and
mapped to calendar days through the cumulative seasonal intensity, so December's 2.1x
comes from the process itself rather than from post-hoc resampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bear.config.schema import BearConfig, GeneratorConfig
from bear.config.timeline import during, intensity, month_points
from bear.core.calendar import DAY_S, day_number
from bear.core.schemas import compile_changes
from bear.core.vocab import (
    CATEGORIES,
    CHANNELS,
    ORDER_CHANNELS,
    PAYMENT_METHODS,
    RETURN_REASONS,
    SEGMENT_TIERS,
    SHIPPING_SPEEDS,
    TIERS,
    ident,
    idents,
    per_label,
    title_label,
)
from bear.gen.rng import Keyed, cumulative

GUEST_TIER = SEGMENT_TIERS.index("Guest")
NO_TIER = SEGMENT_TIERS.index("None")
N_TIERS = len(SEGMENT_TIERS)
HORIZON_DAYS = 400  # calendar past the run's end (a margin: only round trips near the end read past it)


def _seg_table(per_channel: dict, dtype=np.float64) -> np.ndarray:
    """[channel x tier] table from {channel: {tier: value}}."""
    return np.array([per_label(per_channel[ident(ch)], SEGMENT_TIERS) for ch in CHANNELS], dtype=dtype)


def _tier_table(per_tier: dict, dtype=np.float64) -> np.ndarray:
    return np.array(per_label(per_tier, SEGMENT_TIERS), dtype=dtype)


@dataclass
class Model:
    rng: Keyed
    start_day: int
    end_day: int
    signup_start_day: int
    signup_end_day: int
    cal_day0: int
    cal_w: np.ndarray  # cumulative activity at each calendar-day boundary from cal_day0
    cal_f: np.ndarray  # seasonal intensity per calendar day

    @classmethod
    def build(cls, cfg: BearConfig) -> Model:
        g = cfg.generator
        start, end = day_number(cfg.run.start), day_number(cfg.run.end)
        s0, s1 = day_number(g.customer.signup_start), day_number(g.customer.signup_end)
        day0 = min(start, s0)
        # The calendar runs on past the end, so what is read off it about a day up to the end (a guest's first cart,
        # its signup day) comes out the same when the same lake is later extended.
        days = np.arange(day0, end + HORIZON_DAYS + 1)
        f = intensity(g, days)
        w = np.concatenate([[0.0], np.cumsum(f)])
        m = cls(Keyed(cfg.run.seed), start, end, s0, s1, day0, w, f)
        m._compile(cfg, days)
        return m

    def _compile(self, cfg: BearConfig, days: np.ndarray) -> None:
        """Every setting generation reads, as numbers, tuples and lookup tables: nothing past this reads the
        config. What campaigns and drift make vary from day to day is a table per calendar day (`at_day`)."""
        step = float(self.cal_f.min())  # seasonality factors are positive (validated)
        self._w_ext = np.append(self.cal_w, np.inf)
        self._grid_inv = 1.0 / step
        grid = np.arange(int(self.cal_w[-1] / step) + 2) * step
        self._grid_day = np.searchsorted(self.cal_w, grid, side="right") - 1
        g, mess = cfg.generator, cfg.mess
        v, ca, o, r, cu = g.visits, g.carts, g.orders, g.returns, g.customer
        self.customers, self.products = g.customers, g.catalog_size
        self.guest_share, self.no_tier_share = cu.guest_share, cu.no_tier_share
        self.channel_cum = cumulative(per_label(cu.channel_mix, CHANNELS))
        self.tier_cum = cumulative([[cu.tier_mix[ident(ch)].get(ident(t), 0.0) for t in TIERS] for ch in CHANNELS])
        self.cohort_shocks = {str(k): float(f) for k, f in (v.cohort_shocks or {}).items()}
        self.first_cart_days = tuple(v.first_cart_days)
        self.reactivation_share, self.reactivation_days = v.reactivation_share, tuple(v.reactivation_days)
        self.break_sigma = v.break_sigma
        self.conversion, self.open_share, self.emptied_share = ca.conversion, ca.open_share, ca.emptied_share
        self.session_minutes = tuple(ca.session_minutes)
        self.shipping_cost_variance, self.expedited_share = tuple(o.shipping_cost_variance), o.expedited_share
        self.partial_refund, self.line_share = tuple(r.partial_refund), r.line_share
        self.second_return_share = r.second_return_share
        self.mess_on, self.advanced_mess = mess.level != "none", mess.advanced
        self.style_rate, self.null_rate, self.reason_bias = mess.style_rate, mess.null_rate, mess.reason_bias
        self.format_rate = mess.format_rate
        self.spike_factor = tuple(mess.spike_factor)
        self.late_share, self.late_days = mess.late_share, tuple(mess.late_days)
        self.redelivery_share, self.redelivery_days = mess.redelivery_share, tuple(mess.redelivery_days)
        self.max_lag = mess.max_lag
        # per product category: the return reason its redrawn reasons lean to
        self.category_reason = np.array([idents(RETURN_REASONS).index(mess.category_reason[ident(c)])
                                         for c in CATEGORIES])
        self.repeat = _seg_table(v.repeat_visits)
        lo_hi = np.array(per_label(v.gap_days, SEGMENT_TIERS), dtype=np.float64)
        ch_f = np.array(per_label(v.channel_gap_factor, CHANNELS))[:, None] / g.scale
        self.gap_lo = lo_hi[None, :, 0] * ch_f
        self.gap_hi = lo_hi[None, :, 1] * ch_f
        self.gap_sigma = _tier_table(v.gap_sigma)[None, :].repeat(len(CHANNELS), axis=0)
        self.break_lo, self.break_hi = (b / g.scale for b in v.break_days)
        self.lines_lo, self.lines_hi = np.array(per_label(ca.lines, SEGMENT_TIERS), dtype=np.int64).T
        self.qty_lo, self.qty_hi = np.array(per_label(ca.quantity, SEGMENT_TIERS), dtype=np.int64).T
        self.boost = np.array(per_label(ca.first_purchase_boost, CHANNELS))
        self.order_channel_cum = cumulative(per_label(o.channel_mix, ORDER_CHANNELS))
        pay = np.zeros((len(ORDER_CHANNELS), len(PAYMENT_METHODS)))
        for i, methods in enumerate(per_label(o.payment_methods, ORDER_CHANNELS)):
            for method in methods:
                pay[i, idents(PAYMENT_METHODS).index(method)] = 1.0
        self.payment_cum = cumulative(pay / pay.sum(axis=1, keepdims=True))
        self.fee_rate = np.array(per_label(o.payment_fee_rate, PAYMENT_METHODS))
        self.ship_cum = cumulative(per_label(o.shipping_mix, SHIPPING_SPEEDS))
        self.ship_price_c = np.array([round(p * 100) for p in per_label(o.shipping_price, SHIPPING_SPEEDS)], np.int64)
        self.ship_cost_c = np.array([round(c * 100) for c in per_label(o.shipping_cost, SHIPPING_SPEEDS)], np.int64)
        self.tier_thresholds_c = np.array([round(x * 100) for x in o.tier_thresholds], dtype=np.int64)
        self.clv_thresholds_c = np.array([round(x * 100) for x in o.clv_thresholds], dtype=np.int64)
        self.return_rate = np.array(per_label(r.rate, CHANNELS))
        self.timing_cum = cumulative(t[0] for t in r.timing)
        self.timing_lo = np.array([t[1] for t in r.timing], dtype=np.int64)
        self.timing_hi = np.array([t[2] for t in r.timing], dtype=np.int64)
        self.reason_cum = cumulative(per_label(r.reason_mix, RETURN_REASONS))
        self.full_share = np.array(per_label(r.full_refund_share, RETURN_REASONS))
        self.return_channels = tuple(title_label(k) for k in r.channel_mix)  # open vocabularies: labels from keys
        self.return_channel_cum = cumulative(r.channel_mix.values())
        self.refund_methods = tuple(title_label(k) for k in r.refund_method_mix)
        self.refund_method_cum = cumulative(r.refund_method_mix.values())
        self.agent_ids = ("ONLINE", *(f"CSR-{i:04d}" for i in range(1, o.agents + 1)))
        # which added columns each table's partition of a day holds (generation makes them for every row)
        self.schema_changes = compile_changes(g.schema_changes)
        self._compile_days(g, days)

    def _compile_days(self, g: GeneratorConfig, days: np.ndarray) -> None:
        """Per calendar day: drift's multipliers, campaigns' discounts and category mixes, the SKUs on sale."""
        d = g.drift
        self.conversion_day = month_points(d.conversion, days)
        self.return_day = month_points(d.return_rate, days)
        share = np.full(days.size, g.orders.discount_share)
        lo, hi = np.full(days.size, g.orders.discount_pct[0]), np.full(days.size, g.orders.discount_pct[1])
        boost = np.ones((days.size, len(CATEGORIES)))
        for c in g.campaigns:  # in list order: a later campaign's discount wins on days two share
            on = during(days, c)
            if c.discount_share is not None:
                share[on] = c.discount_share
            if c.discount_pct is not None:
                lo[on], hi[on] = c.discount_pct
            for cat, factor in c.category_boost.items():
                boost[on, idents(CATEGORIES).index(cat)] *= factor
        self.discount_share_day = np.minimum(share * month_points(d.discount_share, days), 1.0)
        self.discount_lo_day, self.discount_hi_day = lo, hi
        # category mixes: one row per (distinct boost of the day) x signup channel
        mixes, self.mix_day = np.unique(boost, axis=0, return_inverse=True)
        self.mix_day = self.mix_day.reshape(-1)
        pref = np.array([per_label(g.carts.category_preference[ident(ch)], CATEGORIES) for ch in CHANNELS])
        weights = pref[None, :, :] * mixes[:, None, :]
        self.cat_cum = cumulative(weights / weights.sum(axis=2, keepdims=True)).reshape(-1, len(CATEGORIES))
        # signups: the share of the signup window's arrivals that has arrived by each day boundary from signup_start
        # (to the window's end or the calendar's, whichever is later)
        signup_days = np.arange(self.signup_start_day, max(self.signup_end_day, int(days[-1])) + 1)
        cum = np.concatenate([[0.0], np.cumsum(month_points(d.new_customers, signup_days))])
        self._arrived = cum / cum[self.signup_end_day - self.signup_start_day + 1]
        self._arrived_s = (self.signup_start_day + np.arange(cum.size)) * DAY_S
        # launches: SKUs numbered in order of their launch day (then of the list), so the SKUs on sale on a day are
        # the first products_day of them
        launches = sorted((day_number(c.start), i, c.new_products) for i, c in enumerate(g.campaigns) if c.new_products)
        self.products_day = np.full(days.size, g.products, dtype=np.int64)
        self.launch_day = np.full(self.products, -1, dtype=np.int64)  # per product: its launch (-1: always sold)
        first = g.products
        for day, _, k in launches:
            self.products_day[days >= day] += k
            self.launch_day[first:first + k] = day
            first += k

    def arrival_seconds(self, share: np.ndarray) -> np.ndarray:
        """When the arrivals reach `share` of the signup window's (beyond 1 after it): at each day's rate."""
        return np.interp(share, self._arrived, self._arrived_s).astype(np.int64)

    def arrived_by(self, day: int) -> float:
        """The share of the signup window's arrivals that has arrived by the end of `day`."""
        return float(self._arrived[min(max(day + 1 - self.signup_start_day, 0), self._arrived.size - 1)])

    def at_day(self, table: np.ndarray, day: np.ndarray) -> np.ndarray:
        """A per-calendar-day table's values on days `day` (day numbers; the calendar's edges hold outside it)."""
        return table[np.clip(np.asarray(day, dtype=np.int64) - self.cal_day0, 0, table.size - 1)]

    def category_rows(self, channel: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Rows of `cat_cum` for shoppers of signup channel `channel` on days `day` (the day's campaign mix)."""
        return self.at_day(self.mix_day, day) * len(CHANNELS) + channel

    # -- calendar ---------------------------------------------------------------------
    def activity_of(self, seconds: np.ndarray) -> np.ndarray:
        """Calendar time (unix seconds) -> activity time (days of seasonal intensity)."""
        days = seconds / DAY_S - self.cal_day0
        d = np.clip(np.floor(days).astype(np.int64), 0, len(self.cal_f) - 1)
        return self.cal_w[d] + self.cal_f[d] * (days - d)

    def _day_index(self, activity: np.ndarray) -> np.ndarray:
        """searchsorted(cal_w, activity, "right") - 1, by grid lookup: a day spans at least `step` of activity,
        so the day holding a is the one holding floor(a / step) * step or a neighbour; the rare row the
        lookup misses (float edges) falls back to the binary search."""
        w = self._w_ext
        d = self._grid_day[np.clip((activity * self._grid_inv).astype(np.int64), 0, len(self._grid_day) - 1)]
        d -= activity < w[d]
        d += activity >= w[d + 1]
        bad = np.flatnonzero((d < 0) | (w[np.maximum(d, 0)] > activity) | (activity >= w[d + 1]))
        if bad.size:
            d[bad] = np.searchsorted(self.cal_w, activity[bad], side="right") - 1
        return d

    def day_of(self, activity: np.ndarray) -> np.ndarray:
        """Activity time -> the calendar day (day number) it falls in."""
        return self._day_index(activity) + self.cal_day0

    def seconds_of(self, activity: np.ndarray) -> np.ndarray:
        """Activity time -> calendar unix seconds; past the calendar (HORIZON_DAYS after the end) -> int64 max."""
        d = self._day_index(activity)
        inside = d < len(self.cal_f)
        dc = np.minimum(d, len(self.cal_f) - 1)
        frac = (activity - self.cal_w[dc]) / self.cal_f[dc]
        secs = ((dc + self.cal_day0) * DAY_S + np.floor(frac * DAY_S)).astype(np.int64)
        return np.where(inside, secs, np.iinfo(np.int64).max)

    def activity_at_day_end(self, day: int) -> float:
        """Activity time at the end of calendar day `day` (visits strictly before it belong to it)."""
        i = min(max(day + 1 - self.cal_day0, 0), len(self.cal_w) - 1)
        return float(self.cal_w[i])
