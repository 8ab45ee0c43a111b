"""The order feed behaves like a real shop's: late arrivals and re-deliveries, counted, verified, deduplicated the
consumer's way, chunking-independent and extension-safe (issue 18, items 3, 4 and 7)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from conftest import assert_same_local_lake, compose_cfg, lake_files

from bear.lake.sink import open_sink
from bear.run.backfill import backfill
from bear.verify.audit import verify_lake

pytestmark = pytest.mark.slow  # lakes written and audited: the full lane

# Shares far above the defaults, so a two-month smoke lake has enough late and re-delivered orders to judge.
FEED = ("+preset=smoke", "ray=inprocess", "mess=heavy_mess", "mess.late_share=0.3", "mess.redelivery_share=0.1")
GLOB = "{root}/{table}/ingest_dt=*/part-*.parquet"
DATA_COLUMNS = {  # what the consumer compares after dedup: everything but lineage and the partition
    "orders": "* exclude (batch_id, ingestion_ts, event_id, source_file, ingest_dt)",
    "order_items": "* exclude (batch_id, ingestion_ts, event_id, source_file, ingest_dt)",
}
# The consumer's dedup rule (CONTRACT.md): per primary key keep the latest ingestion_ts, then the highest event_id.
DEDUP = """
select {cols} from read_parquet('{glob}', union_by_name=true, hive_partitioning=true)
qualify row_number() over (partition by {key} order by ingestion_ts desc, event_id desc) = 1
"""


def _lake(root: Path, *overrides: str) -> Path:
    backfill(compose_cfg(*FEED[1:], f"sink.root={root}", *overrides))
    return root


def _sql(con, table: str, root: Path, query: str) -> list:
    return con.execute(query.format(glob=GLOB.format(root=root, table=table))).fetchall()


@pytest.fixture(scope="module")
def lakes(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("feed")
    return {"weekly": _lake(base / "weekly", "run.chunk_days=7"),
            "daily": _lake(base / "daily", "run.chunk_days=1"),
            "once": _lake(base / "once", "run.chunk_days=7", "mess.redelivery_share=0")}


def test_late_and_redelivered_rows_land_as_documented_and_verify(lakes):
    """Item 3/4/7: late orders sit 1-3 days after their order_date with their lines and changes; copies 1-2 days
    after their first delivery with a new event_id and a later ingestion_ts; every manifest counts exactly what its
    partition holds; `bear verify` passes; the lake is the same however it is chunked."""
    root = lakes["weekly"]
    con = duckdb.connect()
    orders = f"read_parquet('{GLOB.format(root=root, table='orders')}', hive_partitioning=true)"
    lag = con.execute(f"select ingest_dt - cast(order_date as date) as lag, count(*) from {orders} "
                      "group by 1 order by 1").fetchall()
    assert [d for d, _ in lag] == [0, 1, 2, 3, 4, 5], lag  # late 1-3, copies of late orders up to 3 + 2
    total = sum(n for _, n in lag)
    copies = con.execute(f"select count(*) - count(distinct order_id) from {orders}").fetchone()[0]
    late = total - copies - dict(lag)[0]
    assert 0.22 < late / (total - copies) < 0.36 and 0.05 < copies / (total - copies) < 0.15, (late, copies, total)
    pairs = con.execute(f"""select a.ingest_dt, b.ingest_dt, a.ingestion_ts < b.ingestion_ts, a.event_id <> b.event_id
                        from {orders} a join {orders} b on a.order_id = b.order_id and a.ingest_dt < b.ingest_dt
                    """).fetchall()
    assert len(pairs) == copies and all(lt and ne and 1 <= (b - a).days <= 2 for a, b, lt, ne in pairs)
    items = f"read_parquet('{GLOB.format(root=root, table='order_items')}', hive_partitioning=true)"
    assert con.execute(f"""select count(*) from {items} i left join {orders} o on i.order_id = o.order_id
                       and i.ingest_dt = o.ingest_dt where o.order_id is null""").fetchone()[0] == 0, \
        "every line (copies' too) sits with its order"

    counted = {"late": 0, "redelivered": 0}
    for table in ("orders", "order_items", "customer_changes"):
        for path in root.glob(f"{table}/ingest_dt=*/_MANIFEST.json"):
            doc = json.loads(path.read_text())
            event = "valid_from" if table == "customer_changes" else "order_date"
            if table == "order_items":
                continue
            found = con.execute(f"""select count(*) from read_parquet('{path.parent}/part-*.parquet')
                                where cast({event} as date) <> ingest_dt""").fetchone()[0] if doc["files"] else 0
            assert found == sum(doc["delivery"].values()), path
            if table == "orders":
                counted = {k: counted[k] + doc["delivery"][k] for k in counted}
    assert counted == {"late": late, "redelivered": copies}
    plan = json.loads((root / "_bear" / "plan.json").read_text())
    report = verify_lake(open_sink(compose_cfg(*FEED[1:], f"sink.root={root}", "run.chunk_days=7").sink),
                         compose_cfg(*FEED[1:], f"sink.root={root}", "run.chunk_days=7"))
    assert report.ok, report.found.failures
    assert report.found.checked["feed.delivery"] > 0
    assert lake_files(lakes["daily"]) == lake_files(root), "chunking changed the feed"
    report = json.loads((root / "_bear" / "report.json").read_text())["mess_counts"]["orders"]["(rows)"]
    assert report == counted and "orders.(rows) redelivered" in (root / "_bear" / "report.html").read_text()
    assert any(c["in_flight"]["orders"] for c in plan["feed"].values()), "no order on its way at the run's end"


def test_the_consumers_dedup_rule_recovers_the_lake_without_redeliveries(lakes):
    """Item 4: latest ingestion_ts then highest event_id per business key gives exactly the lake that was
    delivered once (same config, no re-delivery): same rows, same values."""
    con = duckdb.connect()
    for table, key in (("orders", "order_id"), ("order_items", "order_id, product_id")):
        dedup = DEDUP.format(cols=DATA_COLUMNS[table], glob="{glob}", key=key)
        got = _sql(con, table, lakes["weekly"], dedup + f" order by {key}")
        want = _sql(con, table, lakes["once"], f"select {DATA_COLUMNS[table]} from read_parquet('{{glob}}', "
                    f"hive_partitioning=true) order by {key}")
        assert got == want, table
        raw = _sql(con, table, lakes["weekly"], "select count(*) from read_parquet('{glob}')")[0][0]
        assert raw > len(got), f"{table}: the heavy feed re-delivered nothing"


def test_verify_catches_what_the_manifests_do_not_document(lakes, tmp_path):
    """A manifest that hides one of its partition's late rows, and a copy that differs from its first delivery,
    each fail feed.delivery."""
    import shutil

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    lake = tmp_path / "lake"
    shutil.copytree(lakes["weekly"], lake)
    cfg = compose_cfg(*FEED[1:], f"sink.root={lake}", "run.chunk_days=7")
    docs = sorted(lake.glob("orders/ingest_dt=*/_MANIFEST.json"))
    late_doc = next(p for p in docs if json.loads(p.read_text())["delivery"]["late"])
    kept = late_doc.read_text()
    doc = json.loads(kept)
    doc["delivery"]["late"] -= 1
    late_doc.write_text(json.dumps(doc))
    assert "feed.delivery" in {f.check for f in verify_lake(open_sink(cfg.sink), cfg).found.failures}
    late_doc.write_text(kept)

    copy_doc = next(p for p in docs if json.loads(p.read_text())["delivery"]["redelivered"])
    path = copy_doc.parent / "part-00000.parquet"
    schema = pq.read_schema(path)
    t = pq.read_table(path)
    moved = pc.not_equal(pc.cast(t["order_date"], "date32"), t["ingest_dt"])  # late rows and copies
    t = t.set_column(t.schema.get_field_index("payment_method"), "payment_method",  # not a column verify keeps
                     pc.if_else(moved, "Barter", t["payment_method"]))
    pq.write_table(t.cast(schema), path, compression="zstd")
    failures = [f for f in verify_lake(open_sink(cfg.sink), cfg).found.failures if f.check == "feed.delivery"]
    assert any("differ from their first delivery in payment_method" in f.detail for f in failures), failures


def test_an_extension_lands_the_orders_in_flight_at_the_old_end(lakes, tmp_path):
    """Item 7: orders still on their way at the lake's end land in the extension's first days, as in a fresh
    run, and nothing written before changes."""
    lake = tmp_path / "lake"
    _lake(lake, "run.end=2020-02-07", "run.chunk_days=7")
    assert json.loads((lake / "_bear" / "plan.json").read_text())["feed"]
    before = {k: v for k, v in lake_files(lake).items()}
    _lake(lake, "run.chunk_days=7")
    after = lake_files(lake)
    assert {k: after[k] for k in before} == before
    assert_same_local_lake(lake, lakes["weekly"])
