"""What a window's visits put in their carts and what the converted ones pay.

Shared by the planner (which needs order totals to carry cumulative spend forward) and
the chunk generator (which builds the rows), so both see the same numbers. Lines are
keyed by (customer, visit, line), so computing them for a subset of carts, such as only
the converted ones, gives exactly the values the full computation gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bear.core.calendar import DAY_S
from bear.gen.lookups import Customers, Products
from bear.gen.model import Model
from bear.gen.rng import Key
from bear.gen.visits import Visits, VisitState


@dataclass
class Lines:
    owner: np.ndarray  # position of the cart in the visits it was built for
    line: np.ndarray  # line number within the cart, from 0
    product: np.ndarray  # product index (product_id - 1)
    qty: np.ndarray
    gross_c: np.ndarray
    discount_c: np.ndarray
    key: Key  # per line: hash of (visit key, line number)


@dataclass
class Window:
    """A window's carts (see build_window for their order), with their order facts."""

    visits: Visits
    status: np.ndarray  # index into CART_STATUSES
    n_lines: np.ndarray  # 0 for emptied carts
    order_seconds: np.ndarray  # for converted carts (0 elsewhere); same day as the cart
    lines: Lines  # every line of every cart, or of the converted carts only
    cart_gross_c: np.ndarray  # per cart, sum of its lines (0 where lines were not built)
    cart_discount_c: np.ndarray
    cart_qty: np.ndarray
    key: Key  # per cart: hash of (customer, visit), what every cart-level draw is keyed by


def line_positions(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, line number) for groups of sizes `n`."""
    owner = np.repeat(np.arange(len(n)), n)
    starts = np.cumsum(n) - n
    return owner, np.arange(owner.size) - starts[owner]


CART_STATUSES = ("open", "converted", "abandoned", "emptied")
EMPTIED = CART_STATUSES.index("emptied")


def cart_status(model: Model, key: Key, converted: np.ndarray) -> np.ndarray:
    """Converted carts are converted; of the rest open_share stay open, and of the abandoned ones emptied_share
    were emptied first. Decided before the lines, because an emptied cart keeps none."""
    rng = model.rng
    u = rng.uniform("cart/status", key)
    emptied = rng.uniform("cart/emptied", key) < model.emptied_share
    return np.where(converted, 1, np.where(u < model.open_share, 0, np.where(emptied, EMPTIED, 2))).astype(np.int8)


def line_counts(model: Model, cust: Customers, c: np.ndarray, key: Key) -> np.ndarray:
    """Lines in each cart of customers `c`, drawn from the carts' visit keys."""
    t = cust.tier[c]
    return model.rng.integers("cart/lines", model.lines_lo[t], model.lines_hi[t], key)


def line_quantities(model: Model, cust: Customers, c: np.ndarray, key: Key) -> np.ndarray:
    """Quantity of each line of customers `c`, drawn from the lines' keys."""
    t = cust.tier[c]
    return model.rng.integers("line/qty", model.qty_lo[t], model.qty_hi[t], key)


def _dedupe(owner: np.ndarray, product: np.ndarray, on_sale: np.ndarray, n_prod: int, n_carts: int) -> None:
    """Bump the later of two equal products in a cart to the next product on sale (products [0, `on_sale`) of the
    line's day) until a cart's products are distinct.

    `owner` is sorted and lines keep their order inside a cart, so a stable sort on (owner, product)
    finds duplicates; after the first pass only carts that changed are looked at again.
    """
    sub = None  # every line
    while True:
        o = owner if sub is None else owner[sub]
        key = o * n_prod + (product if sub is None else product[sub])
        order = np.argsort(key, kind="stable")
        sk = key[order]
        dup = np.flatnonzero(sk[1:] == sk[:-1]) + 1
        if not dup.size:
            return
        bump = order[dup] if sub is None else sub[order[dup]]
        product[bump] = (product[bump] + 1) % on_sale[bump]
        touched = np.zeros(n_carts, dtype=bool)
        touched[owner[bump]] = True
        sub = np.flatnonzero(touched[o]) if sub is None else sub[touched[o]]


def build_lines(model: Model, cust: Customers, products: Products, c: np.ndarray, key: Key,
                n: np.ndarray, day: np.ndarray) -> Lines:
    """Lines of the carts of customers `c` with visit keys `key`, n lines each, created on days `day`; a product
    appears once per cart. The day decides what campaigns and drift do: the category mix, the SKUs on sale, the
    discounts."""
    rng = model.rng
    owner, j = line_positions(n)
    lc = c[owner]
    lk = rng.key(key[owner], j)
    line_day = day[owner]
    on_sale = model.at_day(model.products_day, line_day)
    n_cat = model.cat_cum.shape[1]
    cat = rng.choice("line/category", model.cat_cum, lk, rows=model.category_rows(cust.channel[lc], line_day))
    per_cat = (on_sale - cat + n_cat - 1) // n_cat
    product = cat + n_cat * rng.integers("line/product", 0, per_cat - 1, lk)
    _dedupe(owner, product, on_sale, len(products), len(n))
    qty = line_quantities(model, cust, lc, lk)
    gross = qty * products.price_c[product]
    discounted = rng.uniform("line/discounted", lk) < model.at_day(model.discount_share_day, line_day)
    pct = rng.between("line/discount_pct", model.at_day(model.discount_lo_day, line_day),
                      model.at_day(model.discount_hi_day, line_day), lk)
    discount = np.where(discounted, np.round(gross * pct), 0).astype(np.int64)
    return Lines(owner, j, product, qty, gross, discount, lk)


