"""The lake's invariants over Arrow tables: keys, integrity, time and money.

Pure functions on tables, so the same checks judge freshly generated tables in tests and
a lake read back from disk or GCS in `bear verify`. Each check returns failures with a
few example keys instead of raising, so one run reports everything that is wrong.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bear.core.money import cents_of
from bear.core.schemas import HAS_LINES, ID_COLUMNS, LINKS, PRIMARY_KEY

DAY_US = 86_400 * 1_000_000
ID_PREFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ-"  # what precedes the digits of CART-/ORD-/RTN-/CUST- IDs


@dataclass
class Failure:
    check: str
    table: str
    detail: str
    examples: list = field(default_factory=list)
    count: int = 1  # how many rows (or keys) fail
    partition: str = ""  # where it was found, when the caller knows (bear verify)

    def __str__(self) -> str:
        ex = f" e.g. {', '.join(map(str, self.examples[:5]))}" if self.examples else ""
        where = f" {self.partition}" if self.partition else ""
        return f"{self.check} [{self.table}{where}]: {self.detail}{ex}"


def id_numbers(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """`ORD-00000042` -> 42 (vectorised); integer columns pass through; nulls and malformed IDs -> -1."""
    if pa.types.is_integer(ids.type):
        return pc.fill_null(ids, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    digits = pc.ascii_ltrim(ids, characters=ID_PREFIX_CHARS)
    try:
        return pc.fill_null(pc.cast(digits, pa.int64()), -1).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # some ID is malformed (a lake read back may hold anything): those become -1
        digits = pc.if_else(pc.fill_null(pc.utf8_is_digit(digits), False), digits, "-1")
        return pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)


def id_set(cols: Iterable[pa.ChunkedArray | pa.Array], size: int) -> np.ndarray:
    """By ID number below `size`: does one of `cols` hold that ID (a set of IDs as one bit per number, which
    costs less than hashing the ID strings; whoever uses it compares the full strings afterwards)."""
    nums = np.concatenate([id_numbers(c) for c in cols] or [np.array([], np.int64)])
    members = np.zeros(size, dtype=bool)
    members[nums[(nums >= 0) & (nums < size)]] = True
    return members


def plain(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as failure examples show it: times as text (to the second), which JSON can carry."""
    if pa.types.is_timestamp(col.type):
        return pc.strftime(pc.cast(col, pa.timestamp("s"), safe=False), format="%Y-%m-%d %H:%M:%S")
    return pc.cast(col, pa.string()) if pa.types.is_date(col.type) else col


def key_rows(table: pa.Table, k: int = 5) -> list[dict]:
    """The first `k` rows as plain values (see `plain`), for failure examples."""
    t = table.slice(0, k)
    return pa.table([plain(c) for c in t.columns], names=t.column_names).to_pylist()


def examples(values, mask: np.ndarray, k: int = 5) -> list:
    idx = np.flatnonzero(mask)[:k]
    return [values[int(i)].as_py() if hasattr(values, "type") else values[int(i)] for i in idx]


def ts_micros(col) -> np.ndarray:
    """timestamp[us] -> int64 microseconds, nulls as INT64_MIN."""
    arr = pc.fill_null(pc.cast(col, pa.int64()), np.iinfo(np.int64).min)
    return arr.to_numpy(zero_copy_only=False)


def unique_keys(name: str, table: pa.Table, keys: tuple[str, ...]) -> list[Failure]:
    if table.num_rows == 0:
        return []
    counts = table.group_by(list(keys)).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    if dup.num_rows:
        return [Failure("keys.unique", name, f"{dup.num_rows} duplicated keys", key_rows(dup.select(list(keys))),
                        dup.num_rows)]
    return []


