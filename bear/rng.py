"""Keyed, counter-based random numbers.

Every draw is a pure function of (seed, stream name, keys): a splitmix64 hash of the
keys, vectorised over numpy arrays. A customer's visit, a cart line or a return therefore
draws the same numbers whichever chunk, worker, retry or resume computes it, and no draw
ever depends on how many rows came before it in some shared sequence (DESIGN §3).
"""

from __future__ import annotations

import hashlib
from functools import cache

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
_TO_UNIT = 1.0 / float(1 << 53)


@cache
def _stream_id(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, in place on a private uint64 array."""
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    z ^= z >> _S31
    return z


class Keyed:
    """Random draws addressed by what they describe instead of by position."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def bits(self, stream: str, *keys: np.ndarray | int) -> np.ndarray:
        base = np.uint64((self.seed * 0x9E3779B97F4A7C15 + _stream_id(stream)) & 0xFFFFFFFFFFFFFFFF)
        shape = np.broadcast_shapes(*(np.shape(k) for k in keys)) if keys else ()
        z = np.full(shape, base, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in keys:
                z += np.asarray(k).astype(np.uint64, copy=False)
                z += _GOLDEN
                _mix(z)
        return z

    def uniform(self, stream: str, *keys: np.ndarray | int) -> np.ndarray:
        """Floats in [0, 1)."""
        z = self.bits(stream, *keys)
        z >>= _S11
        u = z.astype(np.float64)
        u *= _TO_UNIT
        return u

    def integers(self, stream: str, low: np.ndarray | int, high: np.ndarray | int, *keys) -> np.ndarray:
        """Integers in [low, high], both inclusive; bounds may be per-row arrays."""
        u = self.uniform(stream, *keys)
        span = np.asarray(high, dtype=np.int64) - np.asarray(low, dtype=np.int64) + 1
        return np.asarray(low, dtype=np.int64) + (u * span).astype(np.int64)

    def between(self, stream: str, low, high, *keys) -> np.ndarray:
        """Floats in [low, high)."""
        u = self.uniform(stream, *keys)
        return np.asarray(low) + u * (np.asarray(high) - np.asarray(low))

    def normal(self, stream: str, *keys) -> np.ndarray:
        """Standard normal by Box-Muller over two keyed uniforms."""
        u1 = self.uniform(stream + "/n1", *keys)
        u2 = self.uniform(stream + "/n2", *keys)
        return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)

    def choice(self, stream: str, cum: np.ndarray, *keys, rows: np.ndarray | None = None) -> np.ndarray:
        """Index drawn from cumulative shares `cum` (1-D), or per row from `cum[rows]` (2-D)."""
        u = self.uniform(stream, *keys)
        if rows is None:
            return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
        table = cum[rows]
        return np.minimum((u[:, None] >= table).sum(axis=1), table.shape[1] - 1)

    def poisson(self, stream: str, lam: np.ndarray, *keys) -> np.ndarray:
        """Poisson counts by inverse CDF; `lam` per row, small (visit counts)."""
        u = self.uniform(stream, *keys)
        lam = np.broadcast_to(np.asarray(lam, dtype=np.float64), u.shape)
        p = np.exp(-lam)
        cdf = p.copy()
        k = np.zeros(u.shape, dtype=np.int64)
        todo = np.flatnonzero(u >= cdf)
        step = 0
        while todo.size and step < 200:
            step += 1
            p[todo] *= lam[todo] / step
            cdf[todo] += p[todo]
            k[todo] = step
            todo = todo[u[todo] >= cdf[todo]]
        return k


def cumulative(shares) -> np.ndarray:
    """Cumulative shares as float64, last forced to exactly 1 so every uniform maps."""
    cum = np.cumsum(np.asarray(list(shares), dtype=np.float64), axis=-1)
    cum[..., -1] = 1.0
    return cum
