"""A whole run's tables in memory: the jobs the backfill runs, without files.

For tests, notebooks and small explorations. The same jobs' rows go through the same ordered
commit as the backfill's, on the in-process executor; the "commit" appends each job's tables.
Tables in memory have no partitions, so every row is there once: the order feed's late and
repeated deliveries (`bear.gen.delivery`) exist only in the lake.
"""

from __future__ import annotations

import pyarrow as pa

from bear.config.schema import BearConfig
from bear.core.rows import Ledger
from bear.core.schemas import TABLES
from bear.run.executors import InProcessExecutor, Job, commit_in_order
from bear.run.jobs import InMemory, chunk_in_memory_job, dimensions_in_memory_job
from bear.run.prepare import prepare, set_up


def generate(cfg: BearConfig, mess: bool = True) -> tuple[dict[str, pa.Table], dict[str, list[Ledger]]]:
    """Every table of the run (chunked as configured) and the mess ledgers per chunk (none with mess=False)."""
    executor = InProcessExecutor()
    p = prepare(set_up(cfg), executor)
    parts: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
    ledgers: dict[str, list[Ledger]] = {t: [] for t in TABLES}

    def collect(result: InMemory) -> None:
        for name, (table, ledger) in result.items():
            parts[name].append(table)
            if mess:
                ledgers[name].append(ledger)

    jobs: list[Job] = [(pl.chunk.name, lambda k=k: executor.submit(chunk_in_memory_job, cfg, p.lookups, p.fp, mess,
                                                                   p.plans[k], *p.chunk_args(k)))
                       for k, pl in enumerate(p.plans)]
    jobs.append(("dimension tables", lambda: executor.submit(dimensions_in_memory_job, cfg, p.lookups, p.fp, mess)))
    commit_in_order(executor, jobs, collect, limit=1)
    return {t: pa.concat_tables(v) for t, v in parts.items()}, ledgers
