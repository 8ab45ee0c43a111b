"""The run's configuration: structured schema (registered with Hydra) and validation.

Every behaviour parameter of DESIGN §2 lives here with its reference value, so a Hydra
override can change any of them and `validate` can reject bad values with one line that
names the key and what is allowed, before anything is written.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

CHANNELS = ("Website", "Email", "Social Media", "Phone")
TIERS = ("Platinum", "Gold", "Silver", "Bronze", "None")
SEGMENT_TIERS = (*TIERS, "Guest")
CATEGORIES = ("Books", "Clothing", "Electronics", "Home", "Toys")
ORDER_CHANNELS = ("Web", "Phone", "Social", "Ebay", "NewEgg")
PAYMENT_METHODS = ("Credit Card", "PayPal", "Apple Pay", "Gift Card")
SHIPPING_SPEEDS = ("Standard", "Two-Day", "Overnight")
RETURN_REASONS = ("Damaged", "Defective", "Wrong Item", "Not as Described", "Changed Mind", "Size/Fit")
MESS_LEVELS = ("none", "light_mess", "medium_mess", "heavy_mess")


class ConfigError(ValueError):
    """A config value outside what bear accepts; `str()` is the one line shown to the user."""

    def __init__(self, key: str, allowed: str, got: Any = None):
        self.key = key
        suffix = "" if got is None else f" (got {got!r})"
        super().__init__(f"{key}: {allowed}{suffix}")


def ident(label: str) -> str:
    """A display label's config key, an identifier a command line can name: `Social Media` -> `social_media`,
    `Size/Fit` -> `size_fit`, `Two-Day` -> `two_day`. The data keeps the labels."""
    return re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")


def title_label(key_: str) -> str:
    """The label of an identifier of an open vocabulary (return channels, refund methods): its words title-cased."""
    return key_.replace("_", " ").title()


def per_label(mapping: dict[str, Any], labels: tuple[str, ...]) -> list[Any]:
    """mapping[ident(label)] for each label, in the vocabulary's order."""
    return [mapping[ident(lb)] for lb in labels]


