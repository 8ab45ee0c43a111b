"""Bronze contract v1: the lake read the way its existing consumer (dbt models on DuckDB) reads it.

The consumer's expectations are written out here on purpose, not imported from bear: they are an
outside party's, and this test must fail when bear drifts away from them. It reads every table with
`read_parquet('<lake>/<table>/<key>=*/part-*.parquet', union_by_name=true, hive_partitioning=true)`,
trims every string column, casts typed values through varchar, and applies the quarantine rules as SQL.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import compose_cfg

from bear.core.rows import COPY_BIT
from bear.run.backfill import backfill
from bear.run.prepare import prepare_plan

pytestmark = pytest.mark.slow  # real Ray runs or the GCS emulator: the full lane

CONTRACT_COLUMNS = {
    "customers": "customer_id first_name last_name email phone_number signup_date gender age is_guest customer_status "
                 "signup_channel loyalty_tier initial_loyalty_tier email_verified marketing_opt_in mailing_address "
                 "billing_address loyalty_enrollment_date clv_bucket",
    "product_catalog": "product_id product_name category unit_price cost_price inventory_quantity",
    "shopping_carts": "cart_id customer_id created_at updated_at cart_total status",
    "cart_items": "cart_item_id cart_id product_id product_name category added_at quantity unit_price",
    "orders": "order_id total_items order_date customer_id email order_channel is_expedited customer_tier gross_total "
              "net_total total_discount_amount payment_method shipping_speed shipping_cost agent_id "
              "actual_shipping_cost payment_processing_fee shipping_address billing_address clv_bucket is_reactivated",
    "order_items": "order_id product_id product_name category quantity unit_price discount_amount cost_price",
    "returns": "return_id order_id customer_id email return_date reason return_type refunded_amount return_channel "
               "agent_id refund_method",
    "return_items": "return_item_id return_id order_id product_id product_name category quantity_returned unit_price "
                    "cost_price refunded_amount",
}
LINEAGE = ("batch_id", "ingestion_ts", "event_id", "source_file")
PARTITION = {"customers": "signup_date", "product_catalog": "category"}  # every other table: ingest_dt
INTEGER_IDS = {"product_id", "cart_item_id", "return_item_id"}
STRING_IDS = {"customer_id": ("CUST-", "GUEST-"), "cart_id": ("CART-",), "order_id": ("ORD-",),
              "return_id": ("RTN-",)}
DEDUP_KEY = {"order_items": "order_id, product_id", "cart_items": "cart_id, product_id, added_at",
             "return_items": "return_id, product_id", "customers": "customer_id", "product_catalog": "product_id",
             "shopping_carts": "cart_id", "orders": "order_id", "returns": "return_id"}


def _missing(*cols: str) -> str:
    return " OR ".join(f"{c} IS NULL OR CAST({c} AS VARCHAR) = ''" for c in cols)


# A row is quarantined when its rule holds (the consumer's bronze contract v1), or as a duplicate key.
QUARANTINE = {
    "customers": f"{_missing('customer_id')} OR email IS NULL OR email NOT LIKE '%@%.%' OR length(email) < 5 "
                 "OR signup_date IS NULL",
    "product_catalog": "product_id IS NULL OR product_id <= 0 OR " + _missing("product_name")
                       + " OR unit_price IS NULL OR unit_price < 0 OR unit_price < cost_price",
    "orders": f"{_missing('order_id', 'customer_id')} OR order_date IS NULL OR gross_total IS NULL OR gross_total < 0 "
              "OR net_total IS NULL OR net_total < 0 OR total_discount_amount < 0 OR net_total > gross_total",
    "shopping_carts": f"{_missing('cart_id', 'customer_id')} OR created_at IS NULL OR cart_total < 0 "
                      "OR updated_at < created_at",
    "cart_items": f"cart_item_id IS NULL OR cart_item_id <= 0 OR {_missing('cart_id')} OR product_id IS NULL "
                  "OR product_id <= 0 OR quantity <= 0 OR unit_price < 0",
    "order_items": f"{_missing('order_id')} OR product_id IS NULL OR product_id <= 0 OR quantity <= 0 "
                   "OR unit_price < 0 OR cost_price < 0 OR discount_amount < 0",
    "returns": f"{_missing('return_id', 'order_id', 'customer_id')} OR return_date IS NULL OR refunded_amount < 0",
    "return_items": f"return_item_id IS NULL OR return_item_id <= 0 OR {_missing('return_id', 'order_id')} "
                    "OR product_id IS NULL OR product_id <= 0 OR quantity_returned <= 0 OR unit_price < 0 "
                    "OR cost_price < 0 OR refunded_amount < 0",
}


def key_of(table: str) -> str:
    return PARTITION.get(table, "ingest_dt")


def bronze(con: duckdb.DuckDBPyConnection, root: Path, table: str) -> str:
    """The consumer's bronze view: strings trimmed, typed values cast through varchar and parsed back."""
    src = f"read_parquet('{root}/{table}/{key_of(table)}=*/part-*.parquet', union_by_name=true, hive_partitioning=true)"
    cols = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    exprs = [f"trim({name}) AS {name}" if typ == "VARCHAR" else f"TRY_CAST(CAST({name} AS VARCHAR) AS {typ}) AS {name}"
             for name, typ, *_ in cols]
    view = f"bronze_{table}"
    con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT {', '.join(exprs)} FROM {src}")
    return view


