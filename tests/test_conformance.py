"""Conformance battery: the same loan-level outcomes through both engines' settlements.

Fixed outcomes (which loans default, their LGDs, hence their recoveries) on a small book
are pushed through the Monte Carlo waterfall (:class:`simkit.sharing.Waterfall`, the
path the Monte Carlo takes for every simulated path) and through the DES's own claim,
cap-settlement, compensation, overflow and recovery processes
(:func:`simkit.des.fixed.settle_fixed`). Both must give every party the same net loss to
1e-9 relative, and the same first-year fees, for every shipped scenario (parametrised over
``scenarios/*.toml``: a new file is covered without a new test) and for generated
agreements (caps binding and not, overflow, fees with thresholds, fiscal compensation,
recoveries).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simkit
from simkit.book import book_for
from simkit.des import simulate as des_simulate
from simkit.des.fixed import settle_fixed
from simkit.montecarlo import simulate as mc_simulate
from simkit.scenario import CAP_BASES, CAP_POOLS, Scenario
from simkit.sharing import Cells, Waterfall, cap_of_label, fee_flows

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.toml"))


def _mc(sc: Scenario, segment: np.ndarray, exposure: np.ndarray, defaulted: np.ndarray,
        lgd: np.ndarray) -> tuple[np.ndarray, np.ndarray, Waterfall]:
    """Net loss and first-year fee income per party from the Monte Carlo's waterfall and
    fee flows for one path with the given outcomes (one cell per segment)."""
    segs = sc.segments
    used = sorted(set(segment.tolist()))
    cell_of_loan = np.searchsorted(used, segment)
    names = [a.name for a in sc.agreements]
    a_idx = np.array([names.index(segs[s].agreement) for s in used], dtype=np.intp)
    limit = np.array([sc.agreements[a].single_limit for a in a_idx])[cell_of_loan]
    g = np.minimum(exposure, limit)
    tenor = np.array([segs[s].tenor_years for s in segment])
    n = len(used)
    cells = Cells(agreement=a_idx, guarantor=tuple(segs[s].guarantor for s in used),
                  region=tuple(segs[s].region for s in used),
                  segment=tuple(segs[s].name for s in used),
                  guaranteed=np.bincount(cell_of_loan, g, n),
                  annualised=np.bincount(cell_of_loan, g * tenor, n))
    w = Waterfall.from_scenario(sc, cells)
    d = defaulted.astype(float)

    def per_cell(x: np.ndarray) -> np.ndarray:
        return np.bincount(cell_of_loan, x * d, n)[None, :]

    alloc = w.apply(per_cell(g), per_cell(g * (1 - lgd)), per_cell(exposure - g),
                    per_cell((exposure - g) * (1 - lgd)))
    fees = fee_flows(sc, cell_of_loan, cells, g, tenor, years=1.0)
    return alloc.net[0], fees.net_income(sc.party_names), w


def _assert_same(sc: Scenario, segment: np.ndarray, exposure: np.ndarray,
                 defaulted: np.ndarray, lgd: np.ndarray) -> Waterfall:
    mc_loss, mc_fees, w = _mc(sc, segment, exposure, defaulted, lgd)
    des = settle_fixed(sc, segment, exposure, defaulted, lgd)
    scale = max(float(exposure.sum()), 1.0)
    np.testing.assert_allclose(des.net_loss, mc_loss, rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(des.fees, mc_fees, rtol=1e-9, atol=1e-9 * scale)
    # one cap naming scheme: every DES pool label belongs to a Monte Carlo cap (the DES
    # opens a pool for every segment, so compare with a waterfall over all of them)
    every = np.arange(len(sc.segments))
    _, _, w_all = _mc(sc, every, np.ones(len(every)), np.zeros(len(every), bool),
                      np.zeros(len(every)))
    assert {cap_of_label(label) for label in des.caps} <= {c.name for c in w_all.caps}
    return w


def _book(sc: Scenario, per_segment: int, default_rate: float, seed: int
          ) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    segment = np.repeat(np.arange(len(sc.segments)), per_segment)
    exposure = np.concatenate([s.exposure.sample(rng, per_segment) for s in sc.segments])
    defaulted = rng.random(len(segment)) < default_rate
    defaulted[::per_segment] = True  # at least one default per segment
    lgd = rng.uniform(0.0, 1.0, len(segment))
    return segment, exposure, defaulted, lgd


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
@pytest.mark.parametrize("default_rate", [0.0, 0.6], ids=["caps_slack", "caps_binding"])
def test_shipped_scenario_same_allocation_in_both_engines(path: Path,
                                                          default_rate: float) -> None:
    sc = simkit.load(path)
    per_segment = 40 if default_rate == 0.0 else 8
    segment, exposure, defaulted, lgd = _book(sc, per_segment, default_rate, seed=7)
    w = _assert_same(sc, segment, exposure, defaulted, lgd)
    if w.caps and default_rate > 0:
        mc = w.apply(np.ones((1, len(w.cells))) * 1e12, np.zeros((1, len(w.cells))))
        assert mc.cap_binding.any()  # the battery exercises binding caps


PARTIES = ("bank", "g1", "g2", "provincial", "national_fund", "local_gov", "budget")
KINDS = {"bank": "bank", "g1": "guarantor", "g2": "guarantor", "provincial": "provincial",
         "national_fund": "national_fund", "local_gov": "local_gov", "budget": "other"}


@st.composite
def agreements(draw: st.DrawFn) -> tuple[Scenario, tuple[np.ndarray, ...]]:
    """A scenario with one generated agreement and a small book with fixed outcomes."""
    layer_parties = draw(st.lists(st.sampled_from(("bank", "g1", "provincial",
                                                   "national_fund", "local_gov")),
                                  min_size=1, max_size=4, unique=True))
    if "g1" not in layer_parties and draw(st.booleans()):
        layer_parties.append("g1")
    weights = [draw(st.integers(1, 10)) for _ in layer_parties]
    shares = [x / sum(weights) for x in weights]
    shares[-1] = 1.0 - sum(shares[:-1])
    layers = []
    for p, share in zip(layer_parties, shares, strict=True):
        layer: dict = {"party": p, "share": share,
                       "lag_days": draw(st.sampled_from([0, 10, 30]))}
        if p != "bank" and draw(st.booleans()):
            layer["cap"] = {"rate": draw(st.floats(0.001, 0.3)),
                            "overflow": draw(st.sampled_from(
                                [q for q in ("bank", "g1", "provincial", "local_gov")
                                 if q != p and not (p == "g1" and q == "g1")])),
                            "pool": draw(st.sampled_from(CAP_POOLS)),
                            "base": draw(st.sampled_from(CAP_BASES))}
        layers.append(layer)
    agreement: dict = {
        "name": "gen", "layers": layers, "recovery_lag_years": 0.5,
        "fees": [{"from": "borrower", "to": draw(st.sampled_from(layer_parties)),
                  "rate": draw(st.floats(0.0, 0.03)),
                  "kind": "guarantee"}],
    }
    single_limit = draw(st.sampled_from([5e5, 2e6, None]))
    if single_limit is not None:
        agreement["single_limit"] = single_limit
    threshold = draw(st.sampled_from([3e5, 1e6, None]))
    if threshold is not None:
        agreement["fees"][0]["threshold"] = threshold
        agreement["fees"][0]["rate_above"] = draw(st.floats(0.0, 0.03))
    if len(layer_parties) > 1:
        agreement["fees"].append({"from": layer_parties[0], "to": layer_parties[1],
                                  "rate": 0.002, "on_share_of": layer_parties[1],
                                  "kind": "reguarantee"})
    comp_to = [p for p, s in zip(layer_parties, shares, strict=True)
               if s > 0.2 and p != "g1"]
    if comp_to and draw(st.booleans()):
        agreement["fiscal_compensation"] = {"from": "budget", "to": comp_to[0],
                                            "standard_share": 0.2}
    n_seg = draw(st.integers(1, 3))
    segments = []
    for s in range(n_seg):
        seg = {"name": f"s{s}", "count": 10, "agreement": "gen",
               "region": draw(st.sampled_from(["north", "south"])),
               "exposure": 1e6, "default_prob": 0.03, "lgd": 0.5,
               "tenor_years": draw(st.sampled_from([0.5, 1.0, 2.0]))}
        gua = draw(st.sampled_from([None, "g1", "g2"])) if "g1" in layer_parties else None
        if gua is not None:
            seg["guarantor"] = gua
        segments.append(seg)
    data = {"scenario": {"name": "conformance"},
            "parties": {p: {"kind": KINDS[p]} for p in PARTIES},
            "agreements": [agreement], "segments": segments,
            "run": {"n_paths": 8, "seed": 1}, "des": {"years": 1}}
    sc = simkit.from_dict(data)
    n = draw(st.integers(1, 12))
    segment = np.array(draw(st.lists(st.integers(0, n_seg - 1), min_size=n, max_size=n)))
    exposure = np.array(draw(st.lists(st.floats(1e4, 5e6), min_size=n, max_size=n)))
    defaulted = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    lgd = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    return sc, (segment, exposure, defaulted, lgd)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(agreements())
def test_generated_agreements_same_allocation_in_both_engines(
        case: tuple[Scenario, tuple[np.ndarray, ...]]) -> None:
    sc, (segment, exposure, defaulted, lgd) = case
    _assert_same(sc, segment, exposure, defaulted, lgd)


def test_same_leverage_for_the_same_guarantor_and_book() -> None:
    """Both engines measure a guarantor's liability by :mod:`simkit.regulation`: the
    original guarantor the whole covered part it owes the bank (80 % here, not its own
    40 % layer), the other layers their shares; so the leverage agrees."""
    data = {
        "scenario": {"name": "leverage"},
        "parties": {"bank": {}, "county": {"kind": "guarantor", "net_assets": 5e7,
                                           "leverage_limit": 10},
                    "provincial": {"net_assets": 1e9, "leverage_limit": 10},
                    "local_gov": {}},
        "agreements": [{"name": "a", "single_limit": 2e6, "layers": [
            {"party": "bank", "share": 0.2}, {"party": "county", "share": 0.4},
            {"party": "provincial", "share": 0.3,
             "cap": {"rate": 0.03, "overflow": "local_gov"}},
            {"party": "local_gov", "share": 0.1}]}],
        "segments": [{"name": "smes", "count": 60, "exposure": {
            "dist": "lognormal", "median": 1e6, "sigma": 0.8},
            "default_prob": 0.03, "lgd": 0.5}],
        "run": {"n_paths": 16, "seed": 3},
    }
    sc = simkit.from_dict(data)
    book = book_for(sc)
    mc = mc_simulate(sc)
    seg_index = {s.name: i for i, s in enumerate(sc.segments)}
    segment = np.array([seg_index[book.segment_names[s]] for s in book.segment])
    des = settle_fixed(sc, segment, book.exposure, np.zeros(len(segment), dtype=bool),
                       np.zeros(len(segment)))
    np.testing.assert_allclose(des.weighted_liability, mc.exposure_weighted[0], rtol=1e-12)
    county, prov = sc.party_names.index("county"), sc.party_names.index("provincial")
    from simkit.regulation import risk_weight
    rw = float((book.guaranteed * risk_weight(book.guaranteed, sc.regulation)).sum())
    assert mc.exposure_weighted[0][county] == pytest.approx(0.8 * rw, rel=1e-12)
    assert mc.exposure_weighted[0][prov] == pytest.approx(0.3 * rw, rel=1e-12)


def _tenor_scenario(tenor: float, cap: bool) -> Scenario:
    provincial: dict = {"party": "provincial", "share": 0.3}
    if cap:
        provincial["cap"] = {"rate": 0.03, "overflow": "local_gov"}
    return simkit.from_dict({
        "scenario": {"name": f"tenor_{tenor}"},
        "parties": {"bank": {}, "county": {"kind": "guarantor"}, "provincial": {},
                    "local_gov": {}},
        "agreements": [{"name": "a", "recovery_lag_years": 0.25, "layers": [
            {"party": "bank", "share": 0.2}, {"party": "county", "share": 0.5},
            provincial]}],
        "factors": {"national": 0.25},
        "segments": [{"name": "smes", "count": 240, "exposure": 1e6, "default_prob": 0.06,
                      "lgd": {"mean": 0.5, "sd": 0.2}, "tenor_years": tenor,
                      "interest_margin": 0.5}],
        "run": {"n_paths": 4000, "seed": 5},
        "des": {"years": 1, "mode": "batch", "renewal_prob": 0.0},
    })


@pytest.mark.parametrize(("tenor", "cap"), [
    (0.5, False), (1.0, False), (2.0, False), (0.5, True), (1.0, True), (2.0, True)],
    ids=["0.5-caps_off", "1-caps_off", "2-caps_off", "0.5-caps_on", "1-caps_on",
         "2-caps_on"])
def test_same_cohort_loss_for_every_tenor(tenor: float, cap: bool) -> None:
    """The time rule (:func:`simkit.factors.default_prob_over`) is the same in both
    engines: the DES's settled loss of the first year's cohort per guaranteed yuan equals
    the Monte Carlo's expected loss of its (annual) cohort over the loans' life, per party,
    within 3 standard errors of the difference."""
    sc = _tenor_scenario(tenor, cap)
    # the DES's replications dominate the standard error; a capped layer's settled loss on
    # 2-year loans (cap binding in ~99 % of paths, ~25 defaults a replication) is the
    # noisiest: 48 replications there
    reps = 48 if (cap and tenor > 1) else 24
    des_rate = np.empty((reps, len(sc.party_names)))
    for r in range(reps):
        res = des_simulate(sc, replication=r, seed=11)
        loans = res.loans
        g = float(loans["guaranteed"][loans["start"] < 365].sum())
        des_rate[r] = res.cohort_losses[0] / g
    g_mc = float(book_for(sc).guaranteed.sum())
    for engine in ("numba", "numpy"):  # one factor state per loan year in both engines
        mc = mc_simulate(sc, engine=engine)
        mc_rate = mc.losses / g_mc
        se = np.sqrt(mc_rate.var(axis=0, ddof=1) / len(mc_rate)
                     + des_rate.var(axis=0, ddof=1) / reps)
        diff = des_rate.mean(axis=0) - mc_rate.mean(axis=0)
        assert np.all(np.abs(diff) <= 3 * se + 1e-12), (engine, diff, se)
        # the loss grows with the tenor as 1 - (1 - PD)^tenor says (not one year at any
        # tenor)
        total = mc_rate.sum(axis=1).mean()
        life_pd = 1 - (1 - 0.06) ** tenor
        if not cap:
            assert total == pytest.approx(life_pd * 0.5, rel=0.05)


def _life_default_moments(pd: float, loading: float, tenor: float, n_loans: int
                          ) -> tuple[float, float]:
    """Mean and variance of a cohort's number of defaults under the DES's rule (one
    national-factor state per loan year, ``1 - (1 - p)^L`` for a loan year of length
    ``L``), by Gauss-Hermite quadrature over the independent yearly states."""
    from scipy import special

    from simkit.factors import default_prob_over

    x, w = np.polynomial.hermite_e.hermegauss(64)
    w = w / w.sum()
    c = special.ndtri(pd)
    p = special.ndtr((c - loading * x) / np.sqrt(1 - loading**2))  # per state
    n_years = int(np.ceil(tenor - 1e-12))
    surv = np.ones(1)
    weight = np.ones(1)
    for j in range(n_years):
        q = default_prob_over(p, min(tenor - j, 1.0))
        surv = np.multiply.outer(surv, 1 - q).ravel()
        weight = np.multiply.outer(weight, w).ravel()
    pi = 1 - surv
    mean = float(weight @ pi)
    var = n_loans * float(weight @ (pi * (1 - pi))) + n_loans**2 * float(
        weight @ (pi - mean) ** 2)
    return n_loans * mean, var


@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize(("tenor", "horizon"), [(2.0, 1), (1.5, 2)])
def test_multi_year_loans_take_one_factor_state_per_loan_year(tenor: float, horizon: int,
                                                              engine: str) -> None:
    """The Monte Carlo gives a loan of more than a year one factor state per loan year
    (the DES's rule): the mean and the variance of a cohort's number of defaults match
    the quadrature of that rule within 4 standard errors. One state for the loan's life
    (the former rule) gives a variance about 1.5x as large here."""
    n_loans, pd, loading = 2000, 0.06, 0.4
    sc = simkit.from_dict({
        "scenario": {"name": "tenor_states"},
        "parties": {"bank": {}, "county": {"kind": "guarantor"}},
        "agreements": [{"name": "a", "layers": [{"party": "bank", "share": 0.5},
                                                {"party": "county", "share": 0.5}]}],
        "factors": {"national": loading},
        "segments": [{"name": "s", "count": n_loans, "exposure": 1e6,
                      "default_prob": pd, "lgd": 0.5, "tenor_years": tenor}],
        "run": {"n_paths": 6000, "seed": 3, "horizon_years": horizon},
    })
    res = mc_simulate(sc, engine=engine)
    mean, var = _life_default_moments(pd, loading, tenor, n_loans)
    for y in range(horizon):
        n_def = res.defaults[:, y].astype(float)
        k = len(n_def)
        se_mean = np.sqrt(var / k)
        m4 = np.mean((n_def - n_def.mean()) ** 4)
        se_var = np.sqrt(max(m4 - var**2, 0.0) / k)
        assert abs(n_def.mean() - mean) <= 4 * se_mean, (y, n_def.mean(), mean)
        assert abs(n_def.var(ddof=1) - var) <= 4 * se_var, (y, n_def.var(ddof=1), var)
    if horizon > 1:  # consecutive cohorts share a calendar year's state: correlated
        assert np.corrcoef(res.defaults[:, 0], res.defaults[:, 1])[0, 1] > 0.1


def test_kernel_time_rule_is_the_reference() -> None:
    """The compiled copy of the time rule (``_kernels.prob_over``) is
    :func:`simkit.factors.default_prob_over` bit for bit over a grid."""
    from simkit._kernels import prob_over
    from simkit.factors import default_prob_over

    for p in [0.0, 1e-12, 1e-4, 0.02, 0.3, 0.5, 0.97, 1 - 1e-12]:
        for t in [1e-3, 0.25, 0.5, 0.999, 1.0]:
            assert prob_over(p, t) == float(default_prob_over(p, t)), (p, t)


def test_fast_paths_of_the_set_up_give_the_same_bits(monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    """The set-up's shortcuts on segment books are exact: sorting by (cell, life PD) when
    every group key is constant per cell gives the general lexsort's bands, and the
    importance-sampling mixture's regional rows equal :func:`auto_shift` of each region."""
    from simkit import montecarlo

    sc = simkit.load(SCENARIOS[[p.stem for p in SCENARIOS].index("anhui_4321")])
    sc = sc.with_changes({f"segments[{i}].count": 40 for i in range(len(sc.segments))})
    book = book_for(sc)
    model = montecarlo._factor_model(sc, [book])
    fast = montecarlo._compile(sc, book, model)
    monkeypatch.setattr(montecarlo, "_functions_of", lambda code, keys: False)
    general = montecarlo._compile(sc, book, model)
    for name in ("order", "band_start", "band_stop", "thr", "band_cell"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(general, name))
    regions = np.unique(book.region)
    assert regions.size > 1
    rows = montecarlo.auto_shifts(sc, book, model)
    expect = [montecarlo.auto_shift(sc, book, model)] + [
        montecarlo.auto_shift(sc, book, model, mask=book.region == r) for r in regions]
    np.testing.assert_array_equal(rows[:-1], np.array(expect))
