"""Per-party importance weights (simkit.importance): each party weighted by the marginal
likelihood ratio of the factors its loss depends on."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from scipy import stats

from simkit import from_dict, load
from simkit.book import book_for
from simkit.factors import FactorModel, marginal_log_ratio
from simkit.montecarlo import (
    ImportanceSamplingWarning,
    auto_shift,
    auto_shifts,
    combined_shift,
    simulate,
)
from simkit.sharing import Waterfall
from tests.conftest import ROOT

SCENARIOS_DIR = ROOT / "scenarios"


def provinces(n_regions: int = 3, count: int = 300, *, n_paths: int = 2000,
              seed: int = 3, caps: bool = True, **run: Any) -> dict[str, Any]:
    """The national book in miniature: per region a guarantor and a re-guarantor, a bank
    and a national fund over all regions (its cap per region, overflow to the region's
    guarantor)."""
    names = [f"r{i}" for i in range(n_regions)]
    parties: dict[str, Any] = {"bank": {"kind": "bank"}, "fund": {"kind": "national_fund"}}
    agreements, segments = [], []
    for r in names:
        parties[f"{r}_g"] = {"kind": "guarantor", "region": r}
        parties[f"{r}_p"] = {"kind": "provincial", "region": r}
        cap = {"cap": {"rate": 0.04, "pool": "agreement", "overflow": f"{r}_g"}} if caps else {}
        agreements.append({"name": r, "lender": "bank", "layers": [
            {"party": "bank", "share": 0.2}, {"party": f"{r}_g", "share": 0.4},
            {"party": f"{r}_p", "share": 0.2}, {"party": "fund", "share": 0.2, **cap}]})
        segments.append({"name": r, "agreement": r, "count": count, "guarantor": f"{r}_g",
                         "region": r, "exposure": 1e6,
                         "default_prob": {"dist": "uniform", "low": 0.01, "high": 0.03},
                         "lgd": {"mean": 0.65, "sd": 0.2}})
    return {"scenario": {"name": "provinces"}, "parties": parties, "agreements": agreements,
            "segments": segments,
            "factors": {"national": 0.22, "regional": 0.3, "guarantor": 0.1},
            "run": {"n_paths": n_paths, "block_size": 500, "seed": seed, **run}}


# --------------------------------------------------------------------------------------
# the marginal ratio
# --------------------------------------------------------------------------------------
def test_marginal_ratio_of_all_factors_is_the_full_ratio_and_subsets_are_unbiased() -> None:
    model = FactorModel(n_regions=3, n_sectors=1, n_guarantors=1)
    f = model.n_factors
    mus = np.zeros((3, f))
    mus[0, 0] = -2.0
    mus[1, 1:4] = -2.5  # every region at once
    probs = np.array([0.45, 0.45, 0.1])
    groups = np.zeros((3, f), dtype=bool)
    groups[0] = True  # all factors
    groups[1, [0, 1]] = True  # national and region 0
    groups[2, [0, 2]] = True  # national and region 1
    d = model.draw(np.random.default_rng(5), 200_000, mus, probs, groups=groups)
    assert d.group_log_weight is not None
    np.testing.assert_allclose(d.group_log_weight[:, 0], d.log_weight, rtol=0, atol=1e-9)
    w = np.exp(d.group_log_weight)
    assert w.max() <= 1 / 0.1 * (1 + 1e-12)  # the plain component bounds every ratio
    # E_Q[w_S f(z_S)] = E_P[f]: a region's tail probability under its own ratio
    for g, col in ((1, 0), (2, 1)):
        hit = d.regional[:, col] < -2.5
        est = np.mean(w[:, g] * hit)
        se = np.std(w[:, g] * hit) / math.sqrt(len(hit))
        assert abs(est - stats.norm.cdf(-2.5)) < 4 * se
        # and far less dispersed than the full ratio on the same event
        assert se < 0.5 * np.std(np.exp(d.log_weight) * hit) / math.sqrt(len(hit))
    # a subset's ratio is a function of its own factors: moving the others changes nothing
    z = np.column_stack([d.national, d.regional, d.sector, d.guarantor])
    moved = z.copy()
    moved[:, 3] += 1.7  # region 2
    for zz in (z, moved):
        got = marginal_log_ratio(zz, mus, probs, groups[1:])
        np.testing.assert_allclose(got, d.group_log_weight[:, 1:], rtol=0, atol=1e-9)


def test_marginal_ratio_without_shift_is_zero_and_single_shift_is_exact() -> None:
    rng = np.random.default_rng(1)
    z = rng.standard_normal((50, 4))
    groups = np.array([[True, False, True, False]])
    assert np.all(marginal_log_ratio(z, None, None, groups) == 0)
    mu = np.array([-1.0, 0.5, -2.0, 3.0])
    got = marginal_log_ratio(z, mu, None, groups)[:, 0]
    m = mu * groups[0]
    np.testing.assert_allclose(got, -(z @ m) + 0.5 * m @ m, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------
# which cells a party depends on
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nfgf_national_2024", "anhui_2024", "tech_innovation_2024",
                                  "anhui_4321", "nfgf_2422"])
def test_party_cells_hold_every_cell_that_moves_a_party(name: str) -> None:
    """Perturbing the cells outside a party's :meth:`Waterfall.party_cells` leaves its
    payments and recoveries exactly unchanged (caps binding or not)."""
    sc = load(SCENARIOS_DIR / f"{name}.toml")
    sc = sc.with_changes({f"segments[{i}].count": 30 for i in range(len(sc.segments))})
    wf = Waterfall.from_scenario(sc, book_for(sc).cells)
    dep = wf.party_cells()
    n_cells = len(wf.cells)
    rng = np.random.default_rng(0)
    scale = np.asarray(wf.cells.guaranteed, dtype=np.float64)
    cov = rng.uniform(0, 0.2, (64, n_cells)) * scale  # caps bind on some paths
    rec = cov * rng.uniform(0, 0.6, cov.shape)
    unc = rng.uniform(0, 1e5, cov.shape)
    base = wf.apply(cov, rec, unc, 0.5 * unc)
    for p in range(len(wf.parties)):
        out = ~dep[p]
        if not out.any():
            continue
        c2, r2, u2 = cov.copy(), rec.copy(), unc.copy()
        c2[:, out] *= rng.uniform(0.2, 3.0, (64, int(out.sum())))
        r2[:, out] = c2[:, out] * 0.3
        u2[:, out] *= 2.0
        moved = wf.apply(c2, r2, u2, 0.5 * u2)
        np.testing.assert_array_equal(moved.paid[:, p], base.paid[:, p])
        np.testing.assert_array_equal(moved.recovered[:, p], base.recovered[:, p])


def test_provincial_parties_depend_on_their_region_only() -> None:
    sc = from_dict(provinces(n_regions=3, count=40, importance_sampling=True))
    res = simulate(sc, n_paths=200)
    assert res.party_weights is not None and res.weights is not None
    j = {p: i for i, p in enumerate(res.parties)}
    # the bank and the fund carry every region: the run's own weights
    for p in ("bank", "fund"):
        np.testing.assert_array_equal(res.party_weights[:, j[p]], res.weights)
    # a region's guarantor and re-guarantor share one subset, other regions another
    np.testing.assert_array_equal(res.party_weights[:, j["r0_g"]],
                                  res.party_weights[:, j["r0_p"]])
    assert not np.array_equal(res.party_weights[:, j["r0_g"]],
                              res.party_weights[:, j["r1_g"]])
    assert not np.array_equal(res.party_weights[:, j["r0_g"]], res.weights)
    assert res.weights_of("r0_g") is not None
    assert len(res.provenance["importance_mixture"]) == 3  # book, all regions, plain


def test_combined_shift_takes_each_regions_own_entries() -> None:
    sc = from_dict(provinces(n_regions=3, count=40, importance_sampling=True))
    book = book_for(sc)
    from simkit.montecarlo import _factor_model

    model = _factor_model(sc, [book])
    own = np.array([auto_shift(sc, book, model, mask=book.region == r)
                    for r in np.unique(book.region)])
    rows = auto_shifts(sc, book, model, combine=True)
    assert rows.shape == (3, model.n_factors)
    np.testing.assert_array_equal(rows[0], auto_shift(sc, book, model))
    np.testing.assert_array_equal(rows[1], combined_shift(own))
    assert np.all(rows[2] == 0)
    for r in range(3):  # region r's factor: region r's own shift
        assert rows[1, 1 + r] == own[r, 1 + r] != 0
    assert rows[1, 0] == pytest.approx(own[:, 0].mean())


# --------------------------------------------------------------------------------------
# estimates
# --------------------------------------------------------------------------------------
def test_party_weighted_estimates_match_plain_monte_carlo() -> None:
    """On the same book, a regional party's EL, VaR and ES under importance sampling with
    its own weights agree with a long plain run within 4 combined SE."""
    d = provinces(n_regions=4, count=150)
    plain = simulate(from_dict(d), n_paths=60_000, block_size=5_000)
    isr = simulate(from_dict({**d, "run": {**d["run"], "importance_sampling": True}}),
                   n_paths=4000)
    sp = plain.summary()["parties"]
    with warnings.catch_warnings():  # the fund's capped tail is thin on 4,000 paths
        warnings.simplefilter("ignore", ImportanceSamplingWarning)
        si = isr.summary()["parties"]
    for p in ("r0_g", "r2_p", "bank"):
        for k in ("el", "var_99", "es_99", "var_99.9", "es_99.9"):
            se = math.hypot(sp[p][f"{k}_se"], si[p][f"{k}_se"])
            assert abs(sp[p][k] - si[p][k]) < 4 * se, (p, k, sp[p][k], si[p][k], se)


def test_party_weights_sharpen_a_regional_tail() -> None:
    """Over 16 seeds the spread of a regional guarantor's VaR 99.9 % with its own weights
    is under a third of the spread with the run's full weights (measured 5-8x)."""
    from simkit.measures import value_at_risk

    d = provinces(n_regions=4, count=150, n_paths=3000, importance_sampling=True)
    sc = from_dict(d)
    own, full = [], []
    for seed in range(16):
        res = simulate(sc, seed=seed)
        j = res.parties.index("r0_g")
        own.append(value_at_risk(res.losses[:, j], 0.999, res.weights_of(j)).value)
        full.append(value_at_risk(res.losses[:, j], 0.999, res.weights).value)
    assert np.std(own) < np.std(full) / 3


