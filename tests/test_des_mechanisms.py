"""Tests of the DES mechanisms (issue 11 item 4): noisy screening with effort, review
capacity, credit-line changes, allocation and waiting for room. Small books, fixed seeds;
statistical tolerances from the replications' paired standard errors."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import pytest

import simkit
from simkit.des import REASONS, DesResult, simulate
from simkit.des.lines import SCORE_BOUNDS, allocate, queued_mask
from simkit.des.model import Model
from simkit.des.review import daily_capacity
from simkit.des.screening import observed_pd, screening_sd
from simkit.scenario import LineAllocation, LineChange, ScenarioError
from tests.test_des import BASE

#: the small book of tests/test_des.py with a credit line of the provincial re-guarantor
#: to the guarantor that binds (about 1.4e9 yuan guaranteed a year against 4e8)
LINED = copy.deepcopy(BASE)
LINED["credit_lines"] = [{"from": "provincial", "to": "guarantor", "amount": 4e8}]
LINED["segments"][0]["default_prob"] = {"dist": "loguniform", "low": 0.01, "high": 0.2}


def lined(**changes: Any) -> simkit.Scenario:
    sc = simkit.from_dict(copy.deepcopy(LINED))
    return sc.with_changes(changes) if changes else sc


def fingerprint(r: DesResult) -> tuple[Any, ...]:
    """Everything a run decides, as exact arrays."""
    led = r.ledger
    return (led.time, led.amount, led.payer, led.payee, led.kind, r.loans["start"],
            r.loans["end"], r.loans["application"], *r.series.values(),
            *r.refusals.values())


def identical(a: DesResult, b: DesResult) -> bool:
    fa, fb = fingerprint(a), fingerprint(b)
    return len(fa) == len(fb) and all(
        x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
        for x, y in zip(fa, fb, strict=True))


def paired(values_a: list[float], values_b: list[float]) -> tuple[float, float]:
    """Mean of b - a over replications and its standard error."""
    d = np.asarray(values_b, float) - np.asarray(values_a, float)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


# --------------------------------------------------------------------------------------
# off means unchanged
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes", [{}, {"des.mode": "individual", "des.refusal": "queue",
                                          "des.renewal_prob": 0.5}])
def test_mechanisms_off_reproduce_the_model_before_them(changes: dict[str, Any]) -> None:
    # counts and totals of these runs, recorded with the model before the mechanisms
    # (main at 64525d5): ledger rows, approvals, refusals per reason, ledger total
    before = {(): (2216, 884, {"credit_line": 3082}, 127218779.84776928),
              ("des.mode", "des.refusal", "des.renewal_prob"):
                  (1960, 865, {"guarantor_review": 1203, "credit_line": 1436},
                   58041093.405824065)}[tuple(changes)]
    r = simulate(lined(**changes), seed=3)
    rows, approvals, refused, total = before
    assert len(r.ledger) == rows
    assert r.summary["approvals"] == approvals
    assert {k: v for k, v in r.summary["refusals"].items() if v} == refused
    assert float(r.ledger.amount.sum()) == pytest.approx(total, rel=1e-12)
    assert r.summary["refusals"]["withdrawn"] == 0
    assert not r.series["review_queue"].any()


@pytest.mark.parametrize("changes", [
    {"des.screening_effort": 3.0},                      # effort without noise: no signal
    {"des.review_rate": 0.5, "des.review_patience_days": 1},  # no staff: fixed delay
    {"des.review_staff": 1, "des.mode": "batch"},       # batch mode has no staff
    {"credit_lines[0].changes": [{"at_years": 0.5, "factor": 1.0}]},  # neutral change
])
def test_neutral_mechanism_settings_are_bit_identical(changes: dict[str, Any]) -> None:
    base = {"des.mode": changes.get("des.mode", "individual")}
    assert identical(simulate(lined(**base), seed=4),
                     simulate(lined(**{**base, **changes}), seed=4))


def test_ample_review_staff_decide_as_the_fixed_delay() -> None:
    """Staff that never queue anybody give the same decisions at the same times."""
    base = lined(**{"des.mode": "individual"})
    ample = base.with_changes({"des.review_staff": 50, "des.review_rate": 10})
    a, b = simulate(base, seed=5), simulate(ample, seed=5)
    assert identical(a, b)
    assert b.summary["wait_mean_days"] == pytest.approx(20.0)
    assert 0 < b.summary["review_utilisation"]["guarantor"] < 0.05


# --------------------------------------------------------------------------------------
# screening with effort
# --------------------------------------------------------------------------------------
def screened(share: float, noise: float, effort: float) -> simkit.Scenario:
    """Bank share ``share`` (its retained share: no single limit), the guarantor the
    rest of the 60 %; a wide PD pool so the bank's cut-off matters."""
    return simkit.from_dict(copy.deepcopy(BASE)).with_changes({
        "agreements[0].layers[0].share": share,
        "agreements[0].layers[1].share": round(0.6 - share, 10),
        "segments[0].default_prob": {"dist": "loguniform", "low": 0.02, "high": 0.5},
        "des.screening_noise": noise, "des.screening_effort": effort, "des.years": 1})


