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

from dataclasses import dataclass

import numpy as np

from bear.core.calendar import DAY_S
from bear.core.columns import Columns
from bear.gen.lookups import Customers
from bear.gen.model import Model
from bear.gen.rng import Key


@dataclass
class Habits:
    """Each customer's constants of the visit process, looked up once per visit instead of derived."""

    conv_new: np.ndarray  # conversion probability before the first purchase (boosted by channel)
    gap_lo: np.ndarray  # repeat-visit gap bounds, days of activity
    gap_hi: np.ndarray
    gap_median: np.ndarray
    gap_sigma: np.ndarray
    lam: np.ndarray  # Poisson mean of repeat visits per spell (channel x tier x cohort shock)


@dataclass
class VisitState:
    """Where the customers lo, lo+1, ... (a shard, or all of them) stand at a window boundary.

    Arrays are indexed by position in the shard; draws are keyed by the global customer index, so a
    shard's visits are exactly the ones the whole population's walk gives those customers.
    """

    lo: int  # global index of the first customer
    next_a: np.ndarray  # activity time of the next visit (inf: never)
    vidx: np.ndarray  # index of the next visit
    spell: np.ndarray  # repeat visits left in the current spell after the next one
    react: np.ndarray  # the next visit ends a reactivation lapse
    purchased: np.ndarray  # has bought before
    spend_c: np.ndarray  # cumulative net spend, cents
    habits: Habits


@dataclass
class Visits(Columns):
    """Visits of one window, in no particular order (callers sort canonically)."""

    cust: np.ndarray
    vidx: np.ndarray
    seconds: np.ndarray
    react: np.ndarray
    converted: np.ndarray



def initial_state(model: Model, customers: Customers, lo: int = 0, hi: int | None = None) -> VisitState:
    """State before anyone's first visit, for customers [lo, hi) (default: all)."""
    rng = model.rng
    hi = len(customers) if hi is None else hi
    cust = customers.take(slice(lo, hi))
    n = hi - lo
    i = np.arange(lo, hi, dtype=np.int64)
    first_lo, first_hi = model.first_cart_days
    first_s = (cust.signup_day.astype(np.int64) + rng.integers("visit/first_day", first_lo, first_hi, i)) * DAY_S
    secs = np.where(cust.is_guest, cust.guest_first_s, first_s + rng.integers("visit/first_tod", 0, DAY_S - 1, i))
    lam = model.repeat[cust.channel, cust.tier] * cust.shock
    gap_lo, gap_hi = model.gap_lo[cust.channel, cust.tier], model.gap_hi[cust.channel, cust.tier]
    habits = Habits(
        conv_new=np.minimum(model.conversion * model.boost[cust.channel], 1.0),
        gap_lo=gap_lo, gap_hi=gap_hi, gap_median=np.sqrt(gap_lo * gap_hi),
        gap_sigma=model.gap_sigma[cust.channel, cust.tier], lam=lam,
    )
    return VisitState(
        lo=lo,
        next_a=model.activity_of(secs.astype(np.float64)),
        vidx=np.zeros(n, dtype=np.int32),
        spell=model.rng.poisson("visit/spell", lam, i, -1).astype(np.int32),
        react=np.zeros(n, dtype=bool),
        purchased=np.zeros(n, dtype=bool),
        spend_c=np.zeros(n, dtype=np.int64),
        habits=habits,
    )


def _lognormal_days(model: Model, stream: str, median, sigma, lo, hi, key: Key) -> np.ndarray:
    z = model.rng.normal(stream, key)
    z *= sigma
    np.exp(z, out=z)
    z *= median
    return np.clip(z, lo, hi, out=z)


def advance(model: Model, state: VisitState, until_day: int) -> Visits:
    """Consume every visit up to the end of `until_day`, mutating `state`; returns those visits."""
    rng = model.rng
    limit = model.activity_at_day_end(until_day)
    out_c, out_v, out_a, out_r, out_x = [], [], [], [], []
    conv_p = model.conversion
    h = state.habits
    cand = np.flatnonzero(state.next_a < limit)
    while cand.size:
        c = cand
        v = state.vidx[c].astype(np.int64)
        key = rng.key(c + state.lo, v)
        a = state.next_a[c]
        bought = state.purchased[c]
        p = np.where(bought, conv_p, h.conv_new[c]) * model.at_day(model.conversion_day, model.day_of(a))
        conv = rng.uniform("visit/convert", key) < p
        state.purchased[c] = bought | conv
        out_c.append(c)
        out_v.append(v)
        out_a.append(a)
        out_r.append(state.react[c])
        out_x.append(conv)

        gap = np.empty(c.size)
        spell = state.spell[c]
        in_spell = spell > 0
        s = np.flatnonzero(in_spell)
        if s.size:
            cs = c[s]
            gap[s] = _lognormal_days(model, "visit/gap", h.gap_median[cs], h.gap_sigma[cs], h.gap_lo[cs],
                                     h.gap_hi[cs], key[s])
        e = np.flatnonzero(~in_spell)
        lapse = np.zeros(c.size, dtype=bool)
        if e.size:
            ke = key[e]
            lapse[e] = rng.uniform("visit/reactivate", ke) < model.reactivation_share
            lo, hi = model.reactivation_days
            long_gap = rng.between("visit/lapse", lo, hi, ke)
            blo, bhi = model.break_lo, model.break_hi
            brk = _lognormal_days(model, "visit/break", np.sqrt(blo * bhi), model.break_sigma, blo, bhi, ke)
            gap[e] = np.where(lapse[e], long_gap, brk)
            spell[e] = rng.poisson("visit/spell", h.lam[c[e]], ke)
        spell[s] -= 1
        state.spell[c] = spell
        state.react[c] = lapse
        gap += a
        state.next_a[c] = gap
        state.vidx[c] += 1
        cand = c[gap < limit]
    if not out_c:
        empty = np.array([], dtype=np.int64)
        return Visits(empty, empty, empty, np.array([], bool), np.array([], bool))
    a = np.concatenate(out_a)
    return Visits(
        cust=np.concatenate(out_c).astype(np.int64) + state.lo,
        vidx=np.concatenate(out_v),
        seconds=model.seconds_of(a),
        react=np.concatenate(out_r),
        converted=np.concatenate(out_x),
    )
