"""Run state that lives with the lake under `_bear/`, and the per-partition manifests.

Anything needed to resume is here, on the sink, so any machine can pick a run up: the
plan (chunks, ID blocks, config and its fingerprints) and the checkpoint (how many
chunks are committed, high-water marks, totals). Files are replaced whole, so a crash
leaves either the old or the new version, never half of one; and every state document
carries a checksum of its content, checked on every read, so a file damaged by hand, a
disk or a copy is one clear `StateDamaged` (which bear.lake.recovery repairs) instead of
a parse error deep in a run.
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

SCHEMA_VERSION = 1  # of manifests
CHECKPOINT_VERSION = 2  # 2: sealed (a checksum)
PLAN_VERSION = 4  # of the plan document; 2: it lists signup_days; 3: sealed; 4: its end (extensible lakes)
SECRET_KEYS = ("token",)
# What a state document must hold to be used (beyond JSON and its checksum), by kind.
REQUIRED = {
    "plan": ("schema_version", "fingerprint", "plan_fingerprint", "plan_config", "end", "chunks", "totals",
             "signup_days", "customers"),
    "checkpoint": ("schema_version", "plan_fingerprint", "dimensions_committed", "committed_chunks", "rows", "bytes",
                   "partitions", "id_high_water", "last_committed_date"),
    "summary": ("plan_fingerprint", "index", "partitions"),
    "journal": ("done",),
    "report": ("tables",),
}
VERSIONS = {"plan": PLAN_VERSION, "checkpoint": CHECKPOINT_VERSION}


class StateDamaged(Exception):
    """A run-state file that is not what bear wrote: truncated, emptied, garbled, edited, or of another version."""

    def __init__(self, rel: str, reason: str):
        super().__init__(f"{rel} is damaged ({reason})")


def sweep_temporaries(sink: Sink, dirs: list[str]) -> None:
    """Delete the temporaries killed writers of bear left in these folders (only names bear writes), before the
    folders are written again: no leftover outlives a rerun."""
    sink.delete(bear_files(sink.temporaries(dirs)))


def content_config(cfg: BearConfig) -> dict[str, Any]:
    """The part of the config that decides the lake's bytes (not how or where it is computed). run.end is not in
    it: no row depends on it, so a later end extends the same lake (the plan records how far it goes)."""
    return {
        "run": {"start": cfg.run.start, "seed": cfg.run.seed},
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


def shortening(display: str, ck: dict[str, Any], end: str) -> str | None:
    """The one line for a run.end before the last day the lake has committed (exit 2), else None. An end before
    the plan's but not before what is committed (a run stopped on its way to a mistyped end) is a new plan."""
    committed = ck["last_committed_date"]
    if committed is None or end >= committed:
        return None
    return (f"{display} holds this config through {committed}; run.end={end} is earlier: bear extends a lake "
            f"but never cuts it back. Use run.end={committed} or later, add run.restart=true to delete that "
            f"lake and start over (bear run only), or pick another sink location.")


def other_config(display: str, change: str) -> str:
    """The one line for a lake of another config (exit 2), naming what changed."""
    return (f"{display} holds a run of a different config (changed: {change}). Use the original settings, "
            f"add run.restart=true to delete that lake and start over (bear run only), or pick another sink "
            f"location.")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def seal(obj: dict[str, Any], indent: int | None = 2) -> bytes:
    """A state document as written: its JSON with `checksum`, the fingerprint of everything else in it."""
    return json_bytes({**obj, "checksum": fingerprint(obj)}, indent)


def unseal(rel: str, data: bytes, kind: str) -> dict[str, Any]:
    """The document in `data`, checked: JSON, its checksum, its version and the keys a `kind` needs."""
    if not data.strip():
        raise StateDamaged(rel, "empty")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise StateDamaged(rel, f"not JSON, truncated or garbled: {exc}") from None
    if not isinstance(doc, dict):
        raise StateDamaged(rel, "not a JSON object")
    checksum = doc.pop("checksum", None)
    if checksum is None:
        raise StateDamaged(rel, "no checksum: written by an earlier bear (plan v2, checkpoint v1) or by hand")
    if checksum != fingerprint(doc):
        raise StateDamaged(rel, "checksum mismatch: changed after bear wrote it")
    if kind in VERSIONS and doc.get("schema_version") != VERSIONS[kind]:
        raise StateDamaged(rel, f"schema_version {doc.get('schema_version')}, this bear reads {VERSIONS[kind]}")
    missing = [k for k in REQUIRED[kind] if k not in doc]
    if missing:
        raise StateDamaged(rel, f"{kind} without {', '.join(missing)}")
    return doc