def gap_free(name: str, col: str, ids: np.ndarray, first: int = 1) -> list[Failure]:
    s = np.sort(ids)
    expected = np.arange(first, first + s.size)
    if not np.array_equal(s, expected):
        bad = np.flatnonzero(s != expected)
        return [Failure("keys.gap_free", name, f"{col} is not contiguous from {first} ({s.size} ids)",
                        [int(expected[bad[0]])] if bad.size else [], max(1, np.setdiff1d(expected, s).size))]
    return []


def resolves(name: str, child: pa.Table, cols: list[str], parent: pa.Table, pcols: list[str]) -> list[Failure]:
    """Every (cols) of child appears among (pcols) of parent (a single nullable column: where it is not null)."""
    if child.num_rows == 0:
        return []
    if len(cols) == 1:  # a null key (a nullable link) points at nothing and is not a failure
        missing = pc.and_(pc.is_valid(child[cols[0]]),
                          pc.invert(pc.is_in(child[cols[0]], value_set=parent[pcols[0]].combine_chunks())))
        mask = missing.to_numpy(zero_copy_only=False)
        if mask.any():
            return [Failure("integrity.foreign_key", name,
                            f"{int(mask.sum())} rows whose {cols[0]} is not in {pcols[0]}",
                            examples(child[cols[0]], mask), int(mask.sum()))]
        return []
    left = child.select(cols).rename_columns([f"k{i}" for i in range(len(cols))])
    right = parent.select(pcols).rename_columns([f"k{i}" for i in range(len(cols))])
    right = right.append_column("_hit", pa.array(np.ones(right.num_rows, dtype=bool)))
    joined = left.join(right.group_by(right.column_names[:-1]).aggregate([("_hit", "min")]),
                       keys=left.column_names, join_type="left outer")
    miss = joined.filter(pc.is_null(joined["_hit_min"]))
    if miss.num_rows:
        return [Failure("integrity.foreign_key", name, f"{miss.num_rows} rows whose ({', '.join(cols)}) do not resolve",
                        miss.slice(0, 5).select(left.column_names).to_pylist(), miss.num_rows)]
    return []


def index_of(keys, universe) -> np.ndarray:
    """Position of each key in `universe`, -1 where absent."""
    if isinstance(universe, pa.ChunkedArray):
        universe = universe.combine_chunks()
    return pc.fill_null(pc.index_in(keys, value_set=universe), -1).to_numpy(zero_copy_only=False).astype(np.int64)


def sum_by(keys: pa.Array, cents: np.ndarray, universe: pa.Array) -> np.ndarray:
    """Sum of `cents` (any integers) grouped by `keys`, aligned to `universe` (0 where absent)."""
    idx = index_of(keys, universe)
    ok = idx >= 0
    return np.bincount(idx[ok], weights=cents[ok], minlength=len(universe)).astype(np.int64)


# Every time and money rule the checks below can report: the table whose rows it judges, and what it means.
SALES_RULES = {
    "time.updated_after_created": ("shopping_carts", "cart updated_at >= created_at"),
    "time.cart_after_signup": ("shopping_carts", "no cart before its customer's signup"),
    "time.order_after_cart": ("orders", "order_date >= its cart's created_at"),
    "money.cart_total": ("shopping_carts", "cart_total = sum of item lines (emptied carts: none, total 0)"),
    "money.gross_total": ("orders", "gross_total = sum of order lines"),
    "money.discounts": ("orders", "total_discount_amount = sum of line discounts"),
    "money.net_total": ("orders", "net_total = gross_total - discounts"),
}
RETURN_RULES = {
    "time.return_window": ("returns", "return 1-365 days after its order"),
    "money.return_total": ("returns", "refunded_amount = sum of its items' refunds"),
    "money.refund_le_paid": ("orders", "refunds of an order <= its net_total"),
    "money.line_returned_once": ("return_items", "an order line is returned at most once"),
    "money.returned_le_bought": ("return_items", "returned quantity <= bought"),
}
RULES = SALES_RULES | RETURN_RULES


