"""Calibrate a scenario's default level and systematic loading to observed default rates.

An observed series of annual default (compensation) rates ``x_1 ... x_n`` of a large book
is treated as draws of the Vasicek large-pool default rate ``DR = Phi((A - sqrt(rho) Z) /
sqrt(1 - rho))`` with ``A = Phi^-1(PD)`` and independent years. Two fits:

* **Method of moments** (:func:`fit_moments`): ``PD`` is the sample mean and ``rho``
  solves ``Var(DR) = Phi2(A, A; rho) - PD^2`` for the sample variance (``ddof = 1``).
  Standard errors and percentile intervals come from a parametric bootstrap (the fitted
  model simulated ``n_boot`` times and refitted; fixed seed).
* **Maximum likelihood** (:func:`fit_mle`): ``y_t = Phi^-1(x_t)`` is normal with mean
  ``mu = A / sqrt(1 - rho)`` and variance ``s^2 = rho / (1 - rho)``, so the fit is closed
  form: ``rho = s^2 / (1 + s^2)``, ``PD = Phi(mu / sqrt(1 + s^2))`` with the ML estimates
  ``mu = mean(y)`` and ``s^2 = mean((y - mu)^2)``. Intervals: exact for ``rho`` (``n s^2 /
  sigma^2 ~ chi2(n - 1)``, mapped through the monotone ``rho(sigma^2)``), profile
  likelihood for ``PD``; standard errors by the delta method from the Fisher information.

A short series says little about the tail: with four years the 95 % interval of ``rho``
spans more than an order of magnitude, and :func:`calibrate` reports how far each party's
expected loss and 99.9 % expected shortfall move across it.

**What the rates are.** Published compensation rates are compensation paid in a year over
guarantees released in the year (POLICY.md section 3): for one-year loans that is the
amount-weighted annual default rate of the guaranteed book, which is what the fit matches.
Cumulative rates, or rates on another base (e.g. the 80 % covered part), must be converted
first.

**Mapping the fit onto a scenario** (:func:`calibrate`). Every segment's default
probability distribution is scaled by one factor so that the book's exposure-weighted mean
default probability equals the fitted ``PD``; every factor loading (the ``[factors]``
defaults and each segment's own loadings) is scaled by one factor ``lambda`` so that the
variance of the book's amount-weighted default rate, computed from the pairwise asset
correlations of its segments (Gaussian copula, segments at their mean default probability,
infinitely granular), equals the fitted ``Var(DR)``. A single-region, single-sector book
then reproduces the fitted ``rho`` exactly; a book spread over regions needs larger
loadings for the same provincial volatility, because its regions partly diversify.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from simkit import analytic
from simkit.scenario import Distribution, Scenario, ScenarioError

__all__ = ["Calibration", "VasicekFit", "calibrate", "fit_mle", "fit_moments",
           "parse_rates"]

_RHO_MAX = 0.999


@dataclass(frozen=True)
class VasicekFit:
    """A fit of the Vasicek default-rate distribution to a series of annual rates.

    Attributes
    ----------
    method : str
        ``"mle"`` or ``"moments"``.
    default_prob, rho : float
        Fitted mean default rate (per year) and asset correlation.
    default_prob_se, rho_se : float
        Standard errors (NaN when they cannot be estimated).
    default_prob_interval, rho_interval : tuple of float
        Confidence intervals at ``confidence``.
    confidence : float
    rates : tuple of float
        The observed series (fractions per year).
    """

    method: str
    default_prob: float
    rho: float
    default_prob_se: float
    rho_se: float
    default_prob_interval: tuple[float, float]
    rho_interval: tuple[float, float]
    confidence: float
    rates: tuple[float, ...]

    @property
    def n_years(self) -> int:
        return len(self.rates)

    @property
    def variance(self) -> float:
        """Variance of the fitted default rate, ``Phi2(A, A; rho) - PD^2``."""
        return float(analytic.vasicek_variance(self.default_prob, self.rho))

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "default_prob": self.default_prob,
            "default_prob_se": self.default_prob_se,
            "default_prob_interval": list(self.default_prob_interval),
            "rho": self.rho, "rho_se": self.rho_se, "rho_interval": list(self.rho_interval),
            "confidence": self.confidence, "n_years": self.n_years, "rates": list(self.rates),
        }


def _check_rates(rates: Sequence[float]) -> np.ndarray:
    x = np.asarray(rates, dtype=np.float64).ravel()
    if x.size < 2:
        raise ValueError(f"need at least 2 annual rates to fit, got {x.size}")
    if not np.all(np.isfinite(x)) or np.any((x <= 0) | (x >= 1)):
        bad = x[~(np.isfinite(x) & (x > 0) & (x < 1))][0]
        raise ValueError(f"every rate must be a fraction in (0, 1), got {bad!r}")
    return x


def _rho_for_variance(pd: float, var: float) -> float:
    """The ``rho`` in (0, 1) whose Vasicek default-rate variance is ``var``."""
    if var <= 0:
        return 1e-6
    hi = float(analytic.vasicek_variance(pd, _RHO_MAX))
    if var >= hi:
        return _RHO_MAX
    return float(optimize.brentq(
        lambda r: float(analytic.vasicek_variance(pd, r)) - var, 1e-9, _RHO_MAX,
        xtol=1e-12))


def _moments(x: np.ndarray) -> tuple[float, float]:
    pd = float(x.mean())
    return pd, _rho_for_variance(pd, float(x.var(ddof=1)))


def _simulate_rates(pd: float, rho: float, n: int, n_series: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``(n_series, n)`` Vasicek default rates."""
    z = rng.standard_normal((n_series, n))
    return special.ndtr((special.ndtri(pd) - math.sqrt(rho) * z) / math.sqrt(1 - rho))


