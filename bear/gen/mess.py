"""Deliberate, deterministic mess, with a ledger of every value it touched.

Draws are keyed by (table, column, row key), so the same row gets the same mess in any
chunking. Keys and partition columns are never touched and no row is dropped. The
ledger (column -> kind -> per-row mask) becomes the per-partition mess counts in each
manifest: ground truth for data-quality exercises.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bear.core.calendar import DAY_S
from bear.core.rows import Ledger
from bear.core.schemas import ADVANCED_MESS, CASINGS, FORMAT_COLUMNS, NULL_COLUMNS, PADDING, STYLE_COLUMNS
from bear.core.vocab import RETURN_REASONS
from bear.gen.model import Model

# Made once: building a string scalar probes optional imports on every call.
_SPACES = [pa.scalar(" " * k, pa.string()) for k in range(3)]
_S = {s: pa.scalar(s, pa.string()) for s in ("(", ") ", "-", ".", "1")}


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, _SPACES[0])


def _phone_parts(v: pa.Array) -> list[pa.Array]:
    """Area code, exchange and line of `+1-AAA-EEE-LLLL` phone numbers."""
    return [pc.utf8_slice_codeunits(v, a, b) for a, b in ((3, 6), (7, 10), (11, 15))]


def _phone_local(v: pa.Array) -> pa.Array:
    area, ex, line = _phone_parts(v)
    return _join(_S["("], area, _S[") "], ex, _S["-"], line)


def _phone_dotted(v: pa.Array) -> pa.Array:
    area, ex, line = _phone_parts(v)
    return _join(area, _S["."], ex, _S["."], line)


# Format mess: variant spellings of the same value, one of each column's list per hit value. Emails stay
# `like '%@%.%'` and equal the clean value after trim and lower-casing; phone numbers keep their digits (less
# the country code where it is dropped).
FORMATS = {
    "email": (
        pc.utf8_upper,  # FIRST.LAST00000123@GMAIL.COM
        pc.utf8_title,  # First.Last00000123@Gmail.Com
        lambda v: _join(_SPACES[1], v),  # " first.last00000123@gmail.com"
        lambda v: _join(v, _SPACES[1]),  # "first.last00000123@gmail.com "
    ),
    "phone_number": (
        _phone_local,  # (AAA) EEE-LLLL
        lambda v: pc.replace_substring(v, "-", " "),  # +1 AAA EEE LLLL
        lambda v: _join(_S["1"], *_phone_parts(v)),  # 1AAAEEELLLL
        _phone_dotted,  # AAA.EEE.LLLL
    ),
}


_VOCABULARIES: dict[tuple, tuple[pa.Array, np.ndarray]] = {}  # a process's styled vocabularies, by content
_KEPT = 256  # vocabularies kept at most (a plain column's is its window's distinct values, in their order)


def _content(values: pa.Array) -> tuple:
    """What identifies an array's values: its type, offset, length and a digest of its buffers."""
    digest = hashlib.blake2b()
    for buffer in values.buffers():
        if buffer is not None:
            digest.update(buffer)
    return str(values.type), values.offset, len(values), digest.digest()


def _styled_vocabulary(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Every styled variant of `values`: variant (pad, case) = PADDING[pad - 1] around CASINGS[case - 1] of
    the values (0 = untouched), at offset (pad * (len(CASINGS) + 1) + case) * len(values); and whether each
    casing changes each value ([case - 1, value]): lower-casing "open" is no mess and is not counted.

    Made once per vocabulary and process (the catalog's 3,000 product names are styled for every window of
    every chunk otherwise); found again by a digest of the values, so equal vocabularies share it."""
    key = _content(values)
    if key not in _VOCABULARIES:
        if len(_VOCABULARIES) >= _KEPT:
            _VOCABULARIES.clear()
        _VOCABULARIES[key] = _style(values)
    return _VOCABULARIES[key]


def _style(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    cased = [values, *(fn(values) for fn in CASINGS)]
    variants = [pc.binary_join_element_wise(_SPACES[before], v, _SPACES[after], _SPACES[0])
                for before, after in ((0, 0), *PADDING) for v in cased]
    differs = np.stack([pc.fill_null(pc.not_equal(v, values), False).to_numpy(zero_copy_only=False)
                        for v in cased[1:]])
    return pa.concat_arrays(variants), differs


def _pick(u: np.ndarray, rate: float, k: int) -> np.ndarray:
    """0 where u >= rate, else one of 1..k: below `rate`, u / rate is uniform again, so one draw decides both
    whether a value is hit and how."""
    hit = u < rate
    return np.where(hit, np.minimum((u / max(rate, 1e-300) * k).astype(np.int64), k - 1) + 1, 0)


def _codes(arr: pa.DictionaryArray) -> tuple[np.ndarray, np.ndarray | None]:
    """A dictionary array's codes (0 under nulls) and its null mask (None without nulls)."""
    if not arr.null_count:
        return arr.indices.to_numpy(), None
    return (pc.fill_null(arr.indices, 0).to_numpy(zero_copy_only=False),
            arr.is_null().to_numpy(zero_copy_only=False))


def _recode(codes: np.ndarray, dictionary: pa.Array, null: np.ndarray | None) -> pa.DictionaryArray:
    mask = null if null is not None and null.any() else None
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32, copy=False), mask=mask), dictionary)


def _as_dictionary(arr: pa.Array) -> pa.DictionaryArray:
    return arr if pa.types.is_dictionary(arr.type) else arr.dictionary_encode()