def order_seconds(model: Model, key: Key, created: np.ndarray) -> np.ndarray:
    """Checkout a few minutes after the cart was created, never past its day (the order's day is its cart's)."""
    lo, hi = model.session_minutes
    delay = model.rng.integers("order/delay", lo * 60, hi * 60, key)
    day_end = (created // DAY_S + 1) * DAY_S - 1
    return np.minimum(created + delay, day_end)


def lex_order(*keys: np.ndarray) -> np.ndarray:
    """Stable argsort by `keys`, the first the primary one (np.lexsort's order, keys reversed).

    Non-negative integer keys that fit in 62 bits together are packed into one int64, which
    sorts several times faster than a multi-key lexsort and gives the same order.
    """
    if not len(keys[0]):
        return np.array([], dtype=np.int64)
    bits = [int(k.max()).bit_length() for k in keys]
    if sum(bits) > 62 or min(int(k.min()) for k in keys) < 0:
        return np.lexsort(keys[::-1])
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    for k, b in zip(keys, bits, strict=True):
        packed <<= b
        packed |= k
    return np.argsort(packed, kind="stable")


def canonical_order(visits: Visits) -> np.ndarray:
    """Visit order by (time, customer): IDs are handed out in this order, so they rise with time."""
    return lex_order(visits.seconds, visits.cust)


def build_window(model: Model, cust: Customers, products: Products, visits: Visits, all_lines: bool) -> Window:
    """Price a window's carts: every line, with the carts in canonical order (what a chunk writes), or with
    `all_lines=False` only the converted carts' lines, in the visits' own order (the planner's skeleton pass,
    which needs counts and order totals, and puts only the orders in ID order)."""
    vs = visits.take(canonical_order(visits)) if all_lines else visits
    key = model.rng.key(vs.cust, vs.vidx)
    status = cart_status(model, key, vs.converted)
    n = np.where(status == EMPTIED, 0, line_counts(model, cust, vs.cust, key))
    conv = np.flatnonzero(vs.converted)
    if all_lines:
        lines = build_lines(model, cust, products, vs.cust, key, n, vs.seconds // DAY_S)
    else:
        lines = build_lines(model, cust, products, vs.cust[conv], key[conv], n[conv], vs.seconds[conv] // DAY_S)
        lines.owner = conv[lines.owner]
    k = len(n)
    gross = np.bincount(lines.owner, weights=lines.gross_c, minlength=k).astype(np.int64)
    disc = np.bincount(lines.owner, weights=lines.discount_c, minlength=k).astype(np.int64)
    qty = np.bincount(lines.owner, weights=lines.qty, minlength=k).astype(np.int64)
    osec = np.zeros(k, dtype=np.int64)
    osec[conv] = order_seconds(model, key[conv], vs.seconds[conv])
    return Window(vs, status, n, osec, lines, gross, disc, qty, key)


def orders_in_order(win: Window) -> np.ndarray:
    """Positions of the converted carts in order-ID order: by order time, customer, visit."""
    vs = win.visits
    conv = np.flatnonzero(vs.converted)
    return conv[lex_order(win.order_seconds[conv], vs.cust[conv], vs.vidx[conv])]


def running_spend(cust: np.ndarray, seconds: np.ndarray, net_c: np.ndarray, before_c: np.ndarray) -> np.ndarray:
    """Each order's customer's cumulative net spend including the order: `before_c` (per order, what its customer
    had spent before the window) plus the customer's orders of the window up to this one, in time order."""
    n = cust.size
    by_cust = lex_order(cust, seconds)
    cs = np.cumsum(net_c[by_cust])
    starts = np.flatnonzero(np.r_[True, cust[by_cust][1:] != cust[by_cust][:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    cum = np.empty(n, dtype=np.int64)
    cum[by_cust] = cs - np.r_[0, cs][run_start] + before_c[by_cust]
    return cum


def add_spend(state: VisitState, window: Window) -> None:
    """Carry the window's order spend (net of discounts) into the customers' running totals."""
    conv = window.visits.converted
    np.add.at(state.spend_c, window.visits.cust[conv] - state.lo, (window.cart_gross_c - window.cart_discount_c)[conv])
