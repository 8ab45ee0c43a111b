"""Where everything lives in a lake: every folder, file and marker name, and the partitions a run makes.

One owner for the lake's shape. Writers, the committer, the dry run, the report and the audit
all take names from here, so a renamed marker or a new partition key is one edit.
"""

from __future__ import annotations

import re

from bear.core.calendar import DAY_S, day_number, day_to_date
from bear.core.schemas import DAILY, PARTITION_KEY, TABLES
from bear.core.vocab import CATEGORIES

STATE_DIR = "_bear"
PLAN = f"{STATE_DIR}/plan.json"
CHECKPOINT = f"{STATE_DIR}/checkpoint.json"
LEASE = f"{STATE_DIR}/lease.json"  # the writer lease (bear.lake.lease); its lock file is hidden beside it
HOOKS_DIR = f"{STATE_DIR}/hooks"
MANIFEST = "_MANIFEST.json"
SUCCESS = "_SUCCESS"
CHUNKS_DIR = f"{STATE_DIR}/chunks"
REPORT_JSON = f"{STATE_DIR}/report.json"
REPORT_HTML = f"{STATE_DIR}/report.html"
DATA_FILE = "part-{:05d}.parquet"  # a partition's data files, numbered from 0 where a partition rolls over


def day_partition(day: int) -> str:
    return day_to_date(day).isoformat()


def partition_name(table: str, value: str) -> str:
    """A partition's folder name: `ingest_dt=2020-01-05`."""
    return f"{PARTITION_KEY[table]}={value}"


def partition_dir(table: str, value: str) -> str:
    """A partition's folder relative to the lake root: `orders/ingest_dt=2020-01-05`."""
    return f"{table}/{partition_name(table, value)}"


def ingestion_seconds(day: int) -> int:
    """The nightly batch that would have landed a day's data: 02:00 the next morning."""
    return (day + 1) * DAY_S + 2 * 3600


def _job(index: int) -> str:
    return "dimensions" if index < 0 else f"chunk-{index:05d}"


def summary_name(index: int) -> str:
    """A committed job's summary for the report (index -1: the dimension tables)."""
    return f"{CHUNKS_DIR}/{_job(index)}.json"


def hooks_journal(index: int) -> str:
    """Which partitions of a job the post-export hooks have seen (so a resumed job does not call them twice)."""
    return f"{HOOKS_DIR}/{_job(index)}.json"


# The lease and the files of its conditional writes (bear.lake.localdisk): its lock, a new one, a renewal.
_LEASE_FILES = re.compile(rf"^{STATE_DIR}/\.?lease\.json(?:\.lock|\.new-[0-9a-f]+|\.tmp-\d+)?$")


def is_lease(rel: str) -> bool:
    """The writer lease's own files: present while a run holds the lake, never part of what a run wrote."""
    return bool(_LEASE_FILES.match(rel))


# What bear writes into a lake: run state, and in a table's partition folders its data files (and their
# temporaries), manifests and markers. Nothing else is ever deleted by bear. The lease is not in it: the run that
# deletes holds it.
_OWN = re.compile(
    rf"^(?:{STATE_DIR}/.+|(?:{'|'.join(f'{t}/{k}' for t, k in PARTITION_KEY.items())})=[^/]+/"
    rf"(?:(?:part-\d{{5}}\.parquet|{MANIFEST})|\.(?:part-\d{{5}}\.parquet|{MANIFEST})\.tmp-\d+|{SUCCESS}))$")


def bear_files(rels: list[str]) -> list[str]:
    """Of a lake's files (relative paths), the ones bear wrote: all that `run.restart=true` may delete."""
    return [r for r in rels if _OWN.match(r) and not is_lease(r)]


DAY_KEYS = ("ingest_dt", "signup_date")  # partition keys whose values are days


def dated_after(rels: list[str], day: str) -> list[str]:
    """Of these files (relative paths), the ones in a day partition (`ingest_dt=`, `signup_date=`) after `day`."""
    out = []
    for rel in rels:
        parts = rel.split("/")
        key, _, value = parts[1].partition("=") if len(parts) == 3 else ("", "", "")
        if key in DAY_KEYS and PARTITION_KEY.get(parts[0]) == key and value > day:
            out.append(rel)
    return out


def job_partitions(plan: dict, index: int) -> list[str]:
    """The partition folders (`orders/ingest_dt=2020-01-05`) one job of a plan commits: index -1 the dimension
    tables' first ones (the catalog one per category, customers one per signup day before the run's start), else
    every daily table's day in the chunk's window, empty days included, and customers' signup days in it."""
    start = plan["plan_config"]["run"]["start"]
    if index < 0:
        return ([partition_dir("customers", d) for d in plan["signup_days"] if d < start]
                + [partition_dir("product_catalog", c) for c in CATEGORIES])
    chunk = plan["chunks"][index]
    days = [day_partition(d) for d in range(day_number(chunk["start"]), day_number(chunk["end"]) + 1)]
    return ([partition_dir(t, d) for t in DAILY for d in days]
            + [partition_dir("customers", d) for d in plan["signup_days"] if chunk["start"] <= d <= chunk["end"]])


def expected_partitions(plan: dict) -> dict[str, list[str]]:
    """Every partition folder name a finished lake of this plan has, per table (see job_partitions)."""
    out: dict[str, list[str]] = {t: [] for t in TABLES}
    for index in range(-1, len(plan["chunks"])):
        for folder in job_partitions(plan, index):
            table, name = folder.split("/")
            out[table].append(name)
    return out