def quarantine_ratios(root: Path) -> dict[str, float]:
    """Share of each table's rows the consumer's silver layer would quarantine (bad values or duplicate keys)."""
    con = duckdb.connect()
    out = {}
    for table, rule in QUARANTINE.items():
        view = bronze(con, root, table)
        total, bad = con.execute(f"""
            SELECT count(*), count(*) FILTER (WHERE ({rule}) OR rn > 1)
            FROM (SELECT *, row_number() OVER (PARTITION BY {DEDUP_KEY[table]}
                                               ORDER BY ingestion_ts DESC, event_id DESC) AS rn FROM {view})
        """).fetchone()
        assert total > 0, table
        out[table] = bad / total
    return out


@pytest.fixture(scope="module")
def lakes(tmp_path_factory):
    """The smoke range at three mess levels, written by the real runner (in-process: the same bytes as on Ray)."""
    out = {}
    for level in ("none", "medium_mess", "heavy_mess"):
        root = tmp_path_factory.mktemp(level) / "lake"
        backfill(compose_cfg(f"sink.root={root}", f"mess={level}", "ray=inprocess"))
        out[level] = root
    return out


def test_every_table_has_the_contract_columns_with_readable_types(lakes):
    root = lakes["medium_mess"]
    con = duckdb.connect()
    for table, names in CONTRACT_COLUMNS.items():
        view = bronze(con, root, table)  # every string column goes through trim(): event_id must be a string
        types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {view})").fetchall())
        missing = [c for c in (*names.split(), *LINEAGE) if c not in types]
        assert not missing, (table, missing)
        assert types["event_id"] == "VARCHAR" and types["ingestion_ts"].startswith("TIMESTAMP"), table
        for col, prefixes in STRING_IDS.items():
            if col in types:
                assert types[col] == "VARCHAR", (table, col)
                bad = con.execute(f"SELECT count(*) FROM {view} WHERE NOT ("
                              + " OR ".join(f"starts_with({col}, '{p}')" for p in prefixes) + ")").fetchone()[0]
                assert bad == 0, (table, col)
        for col in INTEGER_IDS & types.keys():
            assert types[col] in ("BIGINT", "INTEGER"), (table, col)
        lineage_nulls = con.execute(f"SELECT count(*) FROM {view} WHERE "
                                + " OR ".join(f"{c} IS NULL" for c in LINEAGE)).fetchone()[0]
        assert lineage_nulls == 0, table
        rows, ids = con.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {view}").fetchone()
        assert rows == ids, f"{table}: event_id not unique"
        assert con.execute(f"SELECT count(*) FROM {view} WHERE NOT regexp_full_match(event_id, 'evt_[0-9a-f]{{16}}')"
                       ).fetchone()[0] == 0, table


