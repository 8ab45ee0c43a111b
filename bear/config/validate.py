"""Config validation: one clear line naming the key and what is allowed, before anything runs."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bear.config.schema import BearConfig
from bear.core.schemas import ADDED_COLUMNS
from bear.core.vocab import (
    CATEGORIES,
    CHANNELS,
    ORDER_CHANNELS,
    PAYMENT_METHODS,
    RETURN_REASONS,
    SEGMENT_TIERS,
    SHIPPING_SPEEDS,
    TIERS,
    idents,
)


class ConfigError(ValueError):
    """A config value outside what bear accepts; `str()` is the one line shown to the user."""

    def __init__(self, key: str, allowed: str, got: Any = None):
        self.key = key
        suffix = "" if got is None else f" (got {got!r})"
        super().__init__(f"{key}: {allowed}{suffix}")

def parse_date(key: str, value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(key, "must be a date YYYY-MM-DD", value) from None


def _check_prob(key: str, value: Any) -> None:
    if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(key, "must be a probability in [0, 1]", value)


def _check_mix(key: str, mix: Any, allowed: tuple[str, ...] | None = None) -> None:
    for name, p in mix.items():
        if allowed is not None and name not in allowed:
            raise ConfigError(key, f"keys must be among {', '.join(allowed)}", name)
        _check_prob(f"{key}.{name}", p)
    total = sum(float(p) for p in mix.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ConfigError(key, "shares must sum to 1", round(total, 6))


def _check_range(key: str, pair: Any, low: float = 0, integer: bool = False) -> None:
    if len(pair) != 2 or pair[0] > pair[1] or pair[0] < low:
        raise ConfigError(key, f"must be [min, max] with {low} <= min <= max", list(pair))
    if integer and any(int(v) != v for v in pair):
        raise ConfigError(key, "must be whole numbers", list(pair))


def _check_positive(key: str, value: Any, minimum: float = 1) -> None:
    if not isinstance(value, int | float) or value < minimum:
        raise ConfigError(key, f"must be a number >= {minimum}", value)


def _check_schema_changes(changes: Any) -> None:
    """Each change names a table bear can add columns to, some of its addable columns, and a day; a column is
    added once. A `since` on or before run.start makes the columns present in every partition of the run."""
    added: set[tuple[str, str]] = set()
    for i, change in enumerate(changes):
        key = f"generator.schema_changes.{i}"
        if change.table not in ADDED_COLUMNS:
            raise ConfigError(f"{key}.table", f"must be one of {', '.join(ADDED_COLUMNS)}", change.table)
        allowed = [c.name for c in ADDED_COLUMNS[change.table]]
        if not change.columns:
            raise ConfigError(f"{key}.columns", f"must list some of {', '.join(allowed)}", list(change.columns))
        for col in change.columns:
            if col not in allowed:
                raise ConfigError(f"{key}.columns", f"must be among {', '.join(allowed)}", col)
            if (change.table, col) in added:
                raise ConfigError(f"{key}.columns", f"must add each column of {change.table} at most once", col)
            added.add((change.table, col))
        parse_date(f"{key}.since", change.since)


def _check_campaigns(campaigns: Any) -> None:
    """Each campaign: a name, a start and an end on or after it, positive multipliers, shares and discounts within
    [0, 1], whole SKU counts. Its days may lie outside the run's range: the default calendar must hold for any
    range, and a campaign after run.end acts once an extension reaches it (one before the first modeled day changes
    no visit; its launched SKUs are in the catalog and on sale)."""
    for i, c in enumerate(campaigns):
        key = f"generator.campaigns.{i}"
        if not str(c.name).strip():
            raise ConfigError(f"{key}.name", "must be a non-empty name", c.name)
        start, end = parse_date(f"{key}.start", c.start), parse_date(f"{key}.end", c.end)
        if end < start:
            raise ConfigError(f"{key}.end", f"must be on or after its start ({start})", c.end)
        _check_positive(f"{key}.volume", c.volume, minimum=0.01)
        for cat, factor in c.category_boost.items():
            if cat not in idents(CATEGORIES):
                raise ConfigError(f"{key}.category_boost", f"keys must be among {', '.join(idents(CATEGORIES))}", cat)
            _check_positive(f"{key}.category_boost.{cat}", factor, minimum=0.01)
        if c.discount_share is not None:
            _check_prob(f"{key}.discount_share", c.discount_share)
        if c.discount_pct is not None:
            _check_range(f"{key}.discount_pct", c.discount_pct)
            if c.discount_pct[1] > 1:
                raise ConfigError(f"{key}.discount_pct", "must lie within [0, 1]", list(c.discount_pct))
        if not isinstance(c.new_products, int) or c.new_products < 0:
            raise ConfigError(f"{key}.new_products", "must be a whole number >= 0", c.new_products)


def _check_drift(drift: Any) -> None:
    """Each line: [YYYY-MM, multiplier] points, multipliers >= 0 (new_customers > 0: someone signs up)."""
    for name in ("conversion", "return_rate", "discount_share", "new_customers"):
        for i, point in enumerate(getattr(drift, name)):
            key = f"generator.drift.{name}.{i}"
            if not isinstance(point, list | tuple) or len(point) != 2:
                raise ConfigError(key, "must be [YYYY-MM, multiplier]", point)
            try:
                dt.date.fromisoformat(f"{point[0]}-01")
            except ValueError:
                raise ConfigError(key, "must start with a month YYYY-MM", point[0]) from None
            _check_positive(key, point[1], minimum=0.01 if name == "new_customers" else 0)


def validate(cfg: DictConfig | BearConfig) -> None:
    """Reject what bear cannot run, naming the first offending key: exit 2, nothing written."""
    c = OmegaConf.to_object(cfg) if isinstance(cfg, DictConfig) else cfg
    start = parse_date("run.start", c.run.start)
    try:
        end = dt.date.fromisoformat(str(c.run.end))
    except ValueError:
        raise ConfigError("run.end", "must be a date YYYY-MM-DD, today or yesterday", c.run.end) from None
    if end < start:
        raise ConfigError("run.end", f"must be on or after run.start ({start})", c.run.end)
    _check_positive("run.chunk_days", c.run.chunk_days)
    _check_positive("run.lease_s", c.run.lease_s, minimum=1)
    if c.run.seed < 0:
        raise ConfigError("run.seed", "must be a non-negative integer", c.run.seed)
    g = c.generator
    _check_positive("generator.customers", g.customers)
    _check_positive("generator.products", g.products, minimum=len(CATEGORIES))
    if not g.scale > 0:
        raise ConfigError("generator.scale", "must be > 0", g.scale)
    cu = g.customer
    s0, s1 = parse_date("generator.customer.signup_start", cu.signup_start), parse_date(
        "generator.customer.signup_end", cu.signup_end
    )
    if s1 < s0:
        raise ConfigError("generator.customer.signup_end", "must be on or after signup_start", cu.signup_end)
    if s0 > end:
        raise ConfigError("generator.customer.signup_start", f"must be on or before run.end ({end})", cu.signup_start)
    _check_prob("generator.customer.guest_share", cu.guest_share)
    _check_prob("generator.customer.no_tier_share", cu.no_tier_share)
    _check_mix("generator.customer.channel_mix", cu.channel_mix, idents(CHANNELS))
    for ch in idents(CHANNELS):
        _check_mix(f"generator.customer.tier_mix.{ch}", cu.tier_mix[ch], idents(TIERS))
    v = g.visits
    _check_range("generator.visits.first_cart_days", v.first_cart_days, integer=True)
    _check_range("generator.visits.break_days", v.break_days, low=1)
    _check_range("generator.visits.reactivation_days", v.reactivation_days, low=1)
    _check_prob("generator.visits.reactivation_share", v.reactivation_share)
    for t in idents(SEGMENT_TIERS):
        _check_range(f"generator.visits.gap_days.{t}", v.gap_days[t], low=1)
        _check_positive(f"generator.visits.gap_sigma.{t}", v.gap_sigma[t], minimum=0)
        _check_range(f"generator.carts.lines.{t}", g.carts.lines[t], low=1, integer=True)
        _check_range(f"generator.carts.quantity.{t}", g.carts.quantity[t], low=1, integer=True)
        for ch in idents(CHANNELS):
            _check_positive(f"generator.visits.repeat_visits.{ch}.{t}", v.repeat_visits[ch][t], minimum=0)
    for ch in idents(CHANNELS):
        _check_positive(f"generator.visits.channel_gap_factor.{ch}", v.channel_gap_factor[ch], minimum=0.01)
        _check_mix(f"generator.carts.category_preference.{ch}", g.carts.category_preference[ch], idents(CATEGORIES))
        _check_positive(f"generator.carts.first_purchase_boost.{ch}", g.carts.first_purchase_boost[ch], 0)
        _check_prob(f"generator.returns.rate.{ch}", g.returns.rate[ch])
    for month, factor in v.seasonality.items():
        if not str(month).isdigit() or not 1 <= int(month) <= 12:
            raise ConfigError("generator.visits.seasonality", "keys must be months 1..12", month)
        _check_positive(f"generator.visits.seasonality.{month}", factor, minimum=0.01)
    for cohort, factor in v.cohort_shocks.items():
        parse_date("generator.visits.cohort_shocks", f"{cohort}-01")
        _check_positive(f"generator.visits.cohort_shocks.{cohort}", factor, minimum=0)
    ca = g.carts
    for key in ("conversion", "open_share", "emptied_share"):
        _check_prob(f"generator.carts.{key}", getattr(ca, key))
    _check_range("generator.carts.session_minutes", ca.session_minutes, low=1, integer=True)
    o = g.orders
    _check_mix("generator.orders.channel_mix", o.channel_mix, idents(ORDER_CHANNELS))
    _check_mix("generator.orders.shipping_mix", o.shipping_mix, idents(SHIPPING_SPEEDS))
    for ch in idents(ORDER_CHANNELS):
        methods = o.payment_methods[ch]
        if not methods or any(m not in idents(PAYMENT_METHODS) for m in methods):
            raise ConfigError(f"generator.orders.payment_methods.{ch}",
                              f"must list some of {', '.join(idents(PAYMENT_METHODS))}", list(methods))
    for m in idents(PAYMENT_METHODS):
        _check_prob(f"generator.orders.payment_fee_rate.{m}", o.payment_fee_rate[m])
    for key in ("expedited_share", "discount_share"):
        _check_prob(f"generator.orders.{key}", getattr(o, key))
    _check_range("generator.orders.discount_pct", o.discount_pct)
    if o.discount_pct[1] > 1:
        raise ConfigError("generator.orders.discount_pct", "must lie within [0, 1]", list(o.discount_pct))
    if list(o.tier_thresholds) != sorted(o.tier_thresholds) or len(o.tier_thresholds) != 4:
        raise ConfigError("generator.orders.tier_thresholds", "must be 4 ascending amounts", list(o.tier_thresholds))
    if list(o.clv_thresholds) != sorted(o.clv_thresholds) or len(o.clv_thresholds) != 3:
        raise ConfigError("generator.orders.clv_thresholds", "must be 3 ascending amounts", list(o.clv_thresholds))
    _check_positive("generator.orders.agents", o.agents)
    _check_schema_changes(g.schema_changes)
    _check_campaigns(g.campaigns)
    _check_drift(g.drift)
    r = g.returns
    _check_prob("generator.returns.second_return_share", r.second_return_share)
    _check_prob("generator.returns.line_share", r.line_share)
    _check_mix("generator.returns.reason_mix", r.reason_mix, idents(RETURN_REASONS))
    _check_mix("generator.returns.channel_mix", r.channel_mix)
    _check_mix("generator.returns.refund_method_mix", r.refund_method_mix)
    _check_range("generator.returns.partial_refund", r.partial_refund)
    for reason in idents(RETURN_REASONS):
        _check_prob(f"generator.returns.full_refund_share.{reason}", r.full_refund_share[reason])
    _check_mix("generator.returns.timing", {str(i): t[0] for i, t in enumerate(r.timing)})
    for i, t in enumerate(r.timing):
        _check_range(f"generator.returns.timing.{i}", t[1:], low=1, integer=True)
        if t[2] > 365:
            raise ConfigError(f"generator.returns.timing.{i}", "days after the order must be <= 365", t[2])
    m = c.mess
    _check_prob("mess.style_rate", m.style_rate)
    _check_prob("mess.null_rate", m.null_rate)
    _check_prob("mess.format_rate", m.format_rate)
    for name in ("late", "redelivery"):
        _check_prob(f"mess.{name}_share", getattr(m, f"{name}_share"))
        days = getattr(m, f"{name}_days")
        _check_range(f"mess.{name}_days", days, low=1, integer=True)
        if days[1] > 7:
            raise ConfigError(f"mess.{name}_days", "must lie within [1, 7] days", list(days))
    _check_prob("mess.reason_bias", m.reason_bias)
    _check_range("mess.spike_factor", m.spike_factor, low=1, integer=True)
    for cat in idents(CATEGORIES):
        if m.category_reason.get(cat) not in idents(RETURN_REASONS):
            raise ConfigError(f"mess.category_reason.{cat}", f"must be one of {', '.join(idents(RETURN_REASONS))}",
                              m.category_reason.get(cat))
    s = c.sink
    if s.kind == "gcs" and not s.bucket:
        raise ConfigError("sink.bucket", "is required with sink=gcs (e.g. sink.bucket=my-bucket)")
    if s.kind == "local" and not s.root:
        raise ConfigError("sink.root", "must be a directory path")
    _check_positive("sink.max_attempts", s.max_attempts)
    _check_positive("sink.backoff_base_s", s.backoff_base_s, minimum=0)
    _check_positive("sink.backoff_max_s", s.backoff_max_s, minimum=0)
    _check_positive("sink.timeout_s", s.timeout_s, minimum=0.01)
    _check_positive("sink.concurrency", s.concurrency)
    if c.ray.num_cpus is not None:
        _check_positive("ray.num_cpus", c.ray.num_cpus)
    if c.ray.max_in_flight is not None:
        _check_positive("ray.max_in_flight", c.ray.max_in_flight)
    if c.ray.plan_shards is not None:
        _check_positive("ray.plan_shards", c.ray.plan_shards)
    _check_positive("ray.batch_rows", c.ray.batch_rows)
    if c.ray.object_store_mb is not None:
        _check_positive("ray.object_store_mb", c.ray.object_store_mb, minimum=100)
    _check_positive("output.target_file_mb", c.output.target_file_mb)
    _check_positive("output.row_group_rows", c.output.row_group_rows)
    for hook in c.hooks.post_export:
        if ":" not in hook:
            raise ConfigError("hooks.post_export", "entries must look like module:function", hook)
    if c.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("logging.level", "must be one of DEBUG, INFO, WARNING, ERROR", c.logging.level)
