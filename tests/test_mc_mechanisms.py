"""Mechanisms the Monte Carlo shares with the DES (issue 11): moral hazard through the
book's default probabilities, capital injections per path at each year end, and the
stress path of the national factor (``factors.national_path``) in both engines."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import simkit
from simkit.book import book_for
from simkit.des import simulate as des_simulate
from simkit.des.model import Model
from simkit.factors import moral_hazard_pd, retained_share, stressed_national
from simkit.montecarlo import injection_parties, simulate
from simkit.regulation import capital_injection
from simkit.results import RunReport
from simkit.scenario import ScenarioError, load
from tests.conftest import ROOT


def _small(**over: Any) -> simkit.Scenario:
    """A one-agreement book: bank 20 %, county guarantor 50 %, provincial 30 %."""
    data: dict[str, Any] = {
        "scenario": {"name": "mech"},
        "parties": {"bank": {}, "county": {"kind": "guarantor"}, "provincial": {},
                    "local_gov": {}},
        "agreements": [{"name": "a", "recovery_lag_years": 0.25, "layers": [
            {"party": "bank", "share": 0.2}, {"party": "county", "share": 0.5},
            {"party": "provincial", "share": 0.3}]}],
        "factors": {"national": 0.25},
        "segments": [{"name": "smes", "count": 240, "exposure": 1e6, "default_prob": 0.06,
                      "lgd": {"mean": 0.5, "sd": 0.2}, "interest_margin": 0.5}],
        "run": {"n_paths": 4000, "seed": 5},
        "des": {"years": 1, "mode": "batch", "renewal_prob": 0.0},
    }
    sc = simkit.from_dict(data)
    return sc.with_changes(over) if over else sc


# --------------------------------------------------------------------------------------
# moral hazard
# --------------------------------------------------------------------------------------
def _no_correlation(bank_share: float, kappa: float) -> simkit.Scenario:
    rest = 1.0 - bank_share
    return _small(**{
        "factors.national": 0.0,
        "agreements[0].layers": [{"party": "bank", "share": bank_share},
                                 {"party": "county", "share": rest}],
        "segments[0].lgd": 0.5, "segments[0].count": 400,
        "des.moral_hazard_kappa": kappa, "des.moral_hazard_gamma": 2.0})


def test_moral_hazard_book_pd_is_the_des_rule() -> None:
    """The book's PDs are ``moral_hazard_pd(PD, retained)``, retained from the compiled
    plan: the lender's share on the guaranteed part, all of the part above the limit."""
    sc = _small(**{"agreements[0].single_limit": 1.5e6, "des.moral_hazard_kappa": 1.5,
                   "segments[0].exposure": {"dist": "uniform", "low": 5e5, "high": 3e6}})
    plain = sc.with_changes({"des.moral_hazard_kappa": 0.0})
    b, b0 = book_for(sc), book_for(plain)
    np.testing.assert_array_equal(b.exposure, b0.exposure)
    retained = (0.2 * b.guaranteed + b.exposure - b.guaranteed) / b.exposure
    np.testing.assert_allclose(retained_share(b.exposure, b.guaranteed, 0.2), retained)
    np.testing.assert_allclose(b.default_prob, 0.06 * (1 + 1.5 * (1 - retained)),
                               rtol=1e-12)
    assert np.all(b0.default_prob == 0.06)
    # a loan nobody covers keeps its PD
    assert float(retained_share(1e6, 1e6, 0.3, covered=False)) == 1.0


def test_moral_hazard_lower_retained_share_raises_monte_carlo_el() -> None:
    """No correlation, fixed LGD: the MC's expected loss is the closed form
    ``sum moral_hazard_pd(PD, retained) x LGD x g`` within 3 SE, and a lower retained
    share loses more."""
    el, se = {}, {}
    for share in (0.5, 0.1):
        sc = _no_correlation(share, kappa=2.0)
        book = book_for(sc)
        res = simulate(sc, n_paths=4000, seed=11, book=book)
        total = res.total_loss
        el[share], se[share] = total.mean(), total.std(ddof=1) / math.sqrt(total.size)
        closed = float((moral_hazard_pd(0.06, share, 2.0, 2.0) * 0.5
                        * book.guaranteed).sum())
        assert abs(el[share] - closed) <= 3 * se[share], (share, el[share], closed)
    # 0.06 x (1 + 2 x 0.81) vs 0.06 x (1 + 2 x 0.25): lower retained share, higher EL
    assert el[0.1] - el[0.5] > 3 * math.hypot(se[0.1], se[0.5])


