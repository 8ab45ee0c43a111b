"""Explicit Arrow schemas of the eight tables, their partitioning and Parquet encodings.

Pinning the schema (instead of letting Arrow infer it per chunk) keeps every file of a
table readable as one dataset, even where mess nulls a whole column in some partition.
"""

from __future__ import annotations

import pyarrow as pa

from bear.money import MONEY

TS = pa.timestamp("us")
S = pa.string()

LINEAGE = [
    pa.field("batch_id", S, nullable=False),
    pa.field("ingestion_ts", TS, nullable=False),
    pa.field("event_id", pa.int64(), nullable=False),
    pa.field("source_file", S, nullable=False),
]

_FIELDS: dict[str, list[tuple[str, pa.DataType]]] = {
    "customers": [
        ("customer_id", S), ("first_name", S), ("last_name", S), ("email", S), ("phone", S),
        ("signup_date", pa.date32()), ("gender", S), ("age", pa.int16()), ("is_guest", pa.bool_()),
        ("customer_status", S), ("signup_channel", S), ("loyalty_tier", S), ("initial_loyalty_tier", S),
        ("email_verified", pa.bool_()), ("marketing_opt_in", pa.bool_()), ("mailing_address", S),
        ("billing_address", S), ("loyalty_enrollment_date", pa.date32()), ("clv_bucket", S),
    ],
    "product_catalog": [
        ("product_id", pa.int64()), ("product_name", S), ("category", S), ("unit_price", MONEY),
        ("cost_price", MONEY), ("inventory_quantity", pa.int32()),
    ],
    "shopping_carts": [
        ("cart_id", S), ("customer_id", S), ("created_at", TS), ("updated_at", TS), ("cart_total", MONEY),
        ("status", S),
    ],
    "cart_items": [
        ("cart_item_id", pa.int64()), ("cart_id", S), ("product_id", pa.int64()), ("product_name", S),
        ("category", S), ("added_at", TS), ("quantity", pa.int32()), ("unit_price", MONEY),
    ],
    "orders": [
        ("order_id", S), ("customer_id", S), ("cart_id", S), ("total_items", pa.int32()), ("order_date", TS),
        ("email", S), ("order_channel", S), ("is_expedited", pa.bool_()), ("customer_tier", S),
        ("gross_total", MONEY), ("net_total", MONEY), ("total_discount_amount", MONEY), ("payment_method", S),
        ("shipping_speed", S), ("shipping_cost", MONEY), ("actual_shipping_cost", MONEY),
        ("payment_processing_fee", MONEY), ("agent_id", S), ("shipping_address", S), ("billing_address", S),
        ("clv_bucket", S), ("is_reactivated", pa.bool_()),
    ],
    "order_items": [
        ("order_id", S), ("product_id", pa.int64()), ("product_name", S), ("category", S), ("quantity", pa.int32()),
        ("unit_price", MONEY), ("discount_amount", MONEY), ("cost_price", MONEY),
    ],
    "returns": [
        ("return_id", S), ("order_id", S), ("customer_id", S), ("return_date", TS), ("reason", S),
        ("return_type", S), ("refunded_amount", MONEY), ("return_channel", S), ("agent_id", S),
        ("refund_method", S),
    ],
    "return_items": [
        ("return_item_id", pa.int64()), ("return_id", S), ("order_id", S), ("product_id", pa.int64()),
        ("product_name", S), ("category", S), ("quantity_returned", pa.int32()), ("unit_price", MONEY),
        ("cost_price", MONEY), ("refunded_amount", MONEY),
    ],
}

SCHEMAS: dict[str, pa.Schema] = {t: pa.schema([pa.field(n, ty) for n, ty in f] + LINEAGE) for t, f in _FIELDS.items()}
TABLES = tuple(_FIELDS)
DIMENSIONS = ("customers", "product_catalog")
TRANSACTIONS = ("shopping_carts", "cart_items", "orders", "order_items", "returns", "return_items")
TABLE_CODE = {t: i + 1 for i, t in enumerate(TABLES)}
PARTITION_KEY = {t: "ingest_dt" for t in TRANSACTIONS} | {"customers": "signup_date", "product_catalog": "category"}
# What a row's partition date is, per transactional table (children sit with their parent).
EVENT_COLUMN = {
    "shopping_carts": "created_at", "cart_items": None, "orders": "order_date", "order_items": None,
    "returns": "return_date", "return_items": None,
}
PRIMARY_KEY = {
    "customers": ("customer_id",), "product_catalog": ("product_id",), "shopping_carts": ("cart_id",),
    "cart_items": ("cart_item_id",), "orders": ("order_id",), "order_items": ("order_id", "product_id"),
    "returns": ("return_id",), "return_items": ("return_item_id",),
}
GUEST_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# What goes into the Parquet files: Hive convention keeps the partition column in the path only.
FILE_SCHEMAS: dict[str, pa.Schema] = {
    t: pa.schema([f for f in s if f.name != PARTITION_KEY[t]]) for t, s in SCHEMAS.items()
}


def dictionary_columns(table: str) -> list[str]:
    """Low-cardinality string columns worth dictionary encoding (everything but IDs, names and addresses)."""
    skip = {"customer_id", "cart_id", "order_id", "return_id", "email", "phone", "first_name", "last_name",
            "mailing_address", "billing_address"}
    return [f.name for f in SCHEMAS[table] if f.type == S and f.name not in skip]