def test_event_ids_are_unique_across_the_lake_and_the_same_in_every_rerun(lakes):
    con = duckdb.connect()
    ids = {level: [con.execute(f"SELECT event_id FROM read_parquet('{root}/{t}/*/part-*.parquet') ORDER BY 1")
                   .fetchall() for t in CONTRACT_COLUMNS] for level, root in lakes.items()}
    every = [e for per_table in ids["none"] for e in per_table]
    assert len(every) == len(set(every)), "event_id is unique lake-wide"
    heavy = {e for per_table in ids["heavy_mess"] for e in per_table}
    copies = {e for e in heavy if int(e[0][4:], 16) & COPY_BIT}  # the heavy feed's re-delivered copies
    assert copies and heavy - copies <= set(every), "event_id depends on the row, not on the mess"
    feed = json.loads((lakes["heavy_mess"] / "_bear" / "plan.json").read_text())["feed"]
    in_flight = sum(n for chunk in feed.values() for n in chunk["in_flight"].values())
    assert len(set(every) - heavy) == in_flight, "only the orders still on their way at the end are missing"


def test_partition_columns_are_inside_every_file_and_one_column_to_hive_readers(lakes):
    root = lakes["medium_mess"]
    con = duckdb.connect()
    for table in CONTRACT_COLUMNS:
        key = key_of(table)
        for part in sorted((root / table).iterdir())[:3]:
            files = sorted(part.glob("part-*.parquet"))
            if not files:
                continue
            alone = pq.read_table(files[0])  # no partition discovery at all, as pandas reads one file
            value = part.name.split("=", 1)[1]
            assert {str(v) for v in alone[key].to_pylist()} == {value}, (table, part.name)
        for hive in ("true", "false"):
            names = [r[0] for r in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet('{root}/{table}/{key}=*/part-*.parquet', union_by_name=true, "
                f"hive_partitioning={hive})").fetchall()]
            assert names.count(key) == 1 and not any(n.startswith(f"{key}_") for n in names), (table, hive, names)
        # pyarrow datasets: without discovery the file's column, with the hive partition schema still one column
        typ = pq.read_schema(next((root / table).glob("*=*/part-*.parquet"))).field(key).type
        for partitioning in (None, ds.partitioning(pa.schema([(key, typ)]), flavor="hive")):
            t = ds.dataset(root / table, format="parquet", partitioning=partitioning).to_table()
            assert t.column_names.count(key) == 1 and t[key].null_count == 0, (table, partitioning)
    cust = pq.read_table(next((root / "customers").glob("signup_date=*/part-*.parquet")))
    assert cust.schema.field("signup_date").type == pa.date32()
    orders = pq.read_table(next((root / "orders").glob("ingest_dt=*/part-*.parquet")))
    assert orders.schema.field("ingest_dt").type == pa.date32()