def apply_mess(model: Model, table: str, cols: dict[str, pa.Array], key: np.ndarray,
               event_s: np.ndarray, related: dict | None = None) -> Ledger:
    """Mess `cols` in place; returns what was done. `related` carries return-item categories for reasons.

    Text columns are (or become) dictionary arrays: a styled value is a code pointing at a
    styled copy of the vocabulary, so mess costs a few integer operations per row.
    """
    ledger: Ledger = {}
    if not model.mess_on:
        return ledger
    rng = model.rng
    if model.advanced_mess and table == "orders":
        ledger["total_items"] = {ADVANCED_MESS[table]["total_items"]: _spike(model, cols, event_s, key)}
    if model.advanced_mess and table == "returns" and related is not None:
        ledger["reason"] = {ADVANCED_MESS[table]["reason"]: _redraw_reasons(model, cols, key, related)}
    for col in STYLE_COLUMNS.get(table, ()):
        # whitespace and casing are independent kinds, each hitting style_rate of the values
        pad = _pick(rng.uniform(f"mess/whitespace/{table}/{col}", key), model.style_rate, len(PADDING))
        case = _pick(rng.uniform(f"mess/casing/{table}/{col}", key), model.style_rate, len(CASINGS))
        padded, cased = pad > 0, case > 0
        arr = _as_dictionary(cols[col])
        codes, null = _codes(arr)
        vocabulary, differs = _styled_vocabulary(arr.dictionary)
        variant = pad * (len(CASINGS) + 1) + case
        cols[col] = _recode(codes + variant * len(arr.dictionary), vocabulary, null)
        valid = np.ones(len(codes), dtype=bool) if null is None else ~null
        ledger.setdefault(col, {}).update(whitespace=padded & valid,
                                          casing=cased & valid & differs[np.maximum(case - 1, 0), codes])
    for col in NULL_COLUMNS.get(table, ()):
        hit = rng.uniform(f"mess/null/{table}/{col}", key) < model.null_rate
        arr = cols[col]
        if pa.types.is_dictionary(arr.type):
            codes, null = _codes(arr)
            cols[col] = _recode(codes, arr.dictionary, hit if null is None else hit | null)
        else:
            cols[col] = pc.if_else(pa.array(hit), pa.nulls(len(hit), arr.type), arr)
        ledger.setdefault(col, {})["null"] = hit
    if model.format_rate > 0:
        for col in FORMAT_COLUMNS.get(table, ()):
            ledger.setdefault(col, {})["format"] = _format(model, table, col, cols, key)
    return ledger


def _format(model: Model, table: str, col: str, cols: dict[str, pa.Array], key: np.ndarray) -> np.ndarray:
    """A share of the values spelled in a variant format; only the hit values' variants are made.

    One keyed draw decides whether a value is hit and which variant it gets; a value the variant leaves as it
    was (or a null) is not counted."""
    arr = cols[col]
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    variants = FORMATS[col]
    pick = _pick(model.rng.uniform(f"mess/format/{table}/{col}", key), model.format_rate, len(variants))
    rows = np.flatnonzero(pick)
    changed = np.zeros(len(pick), dtype=bool)
    if not len(rows):
        return changed
    clean = arr.take(pa.array(rows))
    new = pc.choose(pa.array(pick[rows] - 1, pa.int8()), *(fn(clean) for fn in variants))
    changed[rows] = pc.fill_null(pc.not_equal(new, clean), False).to_numpy(zero_copy_only=False)
    cols[col] = pc.replace_with_mask(arr, pa.array(pick > 0), new)
    return changed


def _spike(model: Model, cols: dict[str, pa.Array], event_s: np.ndarray, key: np.ndarray) -> np.ndarray:
    """One day a month, every order's total_items is multiplied (a broken upstream counter)."""
    day = event_s // DAY_S
    month = day.astype("datetime64[D]").astype("datetime64[M]")
    month_i = month.astype(np.int64)
    first = month.astype("datetime64[D]").astype(np.int64)
    length = (month + 1).astype("datetime64[D]").astype(np.int64) - first
    spike_day = first + (model.rng.uniform("mess/spike_day", month_i) * length).astype(np.int64)
    hit = day == spike_day
    lo, hi = model.spike_factor
    factor = model.rng.integers("mess/spike_factor", lo, hi, month_i)
    items = cols["total_items"].to_numpy(zero_copy_only=False)
    cols["total_items"] = pa.array(np.where(hit, items * factor, items).astype(np.int32))
    return hit


def _redraw_reasons(model: Model, cols: dict[str, pa.Array], key: np.ndarray, related: dict) -> np.ndarray:
    """Some return reasons are re-drawn, biased toward what the first returned item's category suggests."""
    rng = model.rng
    hit = rng.uniform("mess/redraw", key) < model.style_rate
    biased = rng.uniform("mess/redraw_bias", key) < model.reason_bias
    random_reason = rng.integers("mess/redraw_reason", 0, len(RETURN_REASONS) - 1, key)
    new = np.where(biased, model.category_reason[related["first_category"]], random_reason)
    arr = cols["reason"]
    if arr.dictionary.to_pylist() != list(RETURN_REASONS):
        raise ValueError("returns.reason must be coded over RETURN_REASONS (bear.text.labels)")
    codes, null = _codes(arr)
    cols["reason"] = _recode(np.where(hit, new, codes), arr.dictionary, null)
    return hit
