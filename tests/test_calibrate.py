"""Calibration to observed default rates: fits, intervals, the mapping onto a scenario."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from simkit import analytic, from_dict
from simkit.calibrate import (
    book_rate_variance,
    calibrate,
    fit_mle,
    fit_moments,
    parse_rates,
    scenario_changes,
)
from simkit.scenario import ScenarioError

ANHUI = [0.0369, 0.0398, 0.0342, 0.0269]  # DOMAIN.md (d), 2019-2022


def _series(pd: float, rho: float, n: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal(n)
    return special.ndtr((special.ndtri(pd) - math.sqrt(rho) * z) / math.sqrt(1 - rho))


@pytest.mark.parametrize(("pd", "rho"), [(0.02, 0.05), (0.035, 0.004), (0.1, 0.3)])
def test_vasicek_variance_matches_quadrature(pd: float, rho: float) -> None:
    def second_moment(z: float) -> float:
        p = special.ndtr((special.ndtri(pd) - math.sqrt(rho) * z) / math.sqrt(1 - rho))
        return p * p * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    m2, _ = integrate.quad(second_moment, -12, 12, epsabs=1e-16, epsrel=1e-12)
    assert analytic.vasicek_variance(pd, rho) == pytest.approx(m2 - pd * pd, rel=1e-9)


def test_mle_is_the_closed_form_normal_fit() -> None:
    y = special.ndtri(np.array(ANHUI))
    s2 = y.var()  # ML variance (ddof 0)
    fit = fit_mle(ANHUI)
    assert fit.rho == pytest.approx(s2 / (1 + s2), rel=1e-12)
    assert fit.default_prob == pytest.approx(special.ndtr(y.mean() / math.sqrt(1 + s2)),
                                             rel=1e-12)
    lo, hi = fit.default_prob_interval
    assert lo < fit.default_prob < hi
    assert fit.rho_interval[0] < fit.rho < fit.rho_interval[1]
    # a four-year series leaves the correlation wide open: over an order of magnitude
    assert fit.rho_interval[1] / fit.rho_interval[0] > 10


def test_moments_fit_reproduces_mean_and_variance() -> None:
    fit = fit_moments(ANHUI, n_boot=200)
    assert fit.default_prob == pytest.approx(np.mean(ANHUI), rel=1e-12)
    assert analytic.vasicek_variance(fit.default_prob, fit.rho) == pytest.approx(
        np.var(ANHUI, ddof=1), rel=1e-8)
    assert fit.default_prob_interval[0] < fit.default_prob < fit.default_prob_interval[1]
    assert fit_moments(ANHUI, n_boot=200) == fit  # fixed bootstrap seed


def test_long_series_recovers_the_parameters_within_their_intervals() -> None:
    rng = np.random.default_rng(11)
    x = _series(0.03, 0.06, 400, rng)
    for fit in (fit_mle(x), fit_moments(x, n_boot=200)):
        assert fit.default_prob_interval[0] < 0.03 < fit.default_prob_interval[1]
        assert fit.rho_interval[0] < 0.06 < fit.rho_interval[1]
        assert fit.rho == pytest.approx(0.06, abs=4 * fit.rho_se)


def test_mle_intervals_cover_the_truth_at_their_level() -> None:
    """300 synthetic 20-year series: the exact rho interval covers 95 % of the time, the
    profile interval of PD close to it (binomial SE of a 95 % rate over 300 is 1.26 pp)."""
    rng = np.random.default_rng(2024)
    hit_rho = hit_pd = 0
    for _ in range(300):
        fit = fit_mle(_series(0.03, 0.05, 20, rng))
        hit_rho += fit.rho_interval[0] < 0.05 < fit.rho_interval[1]
        hit_pd += fit.default_prob_interval[0] < 0.03 < fit.default_prob_interval[1]
    assert 0.91 < hit_rho / 300 < 0.99
    assert 0.88 < hit_pd / 300 < 0.99


@pytest.mark.parametrize("bad", [[0.02], [0.02, 0.0], [0.02, 1.2], [0.02, float("nan")]])
def test_fits_reject_bad_series(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="rate"):
        fit_mle(bad)


def test_parse_rates() -> None:
    assert parse_rates("3.69%, 3.98%,0.0342") == pytest.approx([0.0369, 0.0398, 0.0342])
    with pytest.raises(ScenarioError, match=r"--rates: item 'x' is not a number"):
        parse_rates("0.03,x")
    with pytest.raises(ScenarioError, match="at least 2"):
        parse_rates("3%")
    with pytest.raises(ScenarioError, match=r"item '150%' must be a rate"):
        parse_rates("3%,150%")


def _one_factor(minimal: dict, national: float = 0.3) -> dict:
    minimal["factors"] = {"national": national}
    minimal["segments"][0]["exposure"] = {"dist": "lognormal", "median": 1e6, "sigma": 0.5}
    minimal["segments"][0]["default_prob"] = {"dist": "uniform", "low": 0.01, "high": 0.03}
    minimal["segments"][0]["count"] = 4000
    return minimal


def test_single_factor_book_gets_the_fitted_rho_exactly(minimal) -> None:
    s = from_dict(_one_factor(minimal))
    changes = scenario_changes(s, 0.04, 0.07)
    c = s.with_changes(changes)
    assert c.factors.loadings.national ** 2 == pytest.approx(0.07, rel=1e-8)
    from simkit.book import book_for

    b = book_for(c)
    mean = float((b.guaranteed * b.default_prob).sum() / b.guaranteed.sum())
    assert mean == pytest.approx(0.04, rel=1e-12)
    assert book_rate_variance(c) == pytest.approx(analytic.vasicek_variance(0.04, 0.07),
                                                  rel=1e-8)


def test_multi_region_book_needs_larger_loadings(minimal) -> None:
    d = _one_factor(minimal)
    d["factors"] = {"national": 0.2, "regional": 0.2}
    seg = d["segments"][0]
    d["segments"] = [dict(seg, name=f"r{i}", region=f"r{i}") for i in range(3)]
    s = from_dict(d)
    c = s.with_changes(scenario_changes(s, 0.03, 0.05))
    r2 = c.factors.loadings.national ** 2 + c.factors.loadings.regional ** 2
    assert r2 > 0.05  # three regions partly diversify the provincial default rate
    assert book_rate_variance(c) == pytest.approx(analytic.vasicek_variance(0.03, 0.05),
                                                  rel=1e-8)


def test_calibrated_book_simulates_the_fitted_mean_and_spread(minimal) -> None:
    """The Monte Carlo's amount-weighted default rate of the calibrated book has the
    fitted mean and standard deviation (within their Monte Carlo errors)."""
    from simkit.book import book_for
    from simkit.montecarlo import simulate

    s = from_dict(_one_factor(minimal))
    c = s.with_changes(scenario_changes(s, 0.03, 0.06))
    book = book_for(c)
    res = simulate(c, n_paths=20_000, seed=5, book=book)
    rate = res.paid.sum(axis=1) / book.exposure.sum()
    n = rate.size
    # granularity: 4,000 loans add a binomial variance on top of the Vasicek one
    w = book.exposure / book.exposure.sum()
    target_var = analytic.vasicek_variance(0.03, 0.06) + float(
        np.sum(w**2 * book.default_prob * (1 - book.default_prob)))
    assert abs(rate.mean() - 0.03) < 4 * rate.std() / math.sqrt(n)
    sd_se = rate.std() * math.sqrt((np.mean((rate - rate.mean()) ** 4) / rate.var() ** 2
                                    - 1) / (4 * n))
    assert abs(rate.std() - math.sqrt(target_var)) < 4 * sd_se


def test_calibrate_reports_the_effect_on_every_party(minimal) -> None:
    s = from_dict(_one_factor(minimal))
    cal = calibrate(s, ANHUI, n_paths=2000, seed=3)
    cases = {r["case"] for r in cal.effect}
    assert cases == {"fit", "rho_low", "rho_high", "pd_low", "pd_high"}
    assert {r["party"] for r in cal.effect} == set(s.party_names)
    by = {(r["case"], r["party"]): r for r in cal.effect}
    # the tail grows with the correlation, the expected loss with the default level
    assert by["rho_high", "guarantor"]["es_99.9"] > by["rho_low", "guarantor"]["es_99.9"]
    assert by["pd_high", "guarantor"]["el"] > by["pd_low", "guarantor"]["el"]
    text = cal.format_text()
    assert "--set 'factors.national=" in text and "mle" in text
    assert cal.summary()["fit"]["method"] == "mle"


def test_calibrate_refuses_a_tape(minimal, tmp_path) -> None:
    tape = tmp_path / "t.csv"
    tape.write_text("exposure,default_prob,lgd\n1000000,0.02,0.45\n")
    d = dict(minimal)
    d.pop("segments")
    d["book"] = {"tape": str(tape)}
    s = from_dict(d)
    with pytest.raises(ScenarioError, match=r"book\.tape is a loan tape"):
        scenario_changes(s, 0.03, 0.05)
