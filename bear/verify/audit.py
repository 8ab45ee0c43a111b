"""`bear verify`: an independent audit of a finished lake, read back from its sink.

Nothing is taken from the run's memory. The plan (`_bear/plan.json`) and the config say what
must exist; the listing, the manifests and the Parquet files say what does. Every check of
DESIGN §6 that lives inside one day's partitions (carts with their items, orders with their
lines, all dated that day) runs in a task per day on a thread pool, which reads each file once
(md5 of its bytes, then only the columns the checks need); Parquet decoding and Arrow kernels
release the GIL, so the tasks use every core. The driver walks the plan's chunk windows in
order, one window ahead, and keeps the lake-wide state compact: the ID numbers of one window
(blocks and gaps), the partition day of every cart and order by ID number (for lines that are
not with their parent), customer and product keys, the lake's returns (a few per cent of its
rows) and just the orders and order lines those returns refer to.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bear import text
from bear.checks import (
    DAY_US,
    ID_COLUMNS,
    RETURN_RULES,
    SALES_RULES,
    Failure,
    gap_free,
    id_numbers,
    index_of,
    line_checks,
    link_checks,
    return_rules,
    sales_rules,
    sum_by,
    ts_micros,
    unique_keys,
)
from bear.config import CATEGORIES, BearConfig
from bear.lookups import build_customers
from bear.mess import CASINGS
from bear.model import Model, day_number, day_to_date
from bear.plan import ID_FAMILIES
from bear.schemas import (
    DIMENSIONS,
    EVENT_COLUMN,
    NULL_COLUMNS,
    PARTITION_KEY,
    PRIMARY_KEY,
    STYLE_COLUMNS,
    TABLES,
    TRANSACTIONS,
)
from bear.sink import Sink, open_sink
from bear.state import CHECKPOINT, PLAN, STATE_DIR, content_config, fingerprint, read_json
from bear.verify_read import DAY, MARKERS, PartRead, concat, empty_table, read_partition
from bear.verify_report import Findings, Report
from bear.writer import day_partition

SALES = ("shopping_carts", "cart_items", "orders", "order_items")
RETURNS = ("returns", "return_items")
FAMILY = {"shopping_carts": "carts", "cart_items": "cart_items", "orders": "orders", "order_items": "order_items",
          "returns": "returns", "return_items": "return_items"}
ID_PREFIX = {"shopping_carts": "CART-", "orders": "ORD-", "returns": "RTN-"}  # DESIGN §2 ID format, for examples
# Links among the sales tables: resolved inside the day, else set aside and resolved lake-wide at the end.
DAY_LINKS = (("cart_items", "cart_id", "shopping_carts"), ("orders", "cart_id", "shopping_carts"),
             ("order_items", "order_id", "orders"))
LINES = ("cart_items", "order_items", "return_items")  # tables whose rows sit in their parent's partition


@dataclass
class Window:
    """A plan chunk: its days, ID blocks and planned rows."""

    start: int
    end: int
    first_ids: dict[str, int]
    ids: dict[str, int]
    rows: dict[str, int]

    @property
    def name(self) -> str:
        return f"ingest_dt={day_to_date(self.start)}..{day_to_date(self.end)}"

    def days(self) -> range:
        return range(self.start, self.end + 1)


@dataclass
class DayResult:
    """What a day task found and hands to the driver."""

    day: int
    found: Findings
    tables: dict[str, pa.Table] = field(default_factory=dict)  # returns days: the day's returns, for the end
    ids: dict[str, np.ndarray] = field(default_factory=dict)  # ID numbers per table
    away: list[tuple[str, str, str, pa.Table]] = field(default_factory=list)  # rows whose parent is not here
    returned: list[pa.Table] = field(default_factory=list)  # the day's orders and lines that returns refer to


def check_partition(pr: PartRead, fp: str, level: str, found: Findings) -> None:
    """Markers, manifest, files (existence, rows, md5, schema), strays and the manifest's mess counts."""
    t, p = pr.table, pr.partition
    found.partitions += 1
    found.count("coverage.markers", 1)
    absent = [m for m in MARKERS if m not in pr.names]
    if absent:
        found.fail("coverage.markers", t, f"missing {' and '.join(absent)}", partition=p)
    m = pr.manifest
    if m is not None or pr.manifest_error:
        found.count("manifest.valid", 1)
    if pr.manifest_error:
        found.fail("manifest.valid", t, pr.manifest_error, partition=p)
    listed = {}
    if m is not None:
        listed = {f["path"]: f for f in m["files"]}
        problems = [k for k, ok in (
            ("table", m.get("table") == t), ("partition", m.get("partition") == p),
            ("config_fingerprint", m.get("config_fingerprint") == fp),
            ("total_rows", m.get("total_rows") == sum(f["rows"] for f in m["files"])),
            ("mess_level", m.get("mess_level") == level),
        ) if not ok]
        if problems:
            found.fail("manifest.valid", t, f"manifest disagrees on {', '.join(problems)}", problems, partition=p)
    for f in pr.files:
        found.count("manifest.files", 1)
        if not f.present:
            found.fail("manifest.files", t, "listed file missing", [f.name], partition=p)
            continue
        found.files += 1
        found.bytes += f.size
        for check in ("manifest.rows", "manifest.checksum", "files.schema", "files.lineage", "files.partition_column"):
            found.count(check, 1)
        entry = listed.get(f.name)
        if entry is not None and entry.get("md5") != f.md5:
            found.fail("manifest.checksum", t, "md5 of the file differs from the manifest", [f.name], partition=p)
        if f.error:
            found.fail("files.schema", t, f.error, [f.name], partition=p)
        elif entry is not None and entry.get("rows") != f.rows:
            found.fail("manifest.rows", t, f"file has {f.rows} rows, manifest says {entry.get('rows')}", [f.name],
                       partition=p)
        if f.lineage:
            found.fail("files.lineage", t, "; ".join(f.lineage), [f.name], partition=p)
        elif m is not None and f.data is not None and f.batch_ids not in ([], [m.get("batch_id")]):
            found.fail("files.lineage", t, f"batch_id {f.batch_ids} is not the manifest's {m.get('batch_id')!r}",
                       [f.name], partition=p)
        if f.partition_value:
            found.fail("files.partition_column", t, f.partition_value, [f.name], partition=p)
        if f.data is not None:
            found.rows[t] += f.data.num_rows
    strays = sorted(n for n in pr.names if n not in MARKERS and (m is None or n not in listed))
    found.count("manifest.orphans", len(pr.names - set(MARKERS)))
    if strays:
        found.fail("manifest.orphans", t, f"{len(strays)} files not in any manifest", strays, len(strays), p)
    if m is not None:
        partition_mess(pr, found)


