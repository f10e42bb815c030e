"""The calibrated Anhui 2024 scenario and its stress variants against the published
figures they are built from (DOMAIN.md (d), the seed article)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simkit import analytic, load
from simkit.book import book_for
from simkit.calibrate import book_rate_variance, fit_mle
from simkit.estimate import expected_results
from tests.conftest import ROOT

ANHUI_RATES = [0.0369, 0.0398, 0.0342, 0.0269]  # 2019-2022 [S8]


@pytest.fixture(scope="module")
def anhui():
    return load(ROOT / "scenarios" / "anhui_2024.toml")


def test_anhui_2024_has_the_seed_volumes(anhui) -> None:
    book = book_for(anhui)
    assert book.n_loans == 126_700  # entities [seed]
    assert book.guaranteed.sum() == pytest.approx(1318.74e8, rel=0.01)  # re-guaranteed
    tech = book.segment == list(book.segment_names).index("tech_plan_hefei")
    assert book.guaranteed[tech].sum() == pytest.approx(111.87e8, rel=0.01)  # tech plan
    assert {a.name for a in anhui.agreements} == {"4321_nfgf", "tech2024"}
    line = anhui.credit_lines[0]  # raised 26 % during 2024 to the year-end level [seed]
    assert [(c.at_years, c.factor) for c in line.changes] == [(0.5, 1.26)]
    assert line.amount * line.changes[0].factor == pytest.approx(1.15e11, rel=1e-3)


def test_anhui_2024_reproduces_the_compensation_series(anhui) -> None:
    fit = fit_mle(ANHUI_RATES)
    book = book_for(anhui)
    mean = float((book.guaranteed * book.default_prob).sum() / book.guaranteed.sum())
    assert fit.default_prob_interval[0] < mean < fit.default_prob_interval[1]
    assert mean == pytest.approx(fit.default_prob, rel=0.005)
    assert math.sqrt(book_rate_variance(anhui)) == pytest.approx(
        math.sqrt(fit.variance), rel=0.01)
    # every observed year lies inside the calibrated book's central 95 % of default rates
    rho = fit.rho
    lo, hi = (analytic.vasicek_quantile(q, mean, rho) for q in (0.025, 0.975))
    assert all(lo < r < hi for r in ANHUI_RATES)


def test_anhui_2024_simulated_default_rate_matches_the_fit(anhui) -> None:
    """Plain Monte Carlo of the shipped book: the amount-weighted annual default rate has
    the fitted mean and spread within their Monte Carlo errors (plus granularity)."""
    from simkit.montecarlo import simulate

    s = anhui.with_changes({"run.importance_sampling": False})
    book = book_for(s)
    res = simulate(s, n_paths=4000, seed=7, book=book)
    rate = res.paid.sum(axis=1) / book.exposure.sum()
    fit = fit_mle(ANHUI_RATES)
    w = book.exposure / book.exposure.sum()
    granular = float(np.sum(w**2 * book.default_prob * (1 - book.default_prob)))
    n = rate.size
    assert abs(rate.mean() - fit.default_prob) < 4 * rate.std() / math.sqrt(n) + 2e-4
    sd_target = math.sqrt(fit.variance + granular)
    assert abs(rate.std() - sd_target) < 4 * rate.std() / math.sqrt(2 * n) + 0.03 * sd_target


def test_stress_scenarios_move_the_losses_as_stated(anhui) -> None:
    base = expected_results(anhui).expected_loss.sum()
    pd2 = load(ROOT / "scenarios" / "anhui_2024_stress_pd_x2.toml")
    rec = load(ROOT / "scenarios" / "anhui_2024_stress_recovery_half.toml")
    for s in (pd2, rec):  # the same book, parties and agreements otherwise
        assert [p.name for p in s.parties] == [p.name for p in anhui.parties]
        assert s.agreements == anhui.agreements
    b0, b2 = book_for(anhui), book_for(pd2)
    np.testing.assert_allclose(b2.default_prob, 2 * b0.default_prob, rtol=2e-3)
    np.testing.assert_allclose(1 - book_for(rec).lgd_mean, (1 - b0.lgd_mean) / 2, rtol=1e-3)
    assert 1.9 < expected_results(pd2).expected_loss.sum() / base < 2.05
    assert expected_results(rec).expected_loss.sum() / base > 1.2


def test_downturn_stress_is_anhui_over_three_years_with_the_path(anhui) -> None:
    """anhui_2024_stress_downturn.toml: the Anhui book, parties and agreements over three
    years with a national-factor path (its losses: tests/test_mc_mechanisms.py)."""
    s = load(ROOT / "scenarios" / "anhui_2024_stress_downturn.toml")
    assert s.parties == anhui.parties and s.agreements == anhui.agreements
    assert s.segments == anhui.segments and s.factors.loadings == anhui.factors.loadings
    assert s.run.horizon_years == 3 and s.des.years == 3
    assert len(s.factors.national_path) == 3 and max(s.factors.national_path) < 0
    assert anhui.factors.national_path == ()
    np.testing.assert_array_equal(book_for(s).default_prob, book_for(anhui).default_prob)