def approved_stats(sc: simkit.Scenario, reps: int = 4) -> tuple[list[float], ...]:
    """Per replication: approvals, mean true PD of the approved firms and their default
    rate (defaulted by the end of the run-off)."""
    n, pd, dr = [], [], []
    for rep in range(reps):
        r = simulate(sc, seed=7, replication=rep)
        new = ~r.loans["renewal"]
        n.append(r.summary["approvals"])
        pd.append(float(r.loans["default_prob"][new].mean()))
        dr.append(float(r.loans["defaulted"][new].mean()))
    return n, pd, dr


def test_lower_retained_share_with_screening_effort_lends_more_to_worse_firms() -> None:
    high = approved_stats(screened(0.5, 0.5, 2.0))
    low = approved_stats(screened(0.2, 0.5, 2.0))
    for a, b in zip(high, low, strict=True):
        diff, se = paired(a, b)
        assert diff > 3 * se and diff > 0, (diff, se)


def test_less_effort_at_the_same_share_lends_more_to_worse_firms() -> None:
    """The mechanism itself: at retained 0.2 a screening effort that falls with the
    share (effort 2) against an effort that does not (0)."""
    flat = approved_stats(screened(0.2, 0.5, 0.0))
    falling = approved_stats(screened(0.2, 0.5, 2.0))
    for a, b in list(zip(flat, falling, strict=True))[:2]:  # approvals, mean true PD
        diff, se = paired(a, b)
        assert diff > 3 * se and diff > 0, (diff, se)
    # the realised default rate follows the mean PD (the same firms' fates: paired)
    diff, se = paired(flat[2], falling[2])
    assert diff > 0


def test_screening_noise_keeps_the_firms_and_their_fates() -> None:
    """Common random numbers: the signal's draws do not move the applications or the
    factor path, and a firm served in both variants has the same default outcome."""
    off = Model(screened(0.2, 0.0, 0.0), seed=9)
    on = Model(screened(0.2, 0.8, 2.0), seed=9)
    for name in ("day", "pd", "exposure"):
        assert np.array_equal(getattr(off.apps, name), getattr(on.apps, name))
    assert np.array_equal(off.factors.z_nat, on.factors.z_nat)
    assert not np.array_equal(off.apps.bank_ok, on.apps.bank_ok)
    a = simulate(screened(0.2, 0.0, 0.0), seed=9)
    b = simulate(screened(0.2, 0.8, 2.0), seed=9)
    ka = dict(zip(a.loans["application"].tolist(), a.loans["defaulted"].tolist(),
                  strict=True))
    kb = dict(zip(b.loans["application"].tolist(), b.loans["defaulted"].tolist(),
                  strict=True))
    both = set(ka) & set(kb)
    assert len(both) > 500
    assert all(ka[i] == kb[i] for i in both)


