"""The run's configuration schema: every setting with its reference value, registered with Hydra.

Every behaviour parameter of the reference workflow lives here with its reference value, so a Hydra
override can change any of them; `bear.config.validate` rejects bad values and
`bear.config.load` composes and validates a config in one place.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hydra.core.config_store import ConfigStore

from bear.config.timeline import CampaignConfig, DriftConfig, SchemaChangeConfig, default_campaigns
from bear.core.vocab import (
    CHANNELS,
    MESS_LEVELS,
    ident,
)

# The closed sets of settings: Hydra rejects any other value, naming the key and the allowed ones.
MessLevel = StrEnum("MessLevel", [(level, level) for level in MESS_LEVELS])


class SinkKind(StrEnum):
    local = "local"
    gcs = "gcs"


class RayKind(StrEnum):
    local = "local"
    cluster = "cluster"
    inprocess = "inprocess"


class Compression(StrEnum):
    zstd = "zstd"
    snappy = "snappy"
    gzip = "gzip"
    lz4 = "lz4"
    brotli = "brotli"
    none = "none"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class Progress(StrEnum):
    auto = "auto"
    bar = "bar"
    log = "log"
    quiet = "quiet"


def _keyed(obj: Any) -> Any:
    """Labels to keys, in a default written with labels: mapping keys, and the labels listed as values."""
    if isinstance(obj, dict):
        return {ident(k): _keyed(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_keyed(v) for v in obj]
    return ident(obj) if isinstance(obj, str) else obj

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
    # Seconds a run's writer lease on the lake lasts without a heartbeat (renewed every sixth of it): a second
    # run is refused while it is live; a killed run's lease is taken over once it has expired.
    lease_s: float = 180.0


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
    campaigns: list[CampaignConfig] = field(default_factory=default_campaigns)
    drift: DriftConfig = field(default_factory=DriftConfig)
    # New nullable columns appear in a table's files from a day on; each change live on a partition's day adds one
    # to the table schema version its manifest records (1: the base columns).
    schema_changes: list[SchemaChangeConfig] = field(default_factory=lambda: [
        SchemaChangeConfig("orders", ["utm_source", "referral_code"], "2024-07-01")])

    @property
    def catalog_size(self) -> int:
        """Products in the catalog: generator.products, then every campaign's launched SKUs."""
        return self.products + sum(c.new_products for c in self.campaigns)


@dataclass
class MessConfig:
    level: MessLevel = MessLevel.medium_mess
    style_rate: float = 0.08
    null_rate: float = 0.04
    # Share of emails and phone numbers written in a variant format of the same value (case, spacing, country code).
    format_rate: float = 0.03
    advanced: bool = True
    spike_factor: list[int] = field(default_factory=lambda: [5, 20])
    # Weight given to a category's typical reason when return reasons are re-drawn.
    reason_bias: float = 0.6
    category_reason: dict[str, str] = _labelled(
        Books="Damaged", Clothing="Size/Fit", Electronics="Defective", Home="Damaged", Toys="Defective"
    )
    # Delivery of the order feed (orders with their lines and the customer_changes they cause): a share of orders
    # lands late, in the partition of a day late_days after its order_date; a share is delivered a second time
    # (same business key, another event_id, a later ingestion_ts) redelivery_days after its first delivery.
    late_share: float = 0.02
    late_days: list[int] = field(default_factory=lambda: [1, 3])
    redelivery_share: float = 0.0
    redelivery_days: list[int] = field(default_factory=lambda: [1, 2])

    @property
    def max_lag(self) -> int:
        """How many days after its order an order's last delivery can land (0: every row lands on its event day)."""
        return (self.late_days[1] if self.late_share else 0) + (self.redelivery_days[1] if self.redelivery_share else 0)


@dataclass
class SinkConfig:
    kind: SinkKind = SinkKind.local
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
    # Local sink: flush each chunk's files to the disk (one syncfs per chunk and per commit) before the commit
    # that makes them visible, so a power cut never leaves the checkpoint ahead of the data. Off only for
    # scratch lakes (tmpfs, a benchmark's throwaway disk).
    fsync: bool = True


@dataclass
class RayConfig:
    kind: RayKind = RayKind.local
    address: str | None = None
    num_cpus: int | None = None
    max_in_flight: int | None = None
    max_retries: int = 3
    # Customer shards the skeleton pass is split into (default: one per CPU, at least 20,000 customers each).
    # Changes where planning runs, never what is written.
    plan_shards: int | None = None
    # Rows a chunk job generates and writes at once: a bigger chunk goes a few days at a time, so a worker's
    # memory (about 0.6 KB per row) does not grow with the chunk. Never changes a byte.
    batch_rows: int = 1_000_000
    # ray=local: size of the object store that holds the skeleton's pieces until their chunks run (default:
    # Ray's, 30 % of memory); what does not fit spills to disk.
    object_store_mb: int | None = None


@dataclass
class OutputConfig:
    compression: Compression = Compression.zstd
    compression_level: int | None = None
    target_file_mb: int = 128
    row_group_rows: int = 1_000_000


@dataclass
class HooksConfig:
    post_export: list[str] = field(default_factory=list)


@dataclass
class LoggingConfig:
    level: str = "INFO"
    format: LogFormat = LogFormat.text
    progress: Progress = Progress.auto


@dataclass
class VerifyConfig:
    json: bool = False
    examples: int = 5
    # Allowed absolute deviation of a measured mess rate from the configured one.
    mess_tolerance: float = 0.03
    # After the audit, measure the order stream's realism against the config (`bear verify --profile`).
    profile: bool = False


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


@functools.cache
def register() -> None:
    """The schema in Hydra's process-wide config store, once: storing it converts every default (~0.15 s)."""
    ConfigStore.instance().store(name="bear_schema", node=BearConfig)
