"""Tests of the SimPy discrete-event model (simkit.des). Fixed seeds throughout."""

from __future__ import annotations

import copy
import math
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pytest

import simkit
from simkit.book import Book
from simkit.des import REASONS, DesResult, plot_des, run_des, simulate
from simkit.des.ledger import KINDS, LOSS_KINDS

BASE: dict[str, Any] = {
    "scenario": {"name": "des_small"},
    "parties": {
        "bank": {},
        "guarantor": {"net_assets": 5e9, "leverage_limit": 15},
        "provincial": {"net_assets": 2e10, "leverage_limit": 10},
        "local_gov": {},
    },
    "agreements": [{
        "name": "a4321",
        "recovery_lag_years": 0.5,
        "layers": [
            {"party": "bank", "share": 0.2},
            {"party": "guarantor", "share": 0.4},
            {"party": "provincial", "share": 0.3, "lag_days": 30},
            {"party": "local_gov", "share": 0.1, "lag_days": 10},
        ],
        "fees": [
            {"from": "borrower", "to": "guarantor", "rate": 0.01, "kind": "guarantee"},
            {"from": "guarantor", "to": "provincial", "rate": 0.003,
             "on_share_of": "provincial", "kind": "reguarantee"},
        ],
    }],
    "segments": [{
        "name": "smes",
        "count": 2000,
        "exposure": {"dist": "lognormal", "median": 800_000, "sigma": 0.5},
        "default_prob": {"dist": "uniform", "low": 0.02, "high": 0.06},
        "lgd": {"mean": 0.6, "sd": 0.2},
        "interest_margin": 0.05,
    }],
    "factors": {"national": 0.15, "regional": 0.1},
    "run": {"seed": 11},
    "des": {"years": 2, "mode": "batch"},
}


def scenario(**changes: Any) -> simkit.Scenario:
    """The base scenario with dotted-path changes."""
    data = copy.deepcopy(BASE)
    sc = simkit.from_dict(data)
    return sc.with_changes(changes) if changes else sc


def checked(result: DesResult) -> DesResult:
    """Every run must conserve money and bear each loss once."""
    result.check()
    assert all(result.checks.values()), result.check_detail
    return result


# --------------------------------------------------------------------------------------
# ledger: conservation and single bearing of losses
# --------------------------------------------------------------------------------------
def test_ledger_conserves_money_and_balances_match_party_state() -> None:
    r = checked(simulate(scenario(), seed=3))
    led = r.ledger
    assert len(led) > 1000
    assert np.all(led.amount > 0) and np.all(np.isfinite(led.amount))
    assert np.all(np.diff(led.time) >= 0)
    bal = led.balances()
    assert abs(bal.sum()) <= 1e-6 * led.amount.sum()
    # capital = net assets + ledger balance for every party
    for name, cap in r.summary["capital_end"].items():
        net = r.balances()[name]
        initial = {"guarantor": 5e9, "provincial": 2e10}.get(name, 0.0)
        assert cap == pytest.approx(initial + net, rel=1e-12, abs=1e-3)
    # defaults, claims and payments actually happened
    assert r.summary["defaults"] > 20
    for kind in ("default", "compensation", "reimbursement", "recovery", "guarantee"):
        assert led.mask(kind).any(), kind


def test_each_default_loss_borne_exactly_once() -> None:
    r = checked(simulate(scenario(), seed=4))
    loans = r.loans
    dflt = np.flatnonzero(loans["defaulted"])
    assert dflt.size > 20
    losses = r.ledger.loan_losses(loans["id"][dflt])[:, :len(r.parties)]
    expected = loans["exposure"][dflt] - loans["recovered"][dflt]
    np.testing.assert_allclose(losses.sum(axis=1), expected, rtol=1e-12, atol=1e-6)
    # exactly one default flow per defaulted loan, none for the others
    n_rows = np.bincount(r.ledger.loan[r.ledger.mask("default")], minlength=len(loans["id"]))
    assert np.array_equal(n_rows > 0, loans["defaulted"])
    assert n_rows.max() == 1
    # no party gains from a default
    assert losses.min() >= -1e-6


def test_caps_off_compensation_shares_equal_agreement_shares_per_loan() -> None:
    sc = scenario(**{"des.claim_trigger_days": 5, "des.claim_payment_days": 5,
                     "des.years": 1.5})
    r = checked(simulate(sc, seed=5))
    loans = r.loans
    # loans whose claim chain (10 days + 30 days largest lag) ended before the horizon
    done = loans["defaulted"] & (loans["end"] < 365 * 1.5 - 60)
    assert done.sum() > 20
    ids = loans["id"][done]
    led = r.ledger
    sel = led.mask(("default", "compensation", "reimbursement", "overflow"))
    net = np.zeros((len(loans["id"]), len(led.accounts)))
    np.add.at(net, (led.loan[sel], led.payer[sel]), led.amount[sel])
    np.add.at(net, (led.loan[sel], led.payee[sel]), -led.amount[sel])
    g = loans["guaranteed"][ids]
    shares = {"bank": 0.2, "guarantor": 0.4, "provincial": 0.3, "local_gov": 0.1}
    for name, share in shares.items():
        j = r.parties.index(name)
        np.testing.assert_allclose(net[ids, j] / g, share, rtol=1e-12)


# --------------------------------------------------------------------------------------
# limits and refusals
# --------------------------------------------------------------------------------------
def test_tiny_leverage_limit_refuses_and_never_exceeds_limit() -> None:
    sc = scenario(**{"parties.guarantor.leverage_limit": 0.2,
                     "parties.guarantor.net_assets": 2e8,
                     "segments[0].default_prob": 1e-4})
    r = checked(simulate(sc, seed=6, event_log=True))
    j = r.parties.index("guarantor")
    assert r.summary["refusals"]["leverage"] > 100
    assert r.refusals["leverage"][:, j].sum() == r.summary["refusals"]["leverage"]
    weighted = r.series["weighted_outstanding"][:, j]
    capital = r.series["capital"][:, j]
    assert weighted.max() > 0
    assert np.all(weighted <= 0.2 * capital * (1 + 1e-9))
    assert r.summary["max_leverage"]["guarantor"] <= 0.2 * (1 + 1e-9)
    assert r.summary["limit_binding_months"]["leverage:guarantor"] >= 6
    # the event log carries the refusals with their reason
    ev = r.events
    assert ev is not None
    refusal = ev["event"] == list(ev["event_names"]).index("refusal")
    assert (ev["reason"][refusal] == REASONS.index("leverage")).sum() == \
        r.summary["refusals"]["leverage"]


