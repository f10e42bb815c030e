"""Factor copula: thresholds, conditional probabilities, draws, downturn LGD, AR(1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from simkit.factors import (
    FactorModel,
    ar1,
    conditional_default_prob,
    default_threshold,
    downturn_lgd_mean,
    moral_hazard_pd,
)


def _model(copula: str = "gaussian", dof: float = 5.0) -> FactorModel:
    return FactorModel(n_regions=3, n_sectors=2, n_guarantors=4, copula=copula, dof=dof)


def test_threshold_gaussian_and_t() -> None:
    assert default_threshold(0.02) == pytest.approx(stats.norm.ppf(0.02))
    assert default_threshold(0.02, "student_t", 4) == pytest.approx(stats.t.ppf(0.02, 4))


@pytest.mark.parametrize("r2", [0.05, 0.3])
def test_conditional_probability_integrates_to_default_prob(r2: float) -> None:
    dp = 0.03
    c = default_threshold(dp)

    def f(z: float) -> float:
        m = math.sqrt(r2) * z
        return float(conditional_default_prob(c, r2, np.array([m]))[0]) * stats.norm.pdf(z)

    val, _ = integrate.quad(f, -10, 10)
    assert val == pytest.approx(dp, rel=1e-7)


def test_student_t_conditional_probability_integrates_to_default_prob() -> None:
    dp, r2, dof = 0.02, 0.2, 5.0
    c = default_threshold(dp, "student_t", dof)

    def inner(w: float) -> float:
        s = math.sqrt(w / dof)

        def f(z: float) -> float:
            p = conditional_default_prob(c, r2, np.array([math.sqrt(r2) * z]), np.array([s]))
            return float(p[0]) * stats.norm.pdf(z)

        return integrate.quad(f, -10, 10)[0] * stats.chi2.pdf(w, dof)

    val, _ = integrate.quad(inner, 0, 80, limit=200)
    assert val == pytest.approx(dp, rel=1e-5)


def test_draw_shapes_and_student_scale() -> None:
    rng = np.random.default_rng(1)
    d = _model("student_t", 5.0).draw(rng, 50_000)
    assert d.national.shape == (50_000,)
    assert d.regional.shape == (50_000, 3)
    assert d.sector.shape == (50_000, 2)
    assert d.guarantor.shape == (50_000, 4)
    assert np.all(d.log_weight == 0)
    # s^2 = W / dof has mean 1
    assert np.mean(d.scale**2) == pytest.approx(1.0, abs=4 * math.sqrt(2 / 5 / 50_000))
    g = _model().draw(np.random.default_rng(1), 10)
    assert np.all(g.scale == 1.0)


def test_shifted_draw_weights_are_likelihood_ratios() -> None:
    model = _model()
    shift = np.zeros(model.n_factors)
    shift[0], shift[2] = -2.0, -1.0
    d = model.draw(np.random.default_rng(2), 200_000, shift)
    w = np.exp(d.log_weight)
    assert np.mean(d.national) == pytest.approx(-2.0, abs=0.02)
    assert np.mean(d.regional[:, 1]) == pytest.approx(-1.0, abs=0.02)
    # E_Q[w 1{Z_nat < -2}] = Phi(-2): far more accurate than the weights' mean itself
    x = w * (d.national < -2)
    se = x.std() / math.sqrt(len(x))
    assert abs(x.mean() - stats.norm.cdf(-2)) < 4 * se
    assert se < 0.1 * stats.norm.cdf(-2)


def test_systematic_uses_the_right_columns() -> None:
    d = _model().draw(np.random.default_rng(3), 5)
    m = d.systematic([0.3, 0.2, 0.1, 0.4], region=2, sector=1, guarantor_col=3)
    np.testing.assert_allclose(m, 0.3 * d.national + 0.2 * d.regional[:, 2]
                               + 0.1 * d.sector[:, 1] + 0.4 * d.guarantor[:, 3])
    assert list(_model().guarantor_column(np.array([-1, 0, 2]))) == [3, 0, 2]


def test_downturn_lgd_mean() -> None:
    z = np.array([-3.0, 0.0, 2.0])
    out = downturn_lgd_mean(0.45, 0.3, z)
    assert out[1] == pytest.approx(0.45)
    assert out[0] > 0.45 > out[2]
    assert out[0] == pytest.approx(stats.norm.cdf(stats.norm.ppf(0.45) + 0.9))
    np.testing.assert_allclose(downturn_lgd_mean(0.45, 0.0, z), 0.45)


def test_ar1_is_stationary_with_the_right_autocorrelation() -> None:
    rng = np.random.default_rng(4)
    phi, n = 0.6, 200_000
    z1 = ar1(None, rng.standard_normal(n), phi)
    z2 = ar1(z1, rng.standard_normal(n), phi)
    assert np.var(z2) == pytest.approx(1.0, abs=0.02)
    assert np.corrcoef(z1, z2)[0, 1] == pytest.approx(phi, abs=0.01)


# --------------------------------------------------------------------------------------
# Beta LGD by inverse CDF
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mean", "sd"), [(0.65, 0.2), (0.75, 0.15), (0.3, 0.25)])
def test_beta_quantile_table_matches_beta(mean: float, sd: float) -> None:
    from simkit.factors import BetaQuantiles, beta_from_table

    nu = mean * (1 - mean) / sd**2 - 1
    exact = stats.beta(mean * nu, (1 - mean) * nu)
    w = np.random.default_rng(3).random(1_000_000)
    x = beta_from_table(BetaQuantiles(mean, nu).table(), w)
    assert stats.kstest(x, exact.cdf).statistic < 2e-3  # ~ 1.36 / sqrt(n) at 5 %
    assert x.mean() == pytest.approx(mean, abs=4 * sd / 1000 + 2.5e-4)
    assert x.std() == pytest.approx(sd, rel=5e-3)
    # the interpolation itself: CDF error at the nodes' midpoints below 1 / 4096
    q = (np.arange(4096) + 0.5) / 4096
    assert np.max(np.abs(exact.cdf(beta_from_table(BetaQuantiles(mean, nu).table(), q))
                         - q)) < 1 / 4096


def test_downturn_beta_rows_reproduce_the_scenario_mean() -> None:
    from simkit.factors import BetaQuantiles, beta_from_table

    nu = 0.65 * 0.35 / 0.04 - 1
    m = 0.81234  # between two rows
    n = 1_000_000
    table, row, lam = BetaQuantiles(0.65, nu).rows_for(np.full(n, m))
    x = beta_from_table(table, np.random.default_rng(4).random(n), row, lam)
    exact = stats.beta(m * nu, (1 - m) * nu)
    assert stats.kstest(x, exact.cdf).statistic < 2e-3
    assert x.mean() == pytest.approx(m, abs=4 * exact.std() / 1000 + 2.5e-4)
    assert x.std() == pytest.approx(exact.std(), rel=5e-3)
    # deterministic shape error of the row mixing, means 0.1-0.9
    q = (np.arange(4096) + 0.5) / 4096
    for mm in np.linspace(0.1, 0.9, 17):
        t, r, lm = BetaQuantiles(0.65, nu).rows_for(np.full(q.size, mm))
        err = stats.beta(mm * nu, (1 - mm) * nu).cdf(beta_from_table(t, q, r, lm)) - q
        assert np.max(np.abs(err)) < (4e-4 if 0.2 <= mm <= 0.8 else 1.3e-3)


def test_mixture_shift_weights_are_likelihood_ratios() -> None:
    model = FactorModel(n_regions=2, n_sectors=1, n_guarantors=1)
    mus = np.zeros((3, model.n_factors))
    mus[0, 0], mus[1, 1], mus[2, 2] = -2.0, -2.5, -1.5
    d = model.draw(np.random.default_rng(2), 200_000, mus)
    w = np.exp(d.log_weight)
    assert w.mean() == pytest.approx(1.0, abs=0.02)
    # E_Q[w 1{Z_nat < -2}] = P(Z_nat < -2)
    assert np.mean(w * (d.national < -2)) == pytest.approx(stats.norm.cdf(-2), rel=0.03)


def test_mixture_with_component_probabilities_is_unbiased_and_bounded() -> None:
    model = FactorModel(n_regions=2, n_sectors=1, n_guarantors=1)
    mus = np.zeros((3, model.n_factors))
    mus[0, 0], mus[1, 1] = -3.0, -2.5  # last row: the plain measure
    probs = np.array([0.5, 0.45, 0.05])
    d = model.draw(np.random.default_rng(4), 200_000, mus, probs)
    w = np.exp(d.log_weight)
    assert w.max() <= 1 / 0.05 * (1 + 1e-12)  # the defensive component bounds every weight
    assert w.mean() == pytest.approx(1.0, abs=0.03)
    assert np.mean(w * (d.national < -3)) == pytest.approx(stats.norm.cdf(-3), rel=0.03)
    assert np.mean(w * (d.regional[:, 0] < -2)) == pytest.approx(stats.norm.cdf(-2),
                                                                 rel=0.03)
    with pytest.raises(ValueError, match="probs"):
        model.draw(np.random.default_rng(4), 10, mus, np.array([0.5, 0.5, 0.5]))


# --------------------------------------------------------------------------------------
# the compiled kernel's copies of the credit model (issue 8, item 2)
# --------------------------------------------------------------------------------------
def _kernels():
    return pytest.importorskip("simkit._kernels")


def test_kernel_ndtr_matches_scipy() -> None:
    """The kernel's normal CDF against scipy's over [-38, 9]: to 1e-15 absolute, and to
    1e-12 relative where the value is a normal float (the kernel's ``math.erfc`` and
    Cephes' differ by up to a few hundred ulps deep in the tail, 5.7e-14 relative)."""
    from scipy import special

    k = _kernels()
    x = np.concatenate([np.linspace(-38.0, 9.0, 4001), [-0.7071067811865476, 0.0, 1e-300]])
    mine = np.array([k.ndtr(float(v)) for v in x])
    ref = special.ndtr(x)
    np.testing.assert_allclose(mine, ref, rtol=0.0, atol=1e-15)
    normal = ref > 1e-290
    np.testing.assert_allclose(mine[normal], ref[normal], rtol=1e-12, atol=0.0)


def test_kernel_conditional_default_prob_matches_factors() -> None:
    """``cond_default_prob`` (compiled) against :func:`conditional_default_prob` over a
    grid of thresholds, scales, systematic parts and R^2: 1e-15 absolute, 1e-12 relative
    (the normal CDFs' tails, see above)."""
    k = _kernels()
    c = default_threshold(np.array([1e-6, 1e-3, 0.02, 0.2, 0.6]))
    worst = worst_abs = 0.0
    for r2 in (0.0, 0.04, 0.3, 0.81):
        for s in (0.3, 1.0, 2.5):
            m = np.linspace(-6.0, 6.0, 41)
            ref = conditional_default_prob(c[:, None], r2, m[None, :], np.array([s]))
            sd = math.sqrt(1.0 - r2)
            mine = np.array([[k.cond_default_prob(float(ci), s, float(mi), sd) for mi in m]
                             for ci in c])
            worst = max(worst, float(np.max(np.abs(mine - ref) / np.maximum(ref, 1e-290))))
            worst_abs = max(worst_abs, float(np.max(np.abs(mine - ref))))
    assert worst_abs <= 1e-15, worst_abs
    assert worst <= 1e-12, worst


def test_kernel_table_lgd_matches_beta_from_table_bit_for_bit() -> None:
    from simkit.factors import BetaQuantiles, beta_from_table

    k = _kernels()
    w = np.append(np.random.default_rng(3).random(500), [0.0, 0.5, 1 - 2**-53])
    one = BetaQuantiles(0.45, 6.0)
    table = one.table()
    ref = beta_from_table(table, w)
    mine = np.array([k.table_lgd(table, 1, 0, 1.0, float(v)) for v in w])
    assert np.array_equal(mine, ref)
    means = downturn_lgd_mean(0.45, 0.4, np.linspace(-3, 3, 500 + 3))
    rows, row, lam = one.rows_for(means)
    ref = beta_from_table(rows, w, row, lam)
    mine = np.array([k.table_lgd(rows, 2, int(r), float(la), float(v))
                     for r, la, v in zip(row, lam, w, strict=True)])
    assert np.array_equal(mine, ref)


def test_beta_rule_is_one_function() -> None:
    """The scenario's Beta shape parameters come from the credit model's rule."""
    from simkit.factors import beta_concentration, beta_shape
    from simkit.scenario import Lgd

    nu = beta_concentration(np.array([0.45, 0.3]), np.array([0.2, 0.0]))
    assert nu[0] == 0.45 * 0.55 / 0.2**2 - 1 and np.isinf(nu[1])
    a, b = beta_shape(0.45, nu[0])
    assert Lgd(0.45, 0.2).beta_ab == (float(a), float(b))
    assert beta_shape(0.0, 5.0, floor=1e-12)[0] == 1e-12


def test_downturn_lgd_mean_keeps_the_ends() -> None:
    z = np.array([-2.0, 0.0, 2.0])
    np.testing.assert_array_equal(downturn_lgd_mean(np.array([0.0, 1.0, 0.5]), 0.5, z),
                                  [0.0, 1.0, stats.norm.cdf(-1.0)])


def test_moral_hazard_pd_closed_form_and_off_switch():
    pd = np.array([0.02, 0.05, 0.5])
    retained = np.array([0.2, 1.0, 0.0])
    got = moral_hazard_pd(pd, retained, kappa=2.0, gamma=0.5)
    want = np.minimum(pd * (1 + 2.0 * (1 - retained) ** 0.5), 1 - 1e-9)
    np.testing.assert_allclose(got, want, rtol=1e-15)
    assert got[1] == pd[1]  # the lender keeps everything: no moral hazard
    assert got[2] == 1 - 1e-9  # clipped below 1
    np.testing.assert_array_equal(moral_hazard_pd(pd, retained, kappa=0.0), pd)


def test_capital_injection_tops_up_below_the_trigger_only():
    from simkit.regulation import capital_injection

    got = capital_injection(np.array([40.0, 60.0, -10.0]), 100.0, trigger=0.5, target=0.9)
    np.testing.assert_allclose(got, [50.0, 0.0, 100.0])
    assert float(capital_injection(10.0, 100.0, trigger=0.0, target=1.0)) == 0.0