def test_moral_hazard_same_cohort_el_in_des_and_mc() -> None:
    """With ``kappa > 0`` the DES's settled loss of the first cohort per guaranteed yuan
    equals the MC's expected loss of its cohort within 3 SE, per party (the pattern of
    tests/test_conformance.py), and moral hazard moved both."""
    sc = _small(**{"des.moral_hazard_kappa": 1.0})
    mc = simulate(sc)
    g_mc = float(book_for(sc).guaranteed.sum())
    mc_rate = mc.losses / g_mc
    reps = 24
    des_rate = np.empty((reps, len(sc.party_names)))
    for r in range(reps):
        res = des_simulate(sc, replication=r, seed=11)
        loans = res.loans
        g = float(loans["guaranteed"][loans["start"] < 365].sum())
        des_rate[r] = res.cohort_losses[0] / g
    se = np.sqrt(mc_rate.var(axis=0, ddof=1) / len(mc_rate)
                 + des_rate.var(axis=0, ddof=1) / reps)
    diff = des_rate.mean(axis=0) - mc_rate.mean(axis=0)
    assert np.all(np.abs(diff) <= 3 * se + 1e-12), (diff, se)
    # moral hazard is on in the MC: PD 0.06 x 1.8 = 0.108, LGD mean 0.5
    total = mc_rate.sum(axis=1).mean()
    assert total == pytest.approx(0.108 * 0.5, rel=0.05)


# --------------------------------------------------------------------------------------
# capital injections
# --------------------------------------------------------------------------------------
def _injecting(**over: Any) -> simkit.Scenario:
    """Three years, a thin county guarantor (net assets 5 million on 240 million lent)
    topped up by the rule; the provincial re-guarantor has ample capital."""
    base = {
        "parties": {"bank": {}, "county": {"kind": "guarantor", "net_assets": 5e6,
                                           "region": "north", "leverage_limit": 100},
                    "provincial": {"kind": "provincial", "net_assets": 1e9},
                    "gov_south": {"kind": "local_gov", "region": "south"},
                    "gov_north": {"kind": "local_gov", "region": "north",
                                  "net_assets": 1e8}},
        "run.horizon_years": 3, "run.n_paths": 2000,
        "des.injection_trigger": 0.8, "des.injection_target": 1.0,
    }
    base.update(over)
    return _small(**base)


def test_injection_parties_follow_the_des_rule() -> None:
    sc = _injecting()
    receives, payer = injection_parties(sc)
    names = sc.party_names
    assert [names[j] for j in np.flatnonzero(receives)] == ["county", "provincial"]
    # same region first, else the first local government
    assert names[payer[names.index("county")]] == "gov_north"
    assert names[payer[names.index("provincial")]] == "gov_south"
    no_gov = _injecting(parties={"bank": {}, "county": {"kind": "guarantor",
                                                         "net_assets": 5e6},
                                 "provincial": {}})
    assert np.all(injection_parties(no_gov)[1] == -1)


def test_injections_conserve_money_and_keep_capital_above_the_trigger() -> None:
    sc = _injecting()
    res = simulate(sc, seed=4)
    inj = res.injections
    assert inj is not None and res.capital_paths is not None
    names = list(sc.party_names)
    county, north = names.index("county"), names.index("gov_north")
    assert np.mean(inj[:, county] > 0) > 0.5  # the thin guarantor needs money
    # conservation: what parties receive net is what the outside budget paid (nothing)
    np.testing.assert_allclose(inj.sum(axis=1), res.injections_external, atol=1e-6)
    assert np.all(res.injections_external == 0)
    np.testing.assert_allclose(inj[:, north], -inj[:, county], rtol=1e-12)
    # capital identity per path: start + fees - losses + injections
    start = np.array([np.nan if p.net_assets is None else p.net_assets for p in sc.parties])
    end = start + res.fees_by_year.sum(axis=0) - res.losses + inj
    tracked = ~np.isnan(start)
    np.testing.assert_allclose(res.capital_paths[:, -1, tracked], end[:, tracked],
                               rtol=1e-9, atol=1e-3)
    # the rule (simkit.regulation.capital_injection) leaves the county at its trigger or
    # above at every year end, at its target after each injection
    assert np.all(res.capital_paths[:, 1:, county] >= 0.8 * 5e6 * (1 - 1e-12))
    assert np.any(res.capital_paths[:, 1:, county] < 5e6 * (1 - 1e-9))
    # without the rule the same losses leave the county below its trigger on most paths
    off = simulate(sc.with_changes({"des.injection_trigger": 0.0}), seed=4)
    assert off.injections is None
    np.testing.assert_array_equal(off.losses, res.losses)
    assert off.capital_paths is not None
    below = off.capital_paths[:, 1:, county] < 0.8 * 5e6
    assert np.mean(below.any(axis=1)) > 0.5
    # the first year's injection is the rule applied to the first year-end capital
    first = capital_injection(off.capital_paths[:, 1, county], 5e6, 0.8, 1.0)
    np.testing.assert_allclose(res.capital_paths[:, 1, county],
                               off.capital_paths[:, 1, county] + first, rtol=1e-12)