def partition_mess(pr: PartRead, found: Findings) -> None:
    """Tally the manifest's mess counts for the rates; compare them with the data where the data can tell."""
    t, m = pr.table, pr.manifest
    counts = {(col, kind): n for col, kinds in m.get("mess_counts", {}).items() for kind, n in kinds.items()}
    found.mess_rows[t] += m["total_rows"]
    for (col, kind), n in counts.items():
        found.mess_counts[(t, col, kind)] += n
    spiked = counts.get(("total_items", "spike"), 0)
    if spiked:
        found.spike_days[pr.partition.split("=", 1)[1][:7]] += 1
        if spiked != m["total_rows"]:
            found.fail("mess.counts", t, f"spike hit {spiked} of the day's {m['total_rows']} orders",
                       partition=pr.partition)
    if not pr.readable:
        return
    measured: Counter = sum((f.mess for f in pr.files), Counter())
    for (col, kind), n in measured.items():
        if kind == "casing_capacity":
            found.capacity[(t, col)] += n
    found.count("mess.counts", 1)
    visible = sorted({k for k in (*measured, *counts) if k[1] in ("null", "whitespace")})
    wrong = [f"{col}.{kind}: manifest {counts.get((col, kind), 0)}, data {measured[(col, kind)]}"
             for col, kind in visible if counts.get((col, kind), 0) != measured[(col, kind)]]
    if wrong:
        found.fail("mess.counts", t, "mess counts differ from the data", wrong, len(wrong), pr.partition)


def _values(col: pa.ChunkedArray | pa.Array, mask: np.ndarray, k: int = 10) -> list:
    """The first `k` distinct values of `col` where `mask` holds (failure examples)."""
    return pc.unique(col.filter(pa.array(mask))).slice(0, k).to_pylist()


def _id_text(table: str, nums: np.ndarray) -> list:
    """ID numbers as the lake writes them (CART-00000042), for examples."""
    nums = np.asarray(nums[:10], dtype=np.int64)
    if table in ID_PREFIX and nums.size and nums.min() >= 0:
        return text.padded(ID_PREFIX[table], nums).to_pylist()
    return nums.tolist()


