"""The nine tables: columns (type, nullability, meaning), keys, partitioning and mess targets.

This is the one place a table's shape is defined: the writer, the mess, `bear verify` and the
data dictionary (`docs/schema.md`, rendered by `bear.cli.schema_doc`) all read it. Pinning the
schema (instead of letting Arrow infer it per chunk) keeps every file of a table readable as
one dataset, even where mess nulls a whole column in some partition.

Column names follow the bronze contract v1 the raw zone's consumer reads: renaming,
removing or retyping a column breaks it; adding a nullable column does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bear.core.calendar import day_number
from bear.core.money import MONEY

TS = pa.timestamp("us")
S = pa.string()
DATE = pa.date32()


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str


EVENT_ID_PREFIX = "evt_"  # event_id = this + 16 hex digits of (table code << 52 | the row's key)
LINEAGE_COLUMNS = (
    Column("batch_id", S, "the partition's batch: `<config fingerprint[:12]>-<table>-<partition value>`"),
    Column("ingestion_ts", TS, "when the nightly batch landed it: 02:00 UTC the day after the partition's day "
                                      "(product_catalog: the run's start)"),
    Column("event_id", S, "`evt_` + 16 hex digits (table code in the top 12 bits, the row's key below); unique "
                          "per row, the same in every rerun"),
    Column("source_file", S, "the file's path relative to the lake root"),
)
INGEST_DT = Column("ingest_dt", DATE, "the partition's day (equal to the path's `ingest_dt=`)")

_COLUMNS: dict[str, tuple[Column, ...]] = {
    "customers": (
        Column("customer_id", S, "`CUST-00000001` (registered) or `GUEST-00000001` (guest); one number sequence"),
        Column("first_name", S, "first name"),
        Column("last_name", S, "last name"),
        Column("email", S, "`first.last<customer number>@domain`, lower case"),
        Column("phone_number", S, "`+1-AAA-EEE-LLLL`"),
        Column("signup_date", DATE, "registration day; a guest's first contact (the day of its first cart); "
                                    "equal to the path's `signup_date=`"),
        Column("gender", S, "Female, Male, Non-binary"),
        Column("age", pa.int16(), "18-80"),
        Column("is_guest", pa.bool_(), "checked out without an account"),
        Column("customer_status", S, "Active, Inactive, Suspended"),
        Column("signup_channel", S, "Website, Email, Social Media, Phone"),
        Column("loyalty_tier", S, "Platinum, Gold, Silver, Bronze when the row was written, at signup (the "
                                  "initial tier); later upgrades are rows of customer_changes; null without a tier "
                                  "and for guests"),
        Column("initial_loyalty_tier", S, "tier at signup; null without a tier and for guests"),
        Column("email_verified", pa.bool_(), "always false for guests"),
        Column("marketing_opt_in", pa.bool_(), "opted in to marketing"),
        Column("mailing_address", S, "`<no> <street>, <city>, <state> <zip>`"),
        Column("billing_address", S, "the mailing address for 80 %, another address otherwise"),
        Column("loyalty_enrollment_date", DATE, "0-30 days after signup; null without a tier and for guests"),
        Column("clv_bucket", S, "Low at signup (no spend yet); later buckets are rows of customer_changes"),
    ),
    "product_catalog": (
        Column("product_id", pa.int64(), "1..N, gap-free"),
        Column("product_name", S, "`<adjective> <noun> <number>`"),
        Column("category", S, "Books, Clothing, Electronics, Home, Toys (equal to the path's `category=`)"),
        Column("unit_price", MONEY, "list price, 5.00-250.00"),
        Column("cost_price", MONEY, "40-70 % of unit_price"),
        Column("inventory_quantity", pa.int32(), "100-250"),
        Column("launch_date", DATE, "the day a campaign launched the SKU (`generator.campaigns[].new_products`: "
                                    "product_ids after the original catalog's, sold from that day on); null for the "
                                    "original catalog"),
    ),
    "shopping_carts": (
        Column("cart_id", S, "`CART-00000001`, gap-free, rising with created_at"),
        Column("customer_id", S, "the shopper (customers.customer_id)"),
        Column("created_at", TS, "first item added; decides the partition"),
        Column("updated_at", TS, "last change (the checkout for converted carts), >= created_at"),
        Column("cart_total", MONEY, "sum of the cart's item lines (0 for emptied carts, which keep no lines)"),
        Column("status", S, "open, converted, abandoned, emptied"),
    ),
    "cart_items": (
        Column("cart_item_id", pa.int64(), "gap-free from 1"),
        Column("cart_id", S, "the cart (shopping_carts.cart_id), in whose partition the line sits"),
        Column("product_id", pa.int64(), "product_catalog.product_id; once per cart"),
        Column("product_name", S, "the product's name"),
        Column("category", S, "the product's category"),
        Column("added_at", TS, "between the cart's created_at and updated_at"),
        Column("quantity", pa.int32(), "units, >= 1"),
        Column("unit_price", MONEY, "the product's unit_price"),
    ),
    "orders": (
        Column("order_id", S, "`ORD-00000001`, gap-free, rising with order_date"),
        Column("customer_id", S, "the buyer (customers.customer_id)"),
        Column("cart_id", S, "the converted cart (shopping_carts.cart_id); an addition to the reference schema"),
        Column("total_items", pa.int32(), "units ordered (spiked one day a month at medium/heavy mess)"),
        Column("order_date", TS, "checkout, the cart's day; decides the partition (or, delivered late or again, "
                                 "the order's day is 1-5 days before it)"),
        Column("email", S, "the customer's email"),
        Column("order_channel", S, "Web, Phone, Social, Ebay, NewEgg"),
        Column("is_expedited", pa.bool_(), "expedited handling"),
        Column("customer_tier", S, "Bronze, Silver, Gold, Platinum earned from net spend before this order"),
        Column("gross_total", MONEY, "sum of the lines' quantity x unit_price"),
        Column("net_total", MONEY, "gross_total - total_discount_amount"),
        Column("total_discount_amount", MONEY, "sum of the lines' discount_amount"),
        Column("payment_method", S, "Credit Card, PayPal, Apple Pay, Gift Card (allowed per channel)"),
        Column("shipping_speed", S, "Standard, Two-Day, Overnight"),
        Column("shipping_cost", MONEY, "what the customer paid for shipping"),
        Column("actual_shipping_cost", MONEY, "what shipping cost the business"),
        Column("payment_processing_fee", MONEY, "net_total x the payment method's fee rate"),
        Column("agent_id", S, "`CSR-0001`..`CSR-0020` for phone orders, `ONLINE` otherwise"),
        Column("shipping_address", S, "the customer's mailing address"),
        Column("billing_address", S, "the customer's billing address"),
        Column("clv_bucket", S, "Low, Medium, High from net spend including this order"),
        Column("is_reactivated", pa.bool_(), "first visit after a 200-400 day lapse"),
    ),
    "order_items": (
        Column("order_id", S, "the order (orders.order_id), in whose partition the line sits"),
        Column("product_id", pa.int64(), "product_catalog.product_id; once per order"),
        Column("product_name", S, "the product's name"),
        Column("category", S, "the product's category"),
        Column("quantity", pa.int32(), "units, >= 1"),
        Column("unit_price", MONEY, "the product's unit_price"),
        Column("discount_amount", MONEY, "5-25 % of the line's gross for 20 % of lines, else 0"),
        Column("cost_price", MONEY, "the product's cost_price"),
    ),
    "returns": (
        Column("return_id", S, "`RTN-00000001`, gap-free, rising with return_date"),
        Column("order_id", S, "the returned order (orders.order_id)"),
        Column("customer_id", S, "the order's customer"),
        Column("email", S, "the order's email"),
        Column("return_date", TS, "1-365 days after the order; decides the partition"),
        Column("reason", S, "Damaged, Defective, Wrong Item, Not as Described, Changed Mind, Size/Fit"),
        Column("return_type", S, "Full, Partial"),
        Column("refunded_amount", MONEY, "sum of the return's item refunds"),
        Column("return_channel", S, "Online, Mail, Store, Phone (configurable)"),
        Column("agent_id", S, "`CSR-0001`..`CSR-0020` for phone returns, `ONLINE` otherwise"),
        Column("refund_method", S, "Original Payment, Store Credit, Gift Card (configurable)"),
    ),
    "return_items": (
        Column("return_item_id", pa.int64(), "gap-free from 1"),
        Column("return_id", S, "the return (returns.return_id), in whose partition the line sits"),
        Column("order_id", S, "the order the line was bought in"),
        Column("product_id", pa.int64(), "with order_id, the order line returned (at most once)"),
        Column("product_name", S, "the product's name"),
        Column("category", S, "the product's category"),
        Column("quantity_returned", pa.int32(), "1..the quantity bought"),
        Column("unit_price", MONEY, "the product's unit_price"),
        Column("cost_price", MONEY, "the product's cost_price"),
        Column("refunded_amount", MONEY, "share of the line's net paid, full or partial by reason"),
    ),
    "customer_changes": (
        Column("customer_id", S, "the customer (customers.customer_id) whose attributes changed"),
        Column("valid_from", TS, "when the new values took effect: the order that earned them, or the run's start "
                                 "for what customers who signed up before it had earned by then; decides the "
                                 "partition (a change of a late order lands with it)"),
        Column("loyalty_tier", S, "Platinum, Gold, Silver, Bronze from then on (never below the initial tier); "
                                  "null without a tier and for guests"),
        Column("clv_bucket", S, "Low, Medium, High from then on, by net spend so far"),
        Column("changed", S, "what changed: `loyalty_tier`, `clv_bucket` or `loyalty_tier,clv_bucket`"),
        Column("order_id", S, "the order that earned the change (orders.order_id); null at the run's start"),
    ),
}

# Columns bear adds to a table later (schema evolution): nullable, after the table's own columns, present in the
# files of partitions from the day `generator.schema_changes` makes them live (absent, not null, before it).
ADDED_COLUMNS: dict[str, tuple[Column, ...]] = {
    "orders": (
        Column("utm_source", S, "campaign source of the visit: google, facebook, instagram, newsletter, tiktok; "
                                "null for direct traffic (about 40 %)"),
        Column("referral_code", S, "`REF-` + 6 upper-case hex digits for the 5 % of orders placed through a "
                                   "referral, else null"),
    ),
}

TABLES = tuple(_COLUMNS)
DIMENSIONS = ("customers", "product_catalog")
TRANSACTIONS = ("shopping_carts", "cart_items", "orders", "order_items", "returns", "return_items")
CHANGES = ("customer_changes",)  # append-only history of customer attributes (SCD2-ready)
DAILY = (*TRANSACTIONS, *CHANGES)  # tables with a partition per day of the run, empty days included
# The order feed: rows the feed delivers late or twice (bear.gen.delivery).
DELIVERED = ("orders", "order_items", "customer_changes")
REDELIVERED = ("orders", "order_items")  # what it delivers twice: a change row lands once, with its order
DELIVERY_KINDS = ("late", "redelivered")  # what a feed partition's manifest counts under "delivery"
TABLE_CODE = {t: i + 1 for i, t in enumerate(TABLES)}
PARTITION_KEY = {t: "ingest_dt" for t in DAILY} | {"customers": "signup_date", "product_catalog": "category"}
# A row's event time, per daily table (children sit with their parent): its partition's day, but for the order
# feed's late and re-delivered rows (bear.gen.delivery), which land a few days after it.
EVENT_COLUMN = {
    "shopping_carts": "created_at", "cart_items": None, "orders": "order_date", "order_items": None,
    "returns": "return_date", "return_items": None, "customer_changes": "valid_from",
}
PRIMARY_KEY = {
    "customers": ("customer_id",), "product_catalog": ("product_id",), "shopping_carts": ("cart_id",),
    "cart_items": ("cart_item_id",), "orders": ("order_id",), "order_items": ("order_id", "product_id"),
    "returns": ("return_id",), "return_items": ("return_item_id",), "customer_changes": ("customer_id", "valid_from"),
}
# Mess targets (bear.mess): stylistic mess (whitespace, casing) on these label columns ...
STYLE_COLUMNS = {
    "customers": ("gender", "customer_status", "clv_bucket"),
    "product_catalog": ("product_name",),
    "shopping_carts": ("status",),
    "cart_items": ("product_name",),
    "orders": ("payment_method", "shipping_speed", "clv_bucket"),
    "order_items": ("product_name",),
    "returns": ("reason", "return_type", "return_channel"),
    "return_items": ("product_name",),
}
# ... random nulls on these optional columns ...
NULL_COLUMNS = {
    "customers": ("email_verified", "marketing_opt_in"),
    "shopping_carts": ("updated_at",),
    "cart_items": ("added_at",),
    "orders": ("agent_id",),
    "returns": ("agent_id",),
}
# ... variant formats of the same value (case, spacing, country code) in these contact columns ...
FORMAT_COLUMNS = {"customers": ("email", "phone_number"), "orders": ("email",), "returns": ("email",)}
# ... and, at the levels with `advanced` mess, these injections of the predecessor's generator.
ADVANCED_MESS = {"orders": {"total_items": "spike"}, "returns": {"reason": "redrawn"}}
# These columns are null by their meaning (no tier), whatever the mess.
OPTIONAL_COLUMNS = {"customers": ("loyalty_tier", "initial_loyalty_tier", "loyalty_enrollment_date"),
                    "product_catalog": ("launch_date",),
                    "customer_changes": ("loyalty_tier", "order_id")}


def columns(table: str) -> tuple[Column, ...]:
    """A table's columns in file order: its own, those added later, the partition column where the path alone had
    it, lineage."""
    own = (*_COLUMNS[table], *ADDED_COLUMNS.get(table, ()))
    partition = (INGEST_DT,) if table in DAILY else ()
    return (*own, *partition, *LINEAGE_COLUMNS)


def added_names(table: str) -> tuple[str, ...]:
    return tuple(c.name for c in ADDED_COLUMNS.get(table, ()))


def nullable(table: str, column: str) -> bool:
    return (column in NULL_COLUMNS.get(table, ()) or column in OPTIONAL_COLUMNS.get(table, ())
            or column in added_names(table))


# What goes into the Parquet files. The partition column is a real column too (same value as the path), so a
# file read alone has it; hive-aware readers see one column. Non-nullable columns are Parquet REQUIRED.
SCHEMAS: dict[str, pa.Schema] = {
    t: pa.schema([pa.field(c.name, c.type, nullable=nullable(t, c.name)) for c in columns(t)]) for t in TABLES
}

# Schema changes as compiled from `generator.schema_changes`: table -> ((since day, added columns), ...), by day.
SchemaChanges = dict[str, tuple[tuple[int, tuple[str, ...]], ...]]


@dataclass(frozen=True)
class TableShape:
    """A partition's table schema: version 1 is the base columns; each schema change of the table live on the
    partition's day adds one to the version and its columns to the files (`added`, in schema order)."""

    version: int = 1
    added: tuple[str, ...] = ()

    def document(self) -> dict[str, Any]:
        """As the manifest's `table_schema`."""
        return {"version": self.version, "columns_added": list(self.added)}