def test_single_client_limit_refuses_large_guarantees() -> None:
    sc = scenario(**{"parties.guarantor.single_client_limit": 1e-4, "des.years": 1})
    r = checked(simulate(sc, seed=7))
    assert r.summary["refusals"]["single_client"] > 100
    # the guarantor's liability is the covered 80 %: 0.8 G <= 1e-4 x capital (~5e9)
    g = r.loans["guaranteed"]
    cap_max = r.series["capital"][:, r.parties.index("guarantor")].max()
    assert 0.8 * g.max() <= 1e-4 * cap_max
    assert 0.8 * g.max() > 0.9e-4 * 5e9


def test_queue_mode_waits_then_gives_up() -> None:
    sc = scenario(**{"parties.guarantor.leverage_limit": 0.2,
                     "parties.guarantor.net_assets": 2e8,
                     "des.refusal": "queue", "des.queue_patience_days": 20})
    r = checked(simulate(sc, seed=6))
    assert r.series["queued"].sum() > 100
    assert r.summary["refusals"]["leverage"] > 0
    # every queued application that was refused was queued first
    assert r.summary["refusals"]["leverage"] <= r.series["queued"].sum()


def test_refused_renewals_are_counted_apart_from_applications() -> None:
    # new applications exhaust the annual credit line early in each year, so loans
    # maturing later in the year cannot renew
    data = copy.deepcopy(BASE)
    data["parties"]["national_fund"] = {}
    data["agreements"][0]["layers"] = [
        {"party": "bank", "share": 0.2}, {"party": "guarantor", "share": 0.4},
        {"party": "provincial", "share": 0.2}, {"party": "national_fund", "share": 0.2},
    ]
    data["credit_lines"] = [{"from": "national_fund", "to": "provincial",
                             "amount": 3e8, "period_years": 1}]
    data["des"].update(renewal_prob=1.0, years=2.5)
    r = checked(simulate(simkit.from_dict(data), seed=15, event_log=True))
    s = r.summary
    assert sum(s["renewal_refusals"].values()) > 50
    assert s["renewal_refusals"]["credit_line"] == sum(s["renewal_refusals"].values())
    assert r.renewal_refusals["credit_line"].sum() == s["renewal_refusals"]["credit_line"]
    assert s["refusals"]["credit_line"] > 50 and s["renewals"] > 0
    # application refusals and pending are about applications only: pending is what
    # arrived in the last review days (3 in batch mode)
    assert s["approvals"] + sum(s["refusals"].values()) + s["pending"] == s["applications"]
    assert 0 < s["pending"] <= 3 / 912 * s["applications"] * 1.5
    ev = r.events
    assert ev is not None
    names = list(ev["event_names"])
    assert (ev["event"] == names.index("renewal_refusal")).sum() == \
        sum(s["renewal_refusals"].values())
    assert (ev["event"] == names.index("refusal")).sum() == sum(s["refusals"].values())


def test_fees_paid_per_loan_year_at_anniversaries() -> None:
    sc = scenario(**{"segments[0].tenor_years": 1.5, "segments[0].count": 500,
                     "des.years": 1})
    for run_off in (True, False):
        r = checked(simulate(sc, seed=16, run_off=run_off))
        led, loans = r.ledger, r.loans
        sel = led.mask("guarantee")
        paid = np.bincount(led.loan[sel], weights=led.amount[sel],
                           minlength=len(loans["id"]))
        g = loans["guaranteed"]
        start = loans["start"]
        anniversary = start + 365.0
        # the loan's second year (half a year long) is paid at its anniversary if the
        # loan is still running then and, without the run-off, before the horizon
        alive = ~loans["defaulted"] | (loans["end"] > anniversary)
        if not run_off:
            alive &= anniversary < 365.0
        np.testing.assert_allclose(paid, 0.01 * g * np.where(alive, 1.5, 1.0), rtol=1e-12)
        # the first year's fee is paid at origination, the second at the anniversary
        first = led.time[sel] == start[led.loan[sel]]
        second = np.isclose(led.time[sel], anniversary[led.loan[sel]])
        assert np.all(first | second)
        assert second.any() == run_off


def test_credit_line_exhaustion_refuses_with_reason_credit_line() -> None:
    data = copy.deepcopy(BASE)
    data["parties"]["national_fund"] = {}
    data["agreements"][0]["layers"] = [
        {"party": "bank", "share": 0.2}, {"party": "guarantor", "share": 0.4},
        {"party": "provincial", "share": 0.2}, {"party": "national_fund", "share": 0.2},
    ]
    data["credit_lines"] = [{"from": "national_fund", "to": "provincial",
                             "amount": 3e8, "period_years": 1}]
    r = checked(simulate(simkit.from_dict(data), seed=8))
    assert r.summary["refusals"]["credit_line"] > 100
    j = r.parties.index("national_fund")
    assert r.refusals["credit_line"][:, j].sum() == r.summary["refusals"]["credit_line"]
    assert r.credit_lines == ("national_fund->provincial",)
    assert np.all(r.credit_line_use <= 3e8 * (1 + 1e-12))
    assert r.credit_line_use.max() > 0.95 * 3e8
    # the line resets each year: new guarantees in both years
    new = r.series["approvals"].sum(axis=1)
    assert new[:12].sum() > 0 and new[12:].sum() > 0
    assert new[:12].sum() < r.summary["applications"] / 2


