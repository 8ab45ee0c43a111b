"""Campaigns and drift act through the visit and basket process, and the realism profile measures them against the
config (issue 18, items 1, 2 and 9)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import compose_cfg, run_bear

from bear.core.calendar import day_number
from bear.lake.sink import open_sink
from bear.run.backfill import backfill
from bear.run.generate import generate
from bear.verify.profile import profile

# Two months of a shop with a history (customers signed up since 2019), so visits, not first contacts, drive volume.
SHOP = ("run.start=2021-01-01", "run.end=2021-02-28", "generator.customers=40000")
SALE = ("generator.campaigns=[{name: january_sale, start: '2021-01-20', end: '2021-01-24', volume: 3, "
        "category_boost: {toys: 2.5}, discount_share: 0.6, discount_pct: [0.3, 0.5], new_products: 40}]")
NO_DRIFT = ("generator.drift.conversion=[]", "generator.drift.return_rate=[]", "generator.drift.discount_share=[]",
            "generator.drift.new_customers=[]")


def _days(col: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64()).to_numpy() // 86_400


@pytest.fixture(scope="module")
def sale():
    cfg = compose_cfg(*SHOP, SALE, *NO_DRIFT, "mess=none", smoke=False)
    tables, _ = generate(cfg, mess=False)
    return cfg, tables


def test_a_campaign_lifts_volume_boosts_its_categories_discounts_and_launches_skus(sale):
    """Item 1: volume x3 on its days (through the visit process: more carts, hence more orders), toys' share of
    lines up, 60 % of lines discounted 30-50 %, and 40 new SKUs above the catalog's maximum sold from its first day
    on, listed in the catalog with their launch date."""
    cfg, t = sale
    first, last = day_number("2021-01-20"), day_number("2021-01-24")
    carts = np.bincount(_days(t["shopping_carts"]["created_at"]) - day_number("2021-01-01"))
    inside = carts[19:24].mean()
    around = np.r_[carts[5:19], carts[24:38]].mean()
    assert inside / around == pytest.approx(3.0, rel=0.15)

    lines = t["order_items"]
    order_day = dict(zip(t["orders"]["order_id"].to_pylist(), _days(t["orders"]["order_date"]).tolist(),
                         strict=True))
    day = np.array([order_day[o] for o in lines["order_id"].to_pylist()])
    during = (day >= first) & (day <= last)
    discounted = pc.greater(lines["discount_amount"], 0).to_numpy(zero_copy_only=False)
    assert discounted[during].mean() == pytest.approx(0.6, abs=0.05)
    assert discounted[~during].mean() == pytest.approx(0.2, abs=0.03)
    gross = (pc.multiply(lines["unit_price"], lines["quantity"]).to_numpy(zero_copy_only=False).astype(float))
    pct = lines["discount_amount"].to_numpy(zero_copy_only=False).astype(float) / gross
    assert pct[during & discounted].min() >= 0.29 and pct[during & discounted].max() <= 0.51
    toys = pc.equal(lines["category"], "Toys").to_numpy(zero_copy_only=False)
    assert toys[during].mean() > 1.6 * toys[~during].mean()

    product = lines["product_id"].to_numpy()
    base = cfg.generator.products
    assert (product[~during & (day < first)] <= base).all(), "a SKU sold before its launch"
    assert (product > base).any() and product.max() <= base + 40
    catalog = t["product_catalog"]
    assert catalog.num_rows == base + 40
    launched = pc.is_valid(catalog["launch_date"]).to_numpy(zero_copy_only=False)
    assert (catalog["product_id"].to_numpy()[launched] > base).all() and launched.sum() == 40
    cart_products = t["cart_items"]["product_id"].to_numpy()
    cart_day = _days(t["cart_items"]["added_at"])
    assert (cart_products[cart_day < first] <= base).all()


def test_drift_moves_conversion_returns_discounts_and_signups_month_by_month():
    """Item 2: dated multipliers, linear between months: conversion halves and the discount share doubles from
    January to March; signups per day follow their own line; the same config gives the same tables."""
    drift = ("generator.drift.conversion=[[2021-01, 1.0], [2021-03, 0.5]]",
             "generator.drift.discount_share=[[2021-01, 1.0], [2021-03, 2.0]]",
             "generator.drift.return_rate=[]", "generator.drift.new_customers=[[2019-01, 1.0], [2021-03, 3.0]]")
    cfg = compose_cfg(*SHOP, *drift, "generator.campaigns=[]", "mess=none", smoke=False)
    t, _ = generate(cfg, mess=False)
    carts, orders = t["shopping_carts"], t["orders"]
    jan, feb = day_number("2021-01-01"), day_number("2021-02-01")
    cart_day, order_day = _days(carts["created_at"]), _days(orders["order_date"])
    conv_jan = (order_day < feb).sum() / (cart_day < feb).sum()
    conv_feb = (order_day >= feb).sum() / (cart_day >= feb).sum()
    assert conv_feb / conv_jan == pytest.approx(0.5 / 0.75 * 1.0 / 0.9, rel=0.2)  # mid-month multipliers
    signups = _days(t["customers"]["signup_date"])
    registered = ~t["customers"]["is_guest"].to_numpy(zero_copy_only=False)
    per_day = np.bincount(signups[registered & (signups >= jan)] - jan, minlength=59)
    assert per_day[40:59].mean() / per_day[:19].mean() == pytest.approx(2.85 / 2.6, rel=0.1)  # the line rises
    again, _ = generate(cfg, mess=False)
    assert all(again[name].equals(t[name]) for name in t)


@pytest.mark.slow
def test_the_realism_profile_measures_campaigns_and_the_feed_against_the_config(tmp_path):
    """Item 9: `bear verify --profile` prints the daily volume's coefficient of variation, the campaign's uplift (of
    visits, against the calendar's intensity; of orders, shown), and the late and re-delivered shares against the
    config, and fails when the lake is not what the config says."""
    args = (*SHOP, "ray=inprocess", SALE, "mess=heavy_mess", "mess.late_share=0.2",
            "mess.redelivery_share=0.05", f"sink.root={tmp_path / 'lake'}")
    backfill(compose_cfg(*args, smoke=False))
    res = run_bear("verify", "--profile", *args, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "realism profile" in res.stdout and "campaign january_sale" in res.stdout
    report = (tmp_path / "lake" / "_bear" / "report.html").read_text()
    assert "<title>january_sale: 2021-01-20 .. 2021-01-24</title></rect>" in report, "the campaign is not shaded"
    cfg = compose_cfg(*args, smoke=False)
    measures = {m.name: m for m in profile(open_sink(cfg.sink), cfg)}
    uplift = measures["campaign january_sale: carts per day / the weeks around"]
    assert uplift.ok and uplift.expected == pytest.approx(3.0)
    assert measures["late share (of orders)"].ok and measures["re-delivered share (of orders)"].ok
    assert measures["daily orders: coefficient of variation"].measured > 0.2
    claimed = compose_cfg(*args, "mess.late_share=0.02", smoke=False)
    wrong = {m.name: m for m in profile(open_sink(claimed.sink), claimed)}
    assert not wrong["late share (of orders)"].ok, "a lake 10x later than configured passed the profile"
