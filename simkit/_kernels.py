"""Numba-compiled kernel of the Monte Carlo's numba engine (see :mod:`simkit.montecarlo`).

Kept in its own module so that ``import simkit`` does not import Numba, and defined at
module level so that Numba can cache the compiled code on disk (``cache=True``): only the
first run on a machine pays the compilation.

The kernel needs its own compiled copies of two rules of the credit model
(:mod:`simkit.factors`): the conditional default probability (:func:`cond_default_prob`,
the copy of :func:`simkit.factors.conditional_default_prob`, with the normal CDF
:func:`ndtr`) and the Beta quantile-table interpolation (:func:`table_lgd`, the copy of
:func:`simkit.factors.beta_from_table`). ``tests/test_factors.py`` holds each copy to its
reference over a grid of inputs (1e-15, bit for bit for the table).
"""

from __future__ import annotations

import math

import numba
import numpy as np

_SQRTH = math.sqrt(0.5)


@numba.njit(cache=True, nogil=True)
def ndtr(x: float) -> float:  # pragma: no cover - compiled
    """Standard normal CDF (the copy of ``scipy.special.ndtr``, same branches)."""
    t = x * _SQRTH
    z = abs(t)
    if z < _SQRTH:
        return 0.5 + 0.5 * math.erf(t)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if t > 0 else y


@numba.njit(cache=True, nogil=True)
def cond_default_prob(c: float, scale: float, m: float,
                      sd_idio: float) -> float:  # pragma: no cover - compiled
    """``Phi((c s - m) / sqrt(1 - R^2))``: :func:`simkit.factors.conditional_default_prob`."""
    return ndtr((c * scale - m) / sd_idio)


@numba.njit(cache=True, nogil=True)
def table_lgd(table, kind: int, r: int, lam: float,
              w: float) -> float:  # pragma: no cover - compiled
    """Beta draw from the uniform ``w`` by a quantile table: row 0 (``kind == 1``) or rows
    ``r`` and ``r + 1`` mixed by ``lam`` (:func:`simkit.factors.beta_from_table`)."""
    size = table.shape[1] - 1
    t = w * size
    k = min(int(t), size - 1)
    f = t - k
    if kind == 1:
        return table[0, k] + f * (table[0, k + 1] - table[0, k])
    a = table[r, k] + f * (table[r, k + 1] - table[r, k])
    b = table[r + 1, k] + f * (table[r + 1, k + 1] - table[r + 1, k])
    return lam * a + (1.0 - lam) * b


@numba.njit(cache=True, nogil=True)
def band(rng, p_max, p_min, m, scale, c_lo, slope_lo, chord, thr, sd_idio, equal,
         kind, mean, table, row, lam, guaranteed, uncovered, has_unc, cell,
         cnt, cov, cov_rec, unc, unc_rec):  # pragma: no cover - compiled
    n_loans = thr.size
    collect = kind < 0
    cap = 16 if collect else 1
    out_s = np.empty(cap, dtype=np.int64)
    out_l = np.empty(cap, dtype=np.int64)
    n_out = 0
    for s in range(p_max.size):
        p = p_max[s]
        if not p > 0.0:
            continue
        # gap - 1 = floor(E / -log(1 - p)), E ~ Exp(1): exactly geometric
        inv = -1.0 / math.log1p(-p) if p < 1.0 else 0.0
        pmin = p_min[s]
        sc = scale[s]
        pos = 0  # loans passed so far
        while True:
            x = rng.standard_exponential() * inv
            if not x < n_loans - pos:
                break
            pos += int(x) + 1
            i = pos - 1
            w = -1.0  # the LGD uniform, recycled from the acceptance when possible
            if not equal:
                vp = rng.random() * p
                if vp < pmin:
                    w = vp / pmin
                else:
                    d = thr[i] * sc - c_lo[s]
                    lo = pmin + slope_lo[s] * d
                    if vp < lo:  # below the tangent
                        w = (vp - pmin) / (lo - pmin)
                    else:
                        ch = chord[s]
                        if ch >= 0.0 and not vp < pmin + ch * d:  # above the chord
                            continue
                        p_i = cond_default_prob(thr[i], sc, m[s], sd_idio)
                        if not vp < p_i:
                            continue
                        w = (vp - lo) / (p_i - lo)
            cnt[s] += 1
            if collect:
                if n_out == cap:
                    cap *= 2
                    new_s = np.empty(cap, dtype=np.int64)
                    new_l = np.empty(cap, dtype=np.int64)
                    new_s[:n_out] = out_s[:n_out]
                    new_l[:n_out] = out_l[:n_out]
                    out_s, out_l = new_s, new_l
                out_s[n_out] = s
                out_l[n_out] = i
                n_out += 1
                continue
            if kind == 0:
                rec = 1.0 - mean[s]
            else:
                if not 0.0 <= w < 1.0:
                    w = rng.random()
                rec = 1.0 - table_lgd(table, kind, row[s], lam[s], w)
            g = guaranteed[i]
            cov[s, cell] += g
            cov_rec[s, cell] += g * rec
            if has_unc:
                u = uncovered[i]
                unc[s, cell] += u
                unc_rec[s, cell] += u * rec
    return out_s[:n_out], out_l[:n_out]