def _keyed(obj: Any) -> Any:
    """Labels to keys, in a default written with labels: mapping keys, and the labels listed as values."""
    if isinstance(obj, dict):
        return {ident(k): _keyed(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_keyed(v) for v in obj]
    return ident(obj) if isinstance(obj, str) else obj


def idents(labels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(ident(lb) for lb in labels)


def _d(**kw: Any):
    return field(default_factory=lambda: dict(kw))


def _labelled(**by_label: Any):
    """A default written with display labels (readable here), stored under their keys."""
    return field(default_factory=lambda: _keyed(by_label))


def _by_channel(**per_tier: Any):
    return _labelled(**{c: per_tier[c.replace(" ", "_")] for c in CHANNELS})


@dataclass
class RunConfig:
    start: str = "2020-01-01"
    end: str = "2026-01-08"
    chunk_days: int = 30
    seed: int = 42
    # Start over (wipe run state and data) when the lake holds a run of another config.
    restart: bool = False


@dataclass
class CustomerConfig:
    guest_share: float = 0.40
    no_tier_share: float = 0.10
    signup_start: str = "2019-01-01"
    signup_end: str = "2026-01-05"
    channel_mix: dict[str, float] = _labelled(
        **{"Website": 0.55, "Email": 0.20, "Social Media": 0.15, "Phone": 0.10}
    )
    tier_mix: dict[str, Any] = _by_channel(
        Website={"Bronze": 0.40, "Silver": 0.30, "Gold": 0.20, "Platinum": 0.10},
        Email={"Bronze": 0.35, "Silver": 0.30, "Gold": 0.22, "Platinum": 0.13},
        Social_Media={"Bronze": 0.50, "Silver": 0.30, "Gold": 0.15, "Platinum": 0.05},
        Phone={"Bronze": 0.30, "Silver": 0.30, "Gold": 0.25, "Platinum": 0.15},
    )


@dataclass
class VisitConfig:
    """Per-customer visit process: spells of repeat visits separated by breaks."""

    first_cart_days: list[int] = field(default_factory=lambda: [1, 14])
    # Poisson mean of repeat visits in one spell, per signup channel x tier.
    repeat_visits: dict[str, Any] = _by_channel(
        Website={"Platinum": 4.8, "Gold": 3.5, "Silver": 2.4, "Bronze": 1.2, "None": 0.6, "Guest": 0.3},
        Email={"Platinum": 5.2, "Gold": 3.8, "Silver": 2.6, "Bronze": 1.4, "None": 0.7, "Guest": 0.3},
        Social_Media={"Platinum": 4.0, "Gold": 3.0, "Silver": 2.0, "Bronze": 1.0, "None": 0.5, "Guest": 0.3},
        Phone={"Platinum": 4.4, "Gold": 3.2, "Silver": 2.2, "Bronze": 1.1, "None": 0.6, "Guest": 0.3},
    )
    # Log-normal gap between repeat visits: [min_days, max_days] (median is their geometric mean).
    gap_days: dict[str, Any] = _labelled(
        Platinum=[10, 45], Gold=[14, 60], Silver=[18, 75], Bronze=[25, 90], **{"None": [30, 120]},
        Guest=[45, 180],
    )
    gap_sigma: dict[str, float] = _labelled(
        Platinum=0.5, Gold=0.55, Silver=0.6, Bronze=0.65, **{"None": 0.7}, Guest=0.7
    )
    # Multiplies gaps per signup channel (shorter gaps = more visits).
    channel_gap_factor: dict[str, float] = _labelled(
        **{"Website": 1.0, "Email": 0.95, "Social Media": 1.1, "Phone": 1.05}
    )
    # Break between spells (log-normal, [min, max] days); reactivation replaces it with a long lapse.
    break_days: list[int] = field(default_factory=lambda: [20, 90])
    break_sigma: float = 0.6
    reactivation_share: float = 0.08
    reactivation_days: list[int] = field(default_factory=lambda: [200, 400])
    # Signup-month cohort multipliers on repeat visits (retention shocks).
    cohort_shocks: dict[str, float] = _d(**{"2024-03": 0.5, "2024-05": 1.8})
    # Calendar-month multipliers on visit intensity.
    seasonality: dict[str, float] = _d(**{"7": 1.2, "11": 1.6, "12": 2.1})


@dataclass
class CartConfig:
    lines: dict[str, Any] = _labelled(
        Platinum=[4, 15], Gold=[3, 10], Silver=[2, 8], Bronze=[1, 6], **{"None": [1, 5]}, Guest=[1, 5]
    )
    quantity: dict[str, Any] = _labelled(
        Platinum=[1, 6], Gold=[1, 4], Silver=[1, 3], Bronze=[1, 2], **{"None": [1, 2]}, Guest=[1, 2]
    )
    category_preference: dict[str, Any] = _by_channel(
        Website={"Books": 0.20, "Clothing": 0.20, "Electronics": 0.25, "Home": 0.20, "Toys": 0.15},
        Email={"Books": 0.25, "Clothing": 0.20, "Electronics": 0.15, "Home": 0.25, "Toys": 0.15},
        Social_Media={"Books": 0.10, "Clothing": 0.35, "Electronics": 0.20, "Home": 0.10, "Toys": 0.25},
        Phone={"Books": 0.20, "Clothing": 0.15, "Electronics": 0.30, "Home": 0.25, "Toys": 0.10},
    )
    conversion: float = 0.12
    first_purchase_boost: dict[str, float] = _labelled(
        **{"Website": 1.1, "Email": 1.3, "Social Media": 1.0, "Phone": 1.5}
    )
    open_share: float = 0.10
    emptied_share: float = 0.15
    # Minutes between cart creation and its last update / order (kept inside the day).
    session_minutes: list[int] = field(default_factory=lambda: [2, 90])


@dataclass
class OrderConfig:
    channel_mix: dict[str, float] = _labelled(Web=0.45, Phone=0.20, Social=0.15, Ebay=0.15, NewEgg=0.05)
    payment_methods: dict[str, Any] = _labelled(
        Web=["Credit Card", "PayPal", "Apple Pay", "Gift Card"],
        Phone=["Credit Card", "Gift Card"],
        Social=["PayPal", "Credit Card", "Apple Pay"],
        Ebay=["PayPal", "Credit Card"],
        NewEgg=["Credit Card", "PayPal"],
    )
    payment_fee_rate: dict[str, float] = _labelled(
        **{"Credit Card": 0.029, "PayPal": 0.0349, "Apple Pay": 0.025, "Gift Card": 0.0}
    )
    shipping_mix: dict[str, float] = _labelled(**{"Standard": 0.65, "Two-Day": 0.20, "Overnight": 0.15})
    shipping_price: dict[str, float] = _labelled(**{"Standard": 5.0, "Two-Day": 45.0, "Overnight": 80.0})
    shipping_cost: dict[str, float] = _labelled(**{"Standard": 4.5, "Two-Day": 38.0, "Overnight": 70.0})
    shipping_cost_variance: list[float] = field(default_factory=lambda: [-0.15, 0.10])
    expedited_share: float = 0.20
    discount_share: float = 0.20
    discount_pct: list[float] = field(default_factory=lambda: [0.05, 0.25])
    tier_thresholds: list[float] = field(default_factory=lambda: [0.0, 100.0, 500.0, 1000.0])
    clv_thresholds: list[float] = field(default_factory=lambda: [0.0, 250.0, 750.0])
    agents: int = 20


@dataclass
class ReturnConfig:
    rate: dict[str, float] = _labelled(**{"Social Media": 0.35, "Website": 0.25, "Email": 0.20, "Phone": 0.15})
    # Mixture of (share, min_days, max_days) after the order.
    timing: list[Any] = field(default_factory=lambda: [[0.80, 1, 30], [0.15, 31, 90], [0.05, 91, 365]])
    second_return_share: float = 0.15
    line_share: float = 0.75
    reason_mix: dict[str, float] = _labelled(
        **{"Damaged": 0.2, "Defective": 0.2, "Wrong Item": 0.1, "Not as Described": 0.15,
           "Changed Mind": 0.2, "Size/Fit": 0.15}
    )
    full_refund_share: dict[str, float] = _labelled(
        **{"Damaged": 0.95, "Defective": 0.9, "Wrong Item": 0.95, "Not as Described": 0.7,
           "Changed Mind": 0.2, "Size/Fit": 0.5}
    )
    partial_refund: list[float] = field(default_factory=lambda: [0.5, 0.9])
    channel_mix: dict[str, float] = _labelled(Online=0.45, Mail=0.25, Store=0.15, Phone=0.15)
    refund_method_mix: dict[str, float] = _labelled(
        **{"Original Payment": 0.70, "Store Credit": 0.20, "Gift Card": 0.10}
    )


@dataclass
class GeneratorConfig:
    customers: int = 300_000
    products: int = 3_000
    scale: float = 1.0
    visits: VisitConfig = field(default_factory=VisitConfig)
    carts: CartConfig = field(default_factory=CartConfig)
    orders: OrderConfig = field(default_factory=OrderConfig)
    returns: ReturnConfig = field(default_factory=ReturnConfig)
    customer: CustomerConfig = field(default_factory=CustomerConfig)


@dataclass
class MessConfig:
    level: str = "medium_mess"
    style_rate: float = 0.08
    null_rate: float = 0.04
    advanced: bool = True
    spike_factor: list[int] = field(default_factory=lambda: [5, 20])
    # Weight given to a category's typical reason when return reasons are re-drawn.
    reason_bias: float = 0.6
    category_reason: dict[str, str] = _labelled(
        Books="Damaged", Clothing="Size/Fit", Electronics="Defective", Home="Damaged", Toys="Defective"
    )


@dataclass
class SinkConfig:
    kind: str = "local"
    root: str = "./lake"
    bucket: str | None = None
    prefix: str = "ecom/raw"
    token: str = "google_default"
    # GCS endpoint URL (an emulator); default: STORAGE_EMULATOR_HOST if set, else Google's.
    endpoint: str | None = None
    dry_run: bool = False
    # Attempts per GCS call (transient failures only), exponential backoff with jitter between them.
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    # Seconds a GCS request may wait to connect or for the next byte of the answer before it is retried.
    timeout_s: float = 60.0
    # Objects one worker (or the committing driver) writes at once: uploads wait on the network, a local
    # disk does not (sink=gcs sets 16).
    concurrency: int = 1


@dataclass
class RayConfig:
    kind: str = "local"
    address: str | None = None
    num_cpus: int | None = None
    max_in_flight: int | None = None
    max_retries: int = 3


@dataclass
class OutputConfig:
    compression: str = "zstd"
    compression_level: int | None = None
    target_file_mb: int = 128
    row_group_rows: int = 1_000_000


@dataclass
class HooksConfig:
    post_export: list[str] = field(default_factory=list)


@dataclass
class LoggingConfig:
    level: str = "INFO"
    format: str = "text"
    progress: str = "auto"


@dataclass
class VerifyConfig:
    json: bool = False
    examples: int = 5
    # Allowed absolute deviation of a measured mess rate from the configured one.
    mess_tolerance: float = 0.03


@dataclass
class BearConfig:
    command: str = "run"
    # Machine-readable output (`--json`): plan, status and verify print JSON documents.
    json: bool = False
    run: RunConfig = field(default_factory=RunConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    mess: MessConfig = field(default_factory=MessConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)


def register() -> None:
    ConfigStore.instance().store(name="bear_schema", node=BearConfig)


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


def validate(cfg: DictConfig | BearConfig) -> None:
    """Reject what bear cannot run, naming the first offending key (DESIGN §8)."""
    c = OmegaConf.to_object(cfg) if isinstance(cfg, DictConfig) else cfg
    start, end = parse_date("run.start", c.run.start), parse_date("run.end", c.run.end)
    if end < start:
        raise ConfigError("run.end", f"must be on or after run.start ({start})", c.run.end)
    _check_positive("run.chunk_days", c.run.chunk_days)
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
    if m.level not in MESS_LEVELS:
        raise ConfigError("mess", f"must be one of {', '.join(MESS_LEVELS)}", m.level)
    _check_prob("mess.style_rate", m.style_rate)
    _check_prob("mess.null_rate", m.null_rate)
    _check_prob("mess.reason_bias", m.reason_bias)
    _check_range("mess.spike_factor", m.spike_factor, low=1, integer=True)
    for cat in idents(CATEGORIES):
        if m.category_reason.get(cat) not in idents(RETURN_REASONS):
            raise ConfigError(f"mess.category_reason.{cat}", f"must be one of {', '.join(idents(RETURN_REASONS))}",
                              m.category_reason.get(cat))
    s = c.sink
    if s.kind not in ("local", "gcs"):
        raise ConfigError("sink", "must be one of local, gcs", s.kind)
    if s.kind == "gcs" and not s.bucket:
        raise ConfigError("sink.bucket", "is required with sink=gcs (e.g. sink.bucket=my-bucket)")
    if s.kind == "local" and not s.root:
        raise ConfigError("sink.root", "must be a directory path")
    _check_positive("sink.max_attempts", s.max_attempts)
    _check_positive("sink.backoff_base_s", s.backoff_base_s, minimum=0)
    _check_positive("sink.backoff_max_s", s.backoff_max_s, minimum=0)
    _check_positive("sink.timeout_s", s.timeout_s, minimum=0.01)
    _check_positive("sink.concurrency", s.concurrency)
    if c.ray.kind not in ("local", "cluster"):
        raise ConfigError("ray", "must be one of local, cluster", c.ray.kind)
    if c.ray.num_cpus is not None:
        _check_positive("ray.num_cpus", c.ray.num_cpus)
    if c.ray.max_in_flight is not None:
        _check_positive("ray.max_in_flight", c.ray.max_in_flight)
    if c.output.compression not in ("zstd", "snappy", "gzip", "lz4", "brotli", "none"):
        raise ConfigError("output.compression", "must be one of zstd, snappy, gzip, lz4, brotli, none",
                          c.output.compression)
    _check_positive("output.target_file_mb", c.output.target_file_mb)
    _check_positive("output.row_group_rows", c.output.row_group_rows)
    for hook in c.hooks.post_export:
        if ":" not in hook:
            raise ConfigError("hooks.post_export", "entries must look like module:function", hook)
    if c.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("logging.level", "must be one of DEBUG, INFO, WARNING, ERROR", c.logging.level)
    if c.logging.format not in ("text", "json"):
        raise ConfigError("logging.format", "must be one of text, json", c.logging.format)
    if c.logging.progress not in ("auto", "bar", "log", "quiet"):
        raise ConfigError("logging.progress", "must be one of auto, bar, log, quiet", c.logging.progress)
