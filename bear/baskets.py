"""What a window's visits put in their carts and what the converted ones pay.

Shared by the planner (which needs order totals to carry cumulative spend forward) and
the chunk generator (which builds the rows), so both see the same numbers. Lines are
keyed by (customer, visit, line), so computing them for a subset of carts, such as only
the converted ones, gives exactly the values the full computation gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bear.lookups import Customers, Products
from bear.model import DAY_S, Model
from bear.visits import Visits


@dataclass
class Lines:
    owner: np.ndarray  # position of the cart in the visits it was built for
    line: np.ndarray  # line number within the cart, from 0
    product: np.ndarray  # product index (product_id - 1)
    qty: np.ndarray
    gross_c: np.ndarray
    discount_c: np.ndarray


@dataclass
class Window:
    """A window's carts in canonical order (time, then customer), with their order facts."""

    visits: Visits
    n_lines: np.ndarray
    order_seconds: np.ndarray  # for converted carts; same day as the cart
    lines: Lines  # every line of every cart, or of the converted carts only
    cart_gross_c: np.ndarray  # per cart, sum of its lines (0 where lines were not built)
    cart_discount_c: np.ndarray
    cart_qty: np.ndarray


def segment_runs(owner: np.ndarray, n_groups: int) -> np.ndarray:
    """Start offset of each group's run in an owner-sorted array (length n_groups + 1)."""
    return np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n_groups))])


def line_positions(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, line number) for groups of sizes `n`."""
    owner = np.repeat(np.arange(len(n)), n)
    starts = np.cumsum(n) - n
    return owner, np.arange(owner.size) - starts[owner]


def line_counts(model: Model, cust: Customers, c: np.ndarray, v: np.ndarray) -> np.ndarray:
    t = cust.tier[c]
    return model.rng.integers("cart/lines", model.lines_lo[t], model.lines_hi[t], c, v)


def line_quantities(model: Model, cust: Customers, c: np.ndarray, v: np.ndarray, j: np.ndarray) -> np.ndarray:
    t = cust.tier[c]
    return model.rng.integers("line/qty", model.qty_lo[t], model.qty_hi[t], c, v, j)


def build_lines(model: Model, cust: Customers, products: Products, c: np.ndarray, v: np.ndarray,
                n: np.ndarray) -> Lines:
    """Lines of carts (c, v) with n lines each; a product appears at most once per cart."""
    rng = model.rng
    owner, j = line_positions(n)
    lc, lv = c[owner], v[owner]
    n_prod = len(products)
    n_cat = model.cat_cum.shape[1]
    cat = rng.choice("line/category", model.cat_cum, lc, lv, j, rows=cust.channel[lc])
    per_cat = (n_prod - cat + n_cat - 1) // n_cat
    product = cat + n_cat * rng.integers("line/product", 0, per_cat - 1, lc, lv, j)
    while True:
        order = np.lexsort((product, owner))
        po, pp = owner[order], product[order]
        dup = (po[1:] == po[:-1]) & (pp[1:] == pp[:-1])
        if not dup.any():
            break
        bump = order[1:][dup]
        product[bump] = (product[bump] + 1) % n_prod
    qty = line_quantities(model, cust, lc, lv, j)
    gross = qty * products.price_c[product]
    o = model.cfg.generator.orders
    discounted = rng.uniform("line/discounted", lc, lv, j) < o.discount_share
    pct = rng.between("line/discount_pct", o.discount_pct[0], o.discount_pct[1], lc, lv, j)
    discount = np.where(discounted, np.round(gross * pct), 0).astype(np.int64)
    return Lines(owner, j, product, qty, gross, discount)


def order_seconds(model: Model, c: np.ndarray, v: np.ndarray, created: np.ndarray) -> np.ndarray:
    """Checkout a few minutes after the cart was created, never past its day (partition = cart's)."""
    lo, hi = model.cfg.generator.carts.session_minutes
    delay = model.rng.integers("order/delay", lo * 60, hi * 60, c, v)
    day_end = (created // DAY_S + 1) * DAY_S - 1
    return np.minimum(created + delay, day_end)


def build_window(model: Model, cust: Customers, products: Products, visits: Visits, all_lines: bool) -> Window:
    """Sort visits canonically and price their carts; `all_lines=False` prices converted carts only."""
    order = np.lexsort((visits.cust, visits.seconds))
    vs = Visits(*(getattr(visits, f)[order] for f in ("cust", "vidx", "seconds", "react", "converted")))
    n = line_counts(model, cust, vs.cust, vs.vidx)
    built = np.ones(len(n), dtype=bool) if all_lines else vs.converted
    idx = np.flatnonzero(built)
    lines = build_lines(model, cust, products, vs.cust[idx], vs.vidx[idx], n[idx])
    lines.owner = idx[lines.owner]
    k = len(n)
    gross = np.bincount(lines.owner, weights=lines.gross_c, minlength=k).astype(np.int64)
    disc = np.bincount(lines.owner, weights=lines.discount_c, minlength=k).astype(np.int64)
    qty = np.bincount(lines.owner, weights=lines.qty, minlength=k).astype(np.int64)
    osec = order_seconds(model, vs.cust, vs.vidx, vs.seconds)
    return Window(vs, n, osec, lines, gross, disc, qty)


def add_spend(state_spend_c: np.ndarray, window: Window) -> None:
    """Carry the window's order spend (net of discounts) into the customers' running totals."""
    conv = window.visits.converted
    np.add.at(state_spend_c, window.visits.cust[conv], (window.cart_gross_c - window.cart_discount_c)[conv])