def check_tables(t: dict[str, pa.Table], gap_free_ids: bool = True) -> list[Failure]:
    """All in-table invariants over a set of tables (a window or a whole lake)."""
    return key_checks(t, gap_free_ids) + link_checks(t) + line_checks(t) + sales_rules(t) + return_rules(t)


def key_checks(t: dict[str, pa.Table], gap_free_ids: bool = True) -> list[Failure]:
    """Primary keys unique in every table present; the five ID families gap-free from 1."""
    out: list[Failure] = []
    for name, keys in PRIMARY_KEY.items():
        if name in t:
            out += unique_keys(name, t[name], keys)
    if gap_free_ids:
        for name, col in ID_COLUMNS.items():
            if name in t:
                out += gap_free(name, col, id_numbers(t[name][col]))
    return out


def link_checks(t: dict[str, pa.Table], children: Collection[str] | None = None,
                parents: Collection[str] | None = None) -> list[Failure]:
    """Foreign keys resolve, for every link between tables present in `t`.

    `children` / `parents` narrow the links, so a caller that holds some tables only to resolve
    other tables' keys (bear verify's returned orders) or resolves some links itself does not
    judge them twice.
    """
    out: list[Failure] = []
    for child, cols, parent, pcols in LINKS:
        if (child in t and parent in t and (children is None or child in children)
                and (parents is None or parent in parents)):
            out += resolves(child, t[child], list(cols), t[parent], list(pcols))
    return out


def line_checks(t: dict[str, pa.Table]) -> list[Failure]:
    """Every order and every return present in `t` has at least one line in `t`."""
    out: list[Failure] = []
    for name, child, key in HAS_LINES:
        if name in t and child in t:
            parent = t[name]
            lonely = pc.invert(pc.is_in(parent[key], value_set=t[child][key].combine_chunks()))
            lonely = lonely.to_numpy(zero_copy_only=False)
            if lonely.any():
                out.append(Failure("integrity.has_lines", name, f"{int(lonely.sum())} without any line",
                                   examples(parent[key], lonely), int(lonely.sum())))
    return out


def sales_rules(t: dict[str, pa.Table]) -> list[Failure]:
    """Time and money rules of carts and orders (customers optional): all inside one chunk window."""
    return _cart_order_times(t) + _cart_order_money(t)


def return_rules(t: dict[str, pa.Table]) -> list[Failure]:
    """Time and money rules of returns; `orders` and `order_items` need only the returned orders."""
    return _return_times(t) + _return_money(t)


def _cart_order_times(t: dict[str, pa.Table]) -> list[Failure]:
    out = []
    carts, orders = t["shopping_carts"], t["orders"]
    created, updated = ts_micros(carts["created_at"]), ts_micros(carts["updated_at"])
    bad = (updated != np.iinfo(np.int64).min) & (updated < created)
    if bad.any():
        out.append(Failure("time.updated_after_created", "shopping_carts", f"{int(bad.sum())} carts",
                           examples(carts["cart_id"], bad), int(bad.sum())))
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
                               examples(carts["cart_id"], bad), int(bad.sum())))
    cart_idx = index_of(orders["cart_id"], carts["cart_id"])
    od = ts_micros(orders["order_date"])
    ok = cart_idx >= 0
    bad = np.zeros(od.size, dtype=bool)
    bad[ok] = od[ok] < created[cart_idx[ok]]
    if bad.any():
        out.append(Failure("time.order_after_cart", "orders", f"{int(bad.sum())} orders before their cart",
                           examples(orders["order_id"], bad), int(bad.sum())))
    return out


def _return_times(t: dict[str, pa.Table]) -> list[Failure]:
    orders, rets = t["orders"], t["returns"]
    od = ts_micros(orders["order_date"])
    oidx = index_of(rets["order_id"], orders["order_id"])
    rd = ts_micros(rets["return_date"]) // DAY_US
    ok = oidx >= 0
    days = np.zeros(rd.size, dtype=np.int64)
    days[ok] = rd[ok] - od[oidx[ok]] // DAY_US
    bad = ok & ((days < 1) | (days > 365))
    if bad.any():
        return [Failure("time.return_window", "returns", f"{int(bad.sum())} returns not 1-365 days after the order",
                        examples(rets["return_id"], bad), int(bad.sum()))]
    return []