def fit_moments(rates: Sequence[float], *, confidence: float = 0.95, n_boot: int = 400,
                seed: int = 20241) -> VasicekFit:
    """Method-of-moments fit with parametric-bootstrap standard errors and intervals.

    Parameters
    ----------
    rates : sequence of float
        Annual default rates, fractions in (0, 1), at least two.
    confidence : float
        Level of the percentile intervals.
    n_boot : int
        Bootstrap replications (fixed ``seed``: the result is reproducible).
    """
    x = _check_rates(rates)
    pd, rho = _moments(x)
    sims = _simulate_rates(pd, rho, x.size, n_boot, np.random.default_rng(seed))
    boot = np.array([_moments(row) for row in sims])
    a = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [a, 1 - a], axis=0)
    sd = boot.std(axis=0, ddof=1)
    return VasicekFit("moments", pd, rho, float(sd[0]), float(sd[1]),
                      (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])),
                      confidence, tuple(float(v) for v in x))


def fit_mle(rates: Sequence[float], *, confidence: float = 0.95) -> VasicekFit:
    """Maximum-likelihood fit (closed form) with exact / profile-likelihood intervals.

    Parameters
    ----------
    rates : sequence of float
        Annual default rates, fractions in (0, 1), at least two.
    confidence : float
        Level of the intervals: exact chi-square interval for ``rho``, profile likelihood
        (``2 (l_max - l) <= chi2_1``) for ``PD``.
    """
    x = _check_rates(rates)
    n = x.size
    y = special.ndtri(x)
    mu = float(y.mean())
    s2 = float(np.mean((y - mu) ** 2))
    if s2 <= 0:
        raise ValueError("the rates are all equal: the correlation cannot be estimated")
    rho = s2 / (1 + s2)
    pd = float(special.ndtr(mu / math.sqrt(1 + s2)))
    # delta method: Var(mu) = s2 / n, Var(s2) = 2 s2^2 / n, independent
    g = math.sqrt(1 + s2)
    dens = math.exp(-0.5 * (mu / g) ** 2) / math.sqrt(2 * math.pi)
    d_mu, d_s2 = dens / g, -dens * mu / (2 * g**3)
    pd_se = math.sqrt(d_mu**2 * s2 / n + d_s2**2 * 2 * s2**2 / n)
    rho_se = math.sqrt(2 * s2**2 / n) / (1 + s2) ** 2
    a = 1 - confidence
    ss = n * s2  # sum of squares
    sig_lo = ss / stats.chi2.ppf(1 - a / 2, n - 1)
    sig_hi = ss / stats.chi2.ppf(a / 2, n - 1)
    rho_int = (float(sig_lo / (1 + sig_lo)), float(min(sig_hi / (1 + sig_hi), _RHO_MAX)))

    def profile(p: float) -> float:
        """Max log-likelihood over sigma with PD fixed at p (mu = Phi^-1(p) sqrt(1+s^2))."""
        c = special.ndtri(p)

        def nll(log_s2: float) -> float:
            v = math.exp(log_s2)
            m = c * math.sqrt(1 + v)
            return 0.5 * n * math.log(v) + float(np.sum((y - m) ** 2)) / (2 * v)

        res = optimize.minimize_scalar(nll, bounds=(math.log(s2) - 12, math.log(s2) + 12),
                                       method="bounded", options={"xatol": 1e-10})
        return -float(res.fun)

    l_max = profile(pd)
    crit = 0.5 * stats.chi2.ppf(confidence, 1)

    def gap(logit_p: float) -> float:
        return l_max - profile(float(special.expit(logit_p))) - crit

    centre = float(special.logit(pd))
    ends = []
    for direction in (-1.0, 1.0):
        step, far = 0.05, centre
        while gap(far) < 0 and abs(far - centre) < 40:
            far = centre + direction * step
            step *= 2
        ends.append(float(special.expit(optimize.brentq(gap, *sorted((centre, far)),
                                                        xtol=1e-10))))
    return VasicekFit("mle", pd, rho, pd_se, rho_se, (ends[0], ends[1]), rho_int,
                      confidence, tuple(float(v) for v in x))


