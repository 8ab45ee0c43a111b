"""`bear verify` (issue 5): a clean lake passes; each seeded corruption fails the check that names it."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import BEAR, compose_cfg

from bear.core.schemas import TABLE_CODE
from bear.lake.parquet import encode
from bear.lake.sink import open_sink
from bear.run.backfill import backfill
from bear.verify.audit import verify_lake
from bear.verify.findings import CHECKS, Report

pytestmark = pytest.mark.slow  # real Ray runs or the GCS emulator: the full lane



@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One small lake (the smoke preset, written in-process: the same bytes) and its config; tests corrupt copies."""
    root = tmp_path_factory.mktemp("verify") / "lake"
    cfg = compose_cfg(f"sink.root={root}", "ray=inprocess")
    backfill(cfg)
    return root, cfg


@pytest.fixture
def lake(built, tmp_path):
    """A private copy of the lake and a verify function for it."""
    root, cfg = built
    mine = tmp_path / "lake"
    shutil.copytree(root, mine)
    cfg = copy.deepcopy(cfg)
    cfg.sink.root = str(mine)

    def verify() -> Report:
        return verify_lake(open_sink(cfg.sink), cfg)

    return mine, cfg, verify


def failed(report: Report) -> set[str]:
    return {c.name for c in report.checks.values() if c.failures}


def first_file(root: Path, table: str, partition: str | None = None) -> Path:
    """The first data file of `table` (in `partition` if given) that holds rows."""
    parts = [root / table / partition] if partition else sorted((root / table).iterdir())
    for part in parts:
        for f in sorted(part.glob("*.parquet")):
            if pq.ParquetFile(f).metadata.num_rows > 1:
                return f
    raise AssertionError(f"no data file with rows in {table}")


def rewrite(path: Path, cfg, change: Callable[[pa.Table], pa.Table]) -> None:
    """Replace a data file's rows and keep its manifest consistent (rows, bytes, md5), like a writer would."""
    table = path.parent.parent.name
    data = encode(change(pq.read_table(path)), cfg.output, table)
    path.write_bytes(data)
    manifest_path = path.parent / "_MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    entry = next(f for f in manifest["files"] if f["path"] == path.name)
    entry.update(rows=pq.ParquetFile(path).metadata.num_rows, bytes=len(data), md5=hashlib.md5(data).hexdigest())
    manifest["total_rows"] = sum(f["rows"] for f in manifest["files"])
    manifest["total_bytes"] = sum(f["bytes"] for f in manifest["files"])
    manifest_path.write_text(json.dumps(manifest))


def set_value(table: pa.Table, column: str, row: int, value) -> pa.Table:
    values = table[column].to_pylist()
    values[row] = value
    i = table.schema.get_field_index(column)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


def drop_row(table: pa.Table, row: int) -> pa.Table:
    return pa.concat_tables([table.slice(0, row), table.slice(row + 1)])


def read_all(root: Path, table: str) -> pa.Table:
    """Every row of `table` in the lake."""
    return pa.concat_tables([pq.read_table(p) for p in sorted((root / table).glob("*/*.parquet"))])


def first_with_order(path: Path) -> int:
    """The first row of a customer_changes file that an order caused."""
    return pc.index(pc.is_valid(pq.read_table(path)["order_id"]), True).as_py()


def test_clean_lake_passes_every_check(lake):
    _, _, verify = lake
    report = verify()
    assert report.ok, report.render()
    doc = report.to_json()
    by_name = {c["check"]: c for c in doc["checks"]}
    assert set(by_name) == set(CHECKS)
    assert all(c["status"] == "ok" for c in doc["checks"])
    # every check really looked at something, so "ok" is not vacuous
    assert all(c["checked"] > 0 for c in doc["checks"]), doc["checks"]
    assert doc["rows"]["cart_items"] > 10_000 and doc["rows"]["returns"] > 0 and doc["rows"]["customer_changes"] > 0
    assert {m["kind"] for m in doc["mess"]} == {"null", "whitespace", "casing", "format", "redrawn"}
    assert all(m["ok"] for m in doc["mess"])