BASE_SHAPE = TableShape()


def compile_changes(changes: Iterable[Any]) -> SchemaChanges:
    """Configured changes (each with table, columns, since YYYY-MM-DD; validated) as SchemaChanges."""
    out: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    for c in changes:
        out.setdefault(c.table, []).append((day_number(c.since), tuple(c.columns)))
    return {t: tuple(sorted(per_table)) for t, per_table in out.items()}


def shape_on(changes: SchemaChanges, table: str, day: int) -> TableShape:
    """The shape of a table's partition of `day`: the changes live on it (since <= day)."""
    live = [cols for since, cols in changes.get(table, ()) if since <= day]
    if not live:
        return BASE_SHAPE
    names = {c for cols in live for c in cols}
    return TableShape(1 + len(live), tuple(c for c in added_names(table) if c in names))


@cache
def shaped(schema: pa.Schema, table: str, added: tuple[str, ...]) -> pa.Schema:
    """`schema` (a table's full schema, or a variant with other types) without the added columns not in `added`:
    what a partition's files hold."""
    absent = set(added_names(table)) - set(added)
    return pa.schema([f for f in schema if f.name not in absent]) if absent else schema


def dictionary_columns(table: str) -> list[str]:
    """Low-cardinality string columns worth dictionary encoding (everything but IDs, names, addresses, lineage)."""
    skip = {"customer_id", "cart_id", "order_id", "return_id", "email", "phone_number", "first_name", "last_name",
            "mailing_address", "billing_address", "event_id", "referral_code"}
    return [f.name for f in SCHEMAS[table] if f.type == S and f.name not in skip]