def test_screening_rule_functions() -> None:
    assert screening_sd(np.array([1.0, 0.5, 0.0]), 0.4, 2.0) == pytest.approx(
        [0.4, 0.8, 1.2])
    pd = np.array([0.01, 0.02, 0.04, 0.08, 0.3])
    seg = np.zeros(5, np.intp)
    z = np.array([1.0, -1.0, 0.5, 0.0, -0.5])
    # no noise: the bank sees the true PD; infinite noise: every estimate is the pool's
    assert observed_pd(pd, seg, 1.0, z, 0.0, 0.0) == pytest.approx(pd)
    blind = observed_pd(pd, seg, 1.0, z, 1e6, 0.0)
    x = np.log(pd)
    assert blind == pytest.approx(np.exp(x.mean() + x.var() / 2), rel=1e-5)
    # a segment with one PD is not affected by noise (the prior is exact)
    same = np.full(4, 0.05)
    assert observed_pd(same, np.zeros(4, np.intp), 0.3, z[:4], 2.0, 1.0) == pytest.approx(
        same)


# --------------------------------------------------------------------------------------
# review capacity
# --------------------------------------------------------------------------------------
def loaded(mode: str, staff: int) -> simkit.Scenario:
    """About 5.5 applications a day against 4 a day of one reviewer."""
    return simkit.from_dict(copy.deepcopy(BASE)).with_changes({
        "des.mode": mode, "des.review_staff": staff, "des.review_rate": 4.0,
        "des.review_patience_days": 60, "des.years": 1,
        "des.review_loss_tolerance": 100})  # no refusal by the review rule itself


def test_individual_review_under_load_waits_longer_and_approves_less_than_batch() -> None:
    rows = {mode: [simulate(loaded(mode, 1), seed=2, replication=k).summary
                   for k in range(3)] for mode in ("individual", "batch")}
    ind, bat = rows["individual"], rows["batch"]
    for key, sign in (("wait_mean_days", 1), ("wait_p95_days", 1), ("approvals", -1)):
        diff, se = paired([s[key] for s in bat], [s[key] for s in ind])
        assert sign * diff > 3 * se and sign * diff > 0, (key, diff, se)
    assert all(s["refusals"]["withdrawn"] > 50 for s in ind)
    assert all(s["refusals"]["withdrawn"] == 0 for s in bat)
    # fewer loans, so fewer losses for the original guarantor
    diff, _ = paired([s["losses"]["guarantor"] for s in bat],
                     [s["losses"]["guarantor"] for s in ind])
    assert diff < 0


def test_review_queue_series_staff_use_and_patience() -> None:
    r = simulate(loaded("individual", 1), seed=2)
    j = r.parties.index("guarantor")
    q = r.series["review_queue"][:, j]
    assert q[-1] > q[0] > 0  # the queue builds up under load
    # nobody waits for a reviewer longer than the patience: queue wait + review time
    assert r.summary["wait_p95_days"] <= 60 + 20 + 1
    assert r.summary["review_utilisation"]["guarantor"] == pytest.approx(1.0, abs=0.02)
    waits = r.series["approval_wait_days"][:, j]
    approvals = r.series["approvals"][:, j]
    mean = waits.sum() / approvals.sum()
    assert mean == pytest.approx(r.summary["wait_mean_days"], rel=1e-9)
    assert waits[-1] / approvals[-1] > waits[0] / approvals[0]  # waits grow over the year
    # counts add up: approvals, refusals and pending are the applications
    s = r.summary
    assert s["approvals"] + sum(s["refusals"].values()) + s["pending"] == s["applications"]


def test_daily_capacity_spreads_a_fractional_rate() -> None:
    got = [daily_capacity(d, 2.5) for d in range(10)]
    assert sum(got) == 25 and set(got) == {2, 3}
    assert [daily_capacity(d, 0.25) for d in range(8)] == [0, 0, 0, 1, 0, 0, 0, 1]