def _partitions(days: np.ndarray, k: int = 3) -> str:
    return ",".join(f"ingest_dt={day_partition(int(d))}" for d in np.unique(days)[:k])


def _rows_mentioning(table: str, t: pa.Table, values: list) -> np.ndarray | None:
    """Rows of `t` whose primary key (else another *_id column) holds one of `values`, to place a failure."""
    if not values or t.num_rows == 0:
        return None
    for name in dict.fromkeys([PRIMARY_KEY[table][0], *(c for c in t.column_names if c.endswith("_id"))]):
        try:
            mask = pc.is_in(t[name], value_set=pa.array(values, t[name].type)).to_numpy(zero_copy_only=False)
        except (pa.ArrowException, TypeError, ValueError):
            continue
        if mask.any():
            return mask
    return None


def _place(f: Failure, tables: dict[str, pa.Table], default: str) -> Failure:
    """Name the partitions of a lake-wide failure's example rows when they can be found, else `default`."""
    t = tables.get(f.table)
    values = [next(iter(e.values())) if isinstance(e, dict) else e for e in f.examples]
    mask = _rows_mentioning(f.table, t, values) if t is not None and DAY in t.column_names else None
    f.partition = f.partition or (_partitions(t[DAY].to_numpy(zero_copy_only=False)[mask]) if mask is not None
                                  else default)
    return f