def test_party_weights_follow_policy_variants_and_reproduce() -> None:
    from simkit.montecarlo import simulate_all

    d = provinces(n_regions=3, count=60, importance_sampling=True)
    base = from_dict(d)
    other = from_dict({**d, "agreements": [
        {**a, "layers": [{**layer, "share": s} for layer, s in zip(
            a["layers"], (0.2, 0.5, 0.1, 0.2), strict=True)]} for a in d["agreements"]]})
    res, var = simulate_all(base, n_paths=500, variants=[other])
    assert var.party_weights is not None
    np.testing.assert_array_equal(var.party_weights, res.party_weights)
    one = simulate(base, n_paths=500)  # the base alone: the same weights
    assert one.party_weights is not None
    np.testing.assert_array_equal(one.party_weights, res.party_weights)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # any executor: the same bits
        par = simulate(base, n_paths=500, block_size=100, executor=pool)
    serial = simulate(base, n_paths=500, block_size=100)
    np.testing.assert_array_equal(par.party_weights, serial.party_weights)


def test_single_region_books_keep_one_weight() -> None:
    d = provinces(n_regions=1, count=100, importance_sampling=True)
    res = simulate(from_dict(d), n_paths=200)
    assert res.weights is not None and res.party_weights is None


@pytest.mark.slow
def test_party_weight_error_bars_match_the_spread_over_replications() -> None:
    """60 independent runs: the mean reported SE of each party's VaR/ES 99.9 % and EL is
    within 0.75-1.33 of the spread of the estimates (measured ~0.9-1.05)."""
    d = provinces(n_regions=4, count=150, n_paths=2000, importance_sampling=True)
    sc = from_dict(d)
    keys = ("el", "var_99.9", "es_99.9")
    vals: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for seed in range(60):
        with warnings.catch_warnings():  # the fund's capped tail is thin on 2,000 paths
            warnings.simplefilter("ignore", ImportanceSamplingWarning)
            st = simulate(sc, seed=seed).summary()["parties"]
        for p in ("r0_g", "r1_p", "bank"):
            for k in keys:
                vals.setdefault((p, k), []).append((st[p][k], st[p][f"{k}_se"]))
    for key, v in vals.items():
        x = np.array(v)
        ratio = x[:, 1].mean() / x[:, 0].std(ddof=1)
        assert 0.75 < ratio < 1.33, (key, ratio)


