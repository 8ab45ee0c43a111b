"""Keyed, counter-based random numbers.

Every draw is a pure function of (seed, stream name, keys): a splitmix64 hash of the
keys, vectorised over numpy arrays. A customer's visit, a cart line or a return therefore
draws the same numbers whichever chunk, worker, retry or resume computes it, and no draw
ever depends on how many rows came before it in some shared sequence (docs/architecture.md, "Determinism").

Speed matters here (a chunk draws tens of millions of numbers), so the hash works in
place on uint64 arrays, floats are made by bit tricks instead of int-to-float conversion
(which numpy does not vectorise), and an entity drawn from many times (a visit, a cart
line) is hashed once into a `Key`, after which each stream costs a single mix.
"""

from __future__ import annotations

import hashlib
from functools import cache

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S12, _S27, _S30, _S31, _S32 = (np.uint64(s) for s in (12, 27, 30, 31, 32))
_ONE = np.uint64(0x3FF0000000000000)  # exponent bits of 1.0: 52 random mantissa bits give [1, 2)


@cache
def _stream_id(name: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little"))


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, in place on a private uint64 array (one scratch array)."""
    t = z >> _S30
    z ^= t
    z *= _M1
    np.right_shift(z, _S27, out=t)
    z ^= t
    z *= _M2
    np.right_shift(z, _S31, out=t)
    z ^= t
    return z


def _unit(z: np.ndarray) -> np.ndarray:
    """uint64 hashes -> floats in [0, 1), in place (the top 52 bits become the mantissa)."""
    z >>= _S12
    z |= _ONE
    u = z.view(np.float64)
    u -= 1.0
    return u


class Key:
    """The hashed identity of a batch of entities (seed included), e.g. visits or cart lines.

    Draws from a Key cost one mix per stream instead of one per key component, and
    indexing a Key selects entities without rehashing.
    """

    __slots__ = ("h",)

    def __init__(self, h: np.ndarray):
        self.h = h

    def __getitem__(self, idx) -> Key:
        return Key(self.h[idx])

    def __len__(self) -> int:
        return len(self.h)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.h.shape


def _as_u64(k: np.ndarray | int) -> np.ndarray:
    """Key values as uint64, without a copy for int64 arrays (a view reinterprets the same two's-complement bits)."""
    k = np.asarray(k)
    return k.view(np.uint64) if k.dtype == np.int64 else k.astype(np.uint64)


def _chain(z: np.ndarray, keys) -> np.ndarray:
    with np.errstate(over="ignore"):
        for k in keys:
            z += _as_u64(k)
            z += _GOLDEN
            _mix(z)
    return z


class Keyed:
    """Random draws addressed by what they describe instead of by position."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._base = np.uint64((self.seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)

    def key(self, *keys: np.ndarray | int | Key) -> Key:
        """Hash entity identities once, e.g. `key(customer, visit)`, or `key(visit_key, line)` for children."""
        if keys and isinstance(keys[0], Key):
            z = keys[0].h.copy()
            keys = keys[1:]
        else:
            z = np.full(np.broadcast_shapes(*(np.shape(k) for k in keys)) if keys else (), self._base, np.uint64)
        return Key(_chain(z, keys))

    def bits(self, stream: str, *keys: np.ndarray | int | Key) -> np.ndarray:
        """64 random bits per row, a pure function of (seed, stream, keys)."""
        sid = _stream_id(stream)
        if keys and isinstance(keys[0], Key):
            with np.errstate(over="ignore"):
                z = keys[0].h + sid
                _mix(z)
            return _chain(z, keys[1:])
        shape = np.broadcast_shapes(*(np.shape(k) for k in keys)) if keys else ()
        with np.errstate(over="ignore"):
            z = np.full(shape, self._base + sid, dtype=np.uint64)
        return _chain(z, keys)

    def uniform(self, stream: str, *keys) -> np.ndarray:
        """Floats in [0, 1)."""
        return _unit(self.bits(stream, *keys))

    def integers(self, stream: str, low: np.ndarray | int, high: np.ndarray | int, *keys) -> np.ndarray:
        """Integers in [low, high], both inclusive; bounds may be per-row arrays (spans below 2**32)."""
        z = self.bits(stream, *keys)
        low = np.asarray(low, dtype=np.int64)
        span = (np.asarray(high, dtype=np.int64) - low + 1).astype(np.uint64)
        z >>= _S32
        z *= span  # multiply-shift: floor(u32 * span / 2**32), no float conversion
        z >>= _S32
        return low + z.view(np.int64)

    def between(self, stream: str, low, high, *keys) -> np.ndarray:
        """Floats in [low, high)."""
        u = self.uniform(stream, *keys)
        return np.asarray(low) + u * (np.asarray(high) - np.asarray(low))

    def normal(self, stream: str, *keys) -> np.ndarray:
        """Standard normal by Box-Muller over the two 32-bit halves of one keyed hash (floats by bit tricks)."""
        z = self.bits(stream, *keys)
        lo = z << _S32  # the low half, moved up to become the second uniform's mantissa
        z >>= _S32
        z <<= _S32  # the high half alone
        u1 = _unit(z)  # 1 - u1 lies in (0, 1], so the log is finite
        u2 = _unit(lo)
        np.subtract(1.0, u1, out=u1)
        np.log(u1, out=u1)
        u1 *= -2.0
        np.sqrt(u1, out=u1)
        u2 *= 2.0 * np.pi
        u1 *= np.cos(u2.astype(np.float32))  # float32 cos is vectorised (float64 is not): ~15x faster, 1e-7 off
        return u1

    def choice(self, stream: str, cum: np.ndarray, *keys, rows: np.ndarray | None = None) -> np.ndarray:
        """Index drawn from cumulative shares `cum` (1-D), or per row from `cum[rows]` (2-D)."""
        u = self.uniform(stream, *keys)
        out = np.zeros(u.shape, dtype=np.int64)
        # counting thresholds passed beats searchsorted for the handful of options bear draws from
        if rows is None:
            for threshold in cum[:-1]:
                out += u >= threshold
        else:
            for j in range(cum.shape[1] - 1):
                out += u >= cum[rows, j]
        return out

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
