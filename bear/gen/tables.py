"""A chunk's tables as Arrow, from the planner's work item: the six transactional tables, the
customer_changes its orders cause, and the customers who sign up in it.

Pure: (model, lookups, chunk work) in, Arrow tables out. Row order is canonical (IDs
ascending), IDs come from the chunk's reserved blocks, and returns are rebuilt from their
order's keyed draws in the chunk that owns the return's date. Every row is dated inside
the chunk and depends on nothing later, so extending a run only adds rows.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bear.core import text
from bear.core.calendar import DAY_S, timestamps
from bear.core.money import decimal_array
from bear.core.rows import Rows
from bear.core.schemas import DELIVERED
from bear.core.vocab import (
    CATEGORIES,
    CHANGED,
    CLV_BUCKETS,
    EARNED_TIERS,
    ORDER_CHANNELS,
    PAYMENT_METHODS,
    RETURN_REASONS,
    SHIPPING_SPEEDS,
)
from bear.gen.acquisition import acquisition
from bear.gen.baskets import (
    CART_STATUSES,
    Window,
    build_lines,
    build_window,
    canonical_order,
    lex_order,
    line_counts,
    orders_in_order,
    running_spend,
)
from bear.gen.delivery import NO_COPY, delivered, delivery
from bear.gen.lookups import (
    Lookups,
    change_codes,
    current_tier,
    customer_columns,
    reached,
    tier_names,
)
from bear.gen.model import Model
from bear.gen.planner import ChunkWork, ReturnsDue
from bear.gen.returns import plan_returns


def _agents(model: Model, phone: np.ndarray, stream: str, *keys) -> pa.Array:
    agent = model.rng.integers(stream, 1, len(model.agent_ids) - 1, *keys)
    return text.labels(model.agent_ids, np.where(phone, agent, 0))


def _product_cols(lk: Lookups, product: np.ndarray) -> dict[str, pa.Array]:
    return {
        "product_id": pa.array(product + 1),
        "product_name": text.labels(lk.products.names, product),
        "category": text.labels(CATEGORIES, lk.products.category[product]),
    }


def carts_and_items(model: Model, lk: Lookups, win: Window, first_cart: int, first_item: int):
    rng = model.rng
    vs = win.visits
    c, key = vs.cust, win.key
    n = len(c)
    cart_no = first_cart + np.arange(n)
    lo, hi = model.session_minutes
    idle = rng.integers("cart/session", lo * 60, hi * 60, key)
    updated = np.where(vs.converted, win.order_seconds, vs.seconds + idle)
    cart_ids = text.padded("CART-", cart_no)
    carts = {
        "cart_id": cart_ids,
        "customer_id": pc.take(lk.customer_id, pa.array(c)),
        "created_at": timestamps(vs.seconds),
        "updated_at": timestamps(updated),
        "cart_total": decimal_array(win.cart_gross_c),  # emptied carts have no lines: 0
        "status": text.labels(CART_STATUSES, win.status),
    }
    ln = win.lines
    span = updated[ln.owner] - vs.seconds[ln.owner]
    added = vs.seconds[ln.owner] + rng.integers("line/added", 0, span, ln.key)
    items = {
        "cart_item_id": pa.array(first_item + np.arange(len(ln.owner), dtype=np.int64)),
        "cart_id": pc.take(cart_ids, pa.array(ln.owner)),
        **_product_cols(lk, ln.product),
        "added_at": timestamps(np.minimum(added, updated[ln.owner])),
        "quantity": pa.array(ln.qty.astype(np.int32)),
        "unit_price": decimal_array(lk.products.price_c[ln.product]),
    }
    item_rows = Rows(items, vs.seconds[ln.owner], first_item + np.arange(len(ln.owner)))
    return Rows(carts, vs.seconds, cart_no), item_rows, cart_ids


def orders_and_items(model: Model, lk: Lookups, win: Window, work: ChunkWork, cart_ids: pa.Array):
    rng = model.rng
    vs = win.visits
    conv = orders_in_order(win)
    c, key = vs.cust[conv], win.key[conv]
    n = conv.size
    order_no = work.plan.first_ids["orders"] + np.arange(n)
    net = win.cart_gross_c[conv] - win.cart_discount_c[conv]
    cum = running_spend(c, win.order_seconds[conv], net, work.buyer_spend_c[np.searchsorted(work.buyers, c)])
    channel = rng.choice("order/channel", model.order_channel_cum, key)
    pay = rng.choice("order/payment", model.payment_cum, key, rows=channel)
    ship = rng.choice("order/shipping", model.ship_cum, key)
    lo, hi = model.shipping_cost_variance
    actual = np.round(model.ship_cost_c[ship] * (1 + rng.between("order/ship_var", lo, hi, key))).astype(np.int64)
    fee = np.round(net * model.fee_rate[pay]).astype(np.int64)
    tier, clv = reached(cum, model.tier_thresholds_c), reached(cum, model.clv_thresholds_c)
    cust_idx = pa.array(c)
    order_ids = text.padded("ORD-", order_no)
    orders = {
        "order_id": order_ids,
        "customer_id": pc.take(lk.customer_id, cust_idx),
        "cart_id": pc.take(cart_ids, pa.array(conv)),
        "total_items": pa.array(win.cart_qty[conv].astype(np.int32)),
        "order_date": timestamps(win.order_seconds[conv]),
        "email": pc.take(lk.email, cust_idx),
        "order_channel": text.labels(ORDER_CHANNELS, channel),
        "is_expedited": pa.array(rng.uniform("order/expedited", key) < model.expedited_share),
        "customer_tier": text.labels(EARNED_TIERS, tier),
        "gross_total": decimal_array(win.cart_gross_c[conv]),
        "net_total": decimal_array(net),
        "total_discount_amount": decimal_array(win.cart_discount_c[conv]),
        "payment_method": text.labels(PAYMENT_METHODS, pay),
        "shipping_speed": text.labels(SHIPPING_SPEEDS, ship),
        "shipping_cost": decimal_array(model.ship_price_c[ship]),
        "actual_shipping_cost": decimal_array(actual),
        "payment_processing_fee": decimal_array(fee),
        "agent_id": _agents(model, channel == ORDER_CHANNELS.index("Phone"), "order/agent", key),
        "shipping_address": pc.take(lk.mailing_address, cust_idx),
        "billing_address": pc.take(lk.billing_address, cust_idx),
        "clv_bucket": text.labels(CLV_BUCKETS, clv),
        "is_reactivated": pa.array(vs.react[conv]),
        # every order has them (null before their since day); the writer leaves them out of earlier partitions
        **acquisition(model, key, win.order_seconds[conv] // DAY_S),
    }
    ln = win.lines
    rank = np.full(len(vs.cust), -1)
    rank[conv] = np.arange(n)
    sel = np.flatnonzero(rank[ln.owner] >= 0)
    sel = sel[lex_order(rank[ln.owner[sel]], ln.line[sel])]
    p = ln.product[sel]
    items = {
        "order_id": pc.take(order_ids, pa.array(rank[ln.owner[sel]])),
        **_product_cols(lk, p),
        "quantity": pa.array(ln.qty[sel].astype(np.int32)),
        "unit_price": decimal_array(lk.products.price_c[p]),
        "discount_amount": decimal_array(ln.discount_c[sel]),
        "cost_price": decimal_array(lk.products.cost_c[p]),
    }
    item_rank = rank[ln.owner[sel]]
    d = delivery(model, lk.customers, c, key, win.order_seconds[conv])
    return (
        Rows(orders, win.order_seconds[conv], order_no, delivered(d.lag, d.copy_lag)),
        Rows(items, win.order_seconds[conv][item_rank], order_no[item_rank] * 256 + ln.line[sel],
             delivered(d.lag[item_rank], d.copy_lag[item_rank])),
        customer_changes(model, lk, work, c, cum - net, cum, win.order_seconds[conv], order_no, order_ids, d.lag),
    )


def customer_changes(model: Model, lk: Lookups, work: ChunkWork, c: np.ndarray, before_c: np.ndarray,
                     after_c: np.ndarray, seconds: np.ndarray, order_no: np.ndarray, order_ids: pa.Array,
                     lag: np.ndarray) -> Rows:
    """The dated changes of customers' loyalty tier and CLV bucket: one row per order whose spend moved either
    (the order's customer, spend before and after it), and on the run's first day one row per customer whose
    spend before the run had moved them from what they signed up with (`work.opening`). Rows come in time order;
    the opening rows' keys are odd, the orders' even, so event IDs never collide. A change lands with the order
    that earned it (`lag`: late or on time); the feed does not deliver changes twice."""
    start = work.opening
    if start.size and work.plan.chunk.start_day != model.start_day:
        raise AssertionError("opening changes outside the run's first day")
    who_all = np.concatenate([start, c])
    after_all = np.concatenate([work.opening_spend_c, after_c])
    code = change_codes(model, lk.customers.tier[who_all], np.concatenate([np.zeros(start.size, np.int64), before_c]),
                        after_all)
    keep = np.flatnonzero(code >= 0)
    who, after = who_all[keep], after_all[keep]
    secs = np.concatenate([np.full(start.size, model.start_day * DAY_S), seconds])[keep]
    from_order = keep >= start.size
    order = pc.take(order_ids, pa.array(keep - start.size, mask=~from_order))  # opening rows: no order (null)
    cols = {
        "customer_id": pc.take(lk.customer_id, pa.array(who)),
        "valid_from": timestamps(secs),
        "loyalty_tier": tier_names(current_tier(lk.customers.tier[who], after, model.tier_thresholds_c)),
        "clv_bucket": text.labels(CLV_BUCKETS, reached(after, model.clv_thresholds_c)),
        "changed": text.labels(CHANGED, code[keep]),
        "order_id": order,
    }
    lags = np.concatenate([np.zeros(start.size, np.int64), lag])[keep]
    return Rows(cols, secs, np.concatenate([(start + 1) * 2 + 1, order_no * 2])[keep],
                delivered(lags, np.full(lags.size, NO_COPY)))


def returns_and_items(model: Model, lk: Lookups, due: ReturnsDue):
    """Rebuild the returns dated in this chunk from their orders' keyed draws."""
    rng = model.rng
    cust = lk.customers
    key = due.cust * (1 << 24) + due.vidx
    uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
    oc = due.cust[first]
    okey = rng.key(oc, due.vidx[first])
    n = line_counts(model, cust, oc, okey)
    rp = plan_returns(model, cust, oc, okey, n, due.order_seconds[first])
    # match the planned returns of these orders to the ones due here: (order, seq)
    want = inv * 2 + due.seq
    have = rp.order * 2 + rp.seq
    pos = np.searchsorted(have, want)  # rp is ordered by (order, seq)
    if not np.array_equal(have[pos], want):
        raise AssertionError("planned returns do not match the due returns")
    lines = build_lines(model, cust, lk.products, oc, okey, n, due.order_seconds[first] // DAY_S)
    line_start = np.r_[0, np.cumsum(n)][:-1]
    keep_items = np.isin(rp.item_ret, pos)
    item_ret_rp = rp.item_ret[keep_items]
    rp_to_due = np.full(len(rp.order), -1)
    rp_to_due[pos] = np.arange(len(due))
    item_due = rp_to_due[item_ret_rp]
    item_line = rp.item_line[keep_items]
    item_qty = rp.item_qty[keep_items]
    order_of_item = inv[item_due]
    li = line_start[order_of_item] + item_line
    assert np.array_equal(np.bincount(item_due, minlength=len(due)), due.n_items)
    c = due.cust
    rk = rng.key(okey[inv], due.seq)
    reason = rng.choice("return/reason", model.reason_cum, rk)
    full = rng.uniform("return/full", rk) < model.full_share[reason]
    frac = np.where(full, 1.0, rng.between("return/partial", model.partial_refund[0], model.partial_refund[1], rk))
    paid = lines.gross_c[li] - lines.discount_c[li]
    refund_item = np.floor(paid * item_qty / lines.qty[li] * frac[item_due]).astype(np.int64)
    order_ids = text.padded("ORD-", due.order_id)
    return_ids = text.padded("RTN-", due.return_id)
    channel = rng.choice("return/channel", model.return_channel_cum, rk)
    is_phone = np.array([ch == "Phone" for ch in model.return_channels])[channel]
    returns = {
        "return_id": return_ids,
        "order_id": order_ids,
        "customer_id": pc.take(lk.customer_id, pa.array(c)),
        "email": pc.take(lk.email, pa.array(c)),  # the order's (orders.email is its customer's)
        "return_date": timestamps(due.seconds),
        "reason": text.labels(RETURN_REASONS, reason),
        "return_type": text.labels(("Partial", "Full"), full),
        "refunded_amount": decimal_array(np.bincount(item_due, weights=refund_item, minlength=len(due)).astype(
            np.int64)),
        "return_channel": text.labels(model.return_channels, channel),
        "agent_id": _agents(model, is_phone, "return/agent", rk),
        "refund_method": text.labels(model.refund_methods, rng.choice("return/refund_method",
                                                                      model.refund_method_cum, rk)),
    }
    p = lines.product[li]
    item_ids = due.first_item_id[item_due] + _rank_within(item_due)
    item_dict = {
        "return_item_id": pa.array(item_ids),
        "return_id": pc.take(return_ids, pa.array(item_due)),
        "order_id": pc.take(order_ids, pa.array(item_due)),
        **_product_cols(lk, p),
        "quantity_returned": pa.array(item_qty.astype(np.int32)),
        "unit_price": decimal_array(lk.products.price_c[p]),
        "cost_price": decimal_array(lk.products.cost_c[p]),
        "refunded_amount": decimal_array(refund_item),
    }
    order = np.argsort(item_ids, kind="stable")
    item_dict = {k: a.take(pa.array(order)) for k, a in item_dict.items()}
    first_item = np.full(len(due), -1)
    first_item[item_due[order][::-1]] = np.arange(order.size)[::-1]
    first_category = lk.products.category[p[order]][first_item]
    return (
        Rows(returns, due.seconds, due.return_id, {"first_category": first_category}),
        Rows(item_dict, due.seconds[item_due][order], item_ids[order]),
    )


def _rank_within(group: np.ndarray) -> np.ndarray:
    """Position of each element among the elements of its group, in array order."""
    order = np.argsort(group, kind="stable")
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    rank = np.empty(group.size, dtype=np.int64)
    rank[order] = np.arange(group.size) - np.repeat(starts, np.diff(np.r_[starts, group.size]))
    return rank


def customer_rows(model: Model, lk: Lookups, first_day: int, last_day: int) -> Rows:
    """The customers who signed up in days [first_day, last_day], as they signed up (keys: customer numbers)."""
    day = lk.customers.signup_day
    i = np.flatnonzero((day >= first_day) & (day <= last_day))
    return Rows(customer_columns(model, lk, i), day[i].astype(np.int64) * DAY_S, i + 1)


def feed_tables(model: Model, lk: Lookups, work: ChunkWork) -> dict[str, Rows]:
    """The order feed's tables alone (orders, their lines, the changes they cause) of a window whose other rows are
    written elsewhere: the days before a chunk whose late orders land in it. Only the converted carts get lines; the
    carts' IDs need only their canonical order."""
    visits = work.visits.take(canonical_order(work.visits))
    win = build_window(model, lk.customers, lk.products, visits, all_lines=False)
    cart_ids = text.padded("CART-", work.plan.first_ids["carts"] + np.arange(visits.cust.size))
    return dict(zip(DELIVERED, orders_and_items(model, lk, win, work, cart_ids), strict=True))


def chunk_tables(model: Model, lk: Lookups, work: ChunkWork, clock: dict[str, float] | None = None) -> dict[str, Rows]:
    """The chunk's rows per table (customers: the ones who signed up in it); each row's event time decides its
    partition.

    `clock`, when given, receives the seconds of each stage (for benchmarks and job reports).
    """
    t = [time.perf_counter()]

    def lap(stage: str) -> None:
        t.append(time.perf_counter())
        if clock is not None:
            clock[stage] = clock.get(stage, 0.0) + t[-1] - t[-2]

    win = build_window(model, lk.customers, lk.products, work.visits, all_lines=True)
    lap("window")
    first = work.plan.first_ids
    carts, cart_items, cart_ids = carts_and_items(model, lk, win, first["carts"], first["cart_items"])
    lap("shopping_carts+cart_items")
    orders, order_items, changes = orders_and_items(model, lk, win, work, cart_ids)
    lap("orders+order_items")
    returns, return_items = returns_and_items(model, lk, work.due)
    lap("returns+return_items")
    return {
        "shopping_carts": carts,
        "cart_items": cart_items,
        "orders": orders,
        "order_items": order_items,
        "returns": returns,
        "return_items": return_items,
        "customer_changes": changes,
        "customers": customer_rows(model, lk, work.plan.chunk.start_day, work.plan.chunk.end_day),
    }