# --------------------------------------------------------------------------------------
# mapping a fit onto a scenario
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Groups:
    """Segments of a book as correlation groups: weights, mean PDs, loadings, labels."""

    weight: np.ndarray  # (S,) share of guaranteed principal
    pd: np.ndarray  # (S,) exposure-weighted mean default probability
    loadings: np.ndarray  # (S, 4) national, regional, sector, guarantor
    labels: list[tuple[str, str, str]]  # region, sector, guarantor


def _groups(scenario: Scenario) -> _Groups:
    from simkit.book import book_for

    book = book_for(scenario)
    n_seg = len(book.segment_names)
    w = np.bincount(book.segment, book.guaranteed, n_seg)
    pd = np.bincount(book.segment, book.guaranteed * book.default_prob, n_seg) / np.where(
        w > 0, w, 1.0)
    default = scenario.factors.loadings
    seg_by_name = {s.name: s for s in scenario.segments}
    loads, labels = [], []
    for name in book.segment_names:
        seg = seg_by_name[name]
        loads.append((seg.loadings or default).as_tuple())
        labels.append((seg.region, seg.sector, seg.guarantor or ""))
    keep = w > 0
    return _Groups(weight=w[keep] / w.sum(), pd=pd[keep], loadings=np.array(loads)[keep],
                   labels=[lab for lab, k in zip(labels, keep, strict=True) if k])


def _pair_correlation(g: _Groups) -> np.ndarray:
    """Asset correlation between loans of two groups, shape (S, S)."""
    b = g.loadings
    rho = np.outer(b[:, 0], b[:, 0])
    for k, which in ((1, 0), (2, 1), (3, 2)):
        same = np.array([[a[which] == c[which] for c in g.labels] for a in g.labels])
        rho = rho + same * np.outer(b[:, k], b[:, k])
    return rho


def book_rate_variance(scenario: Scenario, scale: float = 1.0) -> float:
    """Variance of the book's amount-weighted annual default rate (Gaussian copula).

    Segments at their exposure-weighted mean default probability, infinitely granular;
    every loading multiplied by ``scale``.
    """
    g = _groups(scenario)
    rho = np.clip(scale**2 * _pair_correlation(g), 0.0, _RHO_MAX)
    c = special.ndtri(g.pd)
    joint = analytic.bivariate_normal_cdf(c[:, None], c[None, :], rho)
    cov = joint - np.outer(g.pd, g.pd)
    return float(g.weight @ cov @ g.weight)


def _scaled_distribution(d: Distribution, k: float, path: str) -> Any:
    p = dict(d.params)
    if d.kind == "fixed":
        return min(p["value"] * k, 0.999)
    if d.kind in ("uniform", "loguniform"):
        return {"dist": d.kind, "low": p["low"] * k, "high": min(p["high"] * k, 0.999)}
    if d.kind == "beta":
        mean = p["mean"] * k
        sd = p["sd"] * k
        limit = math.sqrt(mean * (1 - mean))
        return {"dist": "beta", "mean": mean, "sd": min(sd, 0.95 * limit)}
    raise ScenarioError("<calibrate>", path, f"cannot scale a {d.kind!r} default_prob")


