"""Scenario loading and validation: every bad input names file, field path, value, allowed."""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path

import pytest

import simkit
from simkit import ScenarioError, from_dict, load
from tests.conftest import SCENARIOS


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_load_and_pickle(path: Path) -> None:
    s = load(path)
    assert s.source == str(path)
    for agreement in s.agreements:
        assert math.isclose(sum(layer.share for layer in agreement.layers), 1.0)
    again = pickle.loads(pickle.dumps(s))
    assert again == s


def test_shipped_scenarios_cover_the_domain() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"anhui_4321", "nfgf_2422", "total_to_total_batch", "tech_innovation_2024"} <= names
    anhui = load(Path(SCENARIOS[0]).parent / "anhui_4321.toml")
    shares = {layer.party: layer.share for layer in anhui.agreements[0].layers}
    assert shares == {"bank": 0.2, "hefei_guarantor": 0.4, "provincial": 0.3, "local_gov": 0.1}
    tech = load(Path(SCENARIOS[0]).parent / "tech_innovation_2024.toml")
    nf = {a.name: a.share_of("national_fund") for a in tech.agreements}
    assert nf == {"tier1": 0.4, "tier2": 0.35, "tier3": 0.3, "standard": 0.2}
    # DOMAIN.md V7: the original guarantor keeps 20 / 25 / 30 % on tiers 1-3
    assert [tech.agreement(t).share_of("guarantor") for t in ("tier1", "tier2", "tier3")] == [
        0.2, 0.25, 0.3]
    assert all(a.single_limit == 30e6 for a in tech.agreements[:3])
    cap = tech.agreement("tier1").layers[3].cap
    assert cap is not None and cap.rate == 0.05


def test_minimal_defaults(minimal) -> None:
    s = from_dict(minimal)
    assert s.party_names == ("bank", "guarantor", "provincial", "national_fund")
    assert s.party("guarantor").kind == "guarantor"
    assert s.segments[0].agreement == "std"
    assert s.agreements[0].lender == "bank"
    assert s.run.n_paths == 2000
    assert s.factors.copula == "gaussian"


def test_with_changes_revalidates(minimal) -> None:
    s = from_dict(minimal)
    s2 = s.with_changes({"run.n_paths": 10, "agreements[0].layers[0].share": 0.1,
                         "agreements[0].layers[1].share": 0.5})
    assert s2.run.n_paths == 10
    assert s2.agreements[0].share_of("guarantor") == 0.5
    assert s.run.n_paths == 2000  # original untouched
    with pytest.raises(ScenarioError, match=r"agreements\[0\]\.layers shares must sum to 1"):
        s.with_changes({"agreements[0].layers[0].share": 0.3})


def _error(data, match: str) -> ScenarioError:
    with pytest.raises(ScenarioError, match=match) as info:
        from_dict(data, source="x.toml")
    assert str(info.value).startswith("x.toml: ")
    return info.value


def test_share_out_of_range(minimal) -> None:
    minimal["agreements"][0]["layers"][2]["share"] = 1.2
    e = _error(minimal, re.escape("agreements[0].layers[2].share must be in [0, 1], got 1.2"))
    assert e.path == "agreements[0].layers[2].share"


def test_shares_must_sum_to_one(minimal) -> None:
    minimal["agreements"][0]["layers"][0]["share"] = 0.3
    _error(minimal, re.escape("agreements[0].layers shares must sum to 1, got 0.3 + 0.4 + "
                              "0.2 + 0.2 = 1.1"))


def test_unknown_key_did_you_mean(minimal) -> None:
    minimal["agreements"][0]["layers"][1]["sahre"] = 0.4
    _error(minimal, re.escape("unknown key 'sahre' in agreements[0].layers[1]; did you mean "
                              "'share'?"))


def test_unknown_top_level_key(minimal) -> None:
    minimal["segmnets"] = []
    _error(minimal, "unknown key 'segmnets'; did you mean 'segments'")


