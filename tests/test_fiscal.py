"""The government's cost: the tech-plan central-budget rule and the fiscal view."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simkit import from_dict
from simkit.estimate import expected_results
from simkit.fiscal import (
    des_fiscal,
    discount_factor,
    fiscal_summary,
    party_lags,
    present_value,
    public_parties,
)
from simkit.montecarlo import simulate
from simkit.results import RunReport
from simkit.scenario import ScenarioError, load
from simkit.sharing import Cells, Waterfall, compensation_fraction

ROOT = Path(__file__).resolve().parents[1]
TECH = ROOT / "scenarios" / "tech_innovation_2024.toml"
RULE = {"from": "central_fiscal", "to": "national_fund", "standard_share": 0.20}


def _tech_dict(nf_share: float = 0.40, cap: dict[str, Any] | None = None,
               rule: dict[str, Any] | None = RULE) -> dict[str, Any]:
    """One tech-plan agreement: bank 20 %, guarantor, provincial 20 %, NFGF ``nf_share``."""
    nf: dict[str, Any] = {"party": "national_fund", "share": nf_share}
    if cap is not None:
        nf["cap"] = cap
    agreement: dict[str, Any] = {
        "name": "tier1",
        "layers": [{"party": "bank", "share": 0.2},
                   {"party": "guarantor", "share": round(0.6 - nf_share, 10)},
                   {"party": "provincial", "share": 0.2}, nf],
    }
    if rule is not None:
        agreement["fiscal_compensation"] = dict(rule)
    return {
        "parties": {"bank": {}, "guarantor": {}, "provincial": {}, "national_fund": {},
                    "central_fiscal": {"kind": "other"}},
        "agreements": [agreement],
        "segments": [{"name": "s", "count": 100, "exposure": 1e6, "default_prob": 0.02,
                      "lgd": 0.45}],
        "run": {"n_paths": 200, "seed": 3, "block_size": 100},
    }


def _cells(guaranteed: list[float]) -> Cells:
    n = len(guaranteed)
    g = np.asarray(guaranteed, dtype=float)
    return Cells(agreement=np.zeros(n, dtype=np.intp), guarantor=(None,) * n,
                 region=("r",) * n, segment=tuple(f"s{i}" for i in range(n)),
                 guaranteed=g, annualised=g)


# --------------------------------------------------------------------------------------
# the rule
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("share", "expected"), [(0.40, 0.5), (0.35, 3 / 7), (0.30, 1 / 3),
                                                 (0.20, 0.0), (0.10, 0.0)])
def test_compensation_fraction_is_share_above_standard_over_share(share: float,
                                                                  expected: float) -> None:
    ag = from_dict(_tech_dict(share)).agreements[0]
    assert compensation_fraction(ag, "national_fund") == pytest.approx(expected, rel=1e-12)
    assert compensation_fraction(ag, "provincial") == 0.0


def test_compensation_fraction_without_rule_is_zero() -> None:
    ag = from_dict(_tech_dict(rule=None)).agreements[0]
    assert ag.fiscal_compensation is None
    assert compensation_fraction(ag, "national_fund") == 0.0


def test_waterfall_compensation_by_hand_uncapped() -> None:
    """Covered 1,000,000, 30 % recovered; NFGF 40 %: it pays 400,000 and the centre
    reimburses half (40 - 20 points): 200,000 each; recoveries 120,000 split 60,000 each."""
    s = from_dict(_tech_dict(0.40))
    w = Waterfall.from_scenario(s, _cells([1e6]))
    alloc = w.apply(np.array([[1e6]]), np.array([[3e5]]))
    paid = dict(zip(w.parties, alloc.paid[0], strict=True))
    rec = dict(zip(w.parties, alloc.recovered[0], strict=True))
    assert paid["national_fund"] == pytest.approx(200_000)
    assert paid["central_fiscal"] == pytest.approx(200_000)
    assert rec["national_fund"] == pytest.approx(60_000)
    assert rec["central_fiscal"] == pytest.approx(60_000)
    assert paid["provincial"] == pytest.approx(200_000)
    assert alloc.net.sum() == pytest.approx(1e6 - 3e5, rel=1e-12)


def test_waterfall_compensation_by_hand_after_the_cap() -> None:
    """Cap 5 % of NFGF's 40 % on 10 million guaranteed = 200,000; on 1,000,000 covered NFGF
    would owe 400,000, pays 200,000 (the guarantor takes the 200,000 overflow, which the
    centre does not compensate) and the centre bears half of the 200,000 it paid."""
    s = from_dict(_tech_dict(0.40, cap={"rate": 0.05, "overflow": "guarantor"}))
    w = Waterfall.from_scenario(s, _cells([1e7]))
    alloc = w.apply(np.array([[1e6]]), np.array([[3e5]]), by_cell=True)
    paid = dict(zip(w.parties, alloc.paid[0], strict=True))
    net = dict(zip(w.parties, alloc.net[0], strict=True))
    assert paid["national_fund"] == pytest.approx(100_000)
    assert paid["central_fiscal"] == pytest.approx(100_000)
    assert paid["guarantor"] == pytest.approx(200_000 + 200_000)
    assert net["central_fiscal"] == pytest.approx(100_000 * 0.7)
    assert net["national_fund"] == pytest.approx(100_000 * 0.7)
    assert alloc.overflow[0, 0] == pytest.approx(200_000)
    np.testing.assert_allclose(alloc.by_cell.sum(axis=1), alloc.net, rtol=1e-12)


def test_tech_scenario_rule_moves_fund_payments_to_the_centre() -> None:
    """On the shipped tech book (caps included), per path: centre paid == sum over tiers
    of f_tier x NFGF's payment without the rule; NFGF + centre == NFGF without the rule;
    every other party unchanged."""
    s = load(TECH)
    raw = copy.deepcopy(s.raw)
    for ag in raw["agreements"]:
        ag.pop("fiscal_compensation", None)
    bare = from_dict(raw)
    from simkit.book import book_for

    book = book_for(s)
    cells = book.cells
    w, w0 = Waterfall.from_scenario(s, cells), Waterfall.from_scenario(bare, cells)
    rng = np.random.default_rng(5)
    # default rates up to 8 % so that the 5 % caps bind on some paths
    covered = cells.guaranteed[None, :] * rng.uniform(0, 0.08, (50, len(cells)))
    rec = covered * rng.uniform(0, 0.6, covered.shape)
    a, a0 = w.apply(covered, rec), w0.apply(covered, rec)
    col = {p: i for i, p in enumerate(w.parties)}
    nf, cf = col["national_fund"], col["central_fiscal"]
    expected = np.zeros(50)
    for i, ag in enumerate(s.agreements):
        mask = (cells.agreement == i)[None, :]
        part = w0.apply(covered * mask, rec * mask)
        expected += compensation_fraction(ag, "national_fund") * part.paid[:, nf]
    assert a.overflow.max() > 0  # the caps bind somewhere
    np.testing.assert_allclose(a.paid[:, cf], expected, rtol=1e-10)
    np.testing.assert_allclose(a.paid[:, nf] + a.paid[:, cf], a0.paid[:, nf], rtol=1e-10)
    np.testing.assert_allclose(a.recovered[:, nf] + a.recovered[:, cf],
                               a0.recovered[:, nf], rtol=1e-10)
    others = [j for j in range(len(w.parties)) if j not in (nf, cf)]
    np.testing.assert_allclose(a.net[:, others], a0.net[:, others], rtol=1e-10)


def test_monte_carlo_conserves_money_and_centre_carries_compensation() -> None:
    """Defect: central_fiscal carried 0 in the tech plan. Now it bears a positive loss,
    and the parties' losses still sum to the book's loss on every path."""
    s = load(TECH)
    r = simulate(s, n_paths=400, block_size=200, engine="numpy")
    j = r.parties.index("central_fiscal")
    assert r.losses[:, j].mean() > 0
    np.testing.assert_allclose(r.losses.sum(axis=1), r.total_loss,
                               rtol=1e-9, atol=1e-9 * float(r.total_loss.max()))


def test_closed_form_compensation_by_hand() -> None:
    """100 loans x 1 million, PD 2 %, LGD 45 %, uncapped NFGF 40 %: NFGF's expected loss
    without the rule 0.4 x 100 x 1e6 x 0.02 x 0.45 = 360,000; the centre takes half."""
    est = expected_results(from_dict(_tech_dict(0.40)))
    el = dict(zip(est.parties, est.expected_loss, strict=True))
    assert el["central_fiscal"] == pytest.approx(180_000, rel=1e-12)
    assert el["national_fund"] == pytest.approx(180_000, rel=1e-12)
    assert sum(el.values()) == pytest.approx(100 * 1e6 * 0.02 * 0.45, rel=1e-12)


def test_closed_form_and_monte_carlo_agree_on_the_centre() -> None:
    s = from_dict(_tech_dict(0.35))
    r = simulate(s, n_paths=4000, block_size=1000, engine="numpy")
    j = r.parties.index("central_fiscal")
    el = expected_results(s).expected_loss[j]
    assert el == pytest.approx(100 * 1e6 * 0.02 * 0.45 * 0.15, rel=1e-12)
    se = r.losses[:, j].std(ddof=1) / math.sqrt(r.n_paths)
    assert abs(r.losses[:, j].mean() - el) < 4 * se


@pytest.mark.parametrize(("change", "path", "words"), [
    ({"from": "treasury"}, "fiscal_compensation.from", "unknown party"),
    ({"to": "bank_x"}, "fiscal_compensation.to", "unknown layer party"),
    ({"from": "national_fund"}, "fiscal_compensation.from", "other than the compensated"),
    ({"to": "guarantor"}, "fiscal_compensation.to", "guarantor kind"),
    ({"standard_share": 1.0}, "fiscal_compensation.standard_share", "standard_share"),
    ({"standard_share": "20%"}, "fiscal_compensation.standard_share", "standard_share"),
    ({"rate": 0.2}, "", "unknown key 'rate'"),
])
def test_rule_validation_errors(change: dict[str, Any], path: str, words: str) -> None:
    d = _tech_dict()
    d["agreements"][0]["fiscal_compensation"].update(change)
    with pytest.raises(ScenarioError) as exc:
        from_dict(d, source="tech.toml")
    text = str(exc.value)
    assert "tech.toml" in text and words in text
    if path:
        assert f"agreements[0].{path}" in text


def test_rule_must_be_a_table_and_name_from() -> None:
    d = _tech_dict()
    d["agreements"][0]["fiscal_compensation"] = "central_fiscal"
    with pytest.raises(ScenarioError, match=r"fiscal_compensation.*table"):
        from_dict(d)
    d["agreements"][0]["fiscal_compensation"] = {"to": "national_fund"}
    with pytest.raises(ScenarioError, match=r"fiscal_compensation\.from.*required"):
        from_dict(d)


def test_shipped_tech_scenario_carries_the_rule_on_the_tiers() -> None:
    s = load(TECH)
    fracs = {a.name: compensation_fraction(a, "national_fund") for a in s.agreements}
    assert fracs == pytest.approx({"tier1": 0.5, "tier2": 3 / 7, "tier3": 1 / 3,
                                   "standard": 0.0})
    assert public_parties(s) == {"provincial": "provincial", "national_fund": "national_fund",
                                 "central_fiscal": "central_budget"}


# --------------------------------------------------------------------------------------
# the discrete-event settlement
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def des_tech() -> Any:
    from simkit.des import run_des

    s = load(TECH).with_changes({"segments[0].count": 300, "segments[1].count": 600,
                                 "segments[2].count": 1000, "segments[3].count": 600})
    return run_des(s, years=2.0, replications=2, seed=11)


def test_des_checks_pass_and_centre_loss_matches_the_rule(des_tech: Any) -> None:
    """Per defaulted loan: centre's settled loss == f_tier x (centre + NFGF), f = 1/2,
    3/7, 1/3 and 0 for the standard business."""
    r = des_tech[0]
    assert all(r.checks.values())
    s = r.scenario
    cf, nf = r.parties.index("central_fiscal"), r.parties.index("national_fund")
    ids = r.loans["id"][r.loans["defaulted"]]
    losses = r.ledger.loan_losses(ids)
    seg = r.loans["segment"][ids]
    ag_of_seg = [s.agreement(x.agreement) for x in s.segments]
    frac = np.array([compensation_fraction(ag_of_seg[k], "national_fund") for k in seg])
    assert (frac > 0).sum() > 10 and (frac == 0).sum() > 0
    np.testing.assert_allclose(losses[:, cf], frac * (losses[:, cf] + losses[:, nf]),
                               rtol=1e-9, atol=1e-6)
    assert losses[:, cf].sum() > 0
    assert r.summary["losses"]["central_fiscal"] == pytest.approx(losses[:, cf].sum(),
                                                                  rel=1e-9)


def test_des_fiscal_totals_and_ratios(des_tech: Any) -> None:
    out = des_fiscal(des_tech)
    assert set(out["payers"]) == {"provincial", "national_fund", "central_fiscal"}
    costs = [b["cost"] for b in out["payers"].values()]
    assert out["total"]["cost"] == pytest.approx(sum(costs), rel=1e-12)
    for p, b in out["payers"].items():
        mean = np.mean([r.summary["losses"][p] - r.summary["fees_net"][p] for r in des_tech])
        assert b["cost"] == pytest.approx(mean, rel=1e-12)
    assert out["total"]["cost"] > 0
    credit = np.mean([r.summary["credit_supplied"] for r in des_tech])
    firms = np.mean([r.summary["firms_served"] for r in des_tech])
    assert out["credit_per_public_yuan"] == pytest.approx(credit / out["total"]["cost"])
    assert out["firms_per_million_public_yuan"] == pytest.approx(
        1e6 * firms / out["total"]["cost"])
    assert math.isfinite(out["credit_per_public_yuan_se"])


# --------------------------------------------------------------------------------------
# present value
# --------------------------------------------------------------------------------------
def _sure_default_dict() -> dict[str, Any]:
    """Ten 1-million loans that all default (PD 1 - 1e-7, no factor), LGD 40 %, 2 years;
    provincial 30 % with a 73-day claim lag, local government 10 %, recoveries after 2
    years; the guarantor pays the provincial 0.5 % of its share."""
    return {
        "parties": {"bank": {}, "guarantor": {}, "provincial": {}, "local_gov": {}},
        "agreements": [{
            "name": "a", "recovery_lag_years": 2.0,
            "layers": [{"party": "bank", "share": 0.2}, {"party": "guarantor", "share": 0.4},
                       {"party": "provincial", "share": 0.3, "lag_days": 73},
                       {"party": "local_gov", "share": 0.1}],
            "fees": [{"from": "borrower", "to": "guarantor", "rate": 0.01},
                     {"from": "guarantor", "to": "provincial", "rate": 0.005,
                      "on_share_of": "provincial"}]}],
        "factors": {"national": 0.0},
        "segments": [{"name": "s", "count": 10, "exposure": 1e6,
                      "default_prob": 1 - 1e-7, "lgd": 0.4}],
        "run": {"n_paths": 100, "seed": 1, "block_size": 50, "horizon_years": 2},
    }


def test_present_value_by_hand_on_a_deterministic_book() -> None:
    s = from_dict(_sure_default_dict())
    r = simulate(s, engine="numpy")
    assert np.all(r.defaults == 10)
    f = fiscal_summary(s, r, discount_rate=0.04)
    d = 1.04
    # provincial: pays 3e6 per cohort at y + 0.5 + 0.2, recovers 1.8e6 at y + 2.5,
    # earns 15,000 of fees at y
    prov = sum(3e6 / d ** (y + 0.7) - 1.8e6 / d ** (y + 2.5) - 15_000 / d ** y
               for y in (0, 1))
    local = sum(1e6 / d ** (y + 0.5) - 0.6e6 / d ** (y + 2.5) for y in (0, 1))
    assert f["payers"]["provincial"]["pv"] == pytest.approx(prov, rel=1e-12)
    assert f["payers"]["local_gov"]["pv"] == pytest.approx(local, rel=1e-12)
    assert f["total"]["pv"] == pytest.approx(prov + local, rel=1e-12)
    assert f["total"]["subsidy_rate_pct"] == pytest.approx(100 * (prov + local) / 2e7,
                                                           rel=1e-12)
    assert f["guaranteed_volume"] == pytest.approx(2e7)
    # undiscounted cost: net loss minus fees over both years
    assert f["payers"]["provincial"]["cost"] == pytest.approx(2 * (1.2e6 - 15_000))
    assert f["payers"]["provincial"]["fee_income"] == pytest.approx(30_000)
    assert f["payers"]["provincial"]["pv_se"] == pytest.approx(0, abs=1e-6)
    assert set(f["payers"]) == {"provincial", "local_gov"}


def test_present_value_at_zero_rate_is_the_undiscounted_cost() -> None:
    s = load(TECH)
    r = simulate(s, n_paths=300, block_size=150, engine="numpy")
    f = fiscal_summary(s, r, discount_rate=0.0)
    for b in [*f["payers"].values(), f["total"]]:
        assert b["pv"] == pytest.approx(b["cost"], rel=1e-10)
    g = fiscal_summary(s, r, discount_rate=0.05)
    # recoveries come later than claims: discounting them more raises the cost
    assert g["total"]["pv"] > f["total"]["pv"]


def test_present_value_function_by_hand() -> None:
    paid = np.array([[[100.0, 0.0], [50.0, 10.0]]])  # (1 path, 2 years, 2 parties)
    rec = np.array([[[40.0, 0.0], [0.0, 5.0]]])
    fees = np.array([[1.0, 2.0], [3.0, 4.0]])
    pv = present_value(paid, rec, fees, np.array([0.25, 0.0]), np.array([1.0, 2.0]),
                       0.1, default_time=0.5)
    d = lambda t: 1.1 ** -t  # noqa: E731
    expected = [100 * d(0.75) + 50 * d(1.75) - 40 * d(1.5) - 1 - 3 * d(1),
                10 * d(1.5) - 5 * d(3.5) - 2 - 4 * d(1)]
    np.testing.assert_allclose(pv[0], expected, rtol=1e-13)
    with pytest.raises(ValueError, match="discount rate"):
        discount_factor(1.0, -1.0)


def test_party_lags_budget_takes_the_compensated_layer_lags() -> None:
    d = _tech_dict()
    d["agreements"][0]["layers"][3]["lag_days"] = 36.5
    d["agreements"][0]["recovery_lag_years"] = 3.0
    s = from_dict(d)
    claim, rec = party_lags(s)
    col = {p: i for i, p in enumerate(s.party_names)}
    assert claim[col["central_fiscal"]] == pytest.approx(0.1)
    assert rec[col["central_fiscal"]] == pytest.approx(3.0)
    assert claim[col["provincial"]] == 0.0


def test_multi_year_result_without_annual_paid_has_no_pv() -> None:
    s = from_dict(_sure_default_dict())
    r = simulate(s, n_paths=50, engine="numpy")
    r.annual_paid = None
    f = fiscal_summary(s, r)
    assert f["total"]["pv"] is None and f["total"]["cost"] > 0


# --------------------------------------------------------------------------------------
# totals, tail, report, CLI
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tech_run() -> Any:
    s = load(TECH)
    return s, simulate(s, n_paths=2000, block_size=500, engine="numpy")


def test_public_totals_are_sums_of_payers_and_tail_se_finite(tech_run: Any) -> None:
    s, r = tech_run
    f = fiscal_summary(s, r)
    for key in ("net_loss", "fee_income", "cost", "pv"):
        parts = sum(b[key] for b in f["payers"].values())
        assert f["total"][key] == pytest.approx(parts, rel=1e-10, abs=1e-6)
    # transfers between public payers cancel: NFGF's re-guarantee fees come from the
    # provincial re-guarantor
    assert f["total"]["fee_income"] == pytest.approx(0.0, abs=1e-3)
    t = f["total"]
    assert t["cost_es_99"] > t["cost"] > 0
    assert math.isfinite(t["cost_es_99_se"]) and 0 < t["cost_es_99_se"] < 0.2 * t["cost_es_99"]
    assert math.isfinite(t["pv_es_99_se"])
    # the per-path total's ES is at most the sum of the payers' ES (subadditivity)
    assert t["cost_es_99"] <= sum(b["cost_es_99"] for b in f["payers"].values()) + 1e-6
    assert f["payers"]["central_fiscal"]["cost"] > 0


def test_run_report_has_fiscal_block(tech_run: Any) -> None:
    s, r = tech_run
    rep = RunReport(s, r, discount_rate=0.03)
    fiscal = rep.summary["fiscal"]
    assert fiscal["discount_rate"] == 0.03
    assert fiscal["payers"]["central_fiscal"]["role"] == "central_budget"
    text = rep.format_text()
    assert "cost to the public purse" in text and "central_fiscal (central budget)" in text
    json.dumps(rep.summary, default=float)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "simkit.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_discount_rate(tmp_path: Path) -> None:
    proc = _cli("run", str(TECH), "--paths", "200", "--block-size", "100", "--json",
                "--discount-rate", "0.04")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["fiscal"]["discount_rate"] == 0.04
    assert out["fiscal"]["total"]["cost"] > 0
    bad = _cli("run", str(TECH), "--paths", "10", "--discount-rate", "abc")
    assert bad.returncode == 2 and "--discount-rate" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("cap", [None, {"rate": 0.01, "overflow": "provincial"}])
def test_des_rule_when_the_fund_fronts_the_claim(cap: dict[str, Any] | None) -> None:
    """Without a guarantor-kind layer the fund is the front (it pays the bank the whole
    covered part); the budget still bears (0.5 - 0.2) / 0.5 = 60 % of the fund's share,
    uncapped or capped (the cap settles on the fund's own share)."""
    from simkit.des import run_des

    fund: dict[str, Any] = {"party": "national_fund", "share": 0.5}
    if cap is not None:
        fund["cap"] = cap
    s = from_dict({
        "parties": {"bank": {}, "national_fund": {}, "provincial": {},
                    "central_fiscal": {"kind": "other"}},
        "agreements": [{"name": "a", "layers": [{"party": "bank", "share": 0.2}, fund,
                                                {"party": "provincial", "share": 0.3}],
                        "fiscal_compensation": RULE}],
        "segments": [{"name": "s", "count": 600, "exposure": 1e6, "default_prob": 0.06,
                      "lgd": 0.5}],
    })
    r = run_des(s, years=1.0, seed=2)[0]
    assert all(r.checks.values())
    ids = r.loans["id"][r.loans["defaulted"]]
    assert len(ids) > 5
    losses = r.ledger.loan_losses(ids)
    cf, nf = r.parties.index("central_fiscal"), r.parties.index("national_fund")
    np.testing.assert_allclose(losses[:, cf], 0.6 * (losses[:, cf] + losses[:, nf]),
                               rtol=1e-9, atol=1e-6)
    assert losses[:, cf].sum() > 0
    if cap is not None:
        assert sum(r.summary["cap_refused"].values()) > 0