def test_guests_are_customers_partitioned_by_first_contact(lakes):
    root = lakes["medium_mess"]
    con = duckdb.connect()
    view = bronze(con, root, "customers")
    cfg = compose_cfg()
    guests, null_signup, rows = con.execute(f"SELECT count(*) FILTER (WHERE is_guest), "
                                            f"count(*) FILTER (WHERE signup_date IS NULL), count(*) FROM {view}"
                                            ).fetchone()
    assert rows == prepare_plan(cfg).plan["customers"] and guests > 0.3 * rows and null_signup == 0
    odd_guests = con.execute(f"SELECT count(*) FROM {view} WHERE is_guest AND (NOT starts_with(customer_id, 'GUEST-') "
                             "OR loyalty_tier IS NOT NULL OR loyalty_enrollment_date IS NOT NULL)").fetchone()[0]
    assert odd_guests == 0
    carts = bronze(con, root, "shopping_carts")
    start = dt.date.fromisoformat(cfg.run.start)
    late = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE c.first_day <> g.signup_date)
        FROM {view} g JOIN (SELECT customer_id, min(created_at)::DATE AS first_day FROM {carts} GROUP BY 1) c
          USING (customer_id)
        WHERE g.is_guest AND g.signup_date >= DATE '{start}'
    """).fetchone()
    assert late[0] > 100 and late[1] == 0, f"guests whose first cart is not on their signup_date: {late}"


def test_customers_and_their_changes_build_an_scd2_dimension_that_agrees_with_every_order(lakes):
    """Issue 17, item 3: a customer's versions are their customers row (valid from signup) and their
    customer_changes rows; with valid_to = the next version's valid_from there is one current version per
    customer, and the version valid when an order was placed has the CLV bucket the order carries."""
    root = lakes["medium_mess"]
    con = duckdb.connect()
    cust, changes, orders = (bronze(con, root, t) for t in ("customers", "customer_changes", "orders"))
    con.execute(f"""
        CREATE VIEW scd AS
        SELECT *, lead(valid_from) OVER (PARTITION BY customer_id ORDER BY valid_from) AS valid_to FROM (
            SELECT customer_id, signup_date::TIMESTAMP AS valid_from, lower(loyalty_tier) AS tier,
                   lower(clv_bucket) AS clv FROM {cust}
            UNION ALL
            SELECT customer_id, valid_from, lower(loyalty_tier), lower(clv_bucket) FROM {changes})
    """)
    customers, current, versions, backwards = con.execute(
        f"SELECT (SELECT count(*) FROM {cust}), count(*) FILTER (WHERE valid_to IS NULL), count(*), "
        f"count(*) FILTER (WHERE valid_to < valid_from) FROM scd").fetchone()
    assert current == customers and versions > customers and backwards == 0
    placed, disagree = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE s.clv IS DISTINCT FROM lower(o.clv_bucket))
        FROM {orders} o JOIN scd s ON s.customer_id = o.customer_id AND s.valid_from <= o.order_date
             AND (s.valid_to IS NULL OR o.order_date < s.valid_to)
    """).fetchone()
    assert placed == con.execute(f"SELECT count(*) FROM {orders}").fetchone()[0] > 0 and disagree == 0


def test_emptied_carts_hold_no_items_and_abandoned_ones_keep_theirs(lakes):
    con = duckdb.connect()
    carts, items = bronze(con, lakes["medium_mess"], "shopping_carts"), bronze(con, lakes["medium_mess"], "cart_items")
    got = dict((s, (n, lines, total)) for s, n, lines, total in con.execute(f"""
        SELECT lower(status), count(*), count(*) FILTER (WHERE cart_id IN (SELECT cart_id FROM {items})),
               sum(cart_total)
        FROM {carts} GROUP BY 1
    """).fetchall())
    n, with_lines, total = got["emptied"]
    assert n > 0 and with_lines == 0 and total == 0
    n, with_lines, _ = got["abandoned"]
    assert n > 0 and with_lines == n


def test_quarantine_ratios_meet_the_consumers_gate(lakes, capsys):
    ratios = {level: quarantine_ratios(root) for level, root in lakes.items()}
    with capsys.disabled():
        for level, per_table in ratios.items():
            print(f"\nquarantined at {level}: " + ", ".join(f"{t} {r:.2%}" for t, r in per_table.items()))
    assert all(r == 0 for r in ratios["none"].values()), ratios["none"]
    assert all(r < 0.01 for r in ratios["medium_mess"].values()), ratios["medium_mess"]
    assert all(r < 0.05 for r in ratios["heavy_mess"].values()), ratios["heavy_mess"]


def test_the_quarantine_rules_catch_what_they_are_for(lakes, tmp_path):
    """The SQL above is not vacuous: a lake with a negative total, a duplicated key and a guest without a signup_date
    is quarantined exactly there."""
    import shutil

    root = tmp_path / "lake"
    shutil.copytree(lakes["none"], root)
    path = next(p for p in sorted((root / "orders").glob("ingest_dt=*/part-*.parquet")))
    t = pq.read_table(path)
    gross = t["gross_total"].to_pylist()
    gross[0] = -gross[0]
    t = t.set_column(t.schema.get_field_index("gross_total"), "gross_total", pa.array(gross, t["gross_total"].type))
    pq.write_table(pa.concat_tables([t, t.slice(1, 1)]), path)  # and row 1 delivered twice
    part = next(p for p in sorted((root / "customers").glob("signup_date=*")))  # the old guest partition:
    part.rename(part.with_name("signup_date=__HIVE_DEFAULT_PARTITION__"))  # a hive reader's null signup_date
    moved = sum(pq.read_metadata(f).num_rows for f in (root / "customers").glob("signup_date=__*/part-*.parquet"))
    ratios = quarantine_ratios(root)
    con = duckdb.connect()
    orders = con.execute(f"SELECT count(*) FROM read_parquet('{root}/orders/*/part-*.parquet')").fetchone()[0]
    customers = con.execute(f"SELECT count(*) FROM read_parquet('{root}/customers/*/part-*.parquet')").fetchone()[0]
    assert ratios["orders"] == pytest.approx(2 / orders)
    assert moved > 0 and ratios["customers"] == pytest.approx(moved / customers)
    assert ratios["shopping_carts"] == 0