@numba.njit(cache=True, nogil=True)
def prob_over(p: float, t: float) -> float:  # pragma: no cover - compiled
    """``1 - (1 - p)^t``: the copy of :func:`simkit.factors.default_prob_over`."""
    if t == 1.0:
        return p
    return -math.expm1(t * math.log1p(-p))


@numba.njit(cache=True, nogil=True)
def band_years(rng, p_max, m, scale, lengths, thr, sd_idio, equal, kind, mean, table,
               row, lam, guaranteed, uncovered, has_unc, cell, cnt, cov, cov_rec, unc,
               unc_rec):  # pragma: no cover - compiled
    # Long on purpose: a Numba kernel inlined on purpose for speed: one pass over a band's
    # scenarios, with no calls to non-inlined helpers in the inner loop.
    """One band of multi-year loans (tenor > 1 year): one factor state per loan year.

    Loan year ``j`` (of length ``lengths[j]`` years, at most 1) has the conditional
    annual probability ``p_j = cond_default_prob(thr_i, scale[j, s], m[j, s], sd_idio)``
    and the default probability ``q_j = prob_over(p_j, lengths[j])``; the loan defaults
    in the first loan year it is hit, so over its life with ``1 - prod_j (1 - q_j)``.
    ``p_max[s]`` is that life probability of the band's riskiest loan. Candidates come
    from the Bernoulli(``p_max``) process of :func:`band`; a candidate with acceptance
    uniform ``v`` defaults when ``v p_max`` is below its life probability, in the loan year
    ``j`` whose slice ``[1 - prod_{k<j}, 1 - prod_{k<=j})`` holds ``v p_max``, and its LGD
    uniform is ``v p_max`` rescaled within that slice (uniform and independent of the
    year). ``mean``, ``row`` and ``lam`` are ``(n_years, n)`` (the LGD of the default's
    loan year). With ``kind < 0`` returns the defaults' scenario, loan and loan year and
    adds nothing but the default counts.
    """
    n_loans = thr.size
    n_years = lengths.size
    collect = kind < 0
    cap = 16 if collect else 1
    out_s = np.empty(cap, dtype=np.int64)
    out_l = np.empty(cap, dtype=np.int64)
    out_y = np.empty(cap, dtype=np.int64)
    n_out = 0
    cum = np.empty(n_years)
    for s in range(p_max.size):
        p = p_max[s]
        if not p > 0.0:
            continue
        inv = -1.0 / math.log1p(-p) if p < 1.0 else 0.0
        pos = 0
        while True:
            x = rng.standard_exponential() * inv
            if not x < n_loans - pos:
                break
            pos += int(x) + 1
            i = pos - 1
            log_surv = 0.0
            for j in range(n_years):
                q = prob_over(cond_default_prob(thr[i], scale[j, s], m[j, s], sd_idio),
                              lengths[j])
                log_surv += math.log1p(-q)
                cum[j] = -math.expm1(log_surv)
            life = cum[n_years - 1]
            vp = rng.random() * (life if equal else p)
            if not vp < life:
                continue
            yr = 0
            while not vp < cum[yr]:
                yr += 1
            lo = cum[yr - 1] if yr > 0 else 0.0
            w = (vp - lo) / (cum[yr] - lo)
            cnt[s] += 1
            if collect:
                if n_out == cap:
                    cap *= 2
                    new_s = np.empty(cap, dtype=np.int64)
                    new_l = np.empty(cap, dtype=np.int64)
                    new_y = np.empty(cap, dtype=np.int64)
                    new_s[:n_out] = out_s[:n_out]
                    new_l[:n_out] = out_l[:n_out]
                    new_y[:n_out] = out_y[:n_out]
                    out_s, out_l, out_y = new_s, new_l, new_y
                out_s[n_out] = s
                out_l[n_out] = i
                out_y[n_out] = yr
                n_out += 1
                continue
            if kind == 0:
                rec = 1.0 - mean[yr, s]
            else:
                if not 0.0 <= w < 1.0:
                    w = rng.random()
                rec = 1.0 - table_lgd(table, kind, row[yr, s], lam[yr, s], w)
            g = guaranteed[i]
            cov[s, cell] += g
            cov_rec[s, cell] += g * rec
            if has_unc:
                u = uncovered[i]
                unc[s, cell] += u
                unc_rec[s, cell] += u * rec
    return out_s[:n_out], out_l[:n_out], out_y[:n_out]