def test_lower_bank_retained_share_means_more_approvals() -> None:
    def run(bank_share: float) -> DesResult:
        sc = scenario(**{
            "agreements[0].layers[0].share": bank_share,
            "agreements[0].layers[1].share": 0.6 - bank_share,
            "segments[0].default_prob": {"dist": "uniform", "low": 0.01, "high": 0.12},
            "segments[0].interest_margin": 0.03,
            "des.years": 1,
        })
        return checked(simulate(sc, seed=9))

    high, low = run(0.5), run(0.2)
    assert high.summary["applications"] == low.summary["applications"]
    assert high.summary["refusals"]["bank_margin"] > 0
    assert low.summary["approvals"] > high.summary["approvals"] * 1.1
    assert low.summary["credit_supplied"] > high.summary["credit_supplied"]


def _direct(**changes: Any) -> simkit.Scenario:
    """PD uniform on [2 %, 15 %]: the bank lends alone up to PD = 7.5 % (0.6 x PD +
    0.005 <= 0.05), with the 20 % retained share up to 37.5 %."""
    return scenario(**{"segments[0].default_prob": {"dist": "uniform", "low": 0.02,
                                                    "high": 0.15},
                       "des.direct_lending": True, **changes})


def test_direct_lending_low_pd_direct_high_pd_guaranteed_and_conserved() -> None:
    r = checked(simulate(_direct(**{"des.renewal_prob": 0.3}), seed=81))
    loans, s = r.loans, r.summary
    assert _same_ledger(r, simulate(_direct(**{"des.renewal_prob": 0.3}), seed=81))
    direct = loans["direct"]
    pd = loans["default_prob"]
    assert direct.sum() > 500 and (~direct).sum() > 500
    # rule with retained share 1: direct iff 0.6 PD + 0.005 <= 0.05
    assert pd[direct].max() <= 0.075 + 1e-12 < pd[~direct].min()
    assert np.all(loans["guaranteed"][direct] == 0)
    # direct loans: no fee, no limit use, in their own series under the lender
    led = r.ledger
    on_direct = np.isin(led.loan, loans["id"][direct])
    assert not (on_direct & led.mask(("guarantee", "reguarantee", "compensation",
                                      "reimbursement", "overflow"))).any()
    assert set(led.payer[on_direct & led.mask("default")].tolist()) == {0}
    bank = r.parties.index("bank")
    assert r.series["direct_loans"][:, bank].sum() == direct[loans["start"] < 730].sum()
    assert r.series["direct_lent"].sum() == pytest.approx(
        loans["exposure"][direct & (loans["start"] < 730)].sum())
    assert r.series["direct_loans"][:, r.parties.index("guarantor")].sum() == 0
    assert s["direct_loans"] == int(direct.sum())
    assert s["direct_credit"] == pytest.approx(loans["exposure"][direct].sum())
    new = ~loans["renewal"]
    assert s["additionality"] == pytest.approx((new & ~direct).sum() / new.sum())
    assert 0 < s["additionality"] < 1
    assert s["approvals"] + int((direct & new).sum()) + s["pending"] + sum(
        s["refusals"].values()) == s["applications"]
    assert s["approvals"] + s["renewals"] + int((direct & new).sum()) == s["loans"]
    # the Monte Carlo book holds the guaranteed loans only
    assert r.book.n_loans == int((~direct).sum())
    assert r.book.guaranteed.sum() == pytest.approx(s["guaranteed_supplied"])
    # the same firms without direct lending: all guaranteed, same credit to them
    off = checked(simulate(_direct(**{"des.direct_lending": False,
                                      "des.renewal_prob": 0.3}), seed=81))
    assert off.summary["direct_loans"] == 0 and not off.loans["direct"].any()
    assert off.summary["applications"] == s["applications"]
    assert off.summary["additionality"] == pytest.approx(s["additionality"], abs=0.02)
    # the bank retains more loss with direct lending, the guarantor less
    assert s["losses"]["bank"] > off.summary["losses"]["bank"]
    assert s["losses"]["guarantor"] < off.summary["losses"]["guarantor"]


def test_direct_loan_default_borne_entirely_by_the_bank() -> None:
    sc = _direct(**{"segments[0].default_prob": {"dist": "uniform", "low": 0.05,
                                                 "high": 0.075}})
    r = checked(simulate(sc, seed=82))
    loans = r.loans
    assert loans["direct"].all()
    dflt = np.flatnonzero(loans["defaulted"])
    assert dflt.size > 30
    losses = r.ledger.loan_losses(loans["id"][dflt])[:, :len(r.parties)]
    bank = r.parties.index("bank")
    expected = loans["exposure"][dflt] - loans["recovered"][dflt]
    np.testing.assert_allclose(losses[:, bank], expected, rtol=1e-12, atol=1e-6)
    others = np.delete(losses, bank, axis=1)
    assert np.abs(others).max() <= 1e-9
    # recoveries go to the bank alone, no claims are filed, no fee is paid
    led = r.ledger
    rec = led.mask("recovery")
    assert rec.any() and set(led.payee[rec].tolist()) == {bank}
    assert r.series["claims"].sum() == 0
    assert not led.mask(("guarantee", "reguarantee")).any()
    assert r.summary["losses"]["guarantor"] == 0.0
    assert r.summary["additionality"] == 0.0
    assert r.book.n_loans == 0


def test_direct_lending_off_leaves_results_unchanged() -> None:
    sc = scenario(**{"des.renewal_prob": 0.3, "des.moral_hazard_kappa": 1.0,
                     "des.mode": "individual", "des.years": 1.5})
    assert sc.des.direct_lending is False
    data = copy.deepcopy(BASE)
    data["des"] = {**data["des"], "direct_lending": False}
    explicit = simkit.from_dict(data).with_changes(
        {"des.renewal_prob": 0.3, "des.moral_hazard_kappa": 1.0, "des.mode": "individual",
         "des.years": 1.5})
    a = simulate(sc, seed=83, event_log=True)
    b = simulate(explicit, seed=83, event_log=True)
    assert _same_ledger(a, b)
    assert a.events is not None and b.events is not None
    for key in ("time", "event", "id", "party", "amount"):
        assert np.array_equal(a.events[key], b.events[key]), key
    assert not a.loans["direct"].any()
    assert a.summary["direct_loans"] == 0 and a.summary["direct_credit"] == 0.0
    assert a.series["direct_loans"].sum() == 0
    assert a.book.n_loans == a.summary["loans"]
    # a firm the bank would lend to alone is still guaranteed: the guarantee adds nothing
    assert a.summary["additionality"] < 1


