"""Vectorised string building: zero-padded IDs, vocabulary picks and joins as Arrow arrays.

Strings are the expensive part of synthetic data; building them byte-wise in numpy and
handing Arrow the buffers keeps them off the per-row Python path.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """uint8 matrix [n, width] of the ASCII decimal digits of `values`, zero-padded."""
    v = values.astype(np.int64, copy=True)
    out = np.empty((len(v), width), dtype=np.uint8)
    for i in range(width - 1, -1, -1):
        out[:, i] = v % 10 + 48
        v //= 10
    return out


def _from_fixed(matrix: np.ndarray) -> pa.Array:
    """Equal-length byte rows -> Arrow utf8 array without a Python string per row."""
    n, w = matrix.shape
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)
    data = pa.py_buffer(np.ascontiguousarray(matrix))  # zero-copy: the buffer keeps the array alive
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), data])


def padded(prefix: str, values: np.ndarray, width: int = 8) -> pa.Array:
    """`PREFIX00000042` for each value; wider where a value needs more digits (never truncated)."""
    values = np.asarray(values, dtype=np.int64)
    if len(values) == 0:
        return pa.array([], pa.string())
    need = max(width, len(str(int(values.max()))))
    if need == width:
        head = np.frombuffer(prefix.encode(), dtype=np.uint8)
        return _from_fixed(np.hstack([np.broadcast_to(head, (len(values), len(head))), _digits(values, width)]))
    ndig = np.maximum(width, np.floor(np.log10(np.maximum(values, 1))).astype(np.int64) + 1)
    parts = np.empty(len(values), dtype=object)
    for w in np.unique(ndig):
        sel = np.flatnonzero(ndig == w)
        parts[sel] = padded(prefix, values[sel], int(w)).to_numpy(zero_copy_only=False)
    return pa.array(parts, pa.string())


def pick(vocab: list[str] | tuple[str, ...], idx: np.ndarray) -> pa.Array:
    """vocab[idx] as an Arrow string array (dictionary decode, no per-row Python)."""
    dictionary = pa.array(list(vocab), pa.string())
    return pc.take(dictionary, pa.array(np.asarray(idx, dtype=np.int32)))


def labels(vocab: list[str] | tuple[str, ...] | pa.Array, idx: np.ndarray, mask: np.ndarray | None = None
           ) -> pa.DictionaryArray:
    """vocab[idx] as a dictionary array (null where `mask`): no string is copied per row, and mess restyles
    the vocabulary instead of every row (bear.mess); the writer decodes them into plain strings."""
    dictionary = vocab if isinstance(vocab, pa.Array) else pa.array(list(vocab), pa.string())
    codes = pa.array(np.asarray(idx, dtype=np.int32), mask=mask if mask is not None and mask.any() else None)
    return pa.DictionaryArray.from_arrays(codes, dictionary)


def join(*parts: pa.Array | str, sep: str = "") -> pa.Array:
    """Element-wise concatenation of string arrays and literals."""
    cols = [pa.scalar(p, pa.string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*cols, sep)


def number(values: np.ndarray, width: int) -> pa.Array:
    """Zero-padded decimal strings of exactly `width` digits (values must fit)."""
    return _from_fixed(_digits(np.asarray(values), width))


_HEX_QUADS = np.frombuffer(b"".join(f"{i:04x}".encode() for i in range(1 << 16)), dtype=np.uint32)


def hexadecimal(prefix: str, values: np.ndarray) -> pa.Array:
    """`prefix` + the 16 lower-case hex digits of each int64: each big-endian 16-bit word looks up its four digits
    (a third faster than a lookup per byte; the table is 256 KiB)."""
    words = np.ascontiguousarray(values, dtype=">i8").view(">u2")
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    out = np.empty((len(values), len(head) + 16), dtype=np.uint8)
    out[:, :len(head)] = head
    out[:, len(head):] = _HEX_QUADS[words].view(np.uint8).reshape(-1, 16)
    return _from_fixed(out)