def scenario_changes(scenario: Scenario, default_prob: float, rho: float
                     ) -> dict[str, Any]:
    """The :meth:`Scenario.with_changes` edits that give the book a mean default rate of
    ``default_prob`` and the default-rate variance of a Vasicek pool with ``rho``.

    Raises
    ------
    ScenarioError
        For a loan-tape scenario (calibrate the tape's columns instead) or when the
        loadings cannot reach the target variance.
    """
    if scenario.tape is not None:
        raise ScenarioError(scenario.source, "book.tape", "is a loan tape: calibration "
                            "rescales [[segments]]; scale the tape's default_prob column "
                            "instead")
    g = _groups(scenario)
    k_pd = default_prob / float(g.weight @ g.pd)
    changes: dict[str, Any] = {}
    for i, seg in enumerate(scenario.segments):
        changes[f"segments[{i}].default_prob"] = _scaled_distribution(
            seg.default_prob, k_pd, f"segments[{i}].default_prob")
    shifted = scenario.with_changes(changes)
    target = float(analytic.vasicek_variance(default_prob, rho))
    r2_max = max([shifted.factors.loadings.r_squared]
                 + [s.loadings.r_squared for s in shifted.segments if s.loadings])
    if r2_max <= 0:
        raise ScenarioError(scenario.source, "factors", "has no systematic loading to scale")
    lam_max = math.sqrt(_RHO_MAX / r2_max)
    f_max = book_rate_variance(shifted, lam_max) - target
    if f_max < 0:
        raise ScenarioError(scenario.source, "factors", f"cannot reach the fitted default-"
                            f"rate variance {target:.3g} by scaling the loadings")
    lam = float(optimize.brentq(lambda s: book_rate_variance(shifted, s) - target, 1e-6,
                                lam_max, xtol=1e-10))
    for key, value in zip(("national", "regional", "sector", "guarantor"),
                          scenario.factors.loadings.as_tuple(), strict=True):
        if value:
            changes[f"factors.{key}"] = value * lam
    for i, seg in enumerate(scenario.segments):
        if seg.loadings is None:
            continue
        for key, value in zip(("national", "regional", "sector", "guarantor"),
                              seg.loadings.as_tuple(), strict=True):
            if value:
                changes[f"segments[{i}].loadings.{key}"] = value * lam
    return changes


@dataclass
class Calibration:
    """A fitted scenario and how much each party's measures move across the fit.

    Attributes
    ----------
    fit : VasicekFit
        The fit used (``method``).
    fits : dict of str to VasicekFit
        Both fits, by method.
    changes : dict
        The :meth:`Scenario.with_changes` edits of the calibrated scenario.
    scenario : Scenario
        The calibrated scenario.
    effect : list of dict
        One row per (case, party): ``case`` (``fit``, ``rho_low``, ``rho_high``,
        ``pd_low``, ``pd_high``), ``default_prob``, ``rho``, ``party``, ``el``, ``el_se``,
        ``es_99.9``, ``es_99.9_se`` (yuan per year). Empty when ``n_paths`` is 0.
    """

    fit: VasicekFit
    fits: dict[str, VasicekFit]
    changes: dict[str, Any]
    scenario: Scenario
    effect: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"scenario": self.scenario.name, "fit": self.fit.as_dict(),
                "fits": {k: v.as_dict() for k, v in self.fits.items()},
                "changes": self.changes, "effect": self.effect}

    def format_text(self) -> str:
        """The printed report: both fits, the edits, the effect on every party."""
        lines = [f"simkit calibrate {self.scenario.name}: {self.fit.n_years} annual rates "
                 + ", ".join(f"{100 * r:.2f} %" for r in self.fit.rates)]
        pct = round(100 * self.fit.confidence)
        for f in self.fits.values():
            mark = "  (used)" if f.method == self.fit.method else ""
            lines.append(
                f"  {f.method:8s} PD {100 * f.default_prob:.3f} % ± {100 * f.default_prob_se:.3f}"
                f" [{pct} %: {100 * f.default_prob_interval[0]:.3f}, "
                f"{100 * f.default_prob_interval[1]:.3f}]   rho {f.rho:.4f} ± {f.rho_se:.4f} "
                f"[{f.rho_interval[0]:.4f}, {f.rho_interval[1]:.4f}]{mark}")
        lines.append("calibrated scenario (apply with --set):")
        for k, v in self.changes.items():
            lines.append(f"  --set '{k}={_toml_literal(v)}'")
        if self.effect:
            from simkit import report

            lines.append("effect on each party across the fit's interval "
                         "(million yuan per year):")
            cases = list(dict.fromkeys(r["case"] for r in self.effect))
            parties = list(dict.fromkeys(r["party"] for r in self.effect))
            by = {(r["case"], r["party"]): r for r in self.effect}
            header = ["party"] + [f"EL {c}" for c in cases] + [f"ES99.9 {c}" for c in cases]
            rows = [[p] + [report.fmt_money(by[c, p]["el"]) for c in cases]
                    + [report.fmt_money(by[c, p]["es_99.9"]) for c in cases]
                    for p in parties]
            lines.append(report.format_table(rows, header))
            lines.append("  (rho_low/rho_high: rho at the ends of its interval with PD at "
                         "the fit; pd_low/pd_high likewise)")
        return "\n".join(lines)


