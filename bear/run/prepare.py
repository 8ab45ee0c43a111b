"""What the driver knows before any chunk runs: the model, the lookups and the skeleton walk.

The walk is the one pass that needs the whole history (each customer's visits carry from
chunk to chunk): it yields every chunk's exact row counts, its contiguous ID blocks and
its start state, so the chunks themselves can then run in any order, anywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bear.config.schema import BearConfig
from bear.core.calendar import day_to_date
from bear.gen.lookups import Lookups, build_lookups
from bear.gen.model import Model
from bear.gen.planner import ChunkWork, make_chunks, walk
from bear.lake.state import content_config, fingerprint, plan_document


class RunError(RuntimeError):
    """A run stopped for a reason the user can act on; `exit_code` is what the CLI returns."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Prepared:
    """Everything the driver knows before any chunk runs."""

    cfg: BearConfig
    model: Model
    lookups: Lookups
    works: list[ChunkWork]
    final_spend_c: np.ndarray
    plan: dict[str, Any]
    fp: str
    seconds: dict[str, float] = field(default_factory=dict)


def prepare(cfg: BearConfig) -> Prepared:
    """Lookups and the skeleton walk: chunks, exact counts, ID blocks and each chunk's start state."""
    t0 = time.perf_counter()
    model = Model.build(cfg)
    lookups = build_lookups(model)
    t1 = time.perf_counter()
    chunks = make_chunks(model.start_day, model.end_day, cfg.run.chunk_days)
    final: list = []
    works = list(walk(model, lookups.customers, lookups.products, chunks, final))
    signup_days = [day_to_date(d).isoformat() for d in np.unique(lookups.customers.signup_day).tolist()]
    plan = plan_document(cfg, [w.plan.record() for w in works], signup_days)
    t2 = time.perf_counter()
    return Prepared(cfg, model, lookups, works, final[0].spend_c, plan, fingerprint(content_config(cfg)),
                    {"lookups": t1 - t0, "plan": t2 - t1})
