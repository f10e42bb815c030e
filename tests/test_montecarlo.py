"""The Monte Carlo engine: exact accounting, closed forms, reproducibility, IS, multi-year."""

from __future__ import annotations

import copy
import math
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pytest
from scipy import stats

from simkit import analytic, from_dict
from simkit.measures import expected_shortfall, value_at_risk
from simkit.montecarlo import LossResult, simulate


def pool(n: int, default_prob: Any, *, rho: float = 0.12, lgd: Any = 1.0,
         exposure: Any = 1.0, n_paths: int = 4000, block_size: int = 1000,
         seed: int = 11, **run: Any) -> dict[str, Any]:
    """A one-factor homogeneous pool owned entirely by the bank."""
    return {
        "scenario": {"name": "pool"},
        "parties": {"bank": {}},
        "agreements": [{"name": "a", "layers": [{"party": "bank", "share": 1.0}]}],
        "segments": [{"name": "s", "count": n, "exposure": exposure,
                      "default_prob": default_prob, "lgd": lgd}],
        "factors": {"national": math.sqrt(rho)},
        "run": {"n_paths": n_paths, "block_size": block_size, "seed": seed, **run},
    }


def shared(*, caps: bool = True, n: int = 2000, **run: Any) -> dict[str, Any]:
    """Five parties, two agreements, two guarantors, single limit, beta LGD, downturn."""
    cap = {"rate": 0.03, "overflow": "guarantor"}
    layers = [
        {"party": "bank", "share": 0.2},
        {"party": "guarantor", "share": 0.4},
        {"party": "provincial", "share": 0.2, **({"cap": cap} if caps else {})},
        {"party": "national_fund", "share": 0.1,
         **({"cap": {"rate": 0.02, "overflow": "provincial", "pool": "region"}}
            if caps else {})},
        {"party": "local_gov", "share": 0.1},
    ]
    return {
        "scenario": {"name": "shared"},
        "parties": {"bank": {}, "guarantor": {"net_assets": 5e8, "leverage_limit": 10},
                    "county_b": {"kind": "guarantor", "net_assets": 3e8,
                                 "leverage_limit": 15},
                    "provincial": {"net_assets": 2e9, "leverage_limit": 10},
                    "national_fund": {}, "local_gov": {}},
        "agreements": [
            {"name": "std", "layers": layers, "single_limit": 3e6,
             "fees": [{"from": "borrower", "to": "guarantor", "rate": 0.01},
                      {"from": "guarantor", "to": "provincial", "rate": 0.005,
                       "on_share_of": "provincial"}]},
            {"name": "plain", "layers": [{"party": "bank", "share": 0.5},
                                         {"party": "provincial", "share": 0.5}]},
        ],
        "segments": [
            {"name": "a", "count": n, "agreement": "std", "region": "r1", "sector": "x",
             "exposure": {"dist": "lognormal", "median": 1e6, "sigma": 0.9},
             "default_prob": {"dist": "uniform", "low": 0.005, "high": 0.06},
             "lgd": {"mean": 0.6, "sd": 0.2}},
            {"name": "b", "count": n // 2, "agreement": "std", "region": "r2",
             "sector": "y", "guarantor": "county_b",
             "exposure": {"dist": "lognormal", "median": 8e5, "sigma": 0.5},
             "default_prob": {"dist": "loguniform", "low": 0.01, "high": 0.04},
             "lgd": 0.7, "loadings": {"national": 0.3, "regional": 0.2, "guarantor": 0.2}},
            {"name": "c", "count": n // 4, "agreement": "plain", "region": "r1",
             "exposure": 2e6, "default_prob": 0.03, "lgd": {"mean": 0.5, "sd": 0.25}},
        ],
        "factors": {"national": 0.3, "regional": 0.2, "sector": 0.15, "guarantor": 0.1,
                    "downturn_lgd": 0.4},
        "run": {"n_paths": 1500, "block_size": 400, "seed": 5, **run},
    }


