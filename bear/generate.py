"""A whole run's tables in memory: the same pure path the workers take, without files.

For tests, notebooks and small explorations; the backfill itself never concatenates.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from bear.config import BearConfig
from bear.lookups import customer_columns, product_columns
from bear.mess import Ledger, apply_mess
from bear.model import DAY_S
from bear.plan import make_chunks, walk
from bear.runner import prepare
from bear.schemas import SCHEMAS, TRANSACTIONS
from bear.tables import chunk_tables


def _table(name: str, cols: dict[str, pa.Array]) -> pa.Table:
    fields = [f for f in SCHEMAS[name] if f.name in cols]
    # label columns come as dictionary arrays (bear.text.labels); the in-memory tables carry the plain types
    return pa.Table.from_arrays([cols[f.name].cast(f.type) for f in fields], schema=pa.schema(fields))


def generate(cfg: BearConfig, mess: bool = True) -> tuple[dict[str, pa.Table], dict[str, list[Ledger]]]:
    """Every table of the run (chunked as configured) and the mess ledgers per chunk."""
    p = prepare(cfg)
    model, lk = p.model, p.lookups
    parts: dict[str, list[pa.Table]] = {t: [] for t in TRANSACTIONS}
    ledgers: dict[str, list[Ledger]] = {t: [] for t in (*TRANSACTIONS, "customers", "product_catalog")}
    for work in walk(model, lk.customers, lk.products, make_chunks(model.start_day, model.end_day,
                                                                    cfg.run.chunk_days)):
        for name, rows in chunk_tables(model, lk, work).items():
            if mess:
                ledgers[name].append(apply_mess(model, name, rows.cols, rows.key, rows.event_s, rows.related))
            parts[name].append(_table(name, rows.cols))
    out = {t: pa.concat_tables(v) for t, v in parts.items()}
    cust = customer_columns(model, lk, p.final_spend_c)
    prod = product_columns(lk.products)
    if mess:
        n, m = len(lk.customers), len(lk.products)
        ledgers["customers"].append(apply_mess(model, "customers", cust, np.arange(1, n + 1), np.zeros(n, np.int64)))
        ledgers["product_catalog"].append(apply_mess(model, "product_catalog", prod, np.arange(1, m + 1),
                                                     np.full(m, model.start_day * DAY_S)))
    out["customers"] = _table("customers", cust)
    out["product_catalog"] = _table("product_catalog", prod)
    return out, ledgers