def test_injections_from_the_outside_budget_and_in_the_report() -> None:
    # no local-government party: the budget outside the scenario pays
    sc = _injecting(parties={"bank": {}, "county": {"kind": "guarantor",
                                                     "net_assets": 5e6},
                             "provincial": {}})
    res = simulate(sc, seed=4)
    assert res.injections is not None and res.injections_external is not None
    np.testing.assert_allclose(res.injections.sum(axis=1), res.injections_external,
                               rtol=1e-12)
    summ = res.injection_summary()
    assert summ["external"]["paid"] == pytest.approx(res.injections_external.mean())
    assert summ["parties"]["county"]["received"] == pytest.approx(summ["external"]["paid"])
    assert 0 < summ["parties"]["county"]["p_received"] <= 1
    text = RunReport(sc, res).format_text()
    assert "capital injections within 3 years" in text
    assert "county receives" in text and "outside the scenario pays" in text
    assert RunReport(sc, res).summary["injections"]["parties"]["county"]["received"] > 0


# --------------------------------------------------------------------------------------
# the national stress path
# --------------------------------------------------------------------------------------
def test_stressed_national_shifts_the_listed_years_only() -> None:
    z = np.zeros(6)
    out = stressed_national(z, np.arange(6), [-1.0, -2.0, -1.0])
    np.testing.assert_array_equal(out, [-1.0, -2.0, -1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(stressed_national(np.ones(3), 1, [0.5, -2.0]),
                                  [-1.0, -1.0, -1.0])
    np.testing.assert_array_equal(stressed_national(np.ones(3), 4, [0.5]), np.ones(3))
    np.testing.assert_array_equal(stressed_national(np.ones(3), 0, ()), np.ones(3))


@pytest.mark.parametrize(("value", "message"), [
    ("-1", r"factors\.national_path must be an array of numbers"),
    ([-1.0, "x"], r"factors\.national_path\[1\] must be a number in \[-5, 5\]"),
    ([-6.0], r"factors\.national_path\[0\] must be in \[-5, 5\], got -6"),
    ([0.0] * 51, r"factors\.national_path must have at most 50 years, got 51"),
    ([math.inf], r"factors\.national_path\[0\] must be a finite number"),
])
def test_national_path_validation(value: Any, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        _small(**{"factors.national_path": value})


def test_national_path_round_trips() -> None:
    sc = _small(**{"factors.national_path": [-1, -2.5, 0.5]})
    assert sc.factors.national_path == (-1.0, -2.5, 0.5)
    assert sc.to_dict()["factors"]["national_path"] == [-1.0, -2.5, 0.5]
    assert simkit.from_dict(sc.to_dict()) == sc
    assert _small().factors.national_path == ()
    assert simkit.from_dict(_small().to_dict()) == _small()


def test_des_uses_the_same_path_function() -> None:
    """The DES's national factor per calendar year is the unstressed one plus the path
    (one writer: simkit.factors.stressed_national)."""
    sc = _small(**{"factors.national_path": [-1.0, -2.0], "des.years": 3})
    base = sc.with_changes({"factors.national_path": []})
    a, b = Model(sc, seed=3), Model(base, seed=3)
    shift = np.zeros(len(a.factors.z_nat))
    shift[:2] = [-1.0, -2.0]
    np.testing.assert_allclose(a.factors.z_nat - b.factors.z_nat, shift, atol=1e-12)


def test_downturn_path_raises_losses_in_both_engines() -> None:
    """Direction: each stressed year loses more than the base in the MC (paired on the
    same draws), and the DES's stressed run loses more than its base."""
    path = [-1.0, -2.0, -1.0]
    sc = _small(**{"factors.national_path": path, "run.horizon_years": 3,
                   "run.n_paths": 1000, "des.years": 3})
    base = sc.with_changes({"factors.national_path": []})
    rs, rb = simulate(sc, seed=8), simulate(base, seed=8)
    assert rs.annual_losses is not None and rb.annual_losses is not None
    d = rs.annual_losses.sum(axis=2) - rb.annual_losses.sum(axis=2)
    z = d.mean(axis=0) / (d.std(axis=0, ddof=1) / math.sqrt(len(d)))
    assert np.all(z > 3), z
    # the deeper year loses most
    assert d.mean(axis=0)[1] > d.mean(axis=0)[0]
    des_s = [des_simulate(sc, replication=r, seed=9).summary["losses"] for r in range(4)]
    des_b = [des_simulate(base, replication=r, seed=9).summary["losses"] for r in range(4)]
    tot_s = np.array([sum(x.values()) for x in des_s])
    tot_b = np.array([sum(x.values()) for x in des_b])
    assert np.all(tot_s >= tot_b) and tot_s.sum() > 1.1 * tot_b.sum()


def test_shipped_downturn_scenario_loses_more_every_year() -> None:
    """scenarios/anhui_2024_stress_downturn.toml against the same file without the path
    (= anhui_2024 over three years): more loss in each of the three years (MC, paired)."""
    sc = load(ROOT / "scenarios" / "anhui_2024_stress_downturn.toml")
    base_file = load(ROOT / "scenarios" / "anhui_2024.toml")
    assert sc.factors.national_path == (-1.0, -2.0, -1.0)
    assert sc.run.horizon_years == 3
    assert sc.agreements == base_file.agreements and sc.segments == base_file.segments
    sc = sc.with_changes({"run.importance_sampling": False})
    base = sc.with_changes({"factors.national_path": []})
    rs = simulate(sc, n_paths=100, seed=3, block_size=100)
    rb = simulate(base, n_paths=100, seed=3, block_size=100)
    assert rs.annual_losses is not None and rb.annual_losses is not None
    d = rs.annual_losses.sum(axis=2) - rb.annual_losses.sum(axis=2)
    se = d.std(axis=0, ddof=1) / math.sqrt(len(d))
    assert np.all(d.mean(axis=0) > 3 * se), (d.mean(axis=0), se)


def test_moral_hazard_variant_with_other_shares_is_not_shared_silently() -> None:
    """Under moral hazard another retained share is another book (other PDs): the shared
    draws of the base would be wrong, so the variant is refused, not run on them."""
    from simkit.montecarlo import simulate_all

    sc = _small(**{"des.moral_hazard_kappa": 1.0, "run.n_paths": 50})
    v = sc.with_changes({"agreements[0].layers[0].share": 0.3,
                         "agreements[0].layers[1].share": 0.4})
    assert not np.array_equal(book_for(v).default_prob, book_for(sc).default_prob)
    with pytest.raises(ValueError, match="not on the world of the base"):
        simulate_all(sc, variants=[v])
    # the same shares (another fee, say) still share the draws
    same = sc.with_changes({"run.n_paths": 50})
    assert len(simulate_all(sc, variants=[same])) == 2


def test_fiscal_view_reports_the_injections_the_government_pays() -> None:
    """The fiscal summary keeps injections apart from the cost (as the DES's) but reports
    what each public payer puts into other parties' capital: the mean of what it paid."""
    from simkit.fiscal import fiscal_summary, format_fiscal

    sc = _injecting()
    res = simulate(sc, seed=4)
    fis = fiscal_summary(sc, res)
    names = list(sc.party_names)
    paid = np.maximum(-res.injections[:, names.index("gov_north")], 0.0)
    got = fis["payers"]["gov_north"]
    assert got["injections_paid"] == pytest.approx(paid.mean(), rel=1e-12)
    assert got["injections_paid"] > 0 and got["injections_paid_se"] > 0
    assert fis["injections_external"] == 0.0
    off = fiscal_summary(sc, simulate(sc.with_changes({"des.injection_trigger": 0.0}),
                                      seed=4))
    assert off["payers"]["gov_north"]["injections_paid"] is None
    # the cost itself does not include them
    assert off["payers"]["gov_north"]["cost"] == pytest.approx(got["cost"], rel=1e-12)
    assert any("capital injections paid" in line for line in format_fiscal(fis))
    assert not any("capital injections" in line for line in format_fiscal(off))
