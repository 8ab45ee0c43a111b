"""What generation hands to the lake: one table's rows from one job, and the mess ledger of those rows.

Plain containers in `core` so that `gen` produces them and `lake` writes them without either
knowing the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from bear.core.calendar import DAY_S

Ledger = dict[str, dict[str, np.ndarray]]  # column -> mess kind -> per-row mask of the rows it touched
COPY_BIT = 1 << 50  # set in a re-delivered copy's row key: its event_id differs from the first delivery's


@dataclass
class Rows:
    """One table's rows from one chunk: columns, event time and integer row key; where the feed delivers them late
    or twice (`bear.gen.delivery`), the day each lands on (its partition; default: its event day) and masks of
    the rows that are late and that are re-delivered copies."""

    cols: dict[str, pa.Array]
    event_s: np.ndarray
    key: np.ndarray
    related: dict | None = None
    land_day: np.ndarray | None = None
    delivery: dict[str, np.ndarray] | None = None

    def landing_day(self) -> np.ndarray:
        return self.event_s // DAY_S if self.land_day is None else self.land_day


def take_rows(rows: Rows, ledger: Ledger, idx: np.ndarray) -> tuple[Rows, Ledger]:
    """The rows at positions `idx` (and their ledger's masks)."""
    ta = pa.array(idx)
    related = None if rows.related is None else {k: v[idx] for k, v in rows.related.items()}
    return (Rows({n: a.take(ta) for n, a in rows.cols.items()}, rows.event_s[idx], rows.key[idx], related,
                 None if rows.land_day is None else rows.land_day[idx],
                 None if rows.delivery is None else {k: m[idx] for k, m in rows.delivery.items()}),
            {col: {kind: m[idx] for kind, m in kinds.items()} for col, kinds in ledger.items()})


def _plain(arrays: list[pa.Array]) -> pa.Array:
    """One array of `arrays`, which may be dictionary arrays of different dictionaries (mess styles per part)."""
    if len({a.type for a in arrays}) > 1 or any(pa.types.is_dictionary(a.type) for a in arrays):
        arrays = [a.dictionary_decode() if pa.types.is_dictionary(a.type) else a for a in arrays]
    return pa.concat_arrays(arrays)


def concat_rows(parts: list[tuple[Rows, Ledger]]) -> tuple[Rows, Ledger]:
    """Rows of one table from several generation windows, in (landing day, event time, key) order: the order a
    partition's rows have whichever windows they came from."""
    if len(parts) == 1 and parts[0][0].land_day is None:
        return parts[0]
    rows = [r for r, _ in parts]
    land = np.concatenate([r.landing_day() for r in rows])
    event_s, key = np.concatenate([r.event_s for r in rows]), np.concatenate([r.key for r in rows])
    kinds = sorted({k for r in rows for k in (r.delivery or {})})
    merged = Rows({n: _plain([r.cols[n] for r in rows]) for n in rows[0].cols}, event_s, key, None, land,
                  {k: np.concatenate([(r.delivery or {}).get(k, np.zeros(r.key.size, bool)) for r in rows])
                   for k in kinds})
    ledger = {col: {kind: np.concatenate([led[col][kind] for _, led in parts]) for kind in kinds_}
              for col, kinds_ in parts[0][1].items()}
    return take_rows(merged, ledger, np.lexsort((key, event_s, land)))