def test_individual_review_refuses_loss_making_guarantees() -> None:
    sc = scenario(**{"des.mode": "individual", "des.review_loss_tolerance": 1.0,
                     "des.years": 1})
    r = checked(simulate(sc, seed=10))
    # accepted iff 0.4 * PD * 0.6 <= 1 % -> PD <= 4.17 %, PD ~ U(2 %, 6 %)
    decided = r.summary["approvals"] + sum(r.summary["refusals"].values())
    assert decided + r.summary["pending"] == r.summary["applications"]
    frac = r.summary["refusals"]["guarantor_review"] / decided
    assert frac == pytest.approx((0.06 - 0.01 / 0.24) / 0.04, abs=0.03)
    assert r.loans["default_prob"].max() <= 0.01 / 0.24 + 1e-12


def test_portfolio_cap_refuses_and_overflow_party_bears_it() -> None:
    sc = scenario(**{
        "agreements[0].layers[2].cap": {"rate": 0.005, "overflow": "guarantor"},
        "des.claim_trigger_days": 0, "des.claim_payment_days": 0})
    r = checked(simulate(sc, seed=12))
    (label,) = r.caps
    assert r.summary["cap_refused"][label] > 0
    assert r.summary["cap_binding_months"][label] > 0
    # what the provincial paid never exceeds rate x share x originated base per period
    led = r.ledger
    j = r.parties.index("provincial")
    sel = led.mask("reimbursement") & (led.payer == j)
    start = r.loans["start"][led.loan[sel]]
    for period in (0, 1):
        in_p = (start // 365) == period
        base = r.loans["guaranteed"][(r.loans["start"] // 365) == period].sum()
        assert led.amount[sel][in_p].sum() <= 0.005 * 0.3 * base * (1 + 1e-9)
    # with the cap, the guarantor's loss share is above its 40 %
    losses = r.summary["losses"]
    assert losses["guarantor"] > losses["provincial"] * 0.4 / 0.3 * 1.05


def test_cap_settled_pro_rata_per_period_whatever_the_default_timing() -> None:
    """Two guarantors under one capped provincial layer (pool "agreement"): the one whose
    loans default early (1-year loans) and the one whose loans default late (3-year
    loans) get the same refused fraction in each statistics period, and the layer pays
    min(total due, rate x share x base of the whole period)."""
    data = copy.deepcopy(BASE)
    data["parties"] = {"bank": {}, "g_fast": {"kind": "guarantor", "net_assets": 5e9},
                       "g_slow": {"kind": "guarantor", "net_assets": 5e9},
                       "provincial": {"net_assets": 2e10}, "local_gov": {}}
    layers = data["agreements"][0]["layers"]
    layers[1]["party"] = "g_fast"
    layers[2]["cap"] = {"rate": 0.004, "overflow": "local_gov", "pool": "agreement"}
    data["agreements"][0]["fees"] = []
    seg = data["segments"][0]
    data["segments"] = [
        {**seg, "name": "fast", "guarantor": "g_fast", "tenor_years": 1.0,
         "default_prob": {"dist": "uniform", "low": 0.04, "high": 0.08}},
        {**seg, "name": "slow", "guarantor": "g_slow", "tenor_years": 3.0,
         "default_prob": {"dist": "uniform", "low": 0.01, "high": 0.03}}]
    r = checked(simulate(simkit.from_dict(data), seed=15))
    (label,) = r.caps
    assert r.summary["cap_refused"][label] > 0
    loans, led = r.loans, r.ledger
    prov, gov = r.parties.index("provincial"), r.parties.index("local_gov")
    paid = np.zeros(len(loans["id"]))
    refused = np.zeros(len(loans["id"]))
    sel = led.mask("reimbursement") & (led.payer == prov)
    np.add.at(paid, led.loan[sel], led.amount[sel])
    sel = led.mask("overflow") & (led.payer == gov)
    np.add.at(refused, led.loan[sel], led.amount[sel])
    # one reimbursement row per defaulted loan, not split over time
    n_rows = np.bincount(led.loan[led.mask("reimbursement") & (led.payer == prov)],
                         minlength=len(loans["id"]))
    assert n_rows.max() == 1
    period = (loans["start"] // 365).astype(int)
    bound = 0
    for p in np.unique(period).tolist():
        in_p = period == p
        dflt = in_p & loans["defaulted"]
        due = 0.3 * loans["guaranteed"][dflt]
        np.testing.assert_allclose(paid[dflt] + refused[dflt], due, rtol=1e-12)
        budget = 0.004 * 0.3 * loans["guaranteed"][in_p].sum()
        assert paid[dflt].sum() == pytest.approx(min(due.sum(), budget), rel=1e-12)
        frac = {}
        for s in (0, 1):
            mine = dflt & (loans["segment"] == s)
            assert mine.any()
            frac[s] = refused[mine].sum() / (0.3 * loans["guaranteed"][mine].sum())
        assert abs(frac[0] - frac[1]) <= 1e-9
        bound += frac[0] > 0.05
    assert bound >= 1
    # the timing really differs: the fast guarantor's defaults come earlier on average
    ends = {s: loans["end"][loans["defaulted"] & (loans["segment"] == s)].mean()
            - loans["start"][loans["defaulted"] & (loans["segment"] == s)].mean()
            for s in (0, 1)}
    assert ends[0] < ends[1]


def test_capital_injection_rule() -> None:
    sc = scenario(**{"parties.guarantor.net_assets": 1e8,
                     "parties.guarantor.leverage_limit": 1e3, "agreements[0].fees": [],
                     "agreements[0].layers[2].lag_days": 300,
                     "des.injection_trigger": 0.9, "des.injection_target": 1.0,
                     "des.claim_trigger_days": 0, "des.claim_payment_days": 0})
    r = checked(simulate(sc, seed=13))
    inj = r.summary["injections"]
    assert inj["guarantor"] > 0
    assert inj["local_gov"] == pytest.approx(-inj["guarantor"])
    cap = r.series["capital"][:, r.parties.index("guarantor")]
    assert cap.min() >= 0.9 * 1e8 * (1 - 1e-9)


def test_renewals_and_moral_hazard() -> None:
    sc = scenario(**{"des.renewal_prob": 0.8, "des.moral_hazard_kappa": 0.5,
                     "des.years": 2.5})
    r = checked(simulate(sc, seed=14))
    assert r.summary["renewals"] > 1000
    assert r.summary["firms_served"] < r.summary["loans"]
    # PD x (1 + 0.5 x (1 - 0.2)) = 1.4 PD for loans without uncovered part
    pd = r.loans["default_prob"]
    assert pd.min() >= 0.02 * 1.4 * (1 - 1e-9) and pd.max() <= 0.06 * 1.4 * (1 + 1e-9)


# --------------------------------------------------------------------------------------
# statistics: expected loss
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("run_off", [True, False])
def test_annual_loss_matches_closed_form_expected_loss(run_off: bool) -> None:
    """Mean loss over replications vs sum_i PD_i x P(default in the run) x G_i x
    share_j x LGD (no caps, no lags), within 3 standard errors. With the run-off every
    1-year loan runs its full year; without it, only up to the horizon."""
    sc = scenario(**{"des.claim_trigger_days": 0, "des.claim_payment_days": 0,
                     "agreements[0].layers[2].lag_days": 0,
                     "agreements[0].layers[3].lag_days": 0,
                     "agreements[0].recovery_lag_years": 0,
                     "segments[0].exposure": 1_000_000,
                     "des.years": 1})
    runs = run_des(sc, replications=40, seed=21, run_off=run_off)
    shares = {"bank": 0.2, "guarantor": 0.4, "provincial": 0.3, "local_gov": 0.1}
    diffs = []
    for r in runs:
        checked(r)
        assert r.run_off is run_off
        loans = r.loans
        if run_off:
            exposure_time = np.ones(len(loans["start"]))
            assert r.end_time > 365.0
        else:
            exposure_time = np.clip((365.0 - loans["start"]) / 365.0, 0, 1)
            assert r.ledger.time.max() < 365.0
        el = float((loans["default_prob"] * exposure_time * loans["guaranteed"] * 0.6).sum())
        diffs.append([r.summary["losses"][p] - s * el for p, s in shares.items()]
                     + [el])
    d = np.array(diffs)
    mean, se = d.mean(axis=0), d.std(axis=0, ddof=1) / math.sqrt(len(d))
    for k in range(4):
        assert abs(mean[k]) <= 3 * se[k], (k, mean[k], se[k])
    # the test has power: the standard error is well below the expected loss
    assert se[1] < 0.2 * 0.4 * mean[4]


def test_cohort_loss_matches_monte_carlo_expected_loss() -> None:
    """Issue 4 validation: per party, the settled loss of one steady-state origination
    year (1-year loans, run-off on, caps and credit line off) averaged over replications
    agrees with the Monte Carlo expected loss of the scenario's annual cohort within 3
    combined standard errors, per guaranteed yuan (DES cohorts are Poisson-sized and
    draw their own exposures)."""
    mc = pytest.importorskip("simkit.montecarlo")
    from simkit.book import book_for
    sc = simkit.load(simkit.__path__[0] + "/../scenarios/nfgf_2422.toml")
    layers = [{"party": x.party, "share": x.share, "lag_days": x.lag_days}
              for x in sc.agreements[0].layers]  # the same layers without the NFGF cap
    sc = sc.with_changes({"credit_lines": [], "agreements[0].layers": layers,
                          "segments[0].count": 600, "segments[1].count": 300,
                          "des.mode": "batch", "des.years": 2,
                          "run.n_paths": 10_000, "run.block_size": 2_500})
    assert all(s.tenor_years == 1 for s in sc.segments)
    runs = run_des(sc, replications=40, seed=81)
    year = 1  # the second origination year: the book is in steady state
    rows = []
    for r in runs:
        checked(r)
        s = r.summary
        # nothing is refused: every application is approved or still pending at the end
        assert sum(s["refusals"].values()) == 0
        assert s["approvals"] + s["pending"] == s["applications"]
        cohort = (r.loans["start"] // 365) == year
        rows.append(r.cohort_losses[year] / r.loans["guaranteed"][cohort].sum())
    des = np.array(rows)
    des_mean = des.mean(axis=0)
    des_se = des.std(axis=0, ddof=1) / math.sqrt(len(des))
    book = book_for(sc)
    res = mc.simulate(sc, book=book)
    assert res.parties == r.parties
    per_yuan = res.losses / book.guaranteed.sum()
    mc_mean = per_yuan.mean(axis=0)
    mc_se = per_yuan.std(axis=0, ddof=1) / math.sqrt(len(per_yuan))
    for j, p in enumerate(r.parties):
        se = math.hypot(des_se[j], mc_se[j])
        assert abs(des_mean[j] - mc_mean[j]) <= 3 * se, (p, des_mean[j], mc_mean[j], se)
        # the test has power: the standard error is well below the expected loss
        assert se < 0.25 * mc_mean[j], (p, se, mc_mean[j])
    # the shares of the 20/40/20/20 split hold exactly on the covered part; the bank also
    # bears the part above the single limit (rare, large loans: checked against the
    # Monte Carlo above, not by a fixed tolerance)
    np.testing.assert_allclose(des_mean[2:] / des_mean[1], [0.5, 0.5], rtol=1e-9)
    assert des_mean[0] / des_mean[1] >= 0.5 * (1 - 1e-9)
    np.testing.assert_allclose(mc_mean[2:] / mc_mean[1], [0.5, 0.5], rtol=1e-9)


# --------------------------------------------------------------------------------------
# determinism and executors
# --------------------------------------------------------------------------------------
def _same_ledger(a: DesResult, b: DesResult) -> bool:
    return all(np.array_equal(getattr(a.ledger, k), getattr(b.ledger, k))
               for k in ("time", "payer", "payee", "kind", "amount", "loan"))


def test_same_seed_same_trace_and_ledger() -> None:
    sc = scenario(**{"des.years": 1.5, "des.renewal_prob": 0.3})
    a = simulate(sc, seed=31, event_log=True)
    b = simulate(sc, seed=31, event_log=True)
    assert _same_ledger(a, b)
    assert a.events is not None and b.events is not None
    for key in ("time", "event", "id", "party", "amount", "reason"):
        assert np.array_equal(a.events[key], b.events[key]), key
    c = simulate(sc, seed=32)
    assert not _same_ledger(a, c)


def test_common_random_numbers_across_bank_share_variants() -> None:
    """Two variants differing only in the bank's share approve different firms, yet a
    firm served in both has the same fate: default indicator and time, recovery, and
    renewals (fates are drawn per application and renewal number, not in event order)."""
    changes = {"segments[0].interest_margin": 0.015, "des.renewal_prob": 0.5,
               "segments[0].default_prob": {"dist": "uniform", "low": 0.01, "high": 0.05}}
    low = scenario(**changes)
    high = scenario(**changes, **{"agreements[0].layers[0].share": 0.5,
                                  "agreements[0].layers[1].share": 0.1})
    a = checked(simulate(low, seed=37))
    b = checked(simulate(high, seed=37))
    assert a.summary["applications"] == b.summary["applications"]
    assert b.summary["refusals"]["bank_margin"] > a.summary["refusals"]["bank_margin"] + 200

    def keyed(r: DesResult) -> dict[tuple[int, float], int]:
        return {(int(app), float(t)): i for i, (app, t) in
                enumerate(zip(r.loans["application"], r.loans["start"], strict=True))}

    ka, kb = keyed(a), keyed(b)
    both = sorted(set(ka) & set(kb))
    ia = np.array([ka[k] for k in both])
    ib = np.array([kb[k] for k in both])
    assert len(both) > 500 and len(ka) > len(both) + 200
    assert (a.loans["renewal"][ia]).sum() > 100
    assert a.loans["defaulted"][ia].sum() > 20
    assert np.array_equal(a.loans["defaulted"][ia], b.loans["defaulted"][ib])
    assert np.array_equal(a.loans["end"][ia], b.loans["end"][ib])
    rec = a.loans["defaulted"][ia] & (a.loans["recovered"][ia] > 0)
    np.testing.assert_allclose(a.loans["recovered"][ia][rec], b.loans["recovered"][ib][rec],
                               rtol=1e-12)
    # every loan renewed in one variant is renewed in the other (same renewal draws)
    renewed = {k for k in ka if a.loans["renewal"][ka[k]]}
    first = {k[0] for k in both if not a.loans["renewal"][ka[k]]}
    assert {k for k in renewed if k[0] in first} <= set(kb)


def test_serial_and_process_pool_identical() -> None:
    sc = scenario(**{"des.years": 1})
    serial = run_des(sc, replications=2, seed=41)
    with ProcessPoolExecutor(max_workers=2) as pool:
        parallel = run_des(sc, replications=2, seed=41, executor=pool)
    assert len(serial) == len(parallel) == 2
    for a, b in zip(serial, parallel, strict=True):
        assert _same_ledger(a, b)
    # replications differ from each other
    assert not _same_ledger(serial[0], serial[1])
    assert serial[1].replication == 1
    summary = serial.summary()
    assert summary["replications"] == 2
    assert summary["applications"] == pytest.approx(
        (serial[0].summary["applications"] + serial[1].summary["applications"]) / 2)
    assert set(summary["losses"]) == set(serial[0].parties)
    mean, se = serial.annual_loss()
    assert mean["guarantor"] > 0 and se["guarantor"] >= 0


def test_run_des_arguments_checked() -> None:
    with pytest.raises(ValueError, match="replications"):
        run_des(scenario(), replications=0)
    with pytest.raises(ValueError, match="years"):
        run_des(scenario(), years=-1)


# --------------------------------------------------------------------------------------
# results: series, book, tables, plots
# --------------------------------------------------------------------------------------
def test_result_series_book_and_table() -> None:
    r = checked(simulate(scenario(), seed=51))
    n_m, n_p = 24, len(r.parties)
    assert r.months.shape == (n_m,)
    for name, arr in r.series.items():
        assert arr.shape == (n_m, n_p), name
    s = r.summary
    assert r.series["approvals"].sum() == s["approvals"] == len(r.loans["id"])
    assert r.series["applications"].sum() == s["applications"]
    # applications of the last review days (3 in batch mode) are still pending
    assert sum(s["refusals"].values()) + s["approvals"] + s["pending"] == s["applications"]
    assert 0 < s["pending"] < 0.01 * s["applications"]
    assert s["pending"] == pytest.approx(3 / 730 * s["applications"], rel=0.3)
    # monthly net loss adds up to the losses up to the horizon; the settled losses by
    # origination year (run-off included) add up to the summary losses
    assert s["run_off"] and r.end_time > 730
    assert r.cohort_losses.shape == (2, n_p)
    for j, p in enumerate(r.parties):
        assert r.series["net_loss"][:, j].sum() == pytest.approx(
            s["losses_in_horizon"][p], rel=1e-9, abs=1e-3)
        assert r.cohort_losses[:, j].sum() == pytest.approx(s["losses"][p], rel=1e-9,
                                                            abs=1e-3)
    assert isinstance(r.book, Book)
    assert r.book.n_loans == len(r.loans["id"])
    assert r.book.guaranteed.sum() == pytest.approx(s["guaranteed_supplied"])
    assert r.book.cells.guaranteed.sum() == pytest.approx(s["guaranteed_supplied"])
    table = r.to_table()
    n = len(table["value"])
    assert all(len(v) == n for v in table.values())
    sel = (table["series"] == "approvals")
    assert table["value"][sel].sum() == s["approvals"]
    assert set(KINDS) >= set(LOSS_KINDS)


def test_seasonality_shapes_applications() -> None:
    r = simulate(scenario(**{"des.seasonality": 0.8, "des.years": 1}), seed=52)
    apps = r.series["applications"].sum(axis=1)
    # sin peaks in months 1-4 and troughs in months 7-10 (0-based months 0-11)
    assert apps[1:4].sum() > 2 * apps[7:10].sum()


def test_plot_des_writes_pngs(tmp_path: Any) -> None:
    r = simulate(scenario(**{"des.years": 1}), seed=53)
    files = plot_des(r, tmp_path)
    assert len(files) >= 5
    for f in files:
        assert f.stat().st_size > 1000
        assert f.read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------------------
# bad settings give ScenarioError naming the field
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "value", "field"), [
    ("des.claim_payment_days", -1, "des.claim_payment_days"),
    ("des.claim_trigger_days", -5.0, "des.claim_trigger_days"),
    ("des.renewal_prob", 1.5, "des.renewal_prob"),
    ("des.queue_patience_days", -1, "des.queue_patience_days"),
    ("des.recovery_lag_sigma", -0.1, "des.recovery_lag_sigma"),
    ("des.review_loss_tolerance", -1, "des.review_loss_tolerance"),
    ("des.refusal", "wait", "des.refusal"),
    ("des.direct_lending", "yes", "des.direct_lending"),
    ("des.direct_lending", 1, "des.direct_lending"),
    ("agreements[0].layers[2].lag_days", -3, "agreements[0].layers[2].lag_days"),
    ("segments[0].applications_per_year", -10, "segments[0].applications_per_year"),
])
def test_bad_des_settings_raise_scenario_error(path: str, value: Any, field: str) -> None:
    with pytest.raises(simkit.ScenarioError, match=field.replace("[", r"\[")
                       .replace("]", r"\]")) as info:
        scenario(**{path: value})
    assert info.value.path == field


def test_credit_line_without_party_is_an_error() -> None:
    data = copy.deepcopy(BASE)
    data["credit_lines"] = [{"from": "provincial", "amount": 1e9}]
    with pytest.raises(simkit.ScenarioError, match=r"credit_lines\[0\]\.to"):
        simkit.from_dict(data)
    data["credit_lines"] = [{"from": "nfgf", "to": "provincial", "amount": 1e9}]
    with pytest.raises(simkit.ScenarioError, match=r"credit_lines\[0\]\.from"):
        simkit.from_dict(data)
    data["credit_lines"] = [{"from": "provincial", "to": "guarantor", "amount": -1}]
    with pytest.raises(simkit.ScenarioError, match=r"credit_lines\[0\]\.amount"):
        simkit.from_dict(data)


def test_anhui_scenario_small_scale_routes_flows_to_each_segment_guarantor() -> None:
    sc = simkit.load(simkit.__path__[0] + "/../scenarios/anhui_4321.toml")
    sc = sc.with_changes({**{f"segments[{i}].count": s.count // 50
                             for i, s in enumerate(sc.segments)},
                          "des.years": 1.5, "factors.copula": "student_t"})
    r = checked(simulate(sc, seed=61))
    fees = r.summary["fees_net"]
    for g in ("hefei_guarantor", "north_guarantor", "south_guarantor"):
        assert fees[g] > 0
        j = r.parties.index(g)
        assert r.series["compensation_paid"][:, j].sum() > 0
    assert fees["provincial"] > 0
    # the reguarantee fee flows from each guarantor to the provincial re-guarantor
    led = r.ledger
    reg = led.mask("reguarantee")
    assert set(led.payer[reg].tolist()) == {r.parties.index(g) for g in
                                            ("hefei_guarantor", "north_guarantor",
                                             "south_guarantor")}
    assert r.book.n_loans == r.summary["loans"]


def test_originated_book_feeds_the_monte_carlo() -> None:
    mc = pytest.importorskip("simkit.montecarlo")
    r = checked(simulate(scenario(**{"des.years": 1}), seed=71))
    book = r.book
    res = mc.simulate(r.scenario, book=book, n_paths=4000, block_size=1000, seed=5)
    el = float((book.default_prob * book.guaranteed * book.lgd_mean).sum())
    shares = {"bank": 0.2, "guarantor": 0.4, "provincial": 0.3, "local_gov": 0.1}
    se = res.losses.std(axis=0, ddof=1) / math.sqrt(res.n_paths)
    for j, p in enumerate(res.parties):
        assert abs(res.losses[:, j].mean() - shares[p] * el) <= 3 * se[j] + 1e-6, p


def test_receivable_from_a_capped_layer_counts_towards_limits() -> None:
    """A reimbursement due from a capped layer is an asset until its period settles."""
    from simkit.des.parties import Institution
    from simkit.scenario import Party

    g = Institution(Party("g", "guarantor", net_assets=100.0, leverage_limit=10.0,
                          single_client_limit=0.1), 0)
    g.weighted = 900.0
    assert g.room() == pytest.approx(100.0)
    g.capital -= 30.0  # paid the bank; 30 is due from the capped provincial layer
    g.receivable += 30.0
    assert g.room() == pytest.approx(100.0)
    assert g.single_limit() == pytest.approx(10.0)
    assert g.leverage() == pytest.approx(9.0)
    g.receivable -= 30.0  # settled: the cap refused everything
    assert g.room() == pytest.approx(10 * 70.0 - 900.0)


@pytest.mark.parametrize("changes", [
    {"parties.guarantor.net_assets": 1e15, "parties.provincial.net_assets": 1e15},
    {"segments[0].exposure": 2.0},
    {"segments[0].exposure": 2.0, "parties.guarantor.net_assets": 1e15},
], ids=["capital_1e15", "exposure_2_yuan", "both"])
def test_state_vs_ledger_check_scales_with_magnitudes(changes: dict[str, Any]) -> None:
    """Tiny flows next to huge capital are no false alarm (issue 7, item 20)."""
    r = simulate(scenario(**changes), seed=3, years=1)
    checked(r)
    assert r.check_detail["state_vs_ledger"] <= r.check_detail["state_vs_ledger_tolerance"]


def test_state_vs_ledger_tolerance_still_catches_a_lost_flow() -> None:
    """The rounding allowance stays far below one flow of an ordinary run."""
    r = checked(simulate(scenario(), seed=3, years=1))
    # a lost or doubled flow of median size would exceed the allowance on any account
    assert r.check_detail["state_vs_ledger_tolerance"] < float(np.median(r.ledger.amount))
    assert r.check_detail["state_vs_ledger_tolerance"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("changes", [
    {},
    {"parties.guarantor.net_assets": 1e15, "parties.provincial.net_assets": 1e15},
    {"segments[0].exposure": 2.0},
    {"segments[0].exposure": 2.0, "parties.guarantor.net_assets": 1e15},
    {"segments[0].exposure": 1e9, "parties.guarantor.net_assets": 1e3},
], ids=["base", "capital_1e15", "exposure_2_yuan", "both", "huge_loans_tiny_capital"])
def test_checks_pass_over_seeds_and_magnitudes(changes: dict[str, Any], seed: int) -> None:
    """Money conserved and each loss borne once for many seeds and extreme magnitudes."""
    r = checked(simulate(scenario(**changes), seed=seed, years=2))
    assert r.check_detail["state_vs_ledger"] <= r.check_detail["state_vs_ledger_tolerance"]


def test_model_does_not_import_the_result_module() -> None:
    """The model <-> result import cycle is broken: ``des/model.py`` imports neither
    ``simkit.des.result`` nor anything that names it; the result module reads a finished
    model (:func:`simkit.des.result.build_result`, called by ``des.run.simulate``)."""
    import ast
    from pathlib import Path

    import simkit.des.model as model_module

    tree = ast.parse(Path(model_module.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert "simkit.des.result" not in imported
    assert "simkit.des.run" not in imported


# --------------------------------------------------------------------------------------
# the split along the state (issue 8, item 6) and the credit model from simkit.factors
# --------------------------------------------------------------------------------------
def test_des_t_threshold_matches_the_factor_model_scale() -> None:
    """The DES divides the default threshold by its yearly mixing ``sqrt(dof / W)`` (kept
    for bit-identical draws); that is :func:`simkit.factors.conditional_default_prob` with
    the factor model's scale ``sqrt(W / dof)`` (:func:`simkit.factors.t_scale`) to 1e-15
    over a grid of PDs, loadings, factor states and mixings."""
    from simkit.factors import conditional_default_prob, default_threshold, t_scale

    rng = np.random.default_rng(8)
    dof = 5.0
    pd = np.geomspace(1e-6, 0.5, 40)
    thr = default_threshold(pd, "student_t", dof)[:, None]
    w = rng.chisquare(dof, 200)[None, :]
    m = rng.standard_normal(200)[None, :] * 0.6
    r2 = np.linspace(0.0, 0.6, 40)[:, None]
    p_des = conditional_default_prob(thr / np.sqrt(dof / w), r2, m)
    p_ref = conditional_default_prob(thr, r2, m, t_scale(w, dof))
    assert p_des.shape == (40, 200) and float(p_ref.max()) > 0.5
    assert float(np.abs(p_des - p_ref).max()) <= 1e-15


def test_des_loss_draw_is_the_factor_models_downturn_beta() -> None:
    """:meth:`Draws.losses` is the Beta LGD of :mod:`simkit.factors` (downturn mean of the
    default year's national factor, shape from ``beta_concentration``/``beta_shape``) at
    the firm's pre-drawn uniform, and the lognormal lag."""
    from scipy import special

    from simkit.des.model import Model
    from simkit.factors import beta_concentration, beta_shape, downturn_lgd_mean

    sc = scenario(**{"factors.downturn_lgd": 0.4, "segments[0].lgd.sd": 0.2})
    model = Model(sc, seed=3, years=3)
    spec = model.segments[0]
    app = int(np.flatnonzero(model.apps.seg == 0)[5])
    lgds, lags = model.draws.losses(np.full(3, app), np.array([10.0, 400.0, 800.0]))
    for now, lgd, lag in zip((10.0, 400.0, 800.0), lgds, lags, strict=True):
        z = model.factors.z_nat[int(now // 365.0)]
        mean = float(downturn_lgd_mean(spec.lgd_mean, 0.4, z))
        a, b = beta_shape(mean, beta_concentration(mean, spec.lgd_sd))
        u = model.draws.fates(0)[2][app]
        assert lgd == pytest.approx(float(special.betaincinv(a, b, u)), abs=1e-15)
        assert mean != pytest.approx(spec.lgd_mean)  # the downturn moved the mean
        z_lag = model.draws.fates(0)[3][app]
        assert lag == pytest.approx(spec.recovery_lag_days
                                    * math.exp(sc.des.recovery_lag_sigma * z_lag), rel=1e-15)


def test_des_default_times_follow_the_factor_models_probability() -> None:
    """One-year loans: a loan defaults in its year exactly when its uniform is below
    :func:`simkit.factors.conditional_default_prob` at the year's factors."""
    from simkit.des.model import Model
    from simkit.factors import conditional_default_prob

    sc = scenario(**{"factors.copula": "student_t"})
    model = Model(sc, seed=5, years=2)
    apps = np.arange(min(4000, len(model.apps.seg)))
    apps = apps[model.segments.tenor_years[model.apps.seg[apps]] == 1.0]
    t_def = model.draws.default_times(apps, 0.0)
    seg = model.apps.seg[apps]
    segs, f = model.segments, model.factors
    load = segs.loadings[seg]
    bz = (load[:, 0] * f.z_nat[0] + load[:, 1] * f.z_reg[0, segs.region[seg]]
          + load[:, 2] * f.z_sec[0, segs.sector[seg]] + load[:, 3] * f.z_gua[0, segs.front[seg]])
    p = conditional_default_prob(model.apps.threshold[apps] / f.mix[0], segs.idio_r2[seg], bz)
    u = model.draws.fates(0)[0][apps, 0]
    assert apps.size > 100 and np.isfinite(t_def).any()
    assert np.array_equal(np.isfinite(t_def), u < p)
    assert (t_def[np.isfinite(t_def)] < 365.0).all()


def test_model_parts_do_not_import_the_result() -> None:
    """No part of the model (every ``simkit.des`` module but ``result``, ``run``,
    ``plots`` and the package) imports the result or run module, at any level."""
    import ast
    from pathlib import Path

    import simkit.des as des_pkg

    root = Path(des_pkg.__file__).parent
    parts = [p for p in root.glob("*.py")
             if p.stem not in ("result", "run", "plots", "__init__")]
    assert len(parts) >= 10
    for path in parts:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"simkit.des.result", "simkit.des.run", "simkit.des"}, path