def assert_same(a: LossResult, b: LossResult) -> None:
    for name in ("losses", "paid", "recovered", "cap_overflow", "total_loss", "defaults"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    if a.weights is None:
        assert b.weights is None
    else:
        np.testing.assert_array_equal(a.weights, b.weights)


# --------------------------------------------------------------------------------------
# accounting
# --------------------------------------------------------------------------------------
def test_without_caps_each_party_gets_its_share_in_every_path() -> None:
    res = simulate(from_dict(shared(caps=False)))
    col = {p: j for j, p in enumerate(res.parties)}
    assert np.all(res.cap_overflow.shape == (res.n_paths, 0))
    # the 'plain' agreement and uncovered parts make the bank/provincial shares path
    # dependent, so check the pure parties of agreement 'std': 0.1 local gov vs 0.4 guarantor
    lg, g = res.losses[:, col["local_gov"]], res.losses[:, col["guarantor"]]
    nf = res.losses[:, col["national_fund"]]
    assert lg.sum() > 0
    np.testing.assert_allclose(nf, lg, rtol=1e-12)
    # guarantor-kind layer split over 'guarantor' and 'county_b' by segment
    cb = res.losses[:, col["county_b"]]
    np.testing.assert_allclose(g + cb, 4 * lg, rtol=1e-12)


def test_single_agreement_shares_exact_per_path() -> None:
    d = pool(3000, {"dist": "uniform", "low": 0.005, "high": 0.05}, lgd={"mean": 0.5,
             "sd": 0.2}, n_paths=800, block_size=300)
    d["parties"] = {"bank": {}, "guarantor": {}, "provincial": {}, "local_gov": {}}
    d["agreements"][0]["layers"] = [{"party": "bank", "share": 0.2},
                                    {"party": "guarantor", "share": 0.4},
                                    {"party": "provincial", "share": 0.3},
                                    {"party": "local_gov", "share": 0.1}]
    res = simulate(from_dict(d))
    shares = np.array([0.2, 0.4, 0.3, 0.1])
    assert res.total_loss.min() > 0
    np.testing.assert_allclose(res.losses, res.total_loss[:, None] * shares, rtol=1e-12)


def test_conservation_in_every_path_and_fees_net_to_zero() -> None:
    res = simulate(from_dict(shared()), keep_cells=True)
    assert res.cap_overflow.shape[1] == 2
    assert np.mean(res.cap_overflow > 0) > 0.01  # caps do bind sometimes
    scale = np.maximum(np.abs(res.total_loss), 1.0)
    assert np.max(np.abs(res.losses.sum(axis=1) - res.total_loss) / scale) < 1e-9
    np.testing.assert_allclose(res.losses, res.paid - res.recovered)
    assert res.fees.sum() == pytest.approx(res.borrower_fees, rel=1e-12)
    assert res.borrower_fees > 0
    assert res.by_segment is not None
    np.testing.assert_allclose(res.by_segment.sum(axis=1), res.losses, rtol=1e-4,
                               atol=1.0)
    assert res.segment_names == ("a", "b", "c")


def test_expected_loss_matches_book_expectation() -> None:
    """E[total net loss] = sum EAD x PD x E[LGD] (no downturn), within 4 SE."""
    d = shared(caps=True)
    d["factors"]["downturn_lgd"] = 0.0
    s = from_dict(d)
    res = simulate(s, n_paths=4000)
    from simkit.book import book_for

    book = book_for(s)
    expected = float(np.sum(book.exposure * book.default_prob * book.lgd_mean))
    se = res.total_loss.std(ddof=1) / math.sqrt(res.n_paths)
    assert abs(res.total_loss.mean() - expected) < 4 * se


# --------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------
def test_large_pool_matches_vasicek_quantile_and_es() -> None:
    n, dp, rho = 20_000, 0.02, 0.12
    res = simulate(from_dict(pool(n, dp, rho=rho, n_paths=20_000, block_size=2_500)))
    rate = res.total_loss / n
    for level in (0.99,):
        var = value_at_risk(rate, level, n_batches=20)
        es = expected_shortfall(rate, level, n_batches=20)
        q = analytic.vasicek_quantile(level, dp, rho)
        e = analytic.vasicek_es(level, dp, rho)
        # granularity: a finite pool adds binomial noise sd sqrt(q(1-q)/n) ~ 0.002
        gran = 1.5 * math.sqrt(q * (1 - q) / n)
        assert abs(var.value - q) < 4 * var.stderr + gran, (var, q)
        assert abs(es.value - e) < 4 * es.stderr + gran, (es, e)
    assert rate.mean() == pytest.approx(dp, rel=0.03)


def test_finite_pool_matches_binomial_mixture() -> None:
    n, dp, rho = 200, 0.03, 0.15
    res = simulate(from_dict(pool(n, dp, rho=rho, n_paths=40_000, block_size=5_000)))
    k = res.defaults[:, 0]
    assert np.all(res.total_loss == k)  # LGD 1, exposure 1
    pmf = analytic.finite_pool_pmf(n, dp, rho)
    # chi-square over bins with expected count >= 20
    counts = np.bincount(k, minlength=n + 1)
    expected = pmf * len(k)
    edges = [0]
    acc = 0.0
    for i, e in enumerate(expected):
        acc += e
        if acc >= 20:
            edges.append(i + 1)
            acc = 0.0
    edges[-1] = n + 1
    obs = np.add.reduceat(counts, edges[:-1])
    exp = np.add.reduceat(expected, edges[:-1])
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    dof = len(obs) - 1
    assert stats.chi2.sf(chi2, dof) > 1e-3, (chi2, dof)
    # and the CDF at a few points within 4 SE
    cdf = np.cumsum(pmf)
    for x in (2, 6, 12, 25):
        emp = float(np.mean(k <= x))
        se = math.sqrt(cdf[x] * (1 - cdf[x]) / len(k))
        assert abs(emp - cdf[x]) < 4 * se + 1e-4


def test_capped_layer_expected_payout() -> None:
    n, dp, rho, share, rate = 20_000, 0.03, 0.12, 0.3, 0.04
    d = pool(n, dp, rho=rho, n_paths=8000, block_size=2000)
    d["parties"] = {"bank": {}, "guarantor": {}, "provincial": {}}
    d["agreements"][0]["layers"] = [
        {"party": "bank", "share": 0.2}, {"party": "guarantor", "share": 0.5},
        {"party": "provincial", "share": share,
         "cap": {"rate": rate, "overflow": "guarantor"}}]
    res = simulate(from_dict(d))
    paid = res.paid[:, 2] / n
    expected = analytic.vasicek_layer_expected_payout(share, rate, dp, rho)
    se = paid.std(ddof=1) / math.sqrt(len(paid))
    gran = 0.01 * expected  # finite pool of 20,000: E[min] differs from the limit by < 1%
    assert abs(paid.mean() - expected) < 4 * se + gran, (paid.mean(), expected, se)
    # what the cap refuses goes to the guarantor: guarantor = 0.5 DR + overflow
    np.testing.assert_allclose(res.paid[:, 1], 0.5 * res.total_loss + res.cap_overflow[:, 0],
                               rtol=1e-10, atol=1e-9)
    assert 0.05 < np.mean(res.cap_overflow[:, 0] > 0) < 0.5


# --------------------------------------------------------------------------------------
# importance sampling
# --------------------------------------------------------------------------------------
def test_importance_sampling_unbiased_and_sharper() -> None:
    n, dp, rho = 2000, 0.02, 0.15
    base = pool(n, dp, rho=rho, n_paths=20_000, block_size=2_500, lgd=0.45)
    plain = simulate(from_dict(base))
    shifted = copy.deepcopy(base)
    shifted["run"]["importance_sampling"] = -2.8
    isr = simulate(from_dict(shifted))
    assert isr.weights is not None and plain.weights is None
    # tail probability beyond the plain 99 % quantile
    x = float(np.quantile(plain.total_loss, 0.99))
    pp = np.mean(plain.total_loss > x)
    wi = isr.weights * (isr.total_loss > x)
    pi = wi.mean()
    se = math.hypot(math.sqrt(pp * (1 - pp) / plain.n_paths), wi.std() / math.sqrt(len(wi)))
    assert abs(pp - pi) < 4 * se
    ep = expected_shortfall(plain.total_loss, 0.999, n_batches=20)
    ei = expected_shortfall(isr.total_loss, 0.999, weights=isr.weights, n_batches=20)
    assert abs(ep.value - ei.value) < 4 * math.hypot(ep.stderr, ei.stderr)
    assert ei.stderr < 0.5 * ep.stderr
    vp = value_at_risk(plain.total_loss, 0.999, n_batches=20)
    vi = value_at_risk(isr.total_loss, 0.999, weights=isr.weights, n_batches=20)
    assert abs(vp.value - vi.value) < 4 * math.hypot(vp.stderr, vi.stderr)
    assert vi.stderr < 0.5 * vp.stderr
    # against the closed form (LGD fixed 0.45): granularity allowance of 3 %
    q = 0.45 * n * analytic.vasicek_quantile(0.999, dp, rho)
    assert abs(vi.value - q) < 4 * vi.stderr + 0.03 * q


def test_importance_auto_shift_points_into_the_tail() -> None:
    d = shared(importance_sampling=True)
    res = simulate(from_dict(d), n_paths=800)
    shift = np.array(res.provenance["importance_shift"])
    assert shift[0] < -1.5  # national factor shifted down
    assert np.linalg.norm(shift) == pytest.approx(-stats.norm.ppf(0.001), rel=1e-9)
    assert res.weights is not None and np.all(res.weights > 0)
    one = simulate(from_dict(pool(1000, 0.02, importance_sampling=True)), n_paths=200)
    assert one.provenance["importance_shift"][0] == pytest.approx(stats.norm.ppf(0.001))


# --------------------------------------------------------------------------------------
# reproducibility
# --------------------------------------------------------------------------------------
def test_same_seed_same_arrays_other_seed_differs() -> None:
    s = from_dict(shared())
    a, b = simulate(s), simulate(s)
    assert_same(a, b)
    c = simulate(s, seed=6)
    assert not np.array_equal(a.losses, c.losses)


def test_prefix_property_for_partial_last_block() -> None:
    s = from_dict(shared())
    full = simulate(s, n_paths=1200)
    part = simulate(s, n_paths=1000)  # last block 200 of 400
    assert part.n_paths == 1000
    np.testing.assert_array_equal(part.losses, full.losses[:1000])
    np.testing.assert_array_equal(part.cap_overflow, full.cap_overflow[:1000])


def test_executors_give_identical_arrays() -> None:
    s = from_dict(shared(importance_sampling=-1.5))
    serial = simulate(s)
    with ProcessPoolExecutor(max_workers=2) as ex:
        pooled = simulate(s, executor=ex)
        pooled_one_task = simulate(s, executor=ex, tasks=1)
    with ProcessPoolExecutor(max_workers=1) as ex:
        single_worker = simulate(s, executor=ex, tasks=3)
    assert_same(serial, pooled)
    assert_same(serial, pooled_one_task)
    assert_same(serial, single_worker)


def test_dask_executor_gives_identical_arrays() -> None:
    distributed = pytest.importorskip("distributed")
    s = from_dict(shared())
    serial = simulate(s)
    with distributed.Client(processes=False, n_workers=2, threads_per_worker=1,
                            dashboard_address=None) as client:
        res = simulate(s, executor=client.get_executor())
    assert_same(serial, res)


def test_result_pickles_and_summarises() -> None:
    import json
    import pickle

    res = simulate(from_dict(shared()), n_paths=800)
    back = pickle.loads(pickle.dumps(res))
    assert_same(res, back)
    summary = res.to_json_dict()
    json.dumps(summary)
    assert set(summary["parties"]) == set(res.parties)
    assert "var_99.9" in summary["parties"]["provincial"]
    assert set(summary["cap_binding"]) == set(res.cap_names)
    assert summary["provenance"]["block_size"] == 400
    assert summary["provenance"]["seed"] == 5


# --------------------------------------------------------------------------------------
# copulas
# --------------------------------------------------------------------------------------
def test_student_t_has_heavier_joint_tail_with_same_marginals() -> None:
    n, dp = 2000, 0.02
    d = pool(n, dp, rho=0.1, n_paths=20_000, block_size=5_000)
    gauss = simulate(from_dict(d))
    d["factors"].update(copula="student_t", dof=4)
    t = simulate(from_dict(d))
    for res in (gauss, t):
        rate = res.defaults[:, 0] / n
        se = rate.std() / math.sqrt(len(rate))
        assert abs(rate.mean() - dp) < 4 * se
    # probability of more than 4x the expected defaults
    x = 4 * dp * n
    pg, pt = np.mean(gauss.defaults[:, 0] > x), np.mean(t.defaults[:, 0] > x)
    assert pt > 1.5 * pg + 4 * math.sqrt(pg / len(gauss.defaults)), (pg, pt)


# --------------------------------------------------------------------------------------
# multi-year
# --------------------------------------------------------------------------------------
def test_multi_year_capital_paths_and_persistence() -> None:
    d = shared(horizon_years=3)
    d["factors"]["national_persistence"] = 0.8
    res = simulate(from_dict(d), n_paths=1200)
    assert res.annual_losses is not None and res.capital_paths is not None
    assert res.capital_paths.shape == (1200, 4, len(res.parties))
    np.testing.assert_allclose(res.annual_losses.sum(axis=1), res.losses, rtol=1e-12)
    start = np.array([np.nan if p is None else p for p in
                      (5e8 if q == "guarantor" else 3e8 if q == "county_b"
                       else 2e9 if q == "provincial" else None for q in res.parties)])
    expected = start[None, None, :] + np.concatenate(
        [np.zeros((1200, 1, len(res.parties))),
         np.cumsum(res.fees_by_year[None] - res.annual_losses, axis=1)], axis=1)
    np.testing.assert_allclose(res.capital_paths, expected, rtol=1e-12)
    assert set(res.capital_exhaustion_probability()) == {"guarantor", "county_b",
                                                         "provincial"}
    assert set(res.leverage_breach_probability()) == {"guarantor", "county_b", "provincial"}
    # persistence: yearly default counts are correlated
    corr = np.corrcoef(res.defaults[:, 0], res.defaults[:, 1])[0, 1]
    d["factors"]["national_persistence"] = 0.0
    iid = simulate(from_dict(d), n_paths=1200)
    corr0 = np.corrcoef(iid.defaults[:, 0], iid.defaults[:, 1])[0, 1]
    assert corr > 0.3
    assert abs(corr0) < 0.12


def test_leverage_breach_when_capital_small() -> None:
    d = shared(horizon_years=2)
    d["parties"]["guarantor"]["net_assets"] = 1e7  # far too little for ~1e9 guaranteed
    res = simulate(from_dict(d), n_paths=400)
    assert res.leverage_breach_probability()["guarantor"] == pytest.approx(1.0)
    assert res.leverage_breach_probability()["provincial"] < 0.5


def test_numba_and_numpy_engines_agree_statistically() -> None:
    """The engines draw different random numbers (module doc) but the same distribution:
    mean defaults, every party's expected loss and the 99 % tail agree within 5 SE."""
    pytest.importorskip("numba")
    d = shared()
    d["factors"].update(copula="student_t", dof=5)
    s = from_dict(d)
    a = simulate(s, engine="numpy", n_paths=8000)
    b = simulate(s, engine="numba", n_paths=8000)
    assert a.provenance["engine"] == "numpy"
    assert b.provenance["engine"] == "numba"
    assert simulate(s, engine="auto").provenance["engine"] == "numba"
    n = a.n_paths

    def close(x: np.ndarray, y: np.ndarray) -> None:
        se = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / n)
        assert abs(x.mean() - y.mean()) < 5 * se + 1e-12

    close(a.defaults[:, 0].astype(float), b.defaults[:, 0].astype(float))
    close(a.total_loss, b.total_loss)
    for j in range(len(a.parties)):
        close(a.losses[:, j], b.losses[:, j])
    var99 = np.quantile(a.total_loss, 0.99)
    close((a.total_loss > var99).astype(float), (b.total_loss > var99).astype(float))
    with pytest.raises(ValueError, match="engine"):
        simulate(s, engine="fortran")


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_each_engine_reproducible_across_chunking(engine: str) -> None:
    if engine == "numba":
        pytest.importorskip("numba")
    s = from_dict(shared(importance_sampling=-1.5))
    serial = simulate(s, engine=engine)
    with ProcessPoolExecutor(max_workers=2) as ex:
        assert_same(serial, simulate(s, engine=engine, executor=ex, tasks=3))
    assert_same(simulate(s, engine=engine, n_paths=1000),
                _prefix(serial, 1000))