class Audit:
    """One pass over a lake; `run()` returns the report."""

    def __init__(self, sink: Sink, cfg: BearConfig):
        self.sink = sink
        self.cfg = cfg
        self.fp = fingerprint(content_config(cfg))
        self.found = Findings()
        self.skipped = False
        workers = 16 if not sink.is_local else max(3, (os.cpu_count() or 2) + 1)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
        self.listing: dict[tuple[str, str], frozenset[str]] = {}
        self.customers = empty_table("customers").select(["customer_id", "signup_date"])
        self.customer_row = np.full(1, -1, dtype=np.int64)  # customers row by ID number
        self.products = empty_table("product_catalog")
        self.returns: dict[str, list[pa.Table]] = {name: [] for name in RETURNS}
        self.returned = np.zeros(1, dtype=bool)  # by order ID number: do the lake's returns refer to it
        self.returned_rows: dict[str, list[pa.Table]] = {"orders": [], "order_items": []}
        self.day_of: dict[str, np.ndarray] = {}  # carts and orders: partition day by ID number (-1: not seen)
        self.away: list[tuple[str, str, str, pa.Table]] = []

    def run(self) -> Report:
        t0 = time.perf_counter()
        try:
            plan = self._run_state()
            if plan is not None:
                self._lake(plan)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        return Report(self.sink.display, self.cfg.verify.examples, self.found, self._mess_rates(), self.skipped,
                      time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    def _lake(self, plan: dict) -> None:
        windows = [Window(day_number(c["start"]), day_number(c["end"]), c["first_ids"], c["ids"], c["rows"])
                   for c in plan["chunks"]]
        for table in ("shopping_carts", "orders"):
            self.day_of[table] = np.full(sum(w.ids[FAMILY[table]] for w in windows) + 1, -1, dtype=np.int32)
        self._list()
        expected = self._coverage(windows)
        dims = [self.pool.submit(self._dimension_partition, t, p) for t in DIMENSIONS for p in expected[t]
                if (t, p) in self.listing]
        self._dimensions([f.result() for f in dims])
        for task, merge in ((self._returns_day, self._returns_window), (self._sales_day, self._sales_window)):
            if task == self._sales_day:
                self._index_returns()  # the sales pass keeps the orders that returns refer to
            pending = self._submit(task, windows[0]) if windows else []
            for i, w in enumerate(windows):
                results = [f.result() for f in pending]
                if i + 1 < len(windows):
                    pending = self._submit(task, windows[i + 1])  # one window ahead
                merge(w, results)
        self._resolve_away()
        self._returns_lake(windows)

    def _submit(self, task, w: Window) -> list[Future]:
        return [self.pool.submit(task, d) for d in w.days()]

    def _read(self, table: str, partition: str) -> PartRead | None:
        names = self.listing.get((table, partition))
        return None if names is None else read_partition(self.sink, table, partition, names)

    # ---- run state, listing, coverage (driver) ---------------------------------------------------------------

    def _run_state(self) -> dict | None:
        found = self.found
        found.count("run.state", 1)
        try:
            plan = read_json(self.sink, PLAN)
        except ValueError:
            plan = None
        if plan is None:
            found.fail("run.state", "-", f"no bear run at {self.sink.display} ({PLAN} missing or unreadable)")
            self.skipped = True
            return None
        if plan.get("fingerprint") != self.fp:
            found.fail("run.state", "-", f"the lake was written by another config (fingerprint "
                       f"{str(plan.get('fingerprint'))[:12]}, this config {self.fp[:12]}); verify with the run's "
                       f"overrides")
        ck = read_json(self.sink, CHECKPOINT) or {}
        done, total = ck.get("committed_chunks", 0), len(plan["chunks"])
        if done < total or not ck.get("dimensions_committed"):
            found.fail("run.state", "-", f"run incomplete: {done}/{total} chunks committed, dimensions "
                       f"{'committed' if ck.get('dimensions_committed') else 'pending'}; rerun `bear` to finish it")
        for fam in ID_FAMILIES:
            firsts = np.array([c["first_ids"][fam] for c in plan["chunks"]])
            ends = firsts + np.array([c["ids"][fam] for c in plan["chunks"]])
            found.count("keys.plan_blocks", len(firsts))
            if firsts.size and (firsts[0] != 1 or not np.array_equal(firsts[1:], ends[:-1])):
                found.fail("keys.plan_blocks", "-", f"the plan's {fam} blocks are not contiguous from 1")
        return plan

    def _list(self) -> None:
        listing: dict[tuple[str, str], set[str]] = defaultdict(set)
        for rel in self.sink.find(""):
            parts = rel.split("/")
            if parts[0] == STATE_DIR:
                continue
            if len(parts) == 3 and parts[0] in TABLES and parts[1].startswith(f"{PARTITION_KEY[parts[0]]}="):
                listing[(parts[0], parts[1])].add(parts[2])
            else:
                self.found.count("manifest.orphans", 1)
                self.found.fail("manifest.orphans", parts[0] if parts[0] in TABLES else "-",
                                "file outside any table partition", [rel])
        self.listing = {k: frozenset(v) for k, v in listing.items()}

    def _coverage(self, windows: list[Window]) -> dict[str, list[str]]:
        days = range(windows[0].start, windows[-1].end + 1) if windows else range(0)
        expected = {t: [f"ingest_dt={day_partition(d)}" for d in days] for t in TRANSACTIONS}
        signup = np.unique(build_customers(Model.build(self.cfg)).signup_day)
        expected["customers"] = [f"signup_date={day_partition(int(d))}" for d in signup]
        expected["product_catalog"] = [f"category={c}" for c in CATEGORIES]
        found: dict[str, set[str]] = defaultdict(set)
        for t, p in self.listing:
            found[t].add(p)
        for t in TABLES:
            want = expected[t]
            self.found.count("coverage.partitions", len(want))
            missing = [p for p in want if p not in found[t]]
            extra = sorted(found[t] - set(want))
            if missing:
                self.found.fail("coverage.partitions", t, f"{len(missing)} planned partitions missing", missing,
                                len(missing), missing[0])
            if extra:
                self.found.fail("coverage.partitions", t, f"{len(extra)} unexpected partitions (not audited)",
                                extra, len(extra), extra[0])
        return expected

    # ---- dimensions -----------------------------------------------------------------------------------------

    def _dimension_partition(self, table: str, partition: str) -> tuple[Findings, pa.Table]:
        found = Findings()
        pr = self._read(table, partition)
        check_partition(pr, self.fp, self.cfg.mess.level, found)
        return found, pr.table_data()

    def _dimensions(self, results: list[tuple[Findings, pa.Table]]) -> None:
        found, g = self.found, self.cfg.generator
        data: dict[str, list[pa.Table]] = {t: [] for t in DIMENSIONS}
        for part_found, t in results:
            found.merge(part_found)
            data["customers" if "customer_id" in t.column_names else "product_catalog"].append(t)
        cust, prod = concat(data["customers"], "customers"), concat(data["product_catalog"], "product_catalog")
        for name, got, want, where in (("customers", cust.num_rows, g.customers, "signup_date=*"),
                                       ("product_catalog", prod.num_rows, g.products, "category=*")):
            found.count("coverage.rows", 1)
            if got != want:
                found.fail("coverage.rows", name, f"{got:,} rows, the config says {want:,}", [], abs(got - want),
                           where)
        found.count("keys.unique", cust.num_rows + prod.num_rows)
        for f in unique_keys("customers", cust, ("customer_id",)):
            found.add(f, "signup_date=*")
        for f in unique_keys("product_catalog", prod, ("product_id",)):
            found.add(f, "category=*")
        found.count("keys.gap_free", prod.num_rows)
        for f in gap_free("product_catalog", "product_id", id_numbers(prod["product_id"])):
            found.add(f, "category=*")
        self.customers = cust.select(["customer_id", "signup_date"]).combine_chunks()  # one chunk: fast takes
        self.products = prod.select(["product_id"]).combine_chunks()
        nums = id_numbers(cust["customer_id"])
        self.customer_row = np.full(int(nums.max(initial=0)) + 1, -1, dtype=np.int64)
        self.customer_row[nums[nums >= 0]] = np.flatnonzero(nums >= 0)

    def _customers_of(self, *columns: pa.ChunkedArray) -> pa.Table:
        """The customers these columns refer to, found by ID number: hashing every customer ID for every day
        would cost more than the day's other checks. A reference that matches none of them (or only by
        number) still fails to resolve against this subset."""
        nums = np.unique(np.concatenate([id_numbers(c) for c in columns]))
        nums = nums[(nums >= 0) & (nums < self.customer_row.size)]
        rows = self.customer_row[nums]
        return self.customers.take(pa.array(rows[rows >= 0]))

    # ---- day tasks (threads) --------------------------------------------------------------------------------

    def _day_tables(self, tables: tuple[str, ...], day: int, found: Findings) -> tuple[dict, dict]:
        part = f"ingest_dt={day_partition(day)}"
        reads = {name: self._read(name, part) for name in tables}
        for pr in reads.values():
            if pr is not None:
                check_partition(pr, self.fp, self.cfg.mess.level, found)
        t = {name: pr.table_data() if pr is not None else empty_table(name) for name, pr in reads.items()}
        return t, reads

    @staticmethod
    def _event_partition(table: str, t: pa.Table, day: int, found: Findings, part: str) -> None:
        found.count("integrity.event_partition", t.num_rows)
        bad = ts_micros(t[EVENT_COLUMN[table]]) // DAY_US != day
        if bad.any():
            found.fail("integrity.event_partition", table, f"{int(bad.sum())} rows outside the partition of their "
                       f"{EVENT_COLUMN[table]}", _values(t[PRIMARY_KEY[table][0]], bad), int(bad.sum()), part)

    def _returns_day(self, day: int) -> DayResult:
        res = DayResult(day, Findings())
        res.tables, _ = self._day_tables(RETURNS, day, res.found)
        self._event_partition("returns", res.tables["returns"], day, res.found, f"ingest_dt={day_partition(day)}")
        return res

    def _sales_day(self, day: int) -> DayResult:
        """Every check that lives inside one day's carts, items, orders and order lines."""
        res = DayResult(day, Findings())
        found, part = res.found, f"ingest_dt={day_partition(day)}"
        t, reads = self._day_tables(SALES, day, found)
        for name in ("shopping_carts", "cart_items", "orders"):
            res.ids[name] = id_numbers(t[name][ID_COLUMNS[name]])
        for name in ("shopping_carts", "orders"):
            self._event_partition(name, t[name], day, found, part)
        for child, key, parent in DAY_LINKS:
            here = index_of(t[child][key], t[parent][key]) >= 0
            if not here.all():
                rows = t[child].filter(pa.array(~here)).select(list(dict.fromkeys((*PRIMARY_KEY[child], key, DAY))))
                res.away.append((child, key, parent, rows))
        found.count("integrity.child_partition", t["cart_items"].num_rows + t["order_items"].num_rows)
        self._order_lines_unique(t["order_items"], found, part)
        full = {**t, "customers": self._customers_of(t["shopping_carts"]["customer_id"], t["orders"]["customer_id"]),
                "product_catalog": self.products}
        found.count("integrity.foreign_key", sum(t[n].num_rows for n in SALES))
        found.count("integrity.has_lines", t["orders"].num_rows)
        for name, (table, _) in SALES_RULES.items():
            found.count(name, t[table].num_rows)
        for f in link_checks(full, SALES, DIMENSIONS) + line_checks(t) + sales_rules(full):
            found.add(f, part)
        self._spikes(t, reads["orders"], found, part)
        res.returned = [self._returned(t["orders"]).select(["order_id", "order_date", "net_total", DAY]),
                        self._returned(t["order_items"]).select(["order_id", "product_id", "quantity", DAY])]
        return res

    def _order_lines_unique(self, lines: pa.Table, found: Findings, part: str) -> None:
        """(order_id, product_id) unique, on numbers: lake-wide, since every line sits with its order."""
        found.count("keys.unique", lines.num_rows)
        key = id_numbers(lines["order_id"]) * (self.cfg.generator.products + 1) + id_numbers(lines["product_id"])
        s = np.sort(key)
        if s.size and (s[1:] == s[:-1]).any():
            for f in unique_keys("order_items", lines, PRIMARY_KEY["order_items"]):
                found.add(f, part)

    def _spikes(self, t: dict[str, pa.Table], orders: PartRead | None, found: Findings, part: str) -> None:
        """total_items is the sum of the order's line quantities, or (spike mess) a recorded multiple of it."""
        o = t["orders"]
        qty = sum_by(t["order_items"]["order_id"], id_numbers(t["order_items"]["quantity"]),
                     o["order_id"].combine_chunks())
        items = id_numbers(o["total_items"])
        spiked = items != qty
        lo, hi = self.cfg.mess.spike_factor
        factor = items // np.maximum(qty, 1)
        plausible = (qty > 0) & (items % np.maximum(qty, 1) == 0) & (factor >= lo) & (factor <= hi)
        bad = spiked & ~(plausible & self.cfg.mess.advanced)
        if bad.any():
            found.fail("mess.counts", "orders", f"{int(bad.sum())} orders whose total_items is neither the sum of "
                       "their lines nor a spike of it", _values(o["order_id"], bad), int(bad.sum()), part)
        if orders is not None and orders.manifest is not None and orders.readable:
            recorded = orders.manifest.get("mess_counts", {}).get("total_items", {}).get("spike", 0)
            if recorded != int(spiked.sum()):
                found.fail("mess.counts", "orders", f"total_items.spike: manifest {recorded}, data "
                           f"{int(spiked.sum())}", partition=part)

    # ---- windows and the lake (driver) ----------------------------------------------------------------------

    def _planned_rows(self, w: Window, results: list[DayResult], tables: tuple[str, ...]) -> None:
        for name in tables:
            got = sum(r.found.rows[name] for r in results)
            self.found.count("coverage.rows", 1)
            if got != w.rows[FAMILY[name]]:
                self.found.fail("coverage.rows", name, f"{got:,} rows, the plan says {w.rows[FAMILY[name]]:,}", [],
                                abs(got - w.rows[FAMILY[name]]), w.name)

    def _returns_window(self, w: Window, results: list[DayResult]) -> None:
        self._planned_rows(w, results, RETURNS)
        for r in results:
            self.found.merge(r.found)
            for name in RETURNS:
                self.returns[name].append(r.tables[name])

    def _index_returns(self) -> None:
        nums = np.concatenate([id_numbers(t["order_id"]) for name in RETURNS for t in self.returns[name]] or [[]])
        nums = nums[(nums >= 0) & (nums < self.day_of["orders"].size)].astype(np.int64)
        self.returned = np.zeros(self.day_of["orders"].size, dtype=bool)
        self.returned[nums] = True

    def _returned(self, t: pa.Table) -> pa.Table:
        """Rows of `t` (orders or their lines) whose order the lake's returns refer to, picked by ID number (a
        hash set of every returned order ID per day would cost more than the day); the return checks compare
        the full ID strings."""
        nums = id_numbers(t["order_id"])
        ok = (nums >= 0) & (nums < self.returned.size)
        mask = np.zeros(nums.size, dtype=bool)
        mask[ok] = self.returned[nums[ok]]
        return t.filter(pa.array(mask))

    def _sales_window(self, w: Window, results: list[DayResult]) -> None:
        self._planned_rows(w, results, SALES)
        for r in results:
            self.found.merge(r.found)
            self.away += r.away
            for name, rows in zip(("orders", "order_items"), r.returned, strict=True):
                self.returned_rows[name].append(rows)
        for name in ("shopping_carts", "cart_items", "orders"):
            ids = np.concatenate([r.ids[name] for r in results]) if results else np.array([], np.int64)
            days = np.concatenate([np.full(r.ids[name].size, r.day) for r in results]) if results else ids
            lo = w.first_ids[FAMILY[name]]
            hi = lo + w.ids[FAMILY[name]]
            self._ids(name, ids, days, lo, hi, lo, hi - 1, w.name)
            if name in self.day_of:
                day_of = self.day_of[name]
                ok = (ids > 0) & (ids < day_of.size)
                day_of[ids[ok]] = days[ok]

    def _ids(self, table: str, ids: np.ndarray, days: np.ndarray, lo, hi, first: int, last: int, where: str) -> None:
        """`table`'s IDs are exactly first..last, each inside its block [lo, hi): duplicates, gaps, strays."""
        col, found = ID_COLUMNS[table], self.found
        found.count("keys.unique", ids.size)
        found.count("keys.gap_free", max(last - first + 1, 0))
        found.count("keys.plan_blocks", ids.size)
        inside = (ids >= first) & (ids <= last)
        seen = np.bincount(ids[inside] - first, minlength=max(last - first + 1, 0))
        outside, times = np.unique(ids[~inside], return_counts=True)
        dup = np.concatenate([np.flatnonzero(seen > 1) + first, outside[times > 1]])
        if dup.size:
            found.fail("keys.unique", table, f"{dup.size} duplicated {col}", _id_text(table, dup), dup.size,
                       _partitions(days[np.isin(ids, dup)]))
        missing = np.flatnonzero(seen == 0) + first
        if missing.size:
            found.fail("keys.gap_free", table, f"{missing.size} {col} missing from {first}..{last}",
                       _id_text(table, missing), missing.size, where)
        stray = (ids < lo) | (ids >= hi)
        if stray.any():
            found.fail("keys.plan_blocks", table, f"{int(stray.sum())} {col} outside their chunk's planned block",
                       _id_text(table, ids[stray]), int(stray.sum()), _partitions(days[stray]))

    def _resolve_away(self) -> None:
        """Rows whose parent was not in their day: a parent elsewhere means a misplaced line, none a broken key."""
        for child, key, parent, rows in self.away:
            ids = id_numbers(rows[key])
            day_of = self.day_of[parent]
            ok = (ids > 0) & (ids < day_of.size)
            day = np.full(ids.size, -1, dtype=np.int32)
            day[ok] = day_of[ids[ok]]
            lost = day < 0
            where = rows[DAY].to_numpy(zero_copy_only=False)
            if lost.any():
                self.found.fail("integrity.foreign_key", child, f"{int(lost.sum())} rows whose {key} is not in "
                                f"{parent}", _values(rows[key], lost), int(lost.sum()), _partitions(where[lost]))
            elsewhere = ~lost & (day != where)
            if child in LINES and elsewhere.any():
                self.found.fail("integrity.child_partition", child, f"{int(elsewhere.sum())} lines outside their "
                                f"{key}'s partition", _values(rows[PRIMARY_KEY[child][0]], elsewhere),
                                int(elsewhere.sum()), _partitions(where[elsewhere]))

    def _returns_lake(self, windows: list[Window]) -> None:
        """Returns against just the orders and lines they refer to: IDs lake-wide; links, lines with their
        return and the rules batch by batch of orders (one plan chunk's block each), so the joins hold one
        chunk's returns at a time. A return line whose order_id disagrees with its return's lands in another
        batch than its return and fails to resolve, which it should."""
        found = self.found
        if not windows:
            return
        t = {"returns": concat(self.returns["returns"], "returns"),
             "return_items": concat(self.returns["return_items"], "return_items"),
             "orders": concat(self.returned_rows["orders"], "orders"),
             "order_items": concat(self.returned_rows["order_items"], "order_items")}
        order_firsts = np.array([w.first_ids["orders"] for w in windows])
        batch = {name: np.clip(np.searchsorted(order_firsts, id_numbers(table["order_id"]), side="right") - 1, 0,
                               len(windows) - 1) for name, table in t.items()}
        for name in RETURNS:  # an ID comes from the block of its order's chunk
            firsts = np.array([w.first_ids[FAMILY[name]] for w in windows])
            counts = np.array([w.ids[FAMILY[name]] for w in windows])
            self._ids(name, id_numbers(t[name][ID_COLUMNS[name]]), t[name][DAY].to_numpy(zero_copy_only=False),
                      firsts[batch[name]], firsts[batch[name]] + counts[batch[name]], 1, int(counts.sum()),
                      "ingest_dt=*")
        found.count("integrity.child_partition", t["return_items"].num_rows)
        found.count("integrity.foreign_key", t["returns"].num_rows + t["return_items"].num_rows)
        found.count("integrity.has_lines", t["returns"].num_rows)
        for name, (table, _) in RETURN_RULES.items():
            found.count(name, t[table].num_rows)
        order = {name: np.argsort(b, kind="stable") for name, b in batch.items()}
        bounds = {name: np.searchsorted(batch[name][order[name]], np.arange(len(windows) + 1)) for name in t}
        for k in range(len(windows)):
            part = {name: table.take(pa.array(order[name][bounds[name][k]:bounds[name][k + 1]]))
                    for name, table in t.items()}
            part["customers"] = self._customers_of(part["returns"]["customer_id"])
            part["product_catalog"] = self.products
            self._return_lines_placed(part["return_items"], part["returns"])
            for f in link_checks(part, RETURNS) + line_checks({n: part[n] for n in RETURNS}) + return_rules(part):
                found.add(_place(f, part, "ingest_dt=*"))

    def _return_lines_placed(self, items: pa.Table, rets: pa.Table) -> None:
        idx = index_of(items["return_id"], rets["return_id"])
        here = idx >= 0
        day = items[DAY].to_numpy(zero_copy_only=False)
        bad = np.zeros(items.num_rows, dtype=bool)
        bad[here] = day[here] != rets[DAY].to_numpy(zero_copy_only=False)[idx[here]]
        if bad.any():
            self.found.fail("integrity.child_partition", "return_items", f"{int(bad.sum())} lines outside their "
                            "return_id's partition", _values(items["return_item_id"], bad), int(bad.sum()),
                            _partitions(day[bad]))

    def _mess_rates(self) -> list[dict]:
        """Measured mess rate per column and kind vs the configured level.

        Expected: nulls at null_rate; whitespace at style_rate; casing at style_rate x the share of the
        casings that change a value (upper-casing "PAYPAL" does nothing, and the ledger counts only real
        changes), which is counted from the data; reasons re-drawn at style_rate when the level is
        advanced; any other kind at zero (spikes are judged by mess.counts). The allowed deviation is
        mess_tolerance plus three standard errors, so small lakes do not fail on chance.
        """
        found, m, tol = self.found, self.cfg.mess, self.cfg.verify.mess_tolerance
        style = m.style_rate if m.level != "none" else 0.0
        null = m.null_rate if m.level != "none" else 0.0
        expected: dict[tuple[str, str, str], float] = {}
        counts: Counter = Counter(found.mess_counts)
        for t, rows in found.mess_rows.items():
            if not rows:
                continue
            for col in NULL_COLUMNS.get(t, ()):
                expected[(t, col, "null")] = null
            for col in STYLE_COLUMNS.get(t, ()):
                expected[(t, col, "whitespace")] = style
                expected[(t, col, "casing")] = style * found.capacity[(t, col)] / rows / len(CASINGS)
            if t == "returns":
                expected[(t, "reason", "redrawn")] = style if m.advanced else 0.0
        for key in counts:
            if key[2] != "spike" and found.mess_rows[key[0]]:
                expected.setdefault(key, 0.0)
        rates = []
        for (t, col, kind), p in sorted(expected.items()):
            n = found.mess_rows[t]
            got = counts[(t, col, kind)] / n
            allowed = tol + 3 * math.sqrt(p * (1 - p) / n)
            ok = abs(got - p) <= allowed
            rates.append({"table": t, "column": col, "kind": kind, "rows": n, "count": counts[(t, col, kind)],
                          "rate": round(got, 5), "expected": round(p, 5), "allowed": round(allowed, 5), "ok": ok})
            found.count("mess.rates", 1)
            if not ok:
                found.fail("mess.rates", t, f"{col} {kind} rate {got:.4f}, expected {p:.4f} +- {allowed:.4f}",
                           partition=f"{PARTITION_KEY[t]}=*")
        months = sorted(k for k, v in found.spike_days.items() if v > 1)
        if months:
            found.fail("mess.counts", "orders", "more than one spike day in a month", months, len(months),
                       "ingest_dt=*")
        return rates


def verify_lake(sink: Sink, cfg: BearConfig) -> Report:
    """Audit the lake at `sink` against `cfg` (any Sink: a local directory or GCS)."""
    return Audit(sink, cfg).run()


def verify_command(cfg: BearConfig, base_dir: str | None) -> int:
    """`bear verify`: the report on stdout (text, or JSON with --json); exit 0 only when every check passes."""
    report = verify_lake(open_sink(cfg.sink, base_dir), cfg)
    as_json = cfg.json or cfg.verify.json
    print(json.dumps(report.to_json(), indent=2) if as_json else report.render(), file=sys.stdout)
    return 0 if report.ok else 1
