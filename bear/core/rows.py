"""What generation hands to the lake: one table's rows from one job, and the mess ledger of those rows.

Plain containers in `core` so that `gen` produces them and `lake` writes them without either
knowing the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

Ledger = dict[str, dict[str, np.ndarray]]  # column -> mess kind -> per-row mask of the rows it touched


@dataclass
class Rows:
    """One table's rows from one chunk: columns, event time (partition) and integer row key."""

    cols: dict[str, pa.Array]
    event_s: np.ndarray
    key: np.ndarray
    related: dict | None = None