def _cart_order_money(t: dict[str, pa.Table]) -> list[Failure]:
    out = []
    carts, items, orders, oitems = t["shopping_carts"], t["cart_items"], t["orders"], t["order_items"]
    line = id_numbers(items["quantity"]) * cents_of(items["unit_price"])
    cart_ids = carts["cart_id"].combine_chunks()
    total = sum_by(items["cart_id"], line, cart_ids)
    bad = total != cents_of(carts["cart_total"])
    if bad.any():
        out.append(Failure("money.cart_total", "shopping_carts", f"{int(bad.sum())} carts whose total != sum of lines",
                           examples(carts["cart_id"], bad), int(bad.sum())))
    order_ids = orders["order_id"].combine_chunks()
    oline = id_numbers(oitems["quantity"]) * cents_of(oitems["unit_price"])
    gross = sum_by(oitems["order_id"], oline, order_ids)
    disc = sum_by(oitems["order_id"], cents_of(oitems["discount_amount"]), order_ids)
    g, n, d = cents_of(orders["gross_total"]), cents_of(orders["net_total"]), cents_of(orders["total_discount_amount"])
    for check, bad, what in (
        ("money.gross_total", g != gross, "gross_total != sum of order lines"),
        ("money.discounts", d != disc, "total_discount_amount != sum of line discounts"),
        ("money.net_total", n != g - d, "net_total != gross - discounts"),
    ):
        if bad.any():
            out.append(Failure(check, "orders", f"{int(bad.sum())} orders: {what}", examples(orders["order_id"], bad),
                               int(bad.sum())))
    return out


def _return_money(t: dict[str, pa.Table]) -> list[Failure]:
    out = []
    orders, oitems, rets, ritems = t["orders"], t["order_items"], t["returns"], t["return_items"]
    item_refund = cents_of(ritems["refunded_amount"])
    total = sum_by(ritems["return_id"], item_refund, rets["return_id"].combine_chunks())
    bad = total != cents_of(rets["refunded_amount"])
    if bad.any():
        out.append(Failure("money.return_total", "returns", f"{int(bad.sum())} returns whose refund != sum of items",
                           examples(rets["return_id"], bad), int(bad.sum())))
    refunds = sum_by(ritems["order_id"], item_refund, orders["order_id"].combine_chunks())
    bad = refunds > cents_of(orders["net_total"])
    if bad.any():
        out.append(Failure("money.refund_le_paid", "orders", f"{int(bad.sum())} orders refunded more than paid",
                           examples(orders["order_id"], bad), int(bad.sum())))
    if ritems.num_rows:
        per_line = ritems.group_by(["order_id", "product_id"]).aggregate([("quantity_returned", "sum"),
                                                                          ([], "count_all")])
        twice = pc.greater(per_line["count_all"], 1).to_numpy(zero_copy_only=False)
        if twice.any():
            out.append(Failure("money.line_returned_once", "return_items", f"{int(twice.sum())} lines returned twice",
                               per_line.filter(pa.array(twice)).select(["order_id", "product_id"]).slice(0, 5)
                               .to_pylist(), int(twice.sum())))
        bought = per_line.join(oitems.select(["order_id", "product_id", "quantity"]), keys=["order_id", "product_id"])
        over = pc.greater(bought["quantity_returned_sum"], bought["quantity"]).to_numpy(zero_copy_only=False)
        if over.any():
            out.append(Failure("money.returned_le_bought", "return_items", f"{int(over.sum())} lines over-returned",
                               bought.filter(pa.array(over)).select(["order_id", "product_id"]).slice(0, 5)
                               .to_pylist(), int(over.sum())))
    return out