def _toml_literal(value: Any) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{k} = {_toml_literal(v)}" for k, v in value.items())
        return "{ " + inner + " }"
    if isinstance(value, str):
        return '"' + value + '"'
    return repr(float(value)) if isinstance(value, float) else str(value)


def calibrate(scenario: Scenario, rates: Sequence[float], *, method: str = "mle",
              confidence: float = 0.95, n_paths: int = 0, seed: int | None = None,
              executor: Any = None) -> Calibration:
    """Fit the scenario's default level and loadings to annual default rates.

    Parameters
    ----------
    scenario : Scenario
        Its segments are rescaled (see the module docstring).
    rates : sequence of float
        Annual amount-weighted default (compensation) rates, fractions.
    method : {"mle", "moments"}
        Which fit defines the calibrated scenario (both are reported).
    n_paths : int
        When > 0, simulate the calibrated scenario at the fit and at the ends of both
        intervals with this many paths (common seed) and report every party's EL and
        ES 99.9 %.
    """
    if method not in ("mle", "moments"):
        raise ValueError(f"method must be 'mle' or 'moments', got {method!r}")
    fits = {"mle": fit_mle(rates, confidence=confidence),
            "moments": fit_moments(rates, confidence=confidence)}
    fit = fits[method]
    changes = scenario_changes(scenario, fit.default_prob, fit.rho)
    calibrated = scenario.with_changes(changes)
    effect: list[dict[str, Any]] = []
    if n_paths > 0:
        from simkit.montecarlo import simulate

        cases = {"fit": (fit.default_prob, fit.rho),
                 "rho_low": (fit.default_prob, fit.rho_interval[0]),
                 "rho_high": (fit.default_prob, fit.rho_interval[1]),
                 "pd_low": (fit.default_prob_interval[0], fit.rho),
                 "pd_high": (fit.default_prob_interval[1], fit.rho)}
        for case, (pd, rho) in cases.items():
            variant = (calibrated if case == "fit"
                       else scenario.with_changes(scenario_changes(scenario, pd, rho)))
            res = simulate(variant, n_paths=n_paths, seed=seed, executor=executor)
            summ = res.summary((0.999,))["parties"]
            for p in res.parties:
                s = summ[p]
                effect.append({"case": case, "default_prob": pd, "rho": rho, "party": p,
                               "el": s["el"], "el_se": s["el_se"], "es_99.9": s["es_99.9"],
                               "es_99.9_se": s["es_99.9_se"]})
    return Calibration(fit=fit, fits=fits, changes=changes, scenario=calibrated,
                       effect=effect)


def parse_rates(text: str) -> list[float]:
    """Parse ``"3.69%,3.98%,0.0342"`` into fractions (``%`` means per cent).

    Raises
    ------
    ScenarioError
        Naming ``--rates`` and the bad item.
    """
    out = []
    for item in text.split(","):
        item = item.strip()
        try:
            value = float(item[:-1]) / 100 if item.endswith("%") else float(item)
        except ValueError:
            raise ScenarioError("--rates", "", f"item {item!r} is not a number or a "
                                "percentage (e.g. 3.69% or 0.0369)") from None
        if not (math.isfinite(value) and 0 < value < 1):
            raise ScenarioError("--rates", "", f"item {item!r} must be a rate in (0, 1) "
                                "(or (0 %, 100 %))")
        out.append(value)
    if len(out) < 2:
        raise ScenarioError("--rates", "", f"needs at least 2 annual rates, got {len(out)}")
    return out
