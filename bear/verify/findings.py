"""What `bear verify` found: every check with what it examined and its failures, as text or JSON.

Pieces of the audit run on threads, each filling its own `Findings`; the driver merges them, so
nothing here needs a lock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bear.verify.checks import RULES, Failure
from bear.verify.history import HISTORY_RULES

CHECKS: dict[str, tuple[str, str]] = {
    "run.state": ("runs", "plan present, written by this config, run complete"),
    "coverage.partitions": ("partitions", "every planned partition present, none unexpected"),
    "coverage.markers": ("partitions", "_MANIFEST.json and _SUCCESS in every partition"),
    "coverage.rows": ("counts", "rows per table and chunk as planned"),
    "manifest.valid": ("manifests", "readable, matches its partition and run, totals add up"),
    "manifest.files": ("files", "every listed file exists"),
    "manifest.rows": ("files", "listed rows match the file"),
    "manifest.checksum": ("files", "listed md5 matches the file"),
    "manifest.orphans": ("files", "no data file outside a manifest"),
    "files.schema": ("files", "readable Parquet with the table's schema of the partition's day (added columns)"),
    "files.lineage": ("files", "source_file, batch_id, ingestion_ts and event_id as the file and manifest say"),
    "files.partition_column": ("files", "the partition column inside the file equals the path"),
    "keys.unique": ("rows", "primary keys unique lake-wide"),
    "keys.gap_free": ("ids", "cart, cart-item, order, return and return-item IDs gap-free from 1"),
    "keys.plan_blocks": ("ids", "every ID inside its chunk's planned block"),
    "integrity.foreign_key": ("rows", "every foreign key resolves inside the lake"),
    "integrity.has_lines": ("rows", "every order and return has a line"),
    "integrity.event_partition": ("rows", "every row in the partition of its event date"),
    "integrity.child_partition": ("rows", "every line in its parent's partition"),
    "feed.delivery": ("rows", "late and re-delivered order-feed rows as their manifests count them; copies repeat "
                              "their first delivery"),
    **{name: ("rows", about) for name, (_, about) in (RULES | HISTORY_RULES).items()},
    "mess.counts": ("partitions", "manifest mess counts match the data (nulls, whitespace, spikes; format and casing "
                                  "are measured by mess.rates)"),
    "mess.rates": ("columns", "measured mess rates match the configured level"),
}
MAX_FAILURES = 20  # failure records per check in the report (the rest are counted)


@dataclass
class Findings:
    """Checks' examined counts and failures, plus the tallies the lake-wide checks need."""

    checked: Counter = field(default_factory=Counter)  # check -> things examined
    failures: list[Failure] = field(default_factory=list)
    rows: Counter = field(default_factory=Counter)  # table -> rows read
    files: int = 0
    bytes: int = 0
    partitions: int = 0
    mess_rows: Counter = field(default_factory=Counter)  # table -> rows, from manifests
    mess_counts: Counter = field(default_factory=Counter)  # (table, column, kind) -> count, from manifests
    capacity: Counter = field(default_factory=Counter)  # (table, column) -> casing styles that change the values
    spike_days: Counter = field(default_factory=Counter)  # month -> days whose orders got a spike

    def count(self, check: str, n: int) -> None:
        self.checked[check] += int(n)

    def add(self, f: Failure, partition: str = "") -> None:
        f.partition = f.partition or partition
        self.failures.append(f)

    def fail(self, check: str, table: str, detail: str, examples=(), count: int = 1, partition: str = "") -> None:
        self.failures.append(Failure(check, table, detail, list(examples)[:MAX_FAILURES], int(count), partition))

    def merge(self, other: Findings) -> None:
        for name in ("checked", "rows", "mess_rows", "mess_counts", "capacity", "spike_days"):
            getattr(self, name).update(getattr(other, name))
        self.failures += other.failures
        self.files += other.files
        self.bytes += other.bytes
        self.partitions += other.partitions


@dataclass
class CheckResult:
    name: str
    unit: str
    about: str
    checked: int = 0
    failed: int = 0
    failures: list[Failure] = field(default_factory=list)


@dataclass
class Report:
    lake: str
    examples: int  # example keys shown per failure
    found: Findings
    mess: list[dict[str, Any]] = field(default_factory=list)  # measured vs expected rate per column and kind
    skipped: bool = False  # nothing to audit (no run at the sink)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def checks(self) -> dict[str, CheckResult]:
        out = {name: CheckResult(name, unit, about, self.found.checked[name]) for name, (unit, about) in
               CHECKS.items()}
        for f in self.found.failures:
            c = out.setdefault(f.check, CheckResult(f.check, "rows", f.check, self.found.checked[f.check]))
            c.failed += f.count
            c.failures.append(f)
        return out

    @property
    def ok(self) -> bool:
        return not self.skipped and not self.found.failures

    def to_json(self) -> dict[str, Any]:
        def status(c: CheckResult) -> str:
            if c.failures:
                return "fail"
            return "skipped" if self.skipped and not c.checked else "ok"

        return {
            "lake": self.lake,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "files": self.found.files,
            "bytes": self.found.bytes,
            "partitions": self.found.partitions,
            "rows": dict(self.found.rows),
            "checks": [
                {"check": c.name, "status": status(c), "checked": c.checked, "unit": c.unit, "failed": c.failed,
                 "about": c.about, "more_failures": max(len(c.failures) - MAX_FAILURES, 0),
                 "failures": [{"table": f.table, "partition": f.partition, "detail": f.detail, "count": f.count,
                               "examples": f.examples[:self.examples]} for f in c.failures[:MAX_FAILURES]]}
                for c in self.checks.values()
            ],
            "mess": self.mess,
        }

    def render(self) -> str:
        """The compact table, then per failed check its table, partition, detail and example keys."""
        doc = self.to_json()
        width = max(len(c["check"]) for c in doc["checks"])
        lines = [f"bear verify {self.lake}: {sum(self.found.rows.values()):,} rows in {self.found.partitions:,} "
                 f"partitions, {self.found.files:,} files ({self.found.bytes / 2**20:,.1f} MiB) in "
                 f"{self.seconds:.1f}s, peak memory {self.peak_rss_mb:,.0f} MiB",
                 f"{'check':<{width}}  {'status':<7} {'checked':>14} {'unit':<10} {'failed':>10}"]
        for c in doc["checks"]:
            lines.append(f"{c['check']:<{width}}  {c['status']:<7} {c['checked']:>14,} {c['unit']:<10} "
                         f"{c['failed']:>10,}")
        failed = [c for c in doc["checks"] if c["status"] == "fail"]
        for c in failed:
            for f in c["failures"][:self.examples]:
                ex = f"  e.g. {', '.join(map(str, f['examples']))}" if f["examples"] else ""
                lines.append(f"  {c['check']}  {f['table']}  {f['partition'] or '-'}: {f['detail']}{ex}")
            more = len(c["failures"]) - self.examples + c["more_failures"]
            if more > 0:
                lines.append(f"  {c['check']}  ... {more:,} more (--json lists up to {MAX_FAILURES})")
        if failed:
            lines.append(f"FAILED: {len(failed)} of {len(doc['checks'])} checks")
        else:
            lines.append(f"OK: all {len(doc['checks'])} checks passed")
        return "\n".join(lines)
