"""Run state that cannot strand a run: read it checked, and rebuild it from what the lake proves.

The checkpoint is a cache of facts the lake already records: a job is committed exactly
when its chunk summary (written by the commit after every `_SUCCESS` marker) is intact and
every partition the plan gives the job has its marker. A damaged or missing checkpoint is
therefore rebuilt by walking the jobs in commit order and stopping at the first one the
lake does not prove. A damaged plan is a function of the config: a run recomputes it when
the lake's manifests (and checkpoint, if intact) were written by the same config.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from bear.lake.layout import CHECKPOINT, MANIFEST, PLAN, SUCCESS, job_partitions, summary_name
from bear.lake.sink import Sink
from bear.lake.state import StateDamaged, advance, empty_checkpoint, read_state

log = logging.getLogger(__name__)
MANIFEST_SAMPLE = 64  # manifests read to tell which config wrote a lake whose plan is damaged


def read_plan(sink: Sink) -> dict[str, Any] | None:
    """The lake's plan (None: no bear run there); StateDamaged when it is not what bear wrote."""
    return read_state(sink, PLAN, "plan")


def _proven(sink: Sink, plan: dict[str, Any], index: int, markers: set[str]) -> dict[str, Any] | None:
    """Job `index`'s summary if the lake proves the job committed, else None."""
    try:
        summary = read_state(sink, summary_name(index), "summary")
    except StateDamaged as exc:
        log.warning("%s: its job counts as not committed and is redone", exc)
        return None
    if summary is None or summary["plan_fingerprint"] != plan["plan_fingerprint"] or summary["index"] != index:
        return None
    folders = job_partitions(plan, index)
    listed = {f"{p['table']}/{p['partition']}" for p in summary["partitions"]}
    if listed != set(folders) or any(f"{f}/{SUCCESS}" not in markers for f in folders):
        return None
    return summary


def rebuild_checkpoint(sink: Sink, plan: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint the lake proves: jobs in commit order (dimensions, then chunks) up to the first that is not
    proven committed."""
    markers = {r for r in sink.find("") if r.endswith(f"/{SUCCESS}")}
    ck = empty_checkpoint(plan)
    for index in range(-1, len(plan["chunks"])):
        summary = _proven(sink, plan, index, markers)
        if summary is None:
            break
        advance(ck, plan, index, summary["partitions"])
    return ck


def _fits(ck: dict[str, Any], plan: dict[str, Any]) -> bool:
    """The checkpoint's committed chunks are chunks of `plan`: as many or fewer, ending where its last one ends. A
    lake's chunking is not in the fingerprint (an extension chunks its new days after the committed ones), so a
    plan recomputed from the config may cut the history differently from the checkpoint's."""
    done = ck["committed_chunks"]
    return done <= len(plan["chunks"]) and ck["last_committed_date"] == (plan["chunks"][done - 1]["end"] if done
                                                                          else None)


def load_checkpoint(sink: Sink, plan: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The checkpoint of `plan`'s run, checked, and a warning line when it had to be rebuilt from the lake
    (damaged, of another plan, or missing while markers exist). Nothing is written here."""
    try:
        ck = read_state(sink, CHECKPOINT, "checkpoint")
        problem = None if ck is None or (ck["plan_fingerprint"] == plan["plan_fingerprint"] and _fits(ck, plan)) \
            else f"{CHECKPOINT} belongs to another plan"
    except StateDamaged as exc:
        ck, problem = None, str(exc)
    if ck is not None and problem is None:
        return ck, None
    rebuilt = rebuild_checkpoint(sink, plan)
    if problem is None and not rebuilt["dimensions_committed"]:
        return rebuilt, None  # no checkpoint yet and nothing committed: a run that stopped before its first commit
    return rebuilt, (f"{problem or f'{CHECKPOINT} is missing'}; rebuilt from the lake's _SUCCESS markers and chunk "
                     f"summaries: dimensions {'committed' if rebuilt['dimensions_committed'] else 'pending'}, "
                     f"{rebuilt['committed_chunks']}/{len(plan['chunks'])} chunks committed")


def plan_recoverable(sink: Sink, fp: str, plan_fp: str) -> bool:
    """Whether a damaged plan may be recomputed from a config with content fingerprint `fp` and chunking
    `plan_fp`: the lake's manifests (a spread sample) were written by that content, and its checkpoint, if
    intact, by that chunking."""
    manifests = [r for r in sink.find("") if r.endswith(f"/{MANIFEST}")]
    step = max(1, len(manifests) // MANIFEST_SAMPLE)
    seen = set()
    for rel in manifests[::step]:
        try:
            seen.add(json.loads(sink.read(rel))["config_fingerprint"])
        except (ValueError, KeyError, TypeError):
            continue  # a damaged manifest proves nothing (its chunk is redone or verify names it)
    try:
        ck = read_state(sink, CHECKPOINT, "checkpoint")
    except StateDamaged:
        ck = None
    return not (seen - {fp}) and (ck is None or ck["plan_fingerprint"] == plan_fp)
