"""What the audit's passes share: the sink, the config, the findings, the listing and the dimensions.

One `AuditState` is made per audit and handed to every pass, so each pass says what it reads
and writes instead of reaching into one big object. Day tasks on the thread pool only read it
(the listing and the dimensions are set by the driver before the day passes start); each task
tallies into its own `Findings`, which the driver merges into `found`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bear.config.schema import BearConfig
from bear.core.schemas import BASE_SHAPE, SchemaChanges, compile_changes, shape_on
from bear.lake.layout import day_partition
from bear.lake.sink import Sink
from bear.verify.checks import id_numbers
from bear.verify.feed import Feed
from bear.verify.findings import Findings
from bear.verify.partition import check_partition
from bear.verify.read import PartRead, empty_table, partition_day, read_partition

CUSTOMER_COLUMNS = ("customer_id", "signup_date", "initial_loyalty_tier")  # what the passes resolve customers for


@dataclass
class AuditState:
    """The lake under audit and what the driver has learned of it so far."""

    sink: Sink
    cfg: BearConfig
    fp: str  # the config's content fingerprint, which every manifest must carry
    found: Findings = field(default_factory=Findings)
    listing: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)  # (table, partition): file names
    customers: pa.Table = field(default_factory=lambda: empty_table("customers").select(list(CUSTOMER_COLUMNS)))
    customer_row: np.ndarray = field(default_factory=lambda: np.full(1, -1, dtype=np.int64))  # row by ID number
    products: pa.Table = field(default_factory=lambda: empty_table("product_catalog"))
    changes: SchemaChanges = field(init=False)  # the config's schema changes: which columns a partition holds
    feed: Feed = field(init=False)  # the order feed's tables, gathered by event day

    def __post_init__(self) -> None:
        self.changes = compile_changes(self.cfg.generator.schema_changes)
        self.feed = Feed(self.read, self.full_rows, self.cfg.mess.max_lag)

    def read(self, table: str, partition: str) -> PartRead | None:
        names = self.listing.get((table, partition))
        if names is None:
            return None
        shape = shape_on(self.changes, table, partition_day(partition)) if table in self.changes else BASE_SHAPE
        return read_partition(self.sink, table, partition, names, shape)

    def full_rows(self, table: str, day: int) -> pa.Table | None:
        """Every column of a daily partition's rows (None if it has no readable file)."""
        part = f"ingest_dt={day_partition(day)}"
        names = sorted(n for n in self.listing.get((table, part), ()) if n.endswith(".parquet"))
        try:
            tables = [pq.read_table(pa.BufferReader(self.sink.read(f"{table}/{part}/{n}"))) for n in names]
        except (OSError, pa.ArrowException):
            return None
        return pa.concat_tables(tables, promote_options="default") if tables else None

    def day_tables(self, tables: tuple[str, ...], day: int, found: Findings) -> tuple[dict, dict]:
        """A day's partitions of `tables`, each checked on its own, and their data (empty where absent); the order
        feed's tables (`Feed`) hold the rows ordered that day, wherever the feed delivered them."""
        part = f"ingest_dt={day_partition(day)}"
        reads = {name: self.read(name, part) for name in tables}
        for pr in reads.values():
            if pr is not None:
                check_partition(pr, self.fp, self.cfg.mess.level, found)
        t = {name: pr.table_data() if pr is not None else empty_table(name) for name, pr in reads.items()}
        return self.feed.gather(t, reads, day, found), reads

    def customers_of(self, *columns: pa.ChunkedArray) -> pa.Table:
        """The customers these columns refer to, found by ID number: hashing every customer ID for every day
        would cost more than the day's other checks. A reference that matches none of them (or only by
        number) still fails to resolve against this subset."""
        nums = np.unique(np.concatenate([id_numbers(c) for c in columns]))
        nums = nums[(nums >= 0) & (nums < self.customer_row.size)]
        rows = self.customer_row[nums]
        return self.customers.take(pa.array(rows[rows >= 0]))