def test_deleted_data_file(lake):
    root, _, verify = lake
    first_file(root, "cart_items").unlink()
    report = verify()
    assert {"manifest.files", "coverage.rows", "keys.gap_free"} <= failed(report)
    assert "manifest.checksum" not in failed(report)


def test_row_duplicated_inside_a_file(lake):
    root, cfg, verify = lake
    f = first_file(root, "shopping_carts")
    rewrite(f, cfg, lambda t: pa.concat_tables([t, t.slice(0, 1)]))
    report = verify()
    assert "keys.unique" in failed(report)
    dup = report.checks["keys.unique"].failures[0]
    assert dup.table == "shopping_carts" and dup.partition == f.parent.name
    assert dup.examples == [pq.read_table(f)["cart_id"][0].as_py()]
    assert not {"manifest.rows", "manifest.checksum", "files.schema"} & failed(report)


def test_parent_row_removed(lake):
    root, cfg, verify = lake
    f = first_file(root, "shopping_carts")
    items = pq.read_table(first_file(root, "cart_items", f.parent.name))
    carts = pq.read_table(f)
    row = carts["cart_id"].to_pylist().index(items["cart_id"][0].as_py())
    rewrite(f, cfg, lambda t: drop_row(t, row))
    report = verify()
    assert {"integrity.foreign_key", "keys.gap_free"} <= failed(report)
    fk = report.checks["integrity.foreign_key"].failures[0]
    assert fk.table == "cart_items" and fk.examples == [items["cart_id"][0].as_py()]


def test_row_moved_to_another_date_partition(lake):
    root, cfg, verify = lake
    src = first_file(root, "orders", "ingest_dt=2020-01-10")
    dst = first_file(root, "orders", "ingest_dt=2020-01-20")  # farther than the feed delivers late (3 days)
    moved = pq.read_table(src).slice(0, 1)
    rewrite(src, cfg, lambda t: t.slice(1))
    rewrite(dst, cfg, lambda t: pa.concat_tables([t, moved]))
    report = verify()
    assert {"integrity.event_partition", "integrity.child_partition"} <= failed(report)
    wrong = report.checks["integrity.event_partition"].failures[0]
    assert (wrong.table, wrong.partition, wrong.examples) == ("orders", dst.parent.name, [moved["order_id"][0].as_py()])


def test_price_changed_so_totals_do_not_add_up(lake):
    root, cfg, verify = lake
    f = first_file(root, "order_items")
    rewrite(f, cfg, lambda t: set_value(t, "unit_price", 0, t["unit_price"][0].as_py() + 1))
    report = verify()
    assert failed(report) == {"money.gross_total"}
    bad = report.checks["money.gross_total"].failures[0]
    assert bad.examples == [pq.read_table(f)["order_id"][0].as_py()] and bad.partition == f.parent.name


def test_success_marker_removed(lake):
    root, _, verify = lake
    (root / "returns" / "ingest_dt=2020-02-03" / "_SUCCESS").unlink()
    report = verify()
    assert failed(report) == {"coverage.markers"}
    assert report.checks["coverage.markers"].failures[0].partition == "ingest_dt=2020-02-03"


def test_byte_of_a_file_altered(lake):
    root, _, verify = lake
    f = first_file(root, "order_items")
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    report = verify()
    assert "manifest.checksum" in failed(report)
    bad = report.checks["manifest.checksum"].failures[0]
    assert (bad.table, bad.partition, bad.examples) == ("order_items", f.parent.name, [f.name])


def test_id_gap(lake):
    root, cfg, verify = lake
    f = first_file(root, "cart_items", "ingest_dt=2020-02-29")
    last = pc.max(pq.read_table(f)["cart_item_id"]).as_py()
    rewrite(f, cfg, lambda t: set_value(t, "cart_item_id", t.num_rows - 1, last + 1))
    report = verify()
    assert {"keys.gap_free", "keys.plan_blocks"} <= failed(report)
    gap = report.checks["keys.gap_free"].failures[0]
    assert gap.table == "cart_items" and gap.examples == [last]


