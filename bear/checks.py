"""DESIGN §6 invariants over Arrow tables: keys, integrity, time and money.

Pure functions on tables, so the same checks judge freshly generated tables in tests and
a lake read back from disk or GCS in `bear verify`. Each check returns failures with a
few example keys instead of raising, so one run reports everything that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bear.money import cents_of

DAY_US = 86_400 * 1_000_000


@dataclass
class Failure:
    check: str
    table: str
    detail: str
    examples: list = field(default_factory=list)

    def __str__(self) -> str:
        ex = f" e.g. {', '.join(map(str, self.examples[:5]))}" if self.examples else ""
        return f"{self.check} [{self.table}]: {self.detail}{ex}"


def id_numbers(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """`ORD-00000042` -> 42 (vectorised); integer columns pass through."""
    if pa.types.is_integer(ids.type):
        return np.asarray(ids.to_numpy(zero_copy_only=False), dtype=np.int64)
    digits = pc.utf8_slice_codeunits(ids, 4)
    digits = pc.replace_substring_regex(digits, r"^[^0-9]*", "")
    return pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)


def _examples(values, mask: np.ndarray, k: int = 5) -> list:
    idx = np.flatnonzero(mask)[:k]
    return [values[int(i)].as_py() if hasattr(values, "type") else values[int(i)] for i in idx]


def _norm(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Undo stylistic mess (whitespace, casing) for comparisons."""
    return pc.utf8_lower(pc.utf8_trim_whitespace(col))


def _ts(col) -> np.ndarray:
    """timestamp[us] -> int64 microseconds, nulls as INT64_MIN."""
    arr = pc.fill_null(pc.cast(col, pa.int64()), np.iinfo(np.int64).min)
    return arr.to_numpy(zero_copy_only=False)


def unique_keys(name: str, table: pa.Table, keys: tuple[str, ...]) -> list[Failure]:
    if table.num_rows == 0:
        return []
    counts = table.group_by(list(keys)).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    if dup.num_rows:
        return [Failure("keys.unique", name, f"{dup.num_rows} duplicated keys",
                        dup.select(list(keys)).slice(0, 5).to_pylist())]
    return []


def gap_free(name: str, col: str, ids: np.ndarray, first: int = 1) -> list[Failure]:
    s = np.sort(ids)
    expected = np.arange(first, first + s.size)
    if not np.array_equal(s, expected):
        bad = np.flatnonzero(s != expected)
        return [Failure("keys.gap_free", name, f"{col} is not contiguous from {first} ({s.size} ids)",
                        [int(expected[bad[0]])] if bad.size else [])]
    return []


def resolves(name: str, child: pa.Table, cols: list[str], parent: pa.Table, pcols: list[str]) -> list[Failure]:
    """Every (cols) of child appears among (pcols) of parent."""
    if child.num_rows == 0:
        return []
    if len(cols) == 1:
        missing = pc.invert(pc.is_in(child[cols[0]], value_set=parent[pcols[0]].combine_chunks()))
        mask = missing.to_numpy(zero_copy_only=False)
        if mask.any():
            return [Failure("integrity.foreign_key", name,
                            f"{int(mask.sum())} rows whose {cols[0]} is not in {pcols[0]}",
                            _examples(child[cols[0]], mask))]
        return []
    left = child.select(cols).rename_columns([f"k{i}" for i in range(len(cols))])
    right = parent.select(pcols).rename_columns([f"k{i}" for i in range(len(cols))])
    right = right.append_column("_hit", pa.array(np.ones(right.num_rows, dtype=bool)))
    joined = left.join(right.group_by(right.column_names[:-1]).aggregate([("_hit", "min")]),
                       keys=left.column_names, join_type="left outer")
    miss = joined.filter(pc.is_null(joined["_hit_min"]))
    if miss.num_rows:
        return [Failure("integrity.foreign_key", name, f"{miss.num_rows} rows whose ({', '.join(cols)}) do not resolve",
                        miss.slice(0, 5).select(left.column_names).to_pylist())]
    return []