def test_negative_amount(minimal) -> None:
    minimal["parties"]["guarantor"]["net_assets"] = -5.0
    _error(minimal, re.escape("parties.guarantor.net_assets must be >= 0, got -5.0"))


def test_negative_exposure(minimal) -> None:
    minimal["segments"][0]["exposure"] = -1
    _error(minimal, re.escape("segments[0].exposure must be in [0, 1e+12], got -1"))


def test_cap_without_overflow(minimal) -> None:
    del minimal["agreements"][0]["layers"][3]["cap"]["overflow"]
    _error(minimal, re.escape("agreements[0].layers[3].cap.overflow is required"))


def test_unknown_party(minimal) -> None:
    minimal["agreements"][0]["layers"][1]["party"] = "guarantr"
    _error(minimal, re.escape("agreements[0].layers[1].party names unknown party 'guarantr'; "
                              "did you mean 'guarantor'?"))


def test_unknown_agreement_in_segment(minimal) -> None:
    minimal["segments"][0]["agreement"] = "standard"
    _error(minimal, re.escape("segments[0].agreement names unknown agreement 'standard'"))


def test_unknown_fee_payer(minimal) -> None:
    minimal["agreements"][0]["fees"][0]["from"] = "borower"
    _error(minimal, "fees\\[0\\].from names unknown party 'borower'; did you mean 'borrower'")


def test_bad_default_probability(minimal) -> None:
    minimal["segments"][0]["default_prob"] = 1.5
    _error(minimal, re.escape("segments[0].default_prob must be in (0, 1), got 1.5"))


def test_bad_distribution_kind(minimal) -> None:
    minimal["segments"][0]["exposure"] = {"dist": "lognormel", "median": 1.0, "sigma": 0.5}
    _error(minimal, "segments\\[0\\].exposure.dist must be one of .*did you mean 'lognormal'")


def test_bad_lgd_sd(minimal) -> None:
    minimal["segments"][0]["lgd"] = {"mean": 0.45, "sd": 0.6}
    _error(minimal, re.escape("segments[0].lgd.sd must be < sqrt(mean*(1-mean))"))


def test_factor_loadings_too_large(minimal) -> None:
    minimal["factors"] = {"national": 0.8, "regional": 0.7}
    _error(minimal, re.escape("factors loadings must have squares summing below 1, got "
                              "0.8^2 + 0.7^2 = 1.13"))


def test_wrong_type(minimal) -> None:
    minimal["run"]["n_paths"] = "many"
    _error(minimal, re.escape("run.n_paths must be an integer in [1, 1e+10], got 'many'"))


def test_credit_line_without_party(minimal) -> None:
    minimal["credit_lines"] = [{"from": "national_fund", "amount": 1e9}]
    _error(minimal, re.escape("credit_lines[0].to is required"))


def test_negative_lag(minimal) -> None:
    minimal["des"] = {"claim_payment_days": -3}
    _error(minimal, re.escape("des.claim_payment_days must be in [0, 3650], got -3"))


def test_duplicate_layer_party(minimal) -> None:
    minimal["agreements"][0]["layers"][2]["party"] = "guarantor"
    _error(minimal, "repeats party 'guarantor'")


def test_missing_required(minimal) -> None:
    del minimal["segments"][0]["lgd"]
    _error(minimal, re.escape("segments[0].lgd is required"))


def test_malformed_toml_names_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('[scenario]\nname = "x"\n[run\nn_paths = 3\n')
    with pytest.raises(ScenarioError, match=r"bad\.toml: is not valid TOML: .*line 3"):
        load(f)


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.toml: cannot be read"):
        load(tmp_path / "nope.toml")


def test_public_api_is_small() -> None:
    assert set(simkit.__all__) == {"Scenario", "ScenarioError", "__version__", "from_dict",
                                   "load"}