def read_state(sink: Sink, rel: str, kind: str) -> dict[str, Any] | None:
    """A checked state document (None: there is none); StateDamaged if it is not what bear wrote."""
    if not sink.exists(rel):
        return None
    return unseal(rel, sink.read(rel), kind)


def write_state(sink: Sink, rel: str, obj: dict[str, Any], indent: int | None = 2, durable: bool = False) -> None:
    """Replace a state document whole; `durable`: on the disk before this returns (the checkpoint, the plan)."""
    sink.write(rel, seal(obj, indent), durable)


def json_bytes(obj: Any, indent: int | None = 2) -> bytes:
    """`indent=None` for documents written by the thousand (manifests, chunk summaries): encoded in C."""
    return json.dumps(obj, indent=indent, sort_keys=True).encode()


def plan_document(cfg: BearConfig, chunks: list[dict[str, Any]], signup_days: list[str],
                  customers: int, feed: dict[str, dict[str, dict[str, int]]] | None = None) -> dict[str, Any]:
    """The run's plan: how far it goes (`end`), its chunks with their ID blocks and row counts (by event day), the
    days that have customers (their signups make the customers table's partitions), how many customers signed up
    by the end, and per chunk the order feed's rows that are not one per ID (`feed`: `in_flight`, late orders of
    the last days, missing from the lake until an extension lands them; `redelivered`, copies delivered by the
    end), so readers know every partition and row count without generating (`lake_rows`). An extension rewrites it
    with the committed chunks as they were and the new ones after."""
    return {
        "schema_version": PLAN_VERSION,
        "generator_version": __version__,
        "fingerprint": fingerprint(content_config(cfg)),
        "plan_fingerprint": fingerprint(plan_config(cfg)),
        "plan_config": plan_config(cfg),
        "end": cfg.run.end,
        "config": redacted(cfg),
        "chunks": chunks,
        "totals": {k: sum(c["rows"][k] for c in chunks) for k in chunks[0]["rows"]} if chunks else {},
        "signup_days": signup_days,
        "customers": customers,
        "feed": feed or {},
        "created_at": now_iso(),
    }


def lake_rows(plan: dict[str, Any], catalog_size: int) -> int:
    """The rows a lake with this plan holds once complete: each planned row, less those in flight at the end, plus
    the re-delivered copies, and the customers and the catalog."""
    feed = [(kind, n) for chunk in plan["feed"].values() for kind, rows in chunk.items() for n in rows.values()]
    return (sum(plan["totals"].values()) + sum(n if kind == "redelivered" else -n for kind, n in feed)
            + plan["customers"] + catalog_size)


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
        **({} if stat.delivery is None else {"delivery": stat.delivery}),
        "table_schema": stat.shape.document(),  # the table's schema version and the added columns its files hold
        "created_at": now_iso(),
    }


def empty_checkpoint(plan: dict) -> dict[str, Any]:
    return {
        "schema_version": CHECKPOINT_VERSION,
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


def advance(ck: dict[str, Any], plan: dict[str, Any], index: int, partitions: list[dict[str, Any]]) -> None:
    """Move the checkpoint past job `index` (-1: the dimension tables) whose partitions (a summary's entries:
    table, rows, bytes) were committed. One rule for the commit and for rebuilding a checkpoint from the lake."""
    for p in partitions:
        ck["rows"][p["table"]] = ck["rows"].get(p["table"], 0) + p["rows"]
        ck["bytes"][p["table"]] = ck["bytes"].get(p["table"], 0) + p["bytes"]
        ck["partitions"] += 1
    if index < 0:
        ck["dimensions_committed"] = True
    else:
        chunk = plan["chunks"][index]
        ck["committed_chunks"] = index + 1
        ck["last_committed_date"] = chunk["end"]
        ck["id_high_water"] = {f: chunk["first_ids"][f] + chunk["ids"][f] - 1 for f in chunk["first_ids"]}
    ck["updated_at"] = now_iso()