# Foreign keys (child, columns, parent, parent columns) and "every parent has a line" pairs `bear verify` checks.
LINKS = (
    ("cart_items", ("cart_id",), "shopping_carts", ("cart_id",)),
    ("orders", ("cart_id",), "shopping_carts", ("cart_id",)),
    ("order_items", ("order_id",), "orders", ("order_id",)),
    ("returns", ("order_id",), "orders", ("order_id",)),
    ("return_items", ("return_id",), "returns", ("return_id",)),
    ("return_items", ("order_id", "product_id"), "order_items", ("order_id", "product_id")),
    ("shopping_carts", ("customer_id",), "customers", ("customer_id",)),
    ("orders", ("customer_id",), "customers", ("customer_id",)),
    ("returns", ("customer_id",), "customers", ("customer_id",)),
    ("cart_items", ("product_id",), "product_catalog", ("product_id",)),
    ("order_items", ("product_id",), "product_catalog", ("product_id",)),
    ("return_items", ("product_id",), "product_catalog", ("product_id",)),
    ("customer_changes", ("customer_id",), "customers", ("customer_id",)),
    ("customer_changes", ("order_id",), "orders", ("order_id",)),
)
HAS_LINES = (("orders", "order_items", "order_id"), ("returns", "return_items", "return_id"))
ID_COLUMNS = {"shopping_carts": "cart_id", "cart_items": "cart_item_id", "orders": "order_id",
              "returns": "return_id", "return_items": "return_item_id"}
# The plan's row family of each daily table (row counts; ID blocks where it has IDs): named like the table but carts.
PLAN_FAMILY = {t: t for t in DAILY} | {"shopping_carts": "carts"}
ID_FAMILIES = ("carts", "cart_items", "orders", "returns", "return_items")  # ID blocks the planner reserves per chunk
PADDING = ((1, 1), (1, 2), (2, 1), (2, 2))  # whitespace mess: spaces before and after the value
CASINGS = (pc.utf8_upper, pc.utf8_lower, pc.utf8_title)  # casing mess