SINCE = "2020-01-08"  # inside the small range below
ADDED = ("utm_source", "referral_code")
EVOLVED = f"generator.schema_changes=[{{table: orders, columns: [{', '.join(ADDED)}], since: '{SINCE}'}}]"


def test_columns_added_later_are_absent_before_their_day_and_every_file_reads_as_one_table(tmp_path):
    """Issue 18, item 5: orders gain utm_source and referral_code (nullable) from a configured day. Files of earlier
    days lack them (absent, not all-null), the consumer's union_by_name read still sees one table (null before the
    day, values from it on), and each partition's manifest records the table's schema version."""
    root = tmp_path / "lake"
    backfill(compose_cfg(f"sink.root={root}", "ray=inprocess", "run.end=2020-01-20", EVOLVED))
    seen = {}
    for part in sorted((root / "orders").iterdir()):
        day = part.name.split("=", 1)[1]
        files = sorted(part.glob("part-*.parquet"))
        assert files, part.name
        for f in files:
            present = set(ADDED) & set(pq.read_schema(f).names)
            assert present == (set(ADDED) if day >= SINCE else set()), (part.name, present)
        seen[day] = json.loads((part / "_MANIFEST.json").read_text())["table_schema"]
    assert seen == {d: {"version": 2, "columns_added": list(ADDED)} if d >= SINCE
                    else {"version": 1, "columns_added": []} for d in seen}
    assert min(seen) < SINCE <= max(seen)
    for table in ("order_items", "customers"):  # tables without schema changes stay at version 1
        docs = [json.loads(m.read_text())["table_schema"] for m in (root / table).glob("*/_MANIFEST.json")]
        assert docs and all(d == {"version": 1, "columns_added": []} for d in docs), table
    con = duckdb.connect()
    view = bronze(con, root, "orders")
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {view})").fetchall())
    assert types["utm_source"] == types["referral_code"] == "VARCHAR"
    before, after = (con.execute(f"SELECT count(*), count(utm_source), count(referral_code) FROM {view} "
                                 f"WHERE ingest_dt {op} DATE '{SINCE}'").fetchone() for op in ("<", ">="))
    in_files = sum(pq.read_metadata(f).num_rows for f in (root / "orders").glob("*/part-*.parquet"))
    assert before[0] + after[0] == in_files and before[0] > 0 and after[0] > 0
    assert before[1:] == (0, 0), "null before the day the columns were added"
    assert 0.4 * after[0] < after[1] < 0.8 * after[0], "about 40 % of orders come without a UTM source"
    assert 0 < after[2] < 0.15 * after[0], "about 5 % of orders carry a referral code"
    sources = {r[0] for r in con.execute(f"SELECT DISTINCT lower(utm_source) FROM {view} WHERE utm_source IS NOT NULL"
                                         ).fetchall()}
    assert sources <= {"google", "facebook", "instagram", "newsletter", "tiktok"} and len(sources) >= 3
    bad_codes = con.execute(f"SELECT count(*) FROM {view} WHERE referral_code IS NOT NULL "
                            "AND NOT regexp_full_match(referral_code, 'REF-[0-9A-Z]{6}')").fetchone()[0]
    assert bad_codes == 0
    assert quarantine_ratios(root)["orders"] < 0.01  # the added columns change nothing the consumer gates on
