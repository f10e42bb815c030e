"""The random draws of the discrete-event model, all made up front: the one owner of the
factor path, the applications and each firm's fate.

* :class:`FactorPath`: the systematic factors per calendar year (national AR(1) by
  :func:`simkit.factors.ar1`; regional, sector and guarantor factors iid per year; the
  Student-t mixing per year).
* :class:`Applications`: every application of the horizon, sorted by day, with its
  exposure, PD, guaranteed amount and risk weight, and the pre-computed terms of the
  underwriting rules (:func:`simkit.des.underwriting.decision_terms`).
* :class:`Draws`: the factor path and the per-firm fates (:meth:`Draws.fates`), and the
  two draws the loan processes take from them: the default time of a new loan
  (:meth:`Draws.default_times`) and the LGD and recovery lag of a default
  (:meth:`Draws.losses`). The credit model's formulas are :mod:`simkit.factors`'s.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

from simkit._rng import stream
from simkit.des.codes import DAYS_PER_YEAR
from simkit.des.screening import signal_normals
from simkit.des.underwriting import decision_terms
from simkit.factors import (
    ar1,
    beta_concentration,
    beta_shape,
    conditional_default_prob,
    default_prob_over,
    default_threshold,
    downturn_lgd_mean,
    stressed_national,
)
from simkit.regulation import guaranteed_amount, risk_weight

if TYPE_CHECKING:
    from simkit.des.parties import EnterpriseSegment
    from simkit.des.segments import Segments
    from simkit.scenario import Scenario

__all__ = ["Applications", "Draws", "FactorPath"]


class FactorPath:
    """Systematic factor path per calendar year (arrays of shape ``(n_cal, ...)``).

    Attributes
    ----------
    z_nat : ndarray, shape (n_cal,)
    z_reg, z_sec : ndarray, shape (n_cal, n_regions), (n_cal, n_sectors)
    z_gua : ndarray, shape (n_cal, n_accounts)
        Guarantor factor per account column.
    mix : ndarray, shape (n_cal,)
        Student-t mixing ``sqrt(dof / W)`` (ones for the Gaussian copula): the default
        threshold of year ``y`` is ``threshold / mix[y]``.
    n_cal : int
    """

    def __init__(self, scenario: Scenario, seed: int, replication: int, years: float,
                 n_accounts: int):
        f = scenario.factors
        max_tenor = max((s.tenor_years for s in scenario.segments), default=1.0)
        n = math.ceil(years + max_tenor) + 2
        rng = stream(seed, "des.factors", replication)
        eps = rng.standard_normal(n)
        phi = f.national_persistence
        z = np.empty(n)
        z[0] = eps[0]
        for t in range(1, n):
            z[t] = ar1(z[t - 1], eps[t], phi)
        n_reg = len({s.region for s in scenario.segments})
        n_sec = len({s.sector for s in scenario.segments})
        self.z_nat = stressed_national(z, np.arange(n), f.national_path)  # as the MC
        self.z_reg = rng.standard_normal((n, max(n_reg, 1)))
        self.z_sec = rng.standard_normal((n, max(n_sec, 1)))
        self.z_gua = rng.standard_normal((n, n_accounts))
        if f.copula == "student_t":
            self.mix = np.sqrt(f.dof / rng.chisquare(f.dof, n))
        else:
            self.mix = np.ones(n)
        self.n_cal = n

    def year(self, t: float) -> int:
        """Calendar-year row of time ``t`` (days), the last row beyond the path."""
        return min(int(t // DAYS_PER_YEAR), self.n_cal - 1)


class Applications:
    """All applications of the horizon, sorted by day (arrays of shape ``(n_apps,)``).

    Attributes
    ----------
    day, seg, exposure, pd : ndarray
        Arrival day, segment, principal (yuan) and annual PD (clipped to
        ``[1e-12, 1 - 1e-12]``).
    guaranteed, weight : ndarray
        Guaranteed amount (yuan) and regulatory risk weight.
    retained, bank_ok, alone_ok, direct, review_ok, pd_eff, threshold : ndarray
        The underwriting terms (:func:`simkit.des.underwriting.decision_terms`) and the
        default threshold of ``pd_eff`` (:func:`simkit.factors.default_threshold`).
    day_start : int ndarray, shape (n_days + 1,)
        First application of each day.
    seg_n : list of int
        Applications drawn per segment; ``order`` sorts the per-segment draws by day.
    """

    def __init__(self, scenario: Scenario, segments: Segments, seed: int, replication: int,
                 horizon: float):
        des = scenario.des
        n_days = math.ceil(horizon - 1e-9)
        days = np.arange(n_days, dtype=np.float64)
        season = 1.0 + des.seasonality * np.sin(2 * np.pi * (days + 0.5) / DAYS_PER_YEAR)
        parts: list[tuple[np.ndarray, ...]] = []
        self.seg_n: list[int] = []
        for s, spec in enumerate(segments.specs):
            rng = stream(seed, "des.arrivals", replication, s)
            counts = rng.poisson(spec.rate_per_day * season)
            n = int(counts.sum())
            self.seg_n.append(n)
            exposure = spec.segment.exposure.sample(rng, n)
            pd = np.clip(spec.segment.default_prob.sample(rng, n), 1e-12, 1 - 1e-12)
            parts.append((np.repeat(days, counts), np.full(n, s, dtype=np.intp), exposure, pd))
        day = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
        order = np.argsort(day, kind="stable")
        self.order = order
        self.day = day[order]
        self.seg = (np.concatenate([p[1] for p in parts]) if parts
                    else np.zeros(0, np.intp))[order]
        self.exposure = (np.concatenate([p[2] for p in parts]) if parts
                         else np.zeros(0))[order]
        self.pd = (np.concatenate([p[3] for p in parts]) if parts else np.zeros(0))[order]
        self.day_start = np.searchsorted(self.day, np.arange(n_days + 1), side="left")
        self.n_days = n_days
        self.guaranteed = guaranteed_amount(
            self.exposure, segments.per_application("single_limit", self.seg))
        # the normals of the bank's signals (simkit.des.screening), when screening is on
        z = (signal_normals(seed, replication, self.seg_n, order)
             if des.screening_noise > 0 else None)
        terms = decision_terms(segments, des, self.seg, self.exposure, self.guaranteed,
                               self.pd, z)
        self.retained = terms["retained"]
        self.bank_ok = terms["bank_ok"]
        self.alone_ok = terms["alone_ok"]
        self.direct = terms["direct"]
        self.review_ok = terms["review_ok"]
        self.pd_eff = terms["pd_eff"]
        fm = scenario.factors
        self.threshold = default_threshold(self.pd_eff, fm.copula, fm.dof)
        self.weight = risk_weight(self.guaranteed, scenario.regulation)


class Draws:
    """The factor path and every firm's fate, drawn once; the default and loss draws.

    Parameters
    ----------
    scenario : Scenario
    segments : Segments
    apps : Applications
    factors : FactorPath
    seed, replication : int
    """

    def __init__(self, scenario: Scenario, segments: Segments, apps: Applications,
                 factors: FactorPath, seed: int, replication: int):
        self.scenario = scenario
        self.segments = segments
        self.apps = apps
        self.factors = factors
        self.seed = seed
        self.replication = replication
        #: renewal number of each application's current (or last) loan
        self.gen = np.zeros(len(apps.day), dtype=np.int64)
        #: Beta LGD parameters per (segment spec, calendar year): (mean, a, b)
        self._lgd_params: dict[tuple[int, int], tuple[float, float, float]] = {}
        #: median recovery lag of each segment (days)
        self.lag_days = np.array([spec.recovery_lag_days for spec in segments.specs])
        #: per renewal number: the applications' fates (see :meth:`fates`)
        self._fates: dict[int, tuple[np.ndarray, ...]] = {}

    def fates(self, gen: int) -> tuple[np.ndarray, ...]:
        """The fate of every application's loan number ``gen`` (0: the first loan, ``r``:
        its ``r``-th renewal), drawn once per (segment, ``gen``) in the segment's arrival
        order, so the same firm has the same draws whatever the decisions (common random
        numbers across variants of a scenario).

        Returns
        -------
        u : ndarray, shape (n_apps, max loan years)
            Default uniform per loan year.
        v : ndarray, shape (n_apps,)
            Position of the default within its loan year (uniform).
        lgd_u : ndarray, shape (n_apps,)
            Uniform of the LGD (inverse Beta CDF at default).
        lag_z : ndarray, shape (n_apps,)
            Standard normal of the recovery lag.
        renew_u : ndarray, shape (n_apps,)
            Uniform of the renewal decision at the loan's maturity.
        """
        out = self._fates.get(gen)
        if out is None:
            kmax = max((math.ceil(t - 1e-12) for t in self.segments.tenors), default=1)
            kmax = max(kmax, 1)
            chunks: list[tuple[np.ndarray, ...]] = []
            for s, n in enumerate(self.apps.seg_n):
                rng = stream(self.seed, "des.fate", self.replication, s, gen)
                k_s = max(math.ceil(float(self.segments.tenor_years[s]) - 1e-12), 1)
                u = np.ones((n, kmax))
                u[:, :k_s] = rng.random((n, k_s))
                chunks.append((u, rng.random(n), rng.random(n), rng.standard_normal(n),
                               rng.random(n)))
            order = self.apps.order
            if chunks:
                out = tuple(np.concatenate([c[i] for c in chunks])[order] for i in range(5))
            else:
                out = (np.ones((0, kmax)), *(np.zeros(0) for _ in range(4)))
            self._fates[gen] = out
        return out

    def fate_rows(self, apps: np.ndarray, col: int) -> np.ndarray:
        """Column ``col`` of :meth:`fates` for each application's current loan."""
        gens = self.gen[apps]
        g0 = int(gens[0]) if len(gens) else 0
        if (gens == g0).all():
            return self.fates(g0)[col][apps]
        out = np.empty((len(apps), *self.fates(0)[col].shape[1:]))
        for g in np.unique(gens).tolist():
            sel = gens == g
            out[sel] = self.fates(g)[col][apps[sel]]
        return out

    def renewing(self, apps: np.ndarray) -> np.ndarray:
        """The applications whose loans, maturing now, are renewed (renewal uniform of
        the loan below ``des.renewal_prob``); their renewal number goes up by one."""
        again = apps[self.fate_rows(apps, 4) < self.scenario.des.renewal_prob]
        self.gen[again] += 1
        return again

    def default_times(self, apps: np.ndarray, now: float) -> np.ndarray:
        """Default time (days, ``inf`` if none) of loans starting now, per loan year from
        the factor model (:func:`simkit.factors.conditional_default_prob` at the year's
        factors, over the loan year's length by :func:`simkit.factors.default_prob_over`);
        the guarantor factor is the segment's original guarantor's."""
        segs = self.segments
        f = self.factors
        seg = self.apps.seg[apps]
        tenor = segs.tenor_years[seg]
        front = segs.front[seg]
        n = len(apps)
        kmax = math.ceil(float(tenor.max()) - 1e-12)
        u = self.fate_rows(apps, 0)[:, :kmax]
        v = self.fate_rows(apps, 1)
        t_def = np.full(n, np.inf)
        thr = self.apps.threshold[apps]
        load = segs.loadings[seg]
        r2 = segs.idio_r2[seg]
        reg, sec = segs.region[seg], segs.sector[seg]
        for k in range(kmax):
            length = np.clip(tenor - k, 0.0, 1.0)
            cal = f.year(now + DAYS_PER_YEAR * k)
            # the systematic part b . Z per loan (each loan its own factor columns)
            bz = (load[:, 0] * f.z_nat[cal] + load[:, 1] * f.z_reg[cal, reg]
                  + load[:, 2] * f.z_sec[cal, sec] + load[:, 3] * f.z_gua[cal, front])
            # Student-t: the threshold divided by the year's mixing sqrt(dof / W) (the
            # same as factors' scale sqrt(W / dof) times it, to an ulp; divided here so
            # that the draws stay bit for bit those of earlier versions)
            p = conditional_default_prob(thr / f.mix[cal], r2, bz)
            pk = default_prob_over(p, length)  # the time rule (simkit.factors)
            hit = (u[:, k] < pk) & np.isinf(t_def) & (length > 0)
            t_def[hit] = now + DAYS_PER_YEAR * (k + v[hit] * length[hit])
        return t_def

    def _lgd_of(self, spec: EnterpriseSegment, cal: int) -> tuple[float, float, float]:
        """``(mean, a, b)`` of the Beta LGD of a default in calendar year ``cal`` in
        ``spec``'s segment (``a = b = 0``: the fixed mean), computed once per segment and
        calendar year (the downturn mean depends on the year's national factor only)."""
        d = self.scenario.factors.downturn_lgd
        key = (id(spec), cal)
        got = self._lgd_params.get(key)
        if got is None:
            lgd_mean = spec.lgd_mean
            if d > 0 and 0 < lgd_mean < 1:
                lgd_mean = float(downturn_lgd_mean(lgd_mean, d, self.factors.z_nat[cal]))
            sd = min(spec.lgd_sd, 0.999 * math.sqrt(lgd_mean * (1 - lgd_mean)))
            a = b = 0.0
            if sd > 0:
                a, b = (float(x) for x in beta_shape(lgd_mean,
                                                     beta_concentration(lgd_mean, sd)))
            got = self._lgd_params[key] = (lgd_mean, a, b)
        return got

    def losses(self, apps: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LGD and recovery lag (days) of defaults at ``times`` (days) of the
        applications' current loans (shape ``(n,)`` each), from their pre-drawn uniforms
        (:meth:`fates`): the Beta LGD by its inverse CDF with the downturn mean
        (:func:`simkit.factors.downturn_lgd_mean`) of the national factor of the default
        year, and a lognormal lag."""
        n = len(apps)
        lgd = np.empty(n)
        if n == 0:
            return lgd, np.empty(0)
        seg = self.apps.seg[apps]
        lgd_u = self.fate_rows(apps, 2)
        lag_z = self.fate_rows(apps, 3).tolist()
        if self.scenario.factors.downturn_lgd > 0:
            cal = np.array([self.factors.year(t) for t in times.tolist()], dtype=np.intp)
        else:
            cal = np.zeros(n, dtype=np.intp)
        n_cal = self.factors.n_cal
        keys, inverse = np.unique(seg * n_cal + cal, return_inverse=True)
        params = np.array([self._lgd_of(self.segments[k // n_cal], k % n_cal)
                           for k in keys.tolist()]).reshape(len(keys), 3)[inverse]
        beta = params[:, 1] > 0
        lgd[:] = params[:, 0]
        if beta.any():  # elementwise: the same as one call per loan
            lgd[beta] = special.betaincinv(params[beta, 1], params[beta, 2], lgd_u[beta])
        sigma = self.scenario.des.recovery_lag_sigma
        days = self.lag_days[seg].tolist()
        lag = np.array([d * math.exp(sigma * z) for d, z in zip(days, lag_z, strict=True)])
        return lgd, lag