def _prefix(res: LossResult, n: int) -> LossResult:
    return LossResult(**{**res.__dict__, **{k: getattr(res, k)[:n] for k in (
        "losses", "paid", "recovered", "cap_overflow", "total_loss", "defaults")},
        "weights": None if res.weights is None else res.weights[:n]})


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_per_loan_lgd_book_expected_loss(engine: str) -> None:
    """Loans with their own Beta LGD parameters (a loan tape) take the Generator.beta path."""
    if engine == "numba":
        pytest.importorskip("numba")
    import dataclasses

    from simkit.book import book_for

    d = shared(caps=False)
    d["factors"]["downturn_lgd"] = 0.0
    s = from_dict(d)
    book = book_for(s)
    rng = np.random.default_rng(3)
    book = dataclasses.replace(book, lgd_mean=rng.uniform(0.3, 0.8, book.n_loans),
                               lgd_sd=np.full(book.n_loans, 0.15))
    res = simulate(s, n_paths=3000, book=book, engine=engine)
    expected = float(np.sum(book.exposure * book.default_prob * book.lgd_mean))
    se = res.total_loss.std(ddof=1) / math.sqrt(res.n_paths)
    assert abs(res.total_loss.mean() - expected) < 4 * se
    np.testing.assert_allclose(res.losses.sum(axis=1), res.total_loss, rtol=1e-9)


