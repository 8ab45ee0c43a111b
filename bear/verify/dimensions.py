"""The dimension pass: customers and the product catalog, checked whole and kept for the day passes.

Dimensions are small next to the transactions and every sales and returns check refers to them,
so this pass runs first: its partitions are read on the thread pool, then the driver checks the
tables whole (rows, unique and gap-free keys, customers as they signed up) and leaves on the
shared state just the columns the later passes resolve against, with an index of customers by
ID number.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from bear.core.schemas import DIMENSIONS
from bear.verify.checks import gap_free, id_numbers, unique_keys
from bear.verify.findings import Findings
from bear.verify.history import CUSTOMER_RULES, customer_rules
from bear.verify.partition import check_partition
from bear.verify.read import concat
from bear.verify.state import CUSTOMER_COLUMNS, AuditState


def dimension_partition(state: AuditState, table: str, partition: str) -> tuple[Findings, pa.Table]:
    """One dimension partition, checked on its own (a task on the pool)."""
    found = Findings()
    pr = state.read(table, partition)
    check_partition(pr, state.fp, state.cfg.mess.level, found)
    return found, pr.table_data()


def load_dimensions(state: AuditState, results: list[tuple[Findings, pa.Table]], customers: int) -> None:
    """Merge the partitions' findings, check the tables whole and keep what the day passes need."""
    found, g = state.found, state.cfg.generator
    data: dict[str, list[pa.Table]] = {t: [] for t in DIMENSIONS}
    for part_found, t in results:
        found.merge(part_found)
        data["customers" if "customer_id" in t.column_names else "product_catalog"].append(t)
    cust, prod = concat(data["customers"], "customers"), concat(data["product_catalog"], "product_catalog")
    for name, got, want, source, where in (
            ("customers", cust.num_rows, customers, "the plan", "signup_date=*"),  # signed up by the end
            ("product_catalog", prod.num_rows, g.catalog_size, "the config", "category=*")):
        found.count("coverage.rows", 1)
        if got != want:
            found.fail("coverage.rows", name, f"{got:,} rows, {source} says {want:,}", [], abs(got - want), where)
    found.count("keys.unique", cust.num_rows + prod.num_rows)
    for f in unique_keys("customers", cust, ("customer_id",)):
        found.add(f, "signup_date=*")
    for f in unique_keys("product_catalog", prod, ("product_id",)):
        found.add(f, "category=*")
    found.count("keys.gap_free", prod.num_rows)
    for f in gap_free("product_catalog", "product_id", id_numbers(prod["product_id"])):
        found.add(f, "category=*")
    for name in CUSTOMER_RULES:
        found.count(name, cust.num_rows)
    for f in customer_rules(cust):
        found.add(f, "signup_date=*")
    state.customers = cust.select(list(CUSTOMER_COLUMNS)).combine_chunks()  # one chunk: fast takes
    state.products = prod.select(["product_id"]).combine_chunks()
    nums = id_numbers(cust["customer_id"])
    state.customer_row = np.full(int(nums.max(initial=0)) + 1, -1, dtype=np.int64)
    state.customer_row[nums[nums >= 0]] = np.flatnonzero(nums >= 0)