# --------------------------------------------------------------------------------------
# credit lines: changes, waiting for room, allocation
# --------------------------------------------------------------------------------------
def test_mid_year_credit_line_increase_gives_more_approvals_after_it() -> None:
    plain = simulate(lined(**{"des.years": 1}), seed=3)
    raised = simulate(lined(**{"des.years": 1, "credit_lines[0].changes":
                               [{"at_years": 0.5, "factor": 1.5}]}), seed=3)
    a, b = (r.series["approvals"].sum(axis=1) for r in (plain, raised))
    assert np.array_equal(a[:6], b[:6])  # the same until the change
    assert b[6:].sum() > a[6:].sum() + 100
    assert raised.summary["refusals"]["credit_line"] < plain.summary["refusals"][
        "credit_line"]
    # in effect during each month (the change at the end of month 6 counts from month 7)
    assert raised.credit_line_limit[:, 0].tolist() == [4e8] * 6 + [6e8] * 6
    assert plain.credit_line_limit[:, 0].tolist() == [4e8] * 12
    assert raised.credit_line_use[:, 0].max() <= 6e8 * (1 + 1e-9)
    assert raised.credit_line_amount[0] == 4e8


@pytest.mark.parametrize("mode", ["queue", "queue_credit_line"])
def test_waiting_for_room_means_fewer_credit_line_refusals(mode: str) -> None:
    ch = {"credit_lines[0].changes": [{"at_years": 0.5, "factor": 1.5}]}
    refused = {m: [simulate(lined(**ch, **{"des.refusal": m}), seed=6, replication=k)
                   .summary["refusals"]["credit_line"] for k in range(3)]
               for m in ("refuse", mode)}
    diff, se = paired(refused["refuse"], refused[mode])
    assert diff < -3 * se and diff < 0


def test_queue_credit_line_queues_only_credit_line_refusals() -> None:
    code = REASONS.index("credit_line")
    reasons = np.array([REASONS.index("leverage"), code, REASONS.index("single_client"),
                        code])
    assert queued_mask("queue_credit_line", reasons, code).tolist() == [False, True,
                                                                         False, True]
    assert queued_mask("queue", reasons, code).all()
    assert not queued_mask("refuse", reasons, code).any()
    # in a run with a binding leverage limit, those refusals stay final
    sc = lined(**{"parties.guarantor.leverage_limit": 0.02, "des.years": 1})
    j = sc.party_names.index("guarantor")
    only = simulate(sc.with_changes({"des.refusal": "queue_credit_line"}), seed=3)
    every = simulate(sc.with_changes({"des.refusal": "queue"}), seed=3)
    assert only.summary["refusals"]["leverage"] > 100
    assert only.series["queued"][:, j].sum() == 0
    assert every.series["queued"][:, j].sum() > 100


def test_allocation_rule() -> None:
    kw = {"growth": 1.1, "reference_rate": 0.03, "rate_weight": 0.5,
          "leverage_weight": 0.5}
    # at the reference rate and the leverage limit the score is 1
    assert allocate(1e9, 5e8, 0.03, 1.0, **kw) == pytest.approx(1.1e9)
    # worse compensation rate or higher leverage: a smaller line
    assert allocate(1e9, 5e8, 0.05, 1.0, **kw) < allocate(1e9, 5e8, 0.03, 1.0, **kw)
    assert allocate(1e9, 5e8, 0.03, 1.2, **kw) < allocate(1e9, 5e8, 0.03, 1.0, **kw)
    # no leverage limit: no leverage term; the score is clipped
    assert allocate(1e9, 5e8, 0.03, math.nan, **kw) == pytest.approx(1.1e9)
    assert allocate(1e9, 5e8, 0.0, 0.0, **kw) == pytest.approx(1.1e9 * SCORE_BOUNDS[1])
    assert allocate(1e9, 5e8, 1.0, 5.0, **kw) == pytest.approx(1.1e9 * SCORE_BOUNDS[0])
    # nothing filed: the last amount is the base
    assert allocate(0.0, 5e8, 0.03, 1.0, **kw) == pytest.approx(5.5e8)