# --------------------------------------------------------------------------------------
# cap statistics periods
# --------------------------------------------------------------------------------------
def _capped_two_years(period: float) -> dict[str, Any]:
    d = pool(2000, 0.04, rho=0.2, n_paths=600, block_size=200, horizon_years=2)
    d["parties"] = {"bank": {}, "national_fund": {}}
    d["agreements"][0]["layers"] = [
        {"party": "bank", "share": 0.5},
        {"party": "national_fund", "share": 0.5,
         "cap": {"rate": 0.04, "overflow": "bank", "period_years": period}}]
    return d


def test_two_year_cap_period_binds_on_the_cumulative_loss() -> None:
    yearly = simulate(from_dict(_capped_two_years(1.0)))
    period = simulate(from_dict(_capped_two_years(2.0)))
    col = period.parties.index("national_fund")
    limit = 0.04 * 0.5 * 2000  # per year (exposure 1, LGD 1: net loss = paid)
    assert yearly.annual_losses is not None and period.annual_losses is not None
    fy, fp = yearly.annual_losses[:, :, col], period.annual_losses[:, :, col]
    assert fy.max() <= limit * (1 + 1e-12)
    # the 2-year period caps the 2-year cumulative: a quiet year 1 leaves room in year 2
    assert fp.sum(axis=1).max() <= 2 * limit * (1 + 1e-12)
    assert fp[:, 1].max() > limit * 1.01
    assert np.all(fp >= -1e-9)
    # year 1 alone is capped at one year's base; same defaults in both runs
    np.testing.assert_array_equal(yearly.defaults, period.defaults)
    np.testing.assert_allclose(fp[:, 0], fy[:, 0], rtol=1e-12)
    # exact: the fund pays min(share x cumulative default, 2 x limit) over the period
    cum = period.total_loss
    np.testing.assert_allclose(fp.sum(axis=1), np.minimum(0.5 * cum, 2 * limit),
                               rtol=1e-9)
    # money is conserved every year
    np.testing.assert_allclose(period.losses.sum(axis=1), period.total_loss, rtol=1e-12)