def test_lineage_that_does_not_match_the_file_or_its_manifest(lake):
    root, cfg, verify = lake
    carts = first_file(root, "shopping_carts", "ingest_dt=2020-01-15")
    rewrite(carts, cfg, lambda t: set_value(t, "source_file", 0, "shopping_carts/elsewhere.parquet"))
    orders = first_file(root, "orders", "ingest_dt=2020-01-16")
    rewrite(orders, cfg, lambda t: set_value(t, "ingestion_ts", 0, dt.datetime(2020, 1, 20, 2)))
    items = first_file(root, "order_items", "ingest_dt=2020-01-17")
    i = pq.read_schema(items).get_field_index("batch_id")
    rewrite(items, cfg, lambda t: t.set_column(i, t.schema.field(i), pa.array(["another-batch"] * t.num_rows)))
    lines = first_file(root, "cart_items", "ingest_dt=2020-01-18")
    rewrite(lines, cfg, lambda t: set_value(t, "event_id", 1, t["event_id"][0].as_py()))
    batch = json.loads((items.parent / "_MANIFEST.json").read_text())["batch_id"]
    report = verify()
    assert failed(report) == {"files.lineage"}
    got = {(f.table, f.partition): f.detail for f in report.checks["files.lineage"].failures}
    assert got == {
        ("shopping_carts", "ingest_dt=2020-01-15"): f"source_file is not shopping_carts/ingest_dt=2020-01-15/"
                                                   f"{carts.name}",
        ("orders", "ingest_dt=2020-01-16"): "2 different ingestion_ts values",
        ("order_items", "ingest_dt=2020-01-17"): f"batch_id ['another-batch'] is not the manifest's {batch!r}",
        ("cart_items", "ingest_dt=2020-01-18"): f"event_id values are not unique with table code "
                                               f"{TABLE_CODE['cart_items']}",
    }


def test_partition_column_that_disagrees_with_the_path_or_a_malformed_event_id(lake):
    root, cfg, verify = lake
    orders = first_file(root, "orders", "ingest_dt=2020-01-16")
    rewrite(orders, cfg, lambda t: set_value(t, "ingest_dt", 0, dt.date(2020, 1, 17)))
    customers = first_file(root, "customers")
    rewrite(customers, cfg, lambda t: set_value(t, "signup_date", 1, dt.date(2019, 6, 1)))
    report = verify()
    assert failed(report) == {"files.partition_column"}
    got = {(f.table, f.partition) for f in report.checks["files.partition_column"].failures}
    assert got == {("orders", "ingest_dt=2020-01-16"), ("customers", customers.parent.name)}
    carts = first_file(root, "shopping_carts", "ingest_dt=2020-01-15")
    rewrite(carts, cfg, lambda t: set_value(t, "event_id", 0, "evt_00000000000000zz"))
    assert {f.detail for f in verify().checks["files.lineage"].failures} == {
        "event_id values are not all evt_ + 16 hex digits"}


def test_data_file_outside_any_manifest(lake):
    root, _, verify = lake
    f = first_file(root, "orders")
    shutil.copy(f, f.with_name("part-00001.parquet"))
    report = verify()
    assert failed(report) == {"manifest.orphans"}
    assert report.checks["manifest.orphans"].failures[0].examples == ["part-00001.parquet"]


def test_whole_partition_missing(lake):
    root, _, verify = lake
    shutil.rmtree(root / "shopping_carts" / "ingest_dt=2020-01-15")
    report = verify()
    assert "coverage.partitions" in failed(report)
    missing = report.checks["coverage.partitions"].failures[0]
    assert missing.table == "shopping_carts" and missing.examples == ["ingest_dt=2020-01-15"]


def test_return_dated_before_its_order(lake):
    root, cfg, verify = lake
    f = first_file(root, "returns")
    ret = pq.read_table(f).slice(0, 1).to_pylist()[0]
    orders = read_all(root, "orders")
    order_date = orders.filter(pc.equal(orders["order_id"], ret["order_id"]))["order_date"][0].as_py()
    rewrite(f, cfg, lambda t: set_value(t, "return_date", 0, order_date - dt.timedelta(hours=1)))
    report = verify()
    assert "time.return_window" in failed(report)
    assert report.checks["time.return_window"].failures[0].examples == [ret["return_id"]]