def test_allocated_line_follows_last_years_use() -> None:
    sc = lined(**{"credit_lines[0].allocation": {"growth": 1.2, "rate_weight": 0.0,
                                                 "leverage_weight": 0.0}})
    r = simulate(sc, seed=3)
    used_year1 = r.credit_line_use[:12, 0].max()  # the line binds in the first year
    assert used_year1 == pytest.approx(4e8, rel=1e-3)
    assert r.credit_line_limit[:12, 0].tolist() == [4e8] * 12
    assert r.credit_line_limit[12:, 0] == pytest.approx(1.2 * used_year1, rel=1e-9)
    assert r.credit_line_use[12:, 0].max() > 4e8


# --------------------------------------------------------------------------------------
# scenario fields
# --------------------------------------------------------------------------------------
def test_mechanism_fields_round_trip() -> None:
    sc = lined(**{"des.screening_noise": 0.4, "des.screening_effort": 1.5,
                  "des.review_staff": 3, "des.review_rate": 2.5,
                  "des.review_patience_days": 30, "des.refusal": "queue_credit_line",
                  "credit_lines[0].changes": [{"at_years": 0.5, "factor": 1.26},
                                              {"at_years": 1.5, "factor": 0.9}],
                  "credit_lines[0].allocation": {"growth": 1.1}})
    assert simkit.from_dict(sc.to_dict()) == sc
    line = sc.credit_lines[0]
    assert line.changes == (LineChange(0.5, 1.26), LineChange(1.5, 0.9))
    assert line.allocation == LineAllocation(growth=1.1)
    assert sc.des.review_staff == 3 and sc.des.refusal == "queue_credit_line"


@pytest.mark.parametrize(("path", "value", "message"), [
    ("des.screening_noise", -0.1, "des.screening_noise must be"),
    ("des.screening_effort", 11, "des.screening_effort must be"),
    ("des.review_staff", 1.5, "des.review_staff must be an integer"),
    ("des.review_rate", 0, "des.review_rate must be"),
    ("des.review_patience_days", -1, "des.review_patience_days must be"),
    ("des.refusal", "wait_for_room", "des.refusal must be one of"),
    ("credit_lines[0].changes", [{"at_years": 0, "factor": 1.2}],
     "credit_lines[0].changes[0].at_years must be"),
    ("credit_lines[0].changes", [{"at_years": 0.5, "factor": -1}],
     "credit_lines[0].changes[0].factor must be"),
    ("credit_lines[0].changes", [{"at_years": 0.5}], "changes[0].factor is required"),
    ("credit_lines[0].changes", [{"at_years": 0.5, "factor": 1, "when": 2}],
     "unknown key 'when'"),
    ("credit_lines[0].changes", [{"at_years": 0.8, "factor": 1.1},
                                 {"at_years": 0.5, "factor": 1.1}],
     "changes[1].at_years must be at least the change before"),
    ("credit_lines[0].changes", {"at_years": 0.5}, "credit_lines[0].changes must be"),
    ("credit_lines[0].allocation", {"growth": 0}, "allocation.growth must be"),
    ("credit_lines[0].allocation", {"grwth": 1.1}, "unknown key 'grwth'"),
])
def test_bad_mechanism_fields_raise_scenario_error(path: str, value: Any,
                                                   message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace(
            "]", r"\]")):
        lined(**{path: value})


def test_value_objects_check_themselves() -> None:
    with pytest.raises(ScenarioError, match=r"LineChange\.factor"):
        LineChange(0.5, 0.0)
    with pytest.raises(ScenarioError, match=r"LineAllocation\.reference_rate"):
        LineAllocation(reference_rate=0.0)
    line = lined().credit_lines[0]
    with pytest.raises(ScenarioError, match=r"CreditLine\.changes must be in time order"):
        dataclasses.replace(line, changes=(LineChange(0.8, 1.0), LineChange(0.5, 1.0)))
    with pytest.raises(ScenarioError, match=r"CreditLine\.changes must be a tuple"):
        dataclasses.replace(line, changes=[LineChange(0.5, 1.0)])
    des = lined().des
    with pytest.raises(ScenarioError, match=r"DesSettings\.review_staff"):
        dataclasses.replace(des, review_staff=-1)
    with pytest.raises(ScenarioError, match=r"DesSettings\.screening_noise"):
        dataclasses.replace(des, screening_noise=6.0)