def test_fractional_cap_period_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"agreements\[0\]\.layers\[1\]\.cap\.period_years"):
        simulate(from_dict(_capped_two_years(1.5)))


@pytest.mark.parametrize("probs", [(0.2, 0.3, 0.4), (0.4, 0.6, 0.8)])
def test_compiled_band_kernel_is_exact(probs: tuple[float, float, float]) -> None:
    """One band, one fixed scenario repeated: every loan defaults with its own probability
    (squeeze branches below 1/2, plain acceptance above) and the recycled LGD uniforms
    are uniform."""
    pytest.importorskip("numba")
    from scipy import special

    from simkit.montecarlo import _LGD_TABLE, _numba_band, _squeeze

    band = _numba_band()
    n = 200_000
    thr = special.ndtri(np.array(probs))
    m, scale = np.zeros(n), np.ones(n)
    p_min, p_max = np.full(n, probs[0]), np.full(n, probs[2])
    c_lo = thr[0] * scale
    slope_lo, chord = _squeeze(c_lo, thr[2] * scale, p_min, p_max, m, 1.0)
    table = np.linspace(0.0, 1.0, 4097)[None, :]  # LGD = the uniform itself
    cnt = np.zeros(n, dtype=np.int64)
    sums = [np.zeros((n, 1)) for _ in range(4)]
    band(np.random.default_rng(8), p_max, p_min, m, scale, c_lo, slope_lo, chord, thr,
         1.0, False, _LGD_TABLE, np.zeros(n), table, np.zeros(n, dtype=np.int64),
         np.ones(n), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]), True, 0, cnt,
         *sums)
    hit1, hit2 = sums[0][:, 0] > 0, sums[2][:, 0] > 0
    for hit, p in ((hit1, probs[1]), (hit2, probs[2])):
        assert abs(hit.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
        w = 1.0 - np.where(hit1 is hit, sums[1][:, 0], sums[3][:, 0])[hit]  # LGD uniforms
        assert stats.kstest(w, "uniform").pvalue > 1e-3
    assert abs(cnt.mean() - sum(probs)) < 5 * math.sqrt(sum(p * (1 - p) for p in probs) / n)


# --------------------------------------------------------------------------------------
# time basis, effective sample size, not enough paths
# --------------------------------------------------------------------------------------
def _fee_pool(horizon: int) -> dict[str, Any]:
    """A bank/guarantor pool with a guarantee fee, identical cohorts, no persistence."""
    d = pool(1000, 0.02, rho=0.1, exposure=1e6, lgd=0.5, n_paths=4000, block_size=1000,
             horizon_years=horizon)
    d["parties"] = {"bank": {}, "guarantor": {"net_assets": 1e9}}
    d["agreements"] = [{"name": "a", "layers": [{"party": "bank", "share": 0.2},
                                                {"party": "guarantor", "share": 0.8}],
                        "fees": [{"from": "borrower", "to": "guarantor", "rate": 0.02}]}]
    d["factors"]["national_persistence"] = 0.0
    return d


def test_multi_year_summary_is_per_year_with_horizon_totals() -> None:
    """H = 3 independent years: the per-year net result matches the one-year run within
    SE, and the horizon block holds exactly H x the per-year fees (before the fix the
    3-year EL was set against one year's fees: net result -EL x 2 off)."""
    from simkit.results import RunReport

    one = RunReport(from_dict(_fee_pool(1)), simulate(from_dict(_fee_pool(1)))).summary
    s3 = from_dict(_fee_pool(3))
    three = RunReport(s3, simulate(s3)).summary
    for p in ("bank", "guarantor"):
        a, b = one["parties"][p], three["parties"][p]
        assert a["fee_income"] == pytest.approx(b["fee_income"], rel=1e-12)
        se = math.hypot(a["el_se"], b["el_se"])
        assert abs(a["net_result"] - b["net_result"]) < 4 * se, (p, a, b)
        assert abs(a["el"] - b["el"]) < 4 * se
        h = three["horizon"]["parties"][p]
        assert h["fee_income"] == pytest.approx(3 * b["fee_income"], rel=1e-12)
        assert h["el"] == pytest.approx(3 * b["el"], rel=1e-12)
        assert h["net_result"] == pytest.approx(h["fee_income"] - h["el"], rel=1e-12)
        assert b["net_result"] == pytest.approx(b["fee_income"] - b["el"], rel=1e-12)
        # EL as % of one cohort's guarantees = horizon EL over all cohorts' guarantees
        assert b["el_pct_guaranteed"] == pytest.approx(
            100 * h["el"] / three["horizon"]["guaranteed"], rel=1e-12)
    g = three["parties"]["guarantor"]
    assert g["fee_income"] == pytest.approx(0.02 * 1000 * 1e6, rel=1e-9)  # on all 1e9
    assert g["net_result"] > 0  # fee 2e7 > EL 0.8 x 2 % x 0.5 x 1e9 = 8e6 per year
    assert three["time_basis"]["horizon_years"] == 3
    assert "el" in three["time_basis"]["per_year"]
    assert "var_*" in three["time_basis"]["horizon"]
    assert three["horizon"]["years"] == 3 and one["horizon"]["years"] == 1
    text = RunReport(s3, simulate(s3, n_paths=1000)).format_text()
    assert "per year (average over the 3-year horizon)" in text
    assert "VaR 99.9% (3 y)" in text and "horizon totals over 3 years" in text


def test_importance_sampling_reports_effective_sample_size_and_warns() -> None:
    from simkit.montecarlo import ImportanceSamplingWarning
    from simkit.results import RunReport

    plain = simulate(from_dict(pool(500, 0.02, n_paths=2000)))
    summary = plain.summary()
    assert summary["effective_sample_size"] == 2000.0
    assert plain.provenance["effective_sample_size"] == 2000.0
    assert summary["importance"]["ok"] and summary["importance"]["warning"] is None
    good = simulate(from_dict(pool(500, 0.02, n_paths=4000, importance_sampling=True)))
    check = good.importance_check()
    assert check["ok"], check
    assert 400 < check["effective_sample_size"] < 4000
    assert good.provenance["effective_sample_size"] == pytest.approx(
        check["effective_sample_size"], rel=1e-12)
    assert check["tail_effective_sample_size"]["bank"] > 10
    # a deep manual shift: weights degenerate, EL far from the book's expectation
    s = from_dict(pool(500, 0.02, n_paths=2000, importance_sampling=-4.0))
    deep = simulate(s)
    with pytest.warns(ImportanceSamplingWarning, match="effective sample size"):
        report = RunReport(s, deep)
        summary = report.summary
    assert not summary["importance"]["ok"]
    assert summary["effective_sample_size"] < 100
    assert summary["importance"]["warning"] in summary["notes"]
    text = report.format_text()
    assert "effective sample size" in text and "WARNING: importance sampling" in text


def test_importance_shift_beyond_four_is_rejected() -> None:
    from simkit.scenario import ScenarioError

    with pytest.raises(ScenarioError, match=r"run.importance_sampling must be in \[-4, 0\]"):
        from_dict(pool(10, 0.02, importance_sampling=-5.0))


def test_not_enough_paths_for_the_level_prints_and_writes_null() -> None:
    """500 paths cannot resolve 99.9 %: NaN standard errors (before the fix: 0)."""
    import json

    from simkit import report as rp
    from simkit.results import RunReport

    s = from_dict(pool(500, 0.02, exposure=1e6, n_paths=500, block_size=500))
    rep = RunReport(s, simulate(s))
    st = rep.summary["parties"]["bank"]
    assert math.isnan(st["var_99.9_se"]) and math.isnan(st["es_99.9_se"])
    assert st["var_99_se"] > 0
    assert any("not enough paths" in n for n in rep.summary["notes"])
    text = rep.format_text()
    assert "(not enough paths)" in text and "± 0.00" not in text
    back = json.loads(json.dumps(rp.jsonable(rep.summary)))
    assert back["parties"]["bank"]["var_99.9_se"] is None


def test_student_t_importance_sampling_is_unbiased_against_quadrature() -> None:
    """Tilting the chi-square mixing variable keeps P(L > 200) unbiased: the t(6) pool's
    exact value from a 2-D quadrature (Z Gauss-Hermite x log-W grid) is 1.0436e-3."""
    d = pool(500, 0.02, rho=0.15, n_paths=20_000, block_size=5_000,
             importance_sampling=True)
    d["factors"].update(copula="student_t", dof=6)
    res = simulate(from_dict(d))
    z = res.weights * (res.total_loss > 200)
    p, se = z.mean(), z.std(ddof=1) / math.sqrt(len(z))
    assert abs(p - 1.0436e-3) < 4 * se
    assert se < 0.05 * p  # plain MC would give 22 %


def test_results_and_cells_live_in_their_modules() -> None:
    """LossResult lives in simkit.lossresult and Cells in simkit.book; the old import
    paths give the very same classes."""
    import simkit.book
    import simkit.lossresult
    import simkit.montecarlo
    import simkit.sharing

    assert simkit.montecarlo.LossResult is simkit.lossresult.LossResult
    assert simkit.lossresult.LossResult.__module__ == "simkit.lossresult"
    assert simkit.sharing.Cells is simkit.book.Cells
    assert simkit.book.Cells.__module__ == "simkit.book"


def test_choose_engine() -> None:
    from simkit.montecarlo import choose_engine

    assert choose_engine("numpy") is False
    with pytest.raises(ValueError, match="engine must be 'auto', 'numpy' or 'numba'"):
        choose_engine("cuda")


def test_simulate_all_is_simulate_for_the_base(minimal) -> None:
    from simkit.montecarlo import simulate_all

    s = from_dict(minimal).with_changes({"run.n_paths": 200, "run.block_size": 64})
    one = simulate(s, engine="numpy")
    (again,) = simulate_all(s, engine="numpy")
    np.testing.assert_array_equal(one.losses, again.losses)
    assert one.provenance == again.provenance


def test_numpy_engine_mixes_one_year_and_multi_year_bands() -> None:
    """A book with loans of a year's tenor before multi-year ones runs in the NumPy engine
    (a chunk's sums once rebound the block's cell sums, and the next multi-year band
    failed with an IndexError) and agrees with the numba engine within the Monte Carlo
    error."""
    d = shared(n=400, horizon_years=2, n_paths=1200, block_size=400)
    d["segments"][1]["tenor_years"] = 2.0  # "a" (1 year) comes first, then "b" (2 years)
    s = from_dict(d)
    a = simulate(s, engine="numpy")
    b = simulate(s, engine="numba")
    assert a.total_loss.mean() > 0
    se = math.hypot(a.total_loss.std(ddof=1), b.total_loss.std(ddof=1)) / math.sqrt(a.n_paths)
    assert abs(a.total_loss.mean() - b.total_loss.mean()) < 5 * se
