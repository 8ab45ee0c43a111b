"""`sink.dry_run=true`: every object a run would write, from the plan alone; nothing is written.

The skeleton pass already knows each day's row count per table (`ChunkPlan.day_rows`; for the
order feed's tables the rows landing that day, `ChunkPlan.landed`) and
the lookups know the customers' signup days, so the listing is exact without generating a
row: every partition gets `_MANIFEST.json` and `_SUCCESS`, and a `part-00000.parquet` when
it holds rows. A lake that already holds this run is read (never written) so the listing
is what a resume, or an extension to a later run.end, would still write. Run state under
`_bear/` (plan, checkpoint, chunk summaries, report) is named as a whole, not object by object. Limit: a partition whose
data outgrows output.target_file_mb rolls over into part-00001...; the listing shows its
first file only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from bear.config.schema import BearConfig
from bear.core.schemas import DAILY, PLAN_FAMILY
from bear.core.vocab import CATEGORIES
from bear.lake.layout import DATA_FILE, MANIFEST, STATE_DIR, SUCCESS, day_partition, is_lease, partition_dir
from bear.lake.recovery import load_checkpoint, read_plan
from bear.lake.sink import Sink
from bear.lake.state import StateDamaged, config_change, shortening
from bear.run.prepare import Prepared, prepare_plan


@dataclass
class Planned:
    path: str  # relative to the lake root
    rows: int | None = None  # data files only


def _partition(table: str, value: str, rows: int) -> list[Planned]:
    base = partition_dir(table, value)
    data = [Planned(f"{base}/{DATA_FILE.format(0)}", rows)] if rows else []
    return [*data, Planned(f"{base}/{MANIFEST}"), Planned(f"{base}/{SUCCESS}")]


def planned_objects(p: Prepared, committed_chunks: int = 0, dimensions_done: bool = False) -> list[Planned]:
    """Lake objects a run writes, in the order it commits them (dimensions, then chunks); run state aside."""
    out: list[Planned] = []
    days, signups = np.unique(p.customers.signup_day[p.customers.signup_day <= p.model.end_day], return_counts=True)
    if not dimensions_done:
        for day, n in zip(days.tolist(), signups.tolist(), strict=True):
            if day < p.model.start_day:
                out += _partition("customers", day_partition(day), n)
        per_category = np.bincount(p.products.category.astype(np.int64), minlength=len(CATEGORIES))
        for name, n in zip(CATEGORIES, per_category.tolist(), strict=True):
            out += _partition("product_catalog", name, n)
    for plan in p.plans[committed_chunks:]:
        chunk = plan.chunk
        for table in DAILY:
            per_day = (plan.landed[table] if table in plan.landed else plan.day_rows[PLAN_FAMILY[table]]).tolist()
            for day, n in zip(range(chunk.start_day, chunk.end_day + 1), per_day, strict=True):
                out += _partition(table, day_partition(day), n)
        inside = (days >= chunk.start_day) & (days <= chunk.end_day)
        for day, n in zip(days[inside].tolist(), signups[inside].tolist(), strict=True):
            out += _partition("customers", day_partition(day), n)
    return out


def dry_run(cfg: BearConfig, sink: Sink) -> dict[str, Any]:
    """What `bear` would write to `sink` (reading its run state if any), as a report; writes nothing. On a lake of
    this config that is the rest of its run, or of an extension to a later run.end: what it would add."""
    done, dims, lake = 0, False, None
    try:
        old, damage = read_plan(sink), None
    except StateDamaged as exc:
        old, damage = None, exc
    change = config_change(old, cfg) if old is not None else None
    ck = load_checkpoint(sink, old)[0] if old is not None and not change else None
    shorter = shortening(sink.display, ck, cfg.run.end) if ck is not None else None
    if damage is not None:
        state = (f"{damage}: a real run would recompute it if the lake's manifests were written by this config, "
                 f"and redo what its checkpoint cannot prove; listed as if nothing were committed")
    elif old is None and any(not is_lease(r) for r in sink.find("")):
        state = "it is not empty and holds no bear run: a real run would refuse (run.restart=true would empty it)"
    elif old is None:
        state = "no bear run there yet: the whole lake would be written"
    elif change or shorter:
        state = (f"{'it holds a run of a different config (' + change + ')' if change else shorter}: a real run "
                 f"would refuse (run.restart=true would delete that lake and write this one)")
    else:
        done, dims, lake = ck["committed_chunks"], ck["dimensions_committed"], old
        total = len(old["chunks"])
        state = (f"it holds this run through {old['end']}, " + ("complete" if done == total and dims else
                                                               f"{done}/{total} chunks committed"))
        state += (": nothing left to write" if done == total and dims and old["end"] == cfg.run.end else
                  f": the rest up to {cfg.run.end} would be written" + (
                      f" (extending it by the days after {old['end']})" if cfg.run.end > old["end"] else ""))
    objects = planned_objects(prepare_plan(cfg, lake, done), done, dims)
    tables: dict[str, dict[str, int]] = {}
    for o in objects:
        table = o.path.split("/", 1)[0]
        t = tables.setdefault(table, {"partitions": 0, "data_files": 0, "rows": 0, "objects": 0})
        t["objects"] += 1
        t["partitions"] += o.path.endswith(SUCCESS)
        if o.rows is not None:
            t["data_files"] += 1
            t["rows"] += o.rows
    return {"dry_run": True, "lake": sink.display, "state": state, "tables": tables,
            "objects": [{"path": o.path, "rows": o.rows} for o in objects], "state_dir": STATE_DIR}


def format_dry_run(report: dict[str, Any]) -> Iterator[str]:
    """The listing (one object a line, rows for data files) then a summary per table."""
    lake = report["lake"]
    yield f"dry run for {lake}: {report['state']}; nothing is written"
    for o in report["objects"]:
        yield f"{lake}/{o['path']}" + (f"  {o['rows']:,} rows" if o["rows"] is not None else "")
    yield f"{'table':<16} {'partitions':>10} {'data files':>10} {'rows':>14} {'objects':>8}"
    for table, t in report["tables"].items():
        yield f"{table:<16} {t['partitions']:>10,} {t['data_files']:>10,} {t['rows']:>14,} {t['objects']:>8,}"
    tables = report["tables"].values()
    yield (f"{'total':<16} {sum(t['partitions'] for t in tables):>10,} {sum(t['data_files'] for t in tables):>10,} "
           f"{sum(t['rows'] for t in tables):>14,} {len(report['objects']):>8,}")
    yield f"plus run state under {lake}/{report['state_dir']}/ (plan, checkpoint, chunk summaries, report)"
