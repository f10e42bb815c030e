"""Tests for simkit.analytic: DOMAIN.md (g) reference numbers and internal consistency."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr, ndtri
from scipy.stats import binom, norm

from simkit import analytic as an


def cond_pd(z, default_prob, rho):
    """Conditional default probability p(z) of the one-factor Gaussian model."""
    return ndtr((ndtri(default_prob) - math.sqrt(rho) * z) / math.sqrt(1.0 - rho))


def bvn_by_quad(h, k, r):
    """P(X <= h, Y <= k) for a standard bivariate normal, by 1-d quadrature."""
    s = math.sqrt(1.0 - r * r)
    value, _ = integrate.quad(
        lambda x: norm.pdf(x) * ndtr((k - r * x) / s), -np.inf, h, epsabs=1e-15, epsrel=1e-13
    )
    return value


# --------------------------------------------------------------------------------------
# DOMAIN.md (g) reference numbers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("default_prob", "rho", "q999", "q99"),
    [
        (0.02, 0.12, 0.147282, 0.091719),
        (0.02, 0.10, 0.128237, 0.082357),
        (0.01, 0.20, 0.145525, 0.075251),
        (0.03, 0.05, 0.111099, 0.081364),
    ],
)
def test_v1_vasicek_quantiles(default_prob, rho, q999, q99):
    assert an.vasicek_quantile(0.999, default_prob, rho) == pytest.approx(q999, rel=1e-5)
    assert an.vasicek_quantile(0.99, default_prob, rho) == pytest.approx(q99, rel=1e-5)


# RW in DOMAIN.md is a percentage with two decimals: allow half a unit of the last digit.
RW_ABS = 0.5e-4


@pytest.mark.parametrize(
    ("default_prob", "sales", "corr", "b", "k", "rw"),
    [
        (0.01, None, 0.192784, 0.137486, 0.073853, 0.9232),
        (0.01, 5.0, 0.152784, 0.137486, 0.057916, 0.7239),
        (0.02, None, 0.164146, 0.110770, 0.091883, 1.1485),
        (0.02, 10.0, 0.128590, 0.110770, 0.073144, 0.9143),
        (0.02, 5.0, 0.124146, 0.110770, 0.070836, 0.8855),
    ],
)
def test_v2_irb_corporate(default_prob, sales, corr, b, k, rw):
    res = an.irb_corporate(default_prob, lgd=0.45, maturity=2.5, sales_eur_m=sales)
    assert isinstance(res, an.IRBCapital)
    assert res.correlation == pytest.approx(corr, rel=1e-5)
    assert res.maturity_adjustment_b == pytest.approx(b, rel=1e-5)
    assert res.capital_k == pytest.approx(k, rel=1e-5)
    assert res.risk_weight == pytest.approx(rw, abs=RW_ABS)
    assert res.risk_weight == pytest.approx(12.5 * res.capital_k, rel=1e-15)


def test_v2_capital_per_million():
    assert round(an.irb_corporate(0.02).capital_k * 1_000_000) == 91_883
    assert round(an.irb_corporate(0.02, sales_eur_m=10.0).capital_k * 1_000_000) == 73_144


def test_v2_defaults_and_sales_clipping():
    base = an.irb_corporate(0.02)
    assert base == an.irb_corporate(0.02, 0.45, 2.5)
    # sales are clipped to [5, 50]: no adjustment at or above 50, full relief at or below 5
    assert an.irb_corporate(0.02, sales_eur_m=80.0) == base
    assert an.irb_corporate(0.02, sales_eur_m=1.0) == an.irb_corporate(0.02, sales_eur_m=5.0)
    # longer maturity needs more capital; maturity is clipped to [1, 5]
    assert an.irb_corporate(0.02, maturity=5.0).capital_k > base.capital_k
    assert an.irb_corporate(0.02, maturity=0.25) == an.irb_corporate(0.02, maturity=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.capital_k = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("default_prob", "corr", "k", "rw"),
    [
        (0.01, 0.121609, 0.036618, 0.4577),
        (0.02, 0.094556, 0.046389, 0.5799),
        (0.05, 0.052591, 0.053132, 0.6642),
    ],
)
def test_v3_irb_retail_other(default_prob, corr, k, rw):
    res = an.irb_retail_other(default_prob, lgd=0.45)
    assert res.correlation == pytest.approx(corr, rel=1e-5)
    assert res.capital_k == pytest.approx(k, rel=1e-5)
    assert res.risk_weight == pytest.approx(rw, abs=RW_ABS)
    assert res.maturity_adjustment_b == 0.0


def test_irb_broadcasts_over_arrays():
    pds = np.array([0.01, 0.02, 0.05])
    res = an.irb_retail_other(pds)
    assert res.capital_k.shape == (3,)
    assert res.maturity_adjustment_b.shape == (3,)
    for i, dp_i in enumerate(pds):
        assert res.capital_k[i] == pytest.approx(an.irb_retail_other(dp_i).capital_k, rel=1e-14)
    corp = an.irb_corporate(0.02, sales_eur_m=np.array([5.0, 10.0, 50.0]))
    np.testing.assert_allclose(corp.correlation, [0.124146, 0.128590, 0.164146], rtol=1e-5)


def test_v4_4321_expected_loss_split():
    shares = {"original": 0.4, "provincial": 0.3, "bank": 0.2, "local_gov": 0.1}
    el = an.risk_share_expected_loss(1_000_000, 0.02, 0.30, shares)
    assert list(el) == list(shares)
    assert el["original"] == pytest.approx(5_600, rel=1e-12)
    assert el["provincial"] == pytest.approx(4_200, rel=1e-12)
    assert el["bank"] == pytest.approx(2_800, rel=1e-12)
    assert el["local_gov"] == pytest.approx(1_400, rel=1e-12)
    assert math.fsum(el.values()) == pytest.approx(14_000, rel=1e-12)
    # original guarantor's EL is 0.56 % of EAD, below the 1 % fee cap
    assert el["original"] / 1_000_000 == pytest.approx(0.0056, rel=1e-12)


def test_risk_share_expected_loss_arrays():
    ead = np.array([1e6, 2e6])
    el = an.risk_share_expected_loss(ead, 0.02, 0.0, {"a": 0.25, "b": 0.75})
    np.testing.assert_allclose(el["a"], [5_000, 10_000], rtol=1e-12)
    np.testing.assert_allclose(el["b"], [15_000, 30_000], rtol=1e-12)


# --------------------------------------------------------------------------------------
# Vasicek large pool
# --------------------------------------------------------------------------------------

PARAMS = [(0.02, 0.12), (0.01, 0.20), (0.03, 0.05), (0.04, 0.01), (0.30, 0.45)]


@pytest.mark.parametrize(("default_prob", "rho"), PARAMS)
def test_cdf_and_quantile_are_inverse(default_prob, rho):
    q = np.array([1e-6, 0.01, 0.3, 0.5, 0.9, 0.99, 0.999, 0.99999])
    x = an.vasicek_quantile(q, default_prob, rho)
    assert np.all(np.diff(x) > 0)
    np.testing.assert_allclose(an.vasicek_cdf(x, default_prob, rho), q, rtol=1e-10)
    xs = np.minimum(default_prob * np.array([0.01, 0.3, 0.6, 1.0, 1.5, 2.5, 10.0]), 0.99)
    probs = an.vasicek_cdf(xs, default_prob, rho)
    body = (probs > 1e-9) & (probs < 1 - 1e-9)  # elsewhere the round trip is ill-conditioned
    assert body.sum() >= 3
    back = an.vasicek_quantile(probs[body], default_prob, rho)
    np.testing.assert_allclose(back, xs[body], rtol=1e-7)


def test_cdf_quantile_end_points_and_types():
    assert an.vasicek_cdf(0.0, 0.02, 0.12) == 0.0
    assert an.vasicek_cdf(1.0, 0.02, 0.12) == 1.0
    assert an.vasicek_quantile(0.0, 0.02, 0.12) == 0.0
    assert an.vasicek_quantile(1.0, 0.02, 0.12) == 1.0
    assert type(an.vasicek_cdf(0.05, 0.02, 0.12)) is float
    out = an.vasicek_quantile(0.999, np.array([0.01, 0.02]), np.array([[0.1], [0.2]]))
    assert out.shape == (2, 2)
    assert out[0, 1] == pytest.approx(an.vasicek_quantile(0.999, 0.02, 0.1), rel=1e-15)


@pytest.mark.parametrize(("default_prob", "rho"), PARAMS)
def test_pdf_integrates_to_one_and_matches_cdf_derivative(default_prob, rho):
    total, _ = integrate.quad(
        an.vasicek_pdf,
        0.0,
        1.0,
        args=(default_prob, rho),
        epsabs=1e-12,
        limit=200,
        points=[default_prob],
    )
    assert total == pytest.approx(1.0, abs=1e-9)
    x = an.vasicek_quantile(np.array([0.05, 0.3, 0.5, 0.8, 0.99]), default_prob, rho)
    h = 1e-6 * x
    slope = an.vasicek_cdf(x + h, default_prob, rho) - an.vasicek_cdf(x - h, default_prob, rho)
    np.testing.assert_allclose(an.vasicek_pdf(x, default_prob, rho), slope / (2 * h), rtol=1e-6)


def test_pdf_end_points():
    assert an.vasicek_pdf(0.0, 0.02, 0.12) == 0.0
    assert an.vasicek_pdf(1.0, 0.02, 0.12) == 0.0
    assert an.vasicek_pdf(0.0, 0.02, 0.7) == np.inf
    # rho = 1/2 and default_prob = 1/2 make DR uniform on [0, 1]
    np.testing.assert_allclose(an.vasicek_pdf([0.0, 0.3, 1.0], 0.5, 0.5), 1.0, rtol=1e-14)


@pytest.mark.parametrize(("default_prob", "rho"), PARAMS)
@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 0.99, 0.999])
def test_es_matches_quadrature_of_quantile(default_prob, rho, q):
    es = an.vasicek_es(q, default_prob, rho)
    var = an.vasicek_quantile(q, default_prob, rho)
    assert es >= var
    assert es > default_prob or q == 0.0
    integral, _ = integrate.quad(
        an.vasicek_quantile,
        q,
        1.0,
        args=(default_prob, rho),
        epsabs=0.0,
        epsrel=1e-12,
        limit=200,
    )
    assert es == pytest.approx(integral / (1.0 - q), rel=1e-9)


def test_es_at_zero_is_mean_and_increases():
    assert an.vasicek_es(0.0, 0.02, 0.12) == pytest.approx(0.02, rel=1e-13)
    es = an.vasicek_es(np.array([0.5, 0.9, 0.99, 0.999, 0.9999]), 0.02, 0.12)
    assert np.all(np.diff(es) > 0)


@pytest.mark.parametrize(("default_prob", "rho"), PARAMS)
@pytest.mark.parametrize("c", [0.0, 0.005, 0.02, 0.04, 0.1, 0.3])
def test_excess_mean_matches_quadrature_and_sums_to_pd(default_prob, rho, c):
    excess = an.vasicek_excess_mean(c, default_prob, rho)
    capped = an.vasicek_capped_mean(c, default_prob, rho)
    assert capped + excess == pytest.approx(default_prob, rel=1e-13)
    assert 0.0 <= capped <= min(c, default_prob) + 1e-16

    # E[(DR - c)+] = int_c^1 P(DR > x) dx, with P(DR > x) computed without cancellation
    def survival(x):
        return ndtr((ndtri(default_prob) - math.sqrt(1 - rho) * ndtri(x)) / math.sqrt(rho))

    integral, _ = integrate.quad(survival, c, 1.0, epsabs=1e-16, epsrel=1e-12, limit=200)
    assert excess == pytest.approx(integral, rel=1e-8, abs=1e-15)


def test_capped_mean_limits():
    assert an.vasicek_capped_mean(0.0, 0.02, 0.12) == 0.0
    assert an.vasicek_capped_mean(1.0, 0.02, 0.12) == pytest.approx(0.02, rel=1e-14)
    assert an.vasicek_capped_mean(np.inf, 0.02, 0.12) == pytest.approx(0.02, rel=1e-14)
    assert an.vasicek_excess_mean(2.0, 0.02, 0.12) == 0.0
    caps = np.linspace(0.0, 0.2, 11)
    assert np.all(np.diff(an.vasicek_capped_mean(caps, 0.02, 0.12)) > 0)


@pytest.mark.parametrize(("c", "rho"), [(0.03, 0.12), (0.02, 0.05), (0.04, 0.20)])
def test_capped_mean_matches_monte_carlo(c, rho):
    default_prob = 0.02
    rng = np.random.default_rng(12345)
    z = rng.standard_normal(400_000)
    capped = np.minimum(cond_pd(z, default_prob, rho), c)
    se = capped.std(ddof=1) / math.sqrt(z.size)
    exact = an.vasicek_capped_mean(c, default_prob, rho)
    assert abs(capped.mean() - exact) < 4 * se
    # and the cap binds: the capped mean is clearly below default_prob
    assert default_prob - exact > 10 * se


def test_layer_expected_payout():
    share, cap, default_prob, rho = 0.3, 0.03, 0.02, 0.12
    expected = share * an.vasicek_capped_mean(cap, default_prob, rho)
    got = an.vasicek_layer_expected_payout(share, cap, default_prob, rho)
    assert got == pytest.approx(expected, rel=1e-15)
    assert got < share * default_prob
    assert an.vasicek_layer_expected_payout(share, np.inf, default_prob, rho) == pytest.approx(
        share * default_prob, rel=1e-14
    )
    shares = np.array([0.1, 0.2, 0.3, 0.4])
    layers = an.vasicek_layer_expected_payout(shares, 0.03, default_prob, rho)
    assert layers.sum() == pytest.approx(an.vasicek_capped_mean(0.03, default_prob, rho))


# --------------------------------------------------------------------------------------
# finite pool
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "default_prob", "rho"), [(50, 0.02, 0.12), (50, 0.3, 0.5)])
def test_finite_pool_matches_linear_space_quadrature(n, default_prob, rho):
    pmf = an.finite_pool_pmf(n, default_prob, rho)
    assert pmf.shape == (n + 1,)
    ref = np.empty(n + 1)
    for k in range(n + 1):
        ref[k], _ = integrate.quad(
            lambda z, k=k: binom.pmf(k, n, cond_pd(z, default_prob, rho)) * norm.pdf(z),
            -12.0,
            12.0,
            epsabs=1e-15,
            epsrel=1e-12,
            limit=500,
            points=[-3.0, 0.0, 3.0],
        )
    np.testing.assert_allclose(pmf, ref, rtol=0, atol=1e-8)
    big = ref > 1e-12
    np.testing.assert_allclose(pmf[big], ref[big], rtol=1e-8)


def test_finite_pool_large_n_matches_linear_space_quadrature():
    # for large n the integrand in z is sharply peaked where p(z) = k / n
    n, default_prob, rho = 20_000, 0.02, 0.12
    pmf = an.finite_pool_pmf(n, default_prob, rho)
    for k in [10, 100, 400, 1000, 3000, 6000]:
        z_peak = (ndtri(default_prob) - math.sqrt(1 - rho) * ndtri(k / n)) / math.sqrt(rho)
        ref, _ = integrate.quad(
            lambda z, k=k: binom.pmf(k, n, cond_pd(z, default_prob, rho)) * norm.pdf(z),
            -12.0,
            12.0,
            epsabs=0.0,
            epsrel=1e-12,
            limit=500,
            points=[z_peak - 0.5, z_peak, z_peak + 0.5],
        )
        assert pmf[k] == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize(
    ("n", "default_prob", "rho"), [(50, 0.02, 0.12), (1000, 0.02, 0.2), (5000, 0.01, 0.03)]
)
def test_finite_pool_mean_and_variance(n, default_prob, rho):
    pmf = an.finite_pool_pmf(n, default_prob, rho)
    k = np.arange(n + 1)
    mean = k @ pmf
    var = ((k - mean) ** 2) @ pmf
    a = ndtri(default_prob)
    joint = bvn_by_quad(a, a, rho)  # P(two given loans both default)
    var_exact = n * default_prob * (1 - default_prob) + n * (n - 1) * (joint - default_prob**2)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert mean == pytest.approx(n * default_prob, rel=1e-9)
    assert var == pytest.approx(var_exact, rel=1e-6)


def test_finite_pool_n_nodes_convergence():
    ref = an.finite_pool_pmf(200, 0.02, 0.12)
    fine = an.finite_pool_pmf(200, 0.02, 0.12, n_nodes=3000)
    np.testing.assert_allclose(fine, ref, rtol=0, atol=1e-13)
    coarse = an.finite_pool_pmf(200, 0.02, 0.12, n_nodes=20)
    assert coarse.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.max(np.abs(coarse - ref)) > 1e-6  # too few nodes is visibly wrong


def test_finite_pool_cdf_and_quantile_small():
    n, default_prob, rho = 100, 0.02, 0.12
    cdf = an.finite_pool_cdf(n, default_prob, rho)
    assert cdf.shape == (n + 1,)
    assert np.all(np.diff(cdf) >= 0)
    assert cdf[-1] == 1.0
    np.testing.assert_allclose(cdf, np.cumsum(an.finite_pool_pmf(n, default_prob, rho)))
    qs = np.array([0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0])
    ks = an.finite_pool_quantile(qs, n, default_prob, rho)
    assert ks.shape == qs.shape
    for q, k in zip(qs, ks, strict=True):
        assert cdf[k] >= q
        assert k == 0 or cdf[k - 1] < q
    assert isinstance(an.finite_pool_quantile(0.99, n, default_prob, rho), int)


@pytest.fixture(scope="module")
def million_pool():
    return an.finite_pool_pmf(10**6, 0.02, 0.12)


def test_finite_pool_million_loans(million_pool):
    n, default_prob, rho = 10**6, 0.02, 0.12
    pmf = million_pool
    assert pmf.shape == (n + 1,)
    assert np.all(np.isfinite(pmf))
    assert np.all(pmf >= 0)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-8)
    assert np.arange(n + 1) @ pmf == pytest.approx(n * default_prob, rel=1e-8)
    # mass is spread over ~10^5 counts with no underflow in the body of the distribution
    body = slice(n // 1000, n // 4)
    assert np.all(pmf[body] > 0)
    k999 = int(np.searchsorted(np.cumsum(pmf), 0.999))
    assert k999 / n == pytest.approx(an.vasicek_quantile(0.999, default_prob, rho), rel=0.01)


def test_finite_pool_quantile_million_loans():
    n = 10**6
    k = an.finite_pool_quantile(0.999, n, 0.02, 0.12)
    assert k / n == pytest.approx(an.vasicek_quantile(0.999, 0.02, 0.12), rel=0.01)


# --------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: an.vasicek_cdf(0.1, 1.2, 0.1), r"`default_prob` must be in \(0, 1\), got 1\.2"),
        (lambda: an.vasicek_cdf(0.1, 0.02, 0.0), r"`rho` must be in \(0, 1\), got 0\.0"),
        (lambda: an.vasicek_cdf(-0.1, 0.02, 0.1), r"`x` must be in \[0, 1\], got -0\.1"),
        (lambda: an.vasicek_pdf([0.1, 1.5], 0.02, 0.1), r"`x` must be in \[0, 1\], got 1\.5"),
        (lambda: an.vasicek_quantile(1.5, 0.02, 0.1), r"`q` must be in \[0, 1\], got 1\.5"),
        (lambda: an.vasicek_quantile(np.nan, 0.02, 0.1), r"`q` must be in \[0, 1\], got nan"),
        (lambda: an.vasicek_es(1.0, 0.02, 0.1), r"`q` must be in \[0, 1\), got 1\.0"),
        (lambda: an.vasicek_capped_mean(-0.01, 0.02, 0.1), r"`c` must be in \[0, inf\]"),
        (lambda: an.vasicek_excess_mean(0.1, 0.0, 0.1), r"`default_prob` must be in \(0, 1\)"),
        (lambda: an.vasicek_layer_expected_payout(1.1, 0.03, 0.02, 0.1), r"`share`.*1\.1"),
        (lambda: an.vasicek_layer_expected_payout(0.2, -1, 0.02, 0.1), r"`cap_rate`.*-1\.0"),
        (lambda: an.vasicek_cdf("0.1", 0.02, 0.1), r"`x` must be a number"),
        (lambda: an.finite_pool_pmf(0, 0.02, 0.1), r"`n` must be an integer >= 1, got 0"),
        (lambda: an.finite_pool_pmf(2.5, 0.02, 0.1), r"`n` must be an integer >= 1, got 2\.5"),
        (lambda: an.finite_pool_pmf(10, 1.0, 0.1), r"`default_prob` must be in \(0, 1\)"),
        (lambda: an.finite_pool_pmf(10, [0.1, 0.2], 0.1), r"`default_prob` must be a scalar"),
        (lambda: an.finite_pool_pmf(10, 0.02, 1.0), r"`rho` must be in \(0, 1\), got 1\.0"),
        (lambda: an.finite_pool_pmf(10, 0.02, 0.1, n_nodes=1), r"`n_nodes` must be an integer"),
        (lambda: an.finite_pool_quantile(2.0, 10, 0.02, 0.1), r"`q` must be in \[0, 1\]"),
        (lambda: an.irb_corporate(0.0), r"`default_prob` must be in \(0, 1\), got 0\.0"),
        (lambda: an.irb_corporate(0.02, lgd=1.5), r"`lgd` must be in \[0, 1\], got 1\.5"),
        (lambda: an.irb_corporate(0.02, maturity=0.0), r"`maturity` must be in \(0, inf\)"),
        (lambda: an.irb_corporate(0.02, sales_eur_m=-3), r"`sales_eur_m`.*got -3\.0"),
        (lambda: an.irb_retail_other(1.0), r"`default_prob` must be in \(0, 1\), got 1\.0"),
        (lambda: an.irb_retail_other(0.02, lgd=-0.1), r"`lgd` must be in \[0, 1\]"),
    ],
)
def test_bad_inputs_raise(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"ead": -1.0}, r"`ead` must be in \[0, inf\), got -1\.0"),
        ({"default_prob": 1.5}, r"`default_prob` must be in \[0, 1\], got 1\.5"),
        ({"recovery_rate": 1.2}, r"`recovery_rate` must be in \[0, 1\], got 1\.2"),
        ({"shares": {"bank": 0.2, "nfgf": 0.7}}, r"`shares` must sum to 1 .*got 0\.9"),
        ({"shares": {"bank": -0.2, "nfgf": 1.2}}, r"`shares\['bank'\]` must be in \[0, 1\]"),
        ({"shares": {}}, r"`shares` must be a non-empty mapping"),
    ],
)
def test_risk_share_bad_inputs(kwargs, pattern):
    args = {"ead": 1e6, "default_prob": 0.02, "recovery_rate": 0.3, "shares": {"a": 1.0}}
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        an.risk_share_expected_loss(**args)
