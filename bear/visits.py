"""Per-customer visit histories, advanced window by window.

Each customer's visits form a renewal process in activity time: spells of Poisson-many
repeat visits separated by log-normal gaps (per channel x tier), a break between spells,
and now and then a 200-400 day lapse after which the customer reactivates. Every draw is
keyed by (customer, visit index), and the state carried from one window to the next is
exact, so any split of the calendar into windows yields the same visits.

Whether a visit converts is decided here too, because the first-purchase boost depends
on whether the customer has bought before, which is part of the carried state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from bear.lookups import Customers
from bear.model import DAY_S, Model


@dataclass
class VisitState:
    """Where every customer stands at a window boundary."""

    next_a: np.ndarray  # activity time of the next visit (inf: never)
    vidx: np.ndarray  # index of the next visit
    spell: np.ndarray  # repeat visits left in the current spell after the next one
    react: np.ndarray  # the next visit ends a reactivation lapse
    purchased: np.ndarray  # has bought before
    spend_c: np.ndarray  # cumulative net spend, cents

    def copy(self) -> VisitState:
        return replace(self, **{k: v.copy() for k, v in self.__dict__.items()})


@dataclass
class Visits:
    """Visits of one window, in no particular order (callers sort canonically)."""

    cust: np.ndarray
    vidx: np.ndarray
    seconds: np.ndarray
    react: np.ndarray
    converted: np.ndarray


def initial_state(model: Model, cust: Customers) -> VisitState:
    rng = model.rng
    n = len(cust)
    i = np.arange(n, dtype=np.int64)
    lo, hi = model.cfg.generator.visits.first_cart_days
    first_s = (cust.signup_day.astype(np.int64) + rng.integers("visit/first_day", lo, hi, i)) * DAY_S
    guest_s = model.signup_start_day * DAY_S + (
        rng.uniform("visit/guest_first", i) * (model.signup_end_day - model.signup_start_day + 1) * DAY_S
    ).astype(np.int64)
    secs = np.where(cust.is_guest, guest_s, first_s + rng.integers("visit/first_tod", 0, DAY_S - 1, i))
    lam = model.repeat[cust.channel, cust.tier] * cust.shock
    return VisitState(
        next_a=model.activity_of(secs.astype(np.float64)),
        vidx=np.zeros(n, dtype=np.int32),
        spell=model.rng.poisson("visit/spell", lam, i, -1).astype(np.int32),
        react=np.zeros(n, dtype=bool),
        purchased=np.zeros(n, dtype=bool),
        spend_c=np.zeros(n, dtype=np.int64),
    )


def _lognormal_days(model: Model, stream: str, median, sigma, lo, hi, c, v) -> np.ndarray:
    z = model.rng.normal(stream, c, v)
    return np.clip(median * np.exp(sigma * z), lo, hi)


def advance(model: Model, cust: Customers, state: VisitState, until_day: int) -> Visits:
    """Consume every visit up to the end of `until_day`, mutating `state`; returns those visits."""
    rng = model.rng
    cfg = model.cfg.generator
    limit = model.activity_at_day_end(until_day)
    out_c, out_v, out_a, out_r, out_x = [], [], [], [], []
    conv_p = cfg.carts.conversion
    cand = np.flatnonzero(state.next_a < limit)
    while cand.size:
        c = cand
        v = state.vidx[c].astype(np.int64)
        a = state.next_a[c]
        ch, tier = cust.channel[c], cust.tier[c]
        bought = state.purchased[c]
        p = np.minimum(conv_p * np.where(bought, 1.0, model.boost[ch]), 1.0)
        conv = rng.uniform("visit/convert", c, v) < p
        state.purchased[c] = bought | conv
        out_c.append(c)
        out_v.append(v)
        out_a.append(a)
        out_r.append(state.react[c])
        out_x.append(conv)

        gap = np.empty(c.size)
        in_spell = state.spell[c] > 0
        s = np.flatnonzero(in_spell)
        if s.size:
            lo, hi = model.gap_lo[ch[s], tier[s]], model.gap_hi[ch[s], tier[s]]
            gap[s] = _lognormal_days(model, "visit/gap", np.sqrt(lo * hi), model.gap_sigma[ch[s], tier[s]],
                                     lo, hi, c[s], v[s])
        e = np.flatnonzero(~in_spell)
        lapse = np.zeros(c.size, dtype=bool)
        if e.size:
            ce, ve = c[e], v[e]
            lapse[e] = rng.uniform("visit/reactivate", ce, ve) < cfg.visits.reactivation_share
            lo, hi = cfg.visits.reactivation_days
            long_gap = rng.between("visit/lapse", lo, hi, ce, ve)
            blo, bhi = model.break_lo, model.break_hi
            brk = _lognormal_days(model, "visit/break", np.sqrt(blo * bhi), cfg.visits.break_sigma, blo, bhi, ce, ve)
            gap[e] = np.where(lapse[e], long_gap, brk)
            lam = model.repeat[ch[e], tier[e]] * cust.shock[ce]
            state.spell[ce] = rng.poisson("visit/spell", lam, ce, ve)
        state.spell[c[s]] -= 1
        state.react[c] = lapse
        state.next_a[c] = a + gap
        state.vidx[c] += 1
        cand = c[state.next_a[c] < limit]
    if not out_c:
        empty = np.array([], dtype=np.int64)
        return Visits(empty, empty, empty, np.array([], bool), np.array([], bool))
    a = np.concatenate(out_a)
    return Visits(
        cust=np.concatenate(out_c).astype(np.int64),
        vidx=np.concatenate(out_v),
        seconds=model.seconds_of(a),
        react=np.concatenate(out_r),
        converted=np.concatenate(out_x),
    )
