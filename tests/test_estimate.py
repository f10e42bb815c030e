"""The closed-form scenario estimate against the Monte Carlo (fixed seed, tolerance 4 SE)."""

from __future__ import annotations

import numpy as np

from simkit import from_dict
from simkit.book import build_book
from simkit.estimate import expected_results
from simkit.montecarlo import simulate


def test_downturn_lgd_expected_loss_matches_monte_carlo(minimal) -> None:
    del minimal["agreements"][0]["layers"][3]["cap"]
    minimal["factors"] = {"national": 0.35, "downturn_lgd": 0.5}
    minimal["segments"][0]["lgd"] = {"mean": 0.45, "sd": 0.1}
    minimal["run"]["n_paths"] = 6000
    s = from_dict(minimal)
    book = build_book(s)
    est = expected_results(s, book)
    plain = expected_results(s.with_changes({"factors.downturn_lgd": 0.0}), book)
    # downturn LGD raises the expected loss: defaults cluster in bad national states
    assert est.expected_loss.sum() > 1.05 * plain.expected_loss.sum()
    res = simulate(s, book=book)
    el = res.losses.mean(axis=0)
    se = res.losses.std(axis=0, ddof=1) / np.sqrt(res.losses.shape[0])
    assert np.all(np.abs(el - est.expected_loss) <= 4 * se + 1e-9)


def test_stress_path_of_the_national_factor_matches_monte_carlo(minimal) -> None:
    """factors.national_path: the closed form averages each year's shifted cohort and
    agrees with the Monte Carlo within 4 SE (no caps, Gaussian, one-year loans); it is
    above the unstressed figure and says when it is approximate (Student-t)."""
    del minimal["agreements"][0]["layers"][3]["cap"]
    minimal["factors"] = {"national": 0.35, "downturn_lgd": 0.3,
                          "national_path": [-1.0, -2.0, -0.5]}
    minimal["segments"][0]["lgd"] = {"mean": 0.45, "sd": 0.1}
    minimal["run"].update({"n_paths": 6000, "horizon_years": 3})
    s = from_dict(minimal)
    book = build_book(s)
    est = expected_results(s, book)
    assert est.notes == ()
    calm = expected_results(s.with_changes({"factors.national_path": []}), book)
    assert est.expected_loss.sum() > 1.5 * calm.expected_loss.sum()
    res = simulate(s, book=book)
    el = res.losses.mean(axis=0) / 3  # per year
    se = res.losses.std(axis=0, ddof=1) / np.sqrt(res.losses.shape[0]) / 3
    assert np.all(np.abs(el - est.expected_loss) <= 4 * se + 1e-9), (el, est.expected_loss)
    t = expected_results(s.with_changes({"factors.copula": "student_t"}), book)
    assert len(t.notes) == 1 and "national_path" in t.notes[0]
