"""Run state that lives with the lake under `_bear/`, and the per-partition manifests.

Anything needed to resume is here, on the sink, so any machine can pick a run up: the
plan (chunks, ID blocks, config and its fingerprints) and the checkpoint (how many
chunks are committed, high-water marks, totals). Files are replaced whole, so a crash
leaves either the old or the new version, never half of one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict
from typing import Any

from omegaconf import OmegaConf

from bear import __version__
from bear.config.schema import BearConfig
from bear.core.calendar import iso_ts
from bear.lake.layout import bear_files
from bear.lake.parquet import PartitionStat
from bear.lake.sink import Sink

SCHEMA_VERSION = 1  # of manifests and the checkpoint
PLAN_VERSION = 2  # of the plan document; 2: it lists signup_days
SECRET_KEYS = ("token",)
def sweep_temporaries(sink: Sink, dirs: list[str]) -> None:
    """Delete the temporaries killed writers of bear left in these folders (only names bear writes), before the
    folders are written again: no leftover outlives a rerun."""
    sink.delete(bear_files(sink.temporaries(dirs)))


def content_config(cfg: BearConfig) -> dict[str, Any]:
    """The part of the config that decides the lake's bytes (not how or where it is computed)."""
    return {
        "run": {"start": cfg.run.start, "end": cfg.run.end, "seed": cfg.run.seed},
        "generator": asdict(cfg.generator),
        "mess": asdict(cfg.mess),
        "output": asdict(cfg.output),
    }


def plan_config(cfg: BearConfig) -> dict[str, Any]:
    """What must match for a rerun to resume: the content plus the chunking."""
    return content_config(cfg) | {"chunk_days": cfg.run.chunk_days}


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def redacted(cfg: BearConfig) -> dict[str, Any]:
    """The whole config for reports and printing, with credentials masked."""
    data = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
    sink = data["sink"]
    for key in SECRET_KEYS:
        if sink.get(key) not in (None, "google_default", "anon"):
            sink[key] = "***"
    return data


def diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, as `key: old -> new`."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += diff(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def config_change(plan: dict[str, Any], cfg: BearConfig) -> str | None:
    """`run.seed: 42 -> 7; ...` when a lake's plan was written by another config (or chunking), else None."""
    if plan.get("plan_fingerprint") == fingerprint(plan_config(cfg)):
        return None
    return "; ".join(diff(plan.get("plan_config", {}), plan_config(cfg))[:8]) or "unknown settings"


def is_complete(plan: dict[str, Any] | None, ck: dict[str, Any] | None) -> bool:
    """Every chunk and the dimensions committed."""
    return bool(plan and ck and ck["dimensions_committed"] and ck["committed_chunks"] == len(plan["chunks"]))


def other_config(display: str, change: str) -> str:
    """The one line for a lake of another config (exit 2), naming what changed."""
    return (f"{display} holds a run of a different config (changed: {change}). Use the original settings, "
            f"add run.restart=true to delete that lake and start over (bear run only), or pick another sink "
            f"location.")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def read_json(sink: Sink, rel: str) -> dict | None:
    if not sink.exists(rel):
        return None
    return json.loads(sink.read(rel))


def json_bytes(obj: Any, indent: int | None = 2) -> bytes:
    """`indent=None` for documents written by the thousand (manifests, chunk summaries): encoded in C."""
    return json.dumps(obj, indent=indent, sort_keys=True).encode()


def write_json(sink: Sink, rel: str, obj: Any, indent: int | None = 2) -> None:
    sink.write(rel, json_bytes(obj, indent))


def plan_document(cfg: BearConfig, chunks: list[dict[str, Any]], signup_days: list[str]) -> dict[str, Any]:
    """The run's plan: its chunks with their ID blocks and row counts, and the days that have customers (their
    signups make the customers table's partitions), so readers know every partition without generating."""
    return {
        "schema_version": PLAN_VERSION,
        "generator_version": __version__,
        "fingerprint": fingerprint(content_config(cfg)),
        "plan_fingerprint": fingerprint(plan_config(cfg)),
        "plan_config": plan_config(cfg),
        "config": redacted(cfg),
        "chunks": chunks,
        "totals": {k: sum(c["rows"][k] for c in chunks) for k in chunks[0]["rows"]} if chunks else {},
        "signup_days": signup_days,
        "created_at": now_iso(),
    }


def manifest_document(cfg: BearConfig, fp: str, stat: PartitionStat) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "table": stat.table,
        "partition": stat.partition,
        "batch_id": f"{fp[:12]}-{stat.table}-{stat.partition.split('=', 1)[1]}",
        "files": [
            {"path": f.path.rsplit("/", 1)[1], "rows": f.rows, "bytes": f.bytes, "md5": f.md5} for f in stat.files
        ],
        "total_rows": stat.rows,
        "total_bytes": stat.bytes,
        "min_event_time": iso_ts(stat.min_event_s),
        "max_event_time": iso_ts(stat.max_event_s),
        "id_range": stat.id_range,
        "config_fingerprint": fp,
        "seed": cfg.run.seed,
        "generator_version": __version__,
        "mess_level": cfg.mess.level,
        "mess_counts": stat.mess,
        "created_at": now_iso(),
    }


def empty_checkpoint(plan: dict) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "plan_fingerprint": plan["plan_fingerprint"],
        "dimensions_committed": False,
        "committed_chunks": 0,
        "total_chunks": len(plan["chunks"]),
        "last_committed_date": None,
        "id_high_water": {},
        "rows": {},
        "bytes": {},
        "partitions": 0,
        "updated_at": now_iso(),
    }
