"""The generator core (issue: generator): invariants, determinism, realism and volume."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import compose_cfg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bear.core.schemas import FORMAT_COLUMNS, PLAN_FAMILY
from bear.core.text import hexadecimal
from bear.run.generate import generate
from bear.run.prepare import prepare_plan, set_up, shard_bounds, shard_count
from bear.verify.checks import check_tables, id_numbers

LEVELS = ("none", "light_mess", "medium_mess", "heavy_mess")


def _small(*overrides: str):
    return compose_cfg("generator.customers=2500", "generator.products=120", *overrides)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    level=st.sampled_from(LEVELS),
    start=st.dates(min_value=dt.date(2019, 10, 1), max_value=dt.date(2020, 3, 1)),
    days=st.integers(1, 75),
    chunk_days=st.integers(1, 40),
)
def test_invariants_hold_for_any_seed_window_and_mess(seed, level, start, days, chunk_days):
    end = start + dt.timedelta(days=days - 1)
    cfg = _small(f"run.seed={seed}", f"mess={level}", f"run.start={start}", f"run.end={end}",
                 f"run.chunk_days={chunk_days}", "generator.customer.signup_start=2019-06-01",
                 "generator.customer.signup_end=2020-05-01")
    tables, _ = generate(cfg)
    failures = check_tables(tables)
    assert not failures, "\n".join(map(str, failures))


def test_checks_catch_broken_tables():
    """The invariant checks themselves must fail on broken data (a check that cannot fail is a defect)."""
    tables, _ = generate(_small("mess=none"))
    orders = tables["orders"]
    broken = dict(tables)
    gross = orders["gross_total"].to_pylist()
    gross[0] = gross[0] + 1
    broken["orders"] = orders.set_column(orders.schema.get_field_index("gross_total"), "gross_total",
                                         pa.array(gross, orders.schema.field("gross_total").type))
    broken["cart_items"] = tables["cart_items"].slice(1)
    broken["returns"] = tables["returns"].slice(0, tables["returns"].num_rows - 1)
    found = {f.check for f in check_tables(broken)}
    assert {"money.gross_total", "keys.gap_free", "money.cart_total", "integrity.foreign_key"} <= found


def test_identical_inputs_give_identical_tables():
    a, _ = generate(_small("mess=heavy_mess"))
    b, _ = generate(_small("mess=heavy_mess"))
    for name in a:
        assert a[name].equals(b[name]), name


def _by_key(table: pa.Table) -> pa.Table:
    return table.sort_by([(table.column_names[0], "ascending")])


def test_chunking_does_not_change_the_data():
    """One 60-day window equals the same range cut into 7-day (or 1-day) windows, IDs included."""
    whole, _ = generate(_small("run.chunk_days=60"))
    for days in (7, 1):
        parts, _ = generate(_small(f"run.chunk_days={days}"))
        for name in whole:
            assert _by_key(whole[name]).equals(_by_key(parts[name])), (name, days)


def test_customer_shards_do_not_change_the_data():
    """The skeleton pass split into 1, 2 or 5 customer shards (walked in lock step in this process) gives the same
    tables, messed values included, row for row and in the same order."""
    whole, _ = generate(_small("run.chunk_days=7"))
    for shards in (2, 5):
        parts, _ = generate(_small("run.chunk_days=7", f"ray.plan_shards={shards}"))
        for name in whole:
            assert whole[name].equals(parts[name]), (name, shards)


def test_seed_changes_the_data():
    a, _ = generate(_small("run.seed=1"))
    b, _ = generate(_small("run.seed=2"))
    assert not a["shopping_carts"].equals(b["shopping_carts"])


def test_skeleton_counts_match_generated_rows():
    cfg = _small("run.chunk_days=9")
    p = prepare_plan(cfg)
    tables, _ = generate(cfg)
    totals = p.plan["totals"]
    for table, family in PLAN_FAMILY.items():
        assert tables[table].num_rows == totals[family], table
    customers = tables["customers"]
    assert customers.num_rows == p.plan["customers"] == len(set(customers["customer_id"].to_pylist()))
    # ID blocks are contiguous and in chunk order
    for a, b in zip(p.plans, p.plans[1:], strict=False):
        for fam, first in b.first_ids.items():
            assert first == a.first_ids[fam] + a.rows[fam]


def test_mess_never_drops_rows_or_touches_keys_and_ledger_is_exact():
    clean, _ = generate(_small("mess=none"))
    messy, ledgers = generate(_small("mess=heavy_mess"))
    keys = {"shopping_carts": "cart_id", "cart_items": "cart_item_id", "orders": "order_id",
            "returns": "return_id", "return_items": "return_item_id", "customers": "customer_id"}
    for name, table in clean.items():
        assert messy[name].num_rows == table.num_rows
        if name in keys:
            assert messy[name][keys[name]].equals(table[keys[name]])
    # whitespace and casing are independent kinds, each at the level's rate (heavy: 15 %), and each counted
    # exactly: padded values (one or two spaces on both sides), and values whose trimmed text differs from the
    # clean run's only by case
    for table, col in (("shopping_carts", "status"), ("cart_items", "product_name"), ("returns", "return_type")):
        dirty, plain = messy[table][col], clean[table][col]
        n = dirty.length()
        padded = pc.and_(pc.match_substring_regex(dirty, r"^ {1,2}\S"),
                         pc.match_substring_regex(dirty, r"\S {1,2}$"))
        trimmed = pc.utf8_trim(dirty, " ")
        recased = pc.and_(pc.not_equal(trimmed, plain), pc.equal(pc.utf8_lower(trimmed), pc.utf8_lower(plain)))
        assert pc.all(pc.equal(pc.utf8_lower(trimmed), pc.utf8_lower(plain))).as_py(), (table, col)
        spaced = pc.sum(pc.or_(pc.starts_with(dirty, " "), pc.ends_with(dirty, " "))).as_py()
        counted = {kind: sum(int(led[col][kind].sum()) for led in ledgers[table] if col in led)
                   for kind in ("whitespace", "casing")}
        assert counted["whitespace"] == pc.sum(padded).as_py() == spaced, (table, col)
        assert counted["casing"] == pc.sum(recased).as_py() > 0, (table, col)
        assert abs(counted["whitespace"] / n - 0.15) < 4 * (0.15 * 0.85 / n) ** 0.5, (table, col)
        both = pc.sum(pc.and_(padded, recased)).as_py()
        assert both > 0, "the two kinds are independent: some values get both"
    nulls = sum(int(led["agent_id"]["null"].sum()) for led in ledgers["orders"] if "agent_id" in led)
    assert nulls == messy["orders"]["agent_id"].null_count
    rate = nulls / messy["orders"].num_rows
    assert 0.04 < rate < 0.13  # heavy: 8 %
    spikes = sum(int(led["total_items"]["spike"].sum()) for led in ledgers["orders"])
    bigger = pc.sum(pc.greater(messy["orders"]["total_items"], clean["orders"]["total_items"])).as_py()
    assert spikes == bigger > 0


def _digits(v: str) -> str:
    return "".join(ch for ch in v if ch.isdigit())


def test_format_mess_spells_emails_and_phones_as_variants_of_the_same_value():
    clean, _ = generate(_small("mess=none"))
    messy, ledgers = generate(_small("mess=heavy_mess"))
    again, _ = generate(_small("mess=heavy_mess"))
    hits = values = 0
    for table, cols in FORMAT_COLUMNS.items():
        for col in cols:
            assert messy[table][col].equals(again[table][col]), (table, col)  # deterministic
            dirty, plain = messy[table][col].to_pylist(), clean[table][col].to_pylist()
            changed = [(d, p) for d, p in zip(dirty, plain, strict=True) if d != p]
            counted = sum(int(led[col]["format"].sum()) for led in ledgers[table] if col in led)
            assert counted == len(changed), (table, col)  # the ledger counts exactly the changed values
            hits, values = hits + len(changed), values + len(plain)
            if col == "email":
                for d, p in changed:
                    assert "@" in d and "." in d.split("@")[1] and len(d.strip()) >= 5, d  # like '%@%.%'
                    assert d.strip().lower() == p, (d, p)
                kinds = {"upper": sum(d == p.upper() for d, p in changed),
                         "title": sum(d[0].isupper() and d != p.upper() for d, p in changed),
                         "space before": sum(d == " " + p for d, p in changed),
                         "space after": sum(d == p + " " for d, p in changed)}
                assert sum(kinds.values()) == len(changed), kinds
            else:
                for d, p in changed:
                    dropped = d.startswith("(") or d.count(".") == 2
                    assert _digits(d) == (_digits(p)[1:] if dropped else _digits(p)), (d, p)
                kinds = {"local": sum(d.startswith("(") and d[4:6] == ") " and d[9] == "-" for d, _ in changed),
                         "spaced": sum(d == p.replace("-", " ") for d, p in changed),
                         "bare": sum(d == _digits(p) for d, p in changed),
                         "dotted": sum(d.count(".") == 2 and len(d) == 12 for d, _ in changed)}
                assert sum(kinds.values()) == len(changed), kinds
            if table == "customers":  # enough values to judge the rate per column (heavy: 6 %) and the variants
                n = len(plain)
                assert abs(len(changed) / n - 0.06) < 4 * (0.06 * 0.94 / n) ** 0.5, (table, col, len(changed))
                assert min(kinds.values()) > 0, kinds
    assert abs(hits / values - 0.06) < 4 * (0.06 * 0.94 / values) ** 0.5
    for level in ("none", "light_mess"):  # no format mess below medium
        tables, ledgers = generate(_small(f"mess={level}"))
        for table, cols in FORMAT_COLUMNS.items():
            for col in cols:
                assert tables[table][col].equals(clean[table][col]), (level, table, col)
                assert not any("format" in led.get(col, {}) for led in ledgers[table]), (level, table, col)


@pytest.fixture(scope="module")
def one_year():
    cfg = compose_cfg("run.start=2025-01-01", "run.end=2025-12-31", "generator.customers=60000", "mess=none",
                      "generator.campaigns=[]", "generator.drift.conversion=[]", "generator.drift.return_rate=[]",
                      "generator.drift.discount_share=[]", "generator.drift.new_customers=[]",
                      smoke=False)
    tables, _ = generate(cfg, mess=False)
    return cfg, tables


def test_realism_seasonality_and_no_pile_up(one_year):
    _, t = one_year
    month = pc.month(t["shopping_carts"]["created_at"]).to_numpy()
    days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    daily = np.bincount(month, minlength=13)[1:] / days
    season = np.array([1, 1, 1, 1, 1, 1, 1.2, 1, 1, 1, 1.6, 2.1])
    plain = daily[season == 1]
    plain_months = np.flatnonzero(season == 1)
    trend = np.polyval(np.polyfit(plain_months, plain, 1), np.arange(12))
    ratio = daily / trend
    assert ratio[11] == pytest.approx(2.1, rel=0.12)
    assert ratio[10] == pytest.approx(1.6, rel=0.12)
    assert ratio[6] == pytest.approx(1.2, rel=0.12)
    deseasoned = daily / season
    assert np.all(np.abs(deseasoned / trend - 1) < 0.25), deseasoned / trend  # last month included


def test_realism_conversion_returns_and_cart_sizes(one_year):
    _, t = one_year
    conversion = t["orders"].num_rows / t["shopping_carts"].num_rows
    assert 0.12 <= conversion <= 0.16
    orders, rets = t["orders"], t["returns"]
    idx = pc.index_in(rets["order_id"], value_set=orders["order_id"]).to_numpy()
    od = pc.cast(orders["order_date"], pa.int64()).to_numpy()[idx] // 86_400_000_000
    rd = pc.cast(rets["return_date"], pa.int64()).to_numpy() // 86_400_000_000
    assert np.mean(rd - od <= 30) >= 0.75
    cust = t["customers"]
    tier = dict(zip(cust["customer_id"].to_pylist(), cust["initial_loyalty_tier"].to_pylist(), strict=True))
    carts = t["shopping_carts"]
    lines = pc.value_counts(t["cart_items"]["cart_id"])
    per_cart = dict(zip(lines.field("values").to_pylist(), lines.field("counts").to_pylist(), strict=True))
    sizes: dict[str, list[int]] = {"Platinum": [], "Bronze": []}
    for cid, cu in zip(carts["cart_id"].to_pylist()[:200_000], carts["customer_id"].to_pylist()[:200_000],
                       strict=True):
        if tier[cu] in sizes and cid in per_cart:  # emptied carts keep no lines
            sizes[tier[cu]].append(per_cart[cid])
    assert np.mean(sizes["Platinum"]) > 1.5 * np.mean(sizes["Bronze"])


def test_realism_late_signups_still_shop(one_year):
    _, t = one_year
    cust = t["customers"]
    signup = cust["signup_date"]
    late = pc.and_(pc.greater_equal(signup, dt.date(2025, 11, 1)), pc.less_equal(signup, dt.date(2025, 12, 15)))
    late_ids = cust.filter(pc.fill_null(late, False))["customer_id"]
    shoppers = pc.is_in(late_ids, value_set=t["shopping_carts"]["customer_id"].combine_chunks())
    assert len(late_ids) > 100
    assert pc.mean(pc.cast(shoppers, pa.float64())).as_py() > 0.9


def test_default_volume_matches_the_reference_backlog():
    """The reference volumes: about 3,800 carts, 17,000 cart items, 500 orders, 2,600 order items, 100 returns,
    400 return items per average day over the default range; within ±20 %. Counted by the exact skeleton pass."""
    p = prepare_plan(compose_cfg(smoke=False))
    totals = p.plan["totals"]
    days = p.model.end_day - p.model.start_day + 1
    reference = {"carts": 3800, "cart_items": 17000, "orders": 500, "order_items": 2600, "returns": 100,
                 "return_items": 400}
    for family, per_day in reference.items():
        assert totals[family] / days == pytest.approx(per_day, rel=0.2), family
    assert 42e6 < sum(totals.values()) < 64e6


def test_hexadecimal_ids_spell_every_int64_as_python_does():
    """event_id and referral codes: `prefix` + 16 lower-case hex digits of the int64's two's complement."""
    edge = [0, 1, 255, 256, 65535, 65536, 2**52 + 7, 2**62, 2**63 - 1, -1, -(2**63), -65536]
    values = np.array(edge + np.random.default_rng(7).integers(-(2**63), 2**63 - 1, 1000).tolist(), dtype=np.int64)
    got = hexadecimal("evt_", values).to_pylist()
    assert got == [f"evt_{int(v) & (2**64 - 1):016x}" for v in values]


def test_ids_are_formatted_and_rise_with_time():
    t, _ = generate(_small())
    ids = t["orders"]["order_id"].to_pylist()
    assert all(len(i) == 12 and i.startswith("ORD-") for i in ids)
    dates = pc.cast(t["orders"]["order_date"], pa.int64()).to_numpy()
    assert np.all(np.diff(dates[np.argsort(id_numbers(t["orders"]["order_id"]))]) >= 0)
    guests = pc.sum(pc.starts_with(t["customers"]["customer_id"], "GUEST-")).as_py()
    assert guests / t["customers"].num_rows == pytest.approx(0.4, abs=0.03)


def test_guests_sign_up_on_their_first_cart_and_emptied_carts_keep_nothing(one_year):
    """Bronze contract: a guest's signup_date is its first contact (the day of its first cart), so no customer has a
    null signup_date; an emptied cart has no lines and a total of 0, an abandoned one keeps its lines."""
    cfg, t = one_year
    cust, carts = t["customers"], t["shopping_carts"]
    assert cust["signup_date"].null_count == 0
    guests = cust.filter(cust["is_guest"])
    assert 0.35 < guests.num_rows / cust.num_rows < 0.45
    first = carts.group_by("customer_id").aggregate([("created_at", "min")])
    joined = guests.join(first, "customer_id", join_type="inner")
    joined = joined.filter(pc.greater_equal(joined["signup_date"], dt.date(2025, 1, 1)))  # first contact in the run
    assert joined.num_rows > 1000
    assert pc.all(pc.equal(pc.cast(joined["created_at_min"], pa.date32()), joined["signup_date"])).as_py()
    lines = pc.value_counts(t["cart_items"]["cart_id"])
    with_lines = lines.field("values")
    for status, has_lines in (("emptied", False), ("abandoned", True), ("open", True), ("converted", True)):
        of = carts.filter(pc.equal(carts["status"], status))
        assert of.num_rows > 100, status
        assert pc.all(pc.equal(pc.is_in(of["cart_id"], value_set=with_lines), has_lines)).as_py(), status
        assert pc.all(pc.equal(pc.equal(of["cart_total"], pa.scalar(0, of["cart_total"].type)),
                               not has_lines)).as_py(), status
    assert not check_tables(t), "cart_item_id stays gap-free"


def test_shards_cover_every_customer_once_and_stay_bounded():
    """Shards are contiguous, cover all customers, carry about equal work (early signups walk longer), and their
    number follows the workers, or the volume where one shard per worker would hold too much."""
    cfg = compose_cfg(smoke=False)
    setup = set_up(cfg, lookups=False)
    bounds = shard_bounds(setup.model, setup.customers, 3)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(setup.customers) >= cfg.generator.customers
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    sizes = [hi - lo for lo, hi in bounds]
    assert sizes[0] < sizes[-1], "the first shard holds the earliest, longest histories"
    assert shard_count(cfg, 300_000, workers=2) == 2 and shard_count(cfg, 300_000, workers=1) == 1
    assert shard_count(cfg, 5_000, workers=8) == 1  # too few customers to be worth splitting
    big = compose_cfg("generator.scale=4", smoke=False)
    assert shard_count(big, 1_200_000, workers=2) == 6 and shard_count(big, 1_200_000, workers=1) == 5
    assert shard_count(compose_cfg("ray.plan_shards=7"), 300_000, workers=2) == 7