def test_return_ids_from_the_block_of_another_window(lake):
    """Two returns dated in different chunk windows swap IDs (with their lines, so every link holds): each ID is
    then outside the block of the window its return is dated in, which is where return IDs come from."""
    root, cfg, verify = lake
    files = sorted(p for p in (root / "returns").glob("*/*.parquet") if pq.ParquetFile(p).metadata.num_rows)
    early, late = files[0], files[-1]
    a, b = pq.read_table(early)["return_id"][0].as_py(), pq.read_table(late)["return_id"][0].as_py()
    swap = {a: b, b: a}

    def swapped(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("return_id")
        return t.set_column(i, t.schema.field(i), pa.array([swap.get(v, v) for v in t["return_id"].to_pylist()]))

    for f in (early, late, *(root / "return_items" / p.parent.name / p.name for p in (early, late))):
        rewrite(f, cfg, swapped)
    report = verify()
    assert failed(report) == {"keys.plan_blocks"}
    stray = report.checks["keys.plan_blocks"].failures[0]
    assert stray.table == "returns" and stray.count == 2 and set(stray.examples) == {a, b}


def test_change_whose_order_does_not_exist(lake):
    root, cfg, verify = lake
    f = first_file(root, "customer_changes", "ingest_dt=2020-01-10")
    rewrite(f, cfg, lambda t: set_value(t, "order_id", first_with_order(f), "ORD-99999999"))
    report = verify()
    assert failed(report) == {"integrity.foreign_key"}
    fk = report.checks["integrity.foreign_key"].failures[0]
    assert (fk.table, fk.partition, fk.examples) == ("customer_changes", f.parent.name, ["ORD-99999999"])


def test_change_of_another_customer_or_at_another_time(lake):
    """A change names its order: the order's customer at the order's time, nothing else."""
    root, cfg, verify = lake
    moved = first_file(root, "customer_changes", "ingest_dt=2020-01-10")
    row = first_with_order(moved)
    other = pq.read_table(first_file(root, "customer_changes", "ingest_dt=2020-01-01"))["customer_id"][0].as_py()
    rewrite(moved, cfg, lambda t: set_value(t, "customer_id", row, other))
    late = first_file(root, "customer_changes", "ingest_dt=2020-01-12")
    shifted = first_with_order(late)
    rewrite(late, cfg, lambda t: set_value(t, "valid_from", shifted,
                                           t["valid_from"][shifted].as_py() + dt.timedelta(seconds=1)))
    report = verify()
    assert "integrity.change_order" in failed(report) and "integrity.foreign_key" not in failed(report)
    bad = report.checks["integrity.change_order"].failures[0]
    assert bad.table == "customer_changes" and bad.count == 2
    assert set(bad.examples) == {pq.read_table(moved)["order_id"][row].as_py(),
                                 pq.read_table(late)["order_id"][shifted].as_py()}


def test_change_duplicated_or_opening_after_the_start(lake):
    root, cfg, verify = lake
    f = first_file(root, "customer_changes", "ingest_dt=2020-01-10")
    rewrite(f, cfg, lambda t: pa.concat_tables([t, t.slice(0, 1)]))
    opening = first_file(root, "customer_changes", "ingest_dt=2020-01-01")
    late = pq.read_table(opening)["valid_from"][0].as_py() + dt.timedelta(hours=5)
    rewrite(opening, cfg, lambda t: set_value(t, "valid_from", 0, late))
    report = verify()
    assert {"keys.unique", "time.opening_at_start"} <= failed(report)
    dup = report.checks["keys.unique"].failures[0]
    first = pq.read_table(f).slice(0, 1).to_pylist()[0]
    assert (dup.table, dup.partition) == ("customer_changes", f.parent.name)
    assert dup.examples == [{"customer_id": first["customer_id"], "valid_from": str(first["valid_from"])}]
    start = report.checks["time.opening_at_start"].failures[0]
    assert start.examples == [{"customer_id": pq.read_table(opening)["customer_id"][0].as_py(),
                               "valid_from": str(late)}]


def test_history_that_goes_down_or_customers_not_as_at_signup(lake):
    root, cfg, verify = lake
    customers = read_all(root, "customers")
    initial = dict(zip(customers["customer_id"].to_pylist(), customers["initial_loyalty_tier"].to_pylist(),
                       strict=True))
    f = first_file(root, "customer_changes", "ingest_dt=2020-01-01")
    who = pq.read_table(f)["customer_id"].to_pylist()
    row = next(i for i, c in enumerate(who) if initial[c] in ("Gold", "Platinum"))
    rewrite(f, cfg, lambda t: set_value(t, "loyalty_tier", row, "Bronze"))  # below the tier it signed up with
    customers = first_file(root, "customers")
    tiers = pq.read_table(customers)["loyalty_tier"].to_pylist()
    upgraded = next(i for i, tier in enumerate(tiers) if tier not in (None, "Platinum"))
    rewrite(customers, cfg, lambda t: set_value(t, "loyalty_tier", upgraded, "Platinum"))
    report = verify()
    assert {"history.never_down", "history.customers_at_signup"} <= failed(report)
    down = report.checks["history.never_down"].failures[0]
    assert down.examples[0]["customer_id"] == pq.read_table(f)["customer_id"][row].as_py()
    assert report.checks["history.customers_at_signup"].failures[0].examples == [
        pq.read_table(customers)["customer_id"][upgraded].as_py()]


def test_mess_counts_that_the_data_contradicts(lake):
    root, _, verify = lake
    for manifest_path in (root / "shopping_carts").glob("*/_MANIFEST.json"):
        manifest = json.loads(manifest_path.read_text())
        manifest["mess_counts"]["status"] = {"whitespace": 0, "casing": 0}
        manifest_path.write_text(json.dumps(manifest))
    report = verify()
    assert failed(report) == {"mess.counts", "mess.rates"}
    rates = {(f.table, f.detail.split(" rate ")[0]) for f in report.checks["mess.rates"].failures}
    assert rates == {("shopping_carts", "status whitespace"), ("shopping_carts", "status casing")}


def test_format_mess_rate_far_from_the_level(lake):
    root, _, verify = lake
    report = verify()
    rates = {(r["table"], r["column"]): r for r in report.mess if r["kind"] == "format"}
    assert set(rates) == {("customers", "email"), ("customers", "phone_number"), ("orders", "email"),
                          ("returns", "email")}
    assert all(r["ok"] and r["expected"] == 0.03 and r["count"] > 0 for r in rates.values())  # smoke: medium
    for manifest_path in (root / "customers").glob("*/_MANIFEST.json"):
        manifest = json.loads(manifest_path.read_text())
        manifest["mess_counts"]["phone_number"]["format"] = manifest["total_rows"]  # every phone a variant
        manifest_path.write_text(json.dumps(manifest))
    report = verify()
    assert failed(report) == {"mess.rates"}
    assert [f.detail.split(" rate ")[0] for f in report.checks["mess.rates"].failures] == ["phone_number format"]


def test_return_line_away_from_its_return_and_a_malformed_manifest(lake):
    root, cfg, verify = lake
    src = first_file(root, "return_items")
    moved = pq.read_table(src).slice(0, 1)
    days = sorted(p.parent.name for p in (root / "return_items").glob("*/*.parquet"))
    dst = first_file(root, "return_items", next(d for d in days if d != src.parent.name))
    rewrite(src, cfg, lambda t: t.slice(1))
    rewrite(dst, cfg, lambda t: pa.concat_tables([t, moved]))
    (root / "orders" / "ingest_dt=2020-02-10" / "_MANIFEST.json").write_text('{"files": "not a list"}')
    report = verify()
    assert {"integrity.child_partition", "manifest.valid"} <= failed(report)
    line = report.checks["integrity.child_partition"].failures[0]
    assert (line.table, line.examples, line.partition) == (
        "return_items", [moved["return_item_id"][0].as_py()], dst.parent.name)
    assert report.checks["manifest.valid"].failures[0].partition == "ingest_dt=2020-02-10"


def test_another_config_or_no_lake_fails_run_state(lake, tmp_path):
    _, cfg, _ = lake
    other = copy.deepcopy(cfg)
    other.run.seed += 1
    report = verify_lake(open_sink(other.sink), other)
    assert "run.state" in failed(report) and not report.ok
    other.sink.root = str(tmp_path / "nothing")
    report = verify_lake(open_sink(other.sink), other)
    assert failed(report) == {"run.state"} and not report.ok
    assert report.to_json()["checks"][1]["status"] == "skipped"


def test_extended_lake_passes_and_is_held_to_its_end(tmp_path):
    """A lake extended to a later run.end is one lake through the new end; verify holds it to the plan's end."""
    root = tmp_path / "lake"
    backfill(compose_cfg(f"sink.root={root}", "ray=inprocess", "run.end=2020-02-07"))
    cfg = compose_cfg(f"sink.root={root}", "ray=inprocess", "run.end=2020-02-29")
    backfill(cfg)
    report = verify_lake(open_sink(cfg.sink), cfg)
    assert report.ok, report.render()
    assert report.to_json()["rows"]["customer_changes"] > 0
    cfg.run.end = "2020-02-07"
    report = verify_lake(open_sink(cfg.sink), cfg)
    assert failed(report) == {"run.state"}
    assert "through 2020-02-29" in report.checks["run.state"].failures[0].detail


def test_each_partition_is_held_to_the_table_schema_of_its_day(tmp_path):
    """Issue 18, item 5: verify accepts orders files without the added columns before their since day and requires
    them from it on; the manifest's table_schema must be the version the config gives the day."""
    root = tmp_path / "lake"
    cfg = compose_cfg(f"sink.root={root}", "ray=inprocess", "run.end=2020-01-12",
                      "generator.schema_changes=[{table: orders, columns: [utm_source, referral_code], "
                      "since: '2020-01-06'}]")
    backfill(cfg)
    report = verify_lake(open_sink(cfg.sink), cfg)
    assert report.ok, report.render()
    early, late = first_file(root, "orders", "ingest_dt=2020-01-03"), first_file(root, "orders", "ingest_dt=2020-01-09")
    rewrite(early, cfg, lambda t: t.append_column("utm_source", pa.array(["google"] * t.num_rows)))
    rewrite(late, cfg, lambda t: t.drop_columns(["referral_code"]))
    manifest = root / "orders" / "ingest_dt=2020-01-10" / "_MANIFEST.json"
    doc = json.loads(manifest.read_text())
    doc["table_schema"] = {"version": 1, "columns_added": []}
    manifest.write_text(json.dumps(doc))
    report = verify_lake(open_sink(cfg.sink), cfg)
    assert {"files.schema", "manifest.valid"} <= failed(report), report.render()  # and the rows it could not read
    schema = {f.partition: f.detail for f in report.checks["files.schema"].failures}
    assert schema == {"ingest_dt=2020-01-03": "schema differs from orders's version 1 (unexpected utm_source)",
                      "ingest_dt=2020-01-09": "schema differs from orders's version 2 (missing referral_code)"}
    (bad,) = report.checks["manifest.valid"].failures
    assert bad.partition == "ingest_dt=2020-01-10" and "table_schema" in bad.detail


def test_cli_exit_codes_text_and_json(built, tmp_path):
    root, _ = built
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    ok = subprocess.run([BEAR, "verify", "+preset=smoke", f"sink.root={root}"], capture_output=True, text=True,
                        env=env, cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "OK: all" in ok.stdout and "manifest.checksum" in ok.stdout
    broken = tmp_path / "lake"
    shutil.copytree(root, broken)
    (broken / "orders" / "ingest_dt=2020-01-20" / "_SUCCESS").unlink()
    bad = subprocess.run([BEAR, "verify", "--json", "+preset=smoke", f"sink.root={broken}"], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 1, bad.stderr
    doc = json.loads(bad.stdout)
    assert doc["ok"] is False and doc["lake"] == str(broken)
    markers = next(c for c in doc["checks"] if c["check"] == "coverage.markers")
    assert markers["status"] == "fail" and markers["failed"] == 1
    assert markers["failures"] == [{"table": "orders", "partition": "ingest_dt=2020-01-20",
                                    "detail": "missing _SUCCESS", "count": 1, "examples": []}]
    assert {c["status"] for c in doc["checks"] if c["check"] != "coverage.markers"} == {"ok"}