def test_import_does_not_pull_matplotlib() -> None:
    import subprocess
    import sys

    code = ("import sys, simkit, simkit.scenario, simkit.sharing; "
            "print('matplotlib' in sys.modules, 'simpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def test_seed_bound_printed_exactly(minimal) -> None:
    minimal["run"]["seed"] = -1
    _error(minimal, re.escape("run.seed must be an integer in [0, 9223372036854775807], got -1"))


def test_choice_error_suggests_after_value(minimal) -> None:
    minimal["agreements"][0]["layers"][3]["cap"]["pool"] = "regoin"
    _error(minimal, re.escape("cap.pool must be one of 'agreement', 'guarantor', 'region', "
                              "'segment', got 'regoin'; did you mean 'region'?"))


def test_guarantor_layer_cannot_overflow_to_a_guarantor(minimal) -> None:
    minimal["parties"]["county"] = {"kind": "guarantor"}
    minimal["agreements"][0]["layers"][1]["cap"] = {"rate": 0.05, "overflow": "county"}
    _error(minimal, re.escape("agreements[0].layers[1].cap.overflow must be a party not of "
                              "guarantor kind"))


def test_zero_loans_is_an_error(minimal) -> None:
    minimal["segments"][0]["count"] = 0
    _error(minimal, re.escape("segments must contain at least one loan"))


def test_count_is_bounded(minimal) -> None:
    minimal["segments"][0]["count"] = 10**18
    _error(minimal, re.escape("segments[0].count must be an integer in [0, 1e+08]"))


def test_exposure_distribution_must_be_an_amount(minimal) -> None:
    minimal["segments"][0]["exposure"] = {"dist": "beta", "mean": 0.5, "sd": 0.1}
    _error(minimal, re.escape("segments[0].exposure.dist must be fixed, uniform, loguniform "
                              "or lognormal for an amount, got 'beta'"))
    minimal["segments"][0]["exposure"] = {"dist": "uniform", "low": 0, "high": 10}
    _error(minimal, re.escape("segments[0].exposure.low must be > 0 yuan, got 0.0"))


def test_rate_above_needs_threshold(minimal) -> None:
    minimal["agreements"][0]["fees"][0]["rate_above"] = 0.015
    _error(minimal, re.escape("agreements[0].fees[0].threshold is required when rate_above "
                              "is given"))


def test_credit_line_to_itself(minimal) -> None:
    minimal["credit_lines"] = [{"from": "national_fund", "to": "national_fund", "amount": 1.0}]
    _error(minimal, re.escape("credit_lines[0].to must be a party other than 'from'"))


@pytest.mark.parametrize("path", ["agreements[3].name", "agreements.name", "run.n_paths.x",
                                  "segments[-1].count", ""])
def test_with_changes_bad_path(minimal, path: str) -> None:
    s = from_dict(minimal, source="x.toml")
    with pytest.raises(ScenarioError, match=re.escape(f"x.toml: {path!r} is not a field path")):
        s.with_changes({path: 1})


def test_tape_path_survives_with_changes(tmp_path: Path) -> None:
    (tmp_path / "loans.csv").write_text("exposure,default_prob,lgd\n1e6,0.02,0.4\n")
    (tmp_path / "s.toml").write_text(
        '[parties.bank]\n[parties.guarantor]\n[book]\ntape = "loans.csv"\n'
        '[[agreements]]\nname = "a"\nlayers = [{party = "bank", share = 0.2}, '
        '{party = "guarantor", share = 0.8}]\n')
    s = load(tmp_path / "s.toml").with_changes({"run.seed": 5})
    assert s.tape == str(tmp_path / "loans.csv")


def test_toml_with_bom(tmp_path: Path, minimal) -> None:
    f = tmp_path / "bom.toml"
    f.write_bytes(b"\xef\xbb\xbf" + (Path(SCENARIOS[0])).read_bytes())
    assert load(f).name == load(SCENARIOS[0]).name
