"""Mess rates: the lake's measured mess per column and kind against what the config asks for.

The partitions tally the mess their manifests record (and what the data shows of it) as they are
checked; only once every partition is in can the rates be judged, so this runs last, on the
merged findings, and gives the report its mess table.
"""

from __future__ import annotations

import math
from collections import Counter

from bear.config.schema import BearConfig
from bear.core.schemas import CASINGS, FORMAT_COLUMNS, NULL_COLUMNS, PARTITION_KEY, STYLE_COLUMNS
from bear.verify.findings import Findings


def mess_rates(found: Findings, cfg: BearConfig) -> list[dict]:
    """Measured mess rate per column and kind vs the configured level.

    Expected: nulls at null_rate; whitespace at style_rate; casing at style_rate x the share of the
    casings that change a value (upper-casing "PAYPAL" does nothing, and the ledger counts only real
    changes), which is counted from the data; emails and phone numbers in a variant format at format_rate
    (every variant changes every value); reasons re-drawn at style_rate when the level is
    advanced; any other kind at zero (spikes are judged by mess.counts). The allowed deviation is
    mess_tolerance plus three standard errors, so small lakes do not fail on chance.
    """
    m, tol = cfg.mess, cfg.verify.mess_tolerance
    style = m.style_rate if m.level != "none" else 0.0
    null = m.null_rate if m.level != "none" else 0.0
    fmt = m.format_rate if m.level != "none" else 0.0
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
        for col in FORMAT_COLUMNS.get(t, ()):
            expected[(t, col, "format")] = fmt
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
