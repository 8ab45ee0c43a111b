"""Money as exact cents: int64 in generation, decimal128(12, 2) in the lake.

Totals must equal the sum of their lines to the cent, which floats cannot
promise; integer cents add exactly and decimals carry them into Parquet unchanged.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

MONEY = pa.decimal128(12, 2)


def decimal_array(cents: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """int64 cents -> decimal128(12, 2) by laying out the 128-bit unscaled values directly."""
    c = np.asarray(cents, dtype=np.int64)
    words = np.empty((len(c), 2), dtype=np.int64)
    words[:, 0] = c
    words[:, 1] = c >> 63  # sign extension of the high word
    validity = None
    if mask is not None and mask.any():
        validity = pa.array(~mask).buffers()[1]
    return pa.Array.from_buffers(MONEY, len(c), [validity, pa.py_buffer(words)])


def cents_of(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """decimal128 money -> int64 cents (for checks that must add exactly)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    words = np.frombuffer(arr.buffers()[1], dtype=np.int64)[2 * arr.offset: 2 * (arr.offset + len(arr))]
    return words[0::2].copy()
