"""Deliberate, deterministic mess, with a ledger of every value it touched.

Draws are keyed by (table, column, row key), so the same row gets the same mess in any
chunking. Keys and partition columns are never touched and no row is dropped. The
ledger (column -> kind -> per-row mask) becomes the per-partition mess counts in each
manifest: ground truth for data-quality exercises.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bear.config import RETURN_REASONS, MessConfig
from bear.model import DAY_S, Model

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
NULL_COLUMNS = {
    "customers": ("email_verified", "marketing_opt_in"),
    "shopping_carts": ("updated_at",),
    "cart_items": ("added_at",),
    "orders": ("agent_id",),
    "returns": ("agent_id",),
}
STYLES = ("leading_space", "trailing_space", "upper", "lower", "title")

Ledger = dict[str, dict[str, np.ndarray]]


def _style(values: pa.Array, kind: np.ndarray) -> pa.Array:
    """Apply style `kind` (index into STYLES) to each value."""
    out = values
    variants = (
        pc.binary_join_element_wise(pa.scalar(" "), values, ""),
        pc.binary_join_element_wise(values, pa.scalar(" "), ""),
        pc.utf8_upper(values),
        pc.utf8_lower(values),
        pc.utf8_title(values),
    )
    for k, variant in enumerate(variants):
        out = pc.if_else(pa.array(kind == k), variant, out)
    return out


def _replace(arr: pa.Array, mask: np.ndarray, new_values: pa.Array) -> pa.Array:
    return pc.replace_with_mask(arr, pa.array(mask), new_values.cast(arr.type))


def apply_mess(model: Model, table: str, cols: dict[str, pa.Array], key: np.ndarray,
               event_s: np.ndarray, related: dict | None = None) -> Ledger:
    """Mess `cols` in place; returns what was done. `related` carries return-item categories for reasons."""
    m: MessConfig = model.cfg.mess
    ledger: Ledger = {}
    if m.level == "none":
        return ledger
    rng = model.rng
    if m.advanced and table == "orders":
        ledger["total_items"] = {"spike": _spike(model, cols, event_s, key)}
    if m.advanced and table == "returns" and related is not None:
        ledger["reason"] = {"redrawn": _redraw_reasons(model, cols, key, related)}
    for col in STYLE_COLUMNS.get(table, ()):
        hit = rng.uniform(f"mess/style/{table}/{col}", key) < m.style_rate
        kind = rng.integers(f"mess/style_kind/{table}/{col}", 0, len(STYLES) - 1, key)
        idx = np.flatnonzero(hit)
        before = cols[col].take(pa.array(idx))
        after = _style(before, kind[idx])
        cols[col] = _replace(cols[col], hit, after)
        changed = np.zeros(hit.size, dtype=bool)  # lower-casing "open" is no mess: count only real changes
        changed[idx] = pc.fill_null(pc.not_equal(before, after), False).to_numpy(zero_copy_only=False)
        ledger.setdefault(col, {})["whitespace"] = changed & (kind <= 1)
        ledger[col]["casing"] = changed & (kind >= 2)
    for col in NULL_COLUMNS.get(table, ()):
        hit = rng.uniform(f"mess/null/{table}/{col}", key) < m.null_rate
        cols[col] = pc.if_else(pa.array(hit), pa.nulls(len(hit), cols[col].type), cols[col])
        ledger.setdefault(col, {})["null"] = hit
    return ledger


def _spike(model: Model, cols: dict[str, pa.Array], event_s: np.ndarray, key: np.ndarray) -> np.ndarray:
    """One day a month, every order's total_items is multiplied (a broken upstream counter)."""
    day = event_s // DAY_S
    month = day.astype("datetime64[D]").astype("datetime64[M]")
    month_i = month.astype(np.int64)
    first = month.astype("datetime64[D]").astype(np.int64)
    length = (month + 1).astype("datetime64[D]").astype(np.int64) - first
    spike_day = first + (model.rng.uniform("mess/spike_day", month_i) * length).astype(np.int64)
    hit = day == spike_day
    lo, hi = model.cfg.mess.spike_factor
    factor = model.rng.integers("mess/spike_factor", lo, hi, month_i)
    items = cols["total_items"].to_numpy(zero_copy_only=False)
    cols["total_items"] = pa.array(np.where(hit, items * factor, items).astype(np.int32))
    return hit


def _redraw_reasons(model: Model, cols: dict[str, pa.Array], key: np.ndarray, related: dict) -> np.ndarray:
    """Some return reasons are re-drawn, biased toward what the first returned item's category suggests."""
    m = model.cfg.mess
    rng = model.rng
    hit = rng.uniform("mess/redraw", key) < m.style_rate
    typical = np.array([RETURN_REASONS.index(m.category_reason[c]) for c in related["categories"]])
    biased = rng.uniform("mess/redraw_bias", key) < m.reason_bias
    random_reason = rng.integers("mess/redraw_reason", 0, len(RETURN_REASONS) - 1, key)
    new = np.where(biased, typical[related["first_category"]], random_reason)
    reasons = pa.array(list(RETURN_REASONS)).take(pa.array(new))
    cols["reason"] = pc.if_else(pa.array(hit), reasons, cols["reason"])
    return hit