def index_of(keys, universe) -> np.ndarray:
    """Position of each key in `universe`, -1 where absent."""
    if isinstance(universe, pa.ChunkedArray):
        universe = universe.combine_chunks()
    return pc.fill_null(pc.index_in(keys, value_set=universe), -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _sum_by(keys: pa.Array, cents: np.ndarray, universe: pa.Array) -> np.ndarray:
    """Sum of `cents` grouped by `keys`, aligned to `universe` (0 where absent)."""
    idx = index_of(keys, universe)
    ok = idx >= 0
    return np.bincount(idx[ok], weights=cents[ok], minlength=len(universe)).astype(np.int64)


def check_tables(t: dict[str, pa.Table], gap_free_ids: bool = True) -> list[Failure]:
    """All in-table invariants of DESIGN §6 over a set of tables (a window or a whole lake)."""
    out: list[Failure] = []
    carts, items, orders = t["shopping_carts"], t["cart_items"], t["orders"]
    oitems, rets, ritems = t["order_items"], t["returns"], t["return_items"]
    pk = {"shopping_carts": ("cart_id",), "cart_items": ("cart_item_id",), "orders": ("order_id",),
          "order_items": ("order_id", "product_id"), "returns": ("return_id",), "return_items": ("return_item_id",)}
    if "customers" in t:
        pk["customers"] = ("customer_id",)
    if "product_catalog" in t:
        pk["product_catalog"] = ("product_id",)
    for name, keys in pk.items():
        out += unique_keys(name, t[name], keys)
    if gap_free_ids:
        out += gap_free("shopping_carts", "cart_id", id_numbers(carts["cart_id"]))
        out += gap_free("cart_items", "cart_item_id", id_numbers(items["cart_item_id"]))
        out += gap_free("orders", "order_id", id_numbers(orders["order_id"]))
        out += gap_free("returns", "return_id", id_numbers(rets["return_id"]))
        out += gap_free("return_items", "return_item_id", id_numbers(ritems["return_item_id"]))

    out += resolves("cart_items", items, ["cart_id"], carts, ["cart_id"])
    out += resolves("orders", orders, ["cart_id"], carts, ["cart_id"])
    out += resolves("order_items", oitems, ["order_id"], orders, ["order_id"])
    out += resolves("returns", rets, ["order_id"], orders, ["order_id"])
    out += resolves("return_items", ritems, ["return_id"], rets, ["return_id"])
    out += resolves("return_items", ritems, ["order_id", "product_id"], oitems, ["order_id", "product_id"])
    if "customers" in t:
        for name in ("shopping_carts", "orders", "returns"):
            out += resolves(name, t[name], ["customer_id"], t["customers"], ["customer_id"])
    if "product_catalog" in t:
        for name in ("cart_items", "order_items", "return_items"):
            out += resolves(name, t[name], ["product_id"], t["product_catalog"], ["product_id"])
    for name, parent, child, key in (("orders", orders, oitems, "order_id"), ("returns", rets, ritems, "return_id")):
        lonely = pc.invert(pc.is_in(parent[key], value_set=child[key].combine_chunks())).to_numpy(zero_copy_only=False)
        if lonely.any():
            out.append(Failure("integrity.has_lines", name, f"{int(lonely.sum())} without any line",
                               _examples(parent[key], lonely)))

    out += _time_checks(t)
    out += _money_checks(t)
    return out


def _time_checks(t: dict[str, pa.Table]) -> list[Failure]:
    out = []
    carts, orders, rets = t["shopping_carts"], t["orders"], t["returns"]
    created, updated = _ts(carts["created_at"]), _ts(carts["updated_at"])
    bad = (updated != np.iinfo(np.int64).min) & (updated < created)
    if bad.any():
        out.append(Failure("time.updated_after_created", "shopping_carts", f"{int(bad.sum())} carts",
                           _examples(carts["cart_id"], bad)))
    if "customers" in t:
        cu = t["customers"]
        signup = pc.cast(pc.cast(cu["signup_date"], pa.timestamp("us")), pa.int64())
        idx = index_of(carts["customer_id"], cu["customer_id"])
        s = signup.to_numpy(zero_copy_only=False)
        known = idx >= 0
        su = np.full(created.size, np.iinfo(np.int64).min)
        su[known] = np.nan_to_num(s.astype(float)[idx[known]], nan=np.iinfo(np.int64).min).astype(np.int64)
        bad = created < su
        if bad.any():
            out.append(Failure("time.cart_after_signup", "shopping_carts", f"{int(bad.sum())} carts before signup",
                               _examples(carts["cart_id"], bad)))
    cart_idx = index_of(orders["cart_id"], carts["cart_id"])
    od = _ts(orders["order_date"])
    ok = cart_idx >= 0
    bad = np.zeros(od.size, dtype=bool)
    bad[ok] = od[ok] < created[cart_idx[ok]]
    if bad.any():
        out.append(Failure("time.order_after_cart", "orders", f"{int(bad.sum())} orders before their cart",
                           _examples(orders["order_id"], bad)))
    oidx = index_of(rets["order_id"], orders["order_id"])
    rd = _ts(rets["return_date"]) // DAY_US
    ok = oidx >= 0
    days = np.zeros(rd.size, dtype=np.int64)
    days[ok] = rd[ok] - od[oidx[ok]] // DAY_US
    bad = ok & ((days < 1) | (days > 365))
    if bad.any():
        out.append(Failure("time.return_window", "returns", f"{int(bad.sum())} returns not 1-365 days after the order",
                           _examples(rets["return_id"], bad)))
    return out


def _money_checks(t: dict[str, pa.Table]) -> list[Failure]:
    out = []
    carts, items, orders = t["shopping_carts"], t["cart_items"], t["orders"]
    oitems, ritems = t["order_items"], t["return_items"]
    line = id_numbers(items["quantity"]) * cents_of(items["unit_price"])
    cart_ids = carts["cart_id"].combine_chunks()
    total = _sum_by(items["cart_id"], line, cart_ids)
    emptied = pc.equal(_norm(carts["status"]), "emptied").to_numpy(zero_copy_only=False)
    bad = ~emptied & (total != cents_of(carts["cart_total"]))
    if bad.any():
        out.append(Failure("money.cart_total", "shopping_carts", f"{int(bad.sum())} carts whose total != sum of lines",
                           _examples(carts["cart_id"], bad)))
    order_ids = orders["order_id"].combine_chunks()
    oline = id_numbers(oitems["quantity"]) * cents_of(oitems["unit_price"])
    gross = _sum_by(oitems["order_id"], oline, order_ids)
    disc = _sum_by(oitems["order_id"], cents_of(oitems["discount_amount"]), order_ids)
    g, n, d = cents_of(orders["gross_total"]), cents_of(orders["net_total"]), cents_of(orders["total_discount_amount"])
    for check, bad, what in (
        ("money.gross_total", g != gross, "gross_total != sum of order lines"),
        ("money.discounts", d != disc, "total_discount_amount != sum of line discounts"),
        ("money.net_total", n != g - d, "net_total != gross - discounts"),
    ):
        if bad.any():
            out.append(Failure(check, "orders", f"{int(bad.sum())} orders: {what}", _examples(orders["order_id"], bad)))
    refunds = _sum_by(ritems["order_id"], cents_of(ritems["refunded_amount"]), order_ids)
    bad = refunds > n
    if bad.any():
        out.append(Failure("money.refund_le_paid", "orders", f"{int(bad.sum())} orders refunded more than paid",
                           _examples(orders["order_id"], bad)))
    if ritems.num_rows:
        per_line = ritems.group_by(["order_id", "product_id"]).aggregate([("quantity_returned", "sum"),
                                                                          ([], "count_all")])
        twice = pc.greater(per_line["count_all"], 1).to_numpy(zero_copy_only=False)
        if twice.any():
            out.append(Failure("money.line_returned_once", "return_items", f"{int(twice.sum())} lines returned twice",
                               per_line.filter(pa.array(twice)).select(["order_id", "product_id"]).slice(0, 5)
                               .to_pylist()))
        bought = per_line.join(oitems.select(["order_id", "product_id", "quantity"]), keys=["order_id", "product_id"])
        over = pc.greater(bought["quantity_returned_sum"], bought["quantity"]).to_numpy(zero_copy_only=False)
        if over.any():
            out.append(Failure("money.returned_le_bought", "return_items", f"{int(over.sum())} lines over-returned",
                               bought.filter(pa.array(over)).select(["order_id", "product_id"]).slice(0, 5)
                               .to_pylist()))
    return out