def test_regions_joined_by_a_cap_keep_a_row_each() -> None:
    """anhui_2024's national-fund cap pools the agreement over every region, so each
    regional guarantor depends on all the factors: the mixture keeps one row per region
    (the run's weights as before); only the central budget, on one region's tech-plan
    loans, gets weights of its own."""
    sc = load(SCENARIOS_DIR / "anhui_2024.toml")
    sc = sc.with_changes({f"segments[{i}].count": 40 for i in range(len(sc.segments))})
    res = simulate(sc, n_paths=200)
    assert len(res.provenance["importance_mixture"]) == 5  # book, 3 regions, plain
    assert res.party_weights is not None and res.weights is not None
    for j, p in enumerate(res.parties):
        same = np.array_equal(res.party_weights[:, j], res.weights)
        assert same == (p != "central_fiscal"), p


def test_policy_differences_use_each_partys_own_weights() -> None:
    """The comparison table's paired differences of a regional guarantor use its own
    weights: the same values as computed by hand with them, and over 10 seeds a spread of
    its VaR 99.9 % difference under half that of the full weights."""
    from simkit import measures, policies

    d = provinces(n_regions=4, count=150, n_paths=2000, importance_sampling=True)
    base = from_dict(d)
    other = from_dict({**d, "agreements": [
        {**a, "layers": [{**layer, "share": s} for layer, s in zip(
            a["layers"], (0.25, 0.35, 0.2, 0.2), strict=True)]} for a in d["agreements"]]})
    own, full = [], []
    for seed in range(10):
        res = policies.simulate_policies(base, [other], seed=seed)
        runs = [policies.PolicyRun("base", base, res[0]), policies.PolicyRun("v", other, res[1])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImportanceSamplingWarning)
            rows = policies.comparison_rows(runs)
        row = {(r["variant"], r["party"], r["measure"]): r for r in rows}
        j = res[0].parties.index("r0_g")
        a, b = res[0].losses[:, j], res[1].losses[:, j]
        mine = measures.paired_difference(a, b, res[0].weights_of(j))
        got = row[("v", "r0_g", "el")]
        h = res[0].horizon
        assert got["diff"] == pytest.approx(mine["diff"] / h, rel=1e-12)
        assert got["diff_se"] == pytest.approx(mine["diff_se"] / h, rel=1e-12)
        own.append(row[("v", "r0_g", "var_99.9")]["diff"])
        tail = measures.paired_tail_differences(a[:, None], b[:, None], res[0].weights,
                                                levels=(0.999,))
        full.append(float(np.asarray(tail[("var", 0.999)]["diff"]).reshape(-1)[0]))
    assert np.std(own) < 0.5 * np.std(full)
