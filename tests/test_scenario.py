"""Scenario loading and validation: every bad input names file, field path, value, allowed."""

from __future__ import annotations

import math
import pickle
import re
from dataclasses import replace
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


# --------------------------------------------------------------------------------------
# issue 7: inputs that crashed or passed silently
# --------------------------------------------------------------------------------------
def _file_error(tmp_path: Path, text: str, match: str) -> ScenarioError:
    f = tmp_path / "s.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError, match=match) as info:
        load(f)
    assert str(info.value).startswith(f"{f}: ")
    return info.value


def _toml(minimal) -> str:
    from tests.strategies import to_toml

    return to_toml(minimal)


@pytest.mark.parametrize("text", ["x = " + "[" * 600 + "]" * 600,
                                  "x = " + "{a = " * 400 + "1" + "}" * 400,
                                  "x = " + "[" * 40 + "]" * 40])
def test_deep_nesting_is_a_clear_error(tmp_path: Path, minimal, text: str) -> None:
    # issue 7 item 5: RecursionError from tomllib
    _file_error(tmp_path, text + "\n" + _toml(minimal), "nest")


def test_deep_nesting_through_with_changes(minimal) -> None:
    deep: list = []
    for _ in range(2000):
        deep = [deep]
    with pytest.raises(ScenarioError, match=r"segments\[0\]\.count nests arrays or tables "
                       "deeper than 32 levels"):
        from_dict(minimal).with_changes({"segments[0].count": deep})


def test_integer_beyond_float_range(tmp_path: Path, minimal) -> None:
    # issue 7 item 6: OverflowError in check_number
    text = _toml(minimal).replace("net_assets = 1000000000.0", "net_assets = 1" + "0" * 400)
    assert "0" * 400 in text
    _file_error(tmp_path, text, r"parties\.guarantor\.net_assets must be a finite number >= 0, "
                r"got an integer of about 401 digits \(beyond the float range")
    with pytest.raises(ScenarioError, match=r"parties\.guarantor\.net_assets must be a finite"):
        from_dict(minimal).with_changes({"parties.guarantor.net_assets": 10**400})


def test_integer_literal_over_the_digit_limit(tmp_path: Path, minimal) -> None:
    # issue 7 item 6: ValueError from tomllib's 4,300-digit limit
    text = _toml(minimal).replace("net_assets = 1000000000.0", "net_assets = 1" + "0" * 5000)
    _file_error(tmp_path, text, "a number literal is too long")
    with pytest.raises(ScenarioError, match="got an integer of about 5,001 digits"):
        from_dict(minimal).with_changes({"parties.guarantor.net_assets": 10**5000})
    with pytest.raises(ScenarioError, match="about 5,001 digits"):
        from_dict(minimal).with_changes({"segments[0].count": 10**5000})


@pytest.mark.parametrize("field,value", [("lgd", {"mean": 0.7, "sd": 1e200}),
                                         ("default_prob", {"dist": "beta", "mean": 0.02,
                                                           "sd": 1e200})])
def test_huge_sd_is_a_clear_error(minimal, field: str, value: dict) -> None:
    # issue 7 item 7: OverflowError from sd**2
    minimal["segments"][0][field] = value
    _error(minimal, rf"segments\[0\]\.{field}\.sd must be < sqrt\(mean\*\(1-mean\)\)")


@pytest.mark.parametrize("period", [0.5, 1.5, 0.25])
def test_cap_period_must_be_whole_years(minimal, period: float) -> None:
    # issue 7 item 9: accepted, then the Monte Carlo raised ValueError
    minimal["agreements"][0]["layers"][3]["cap"]["period_years"] = period
    _error(minimal, r"agreements\[0\]\.layers\[3\]\.cap\.period_years must be a whole number "
           r"of years in \[1, 10\] \(caps are settled per statistics period")


def test_caps_need_one_common_period(minimal) -> None:
    minimal["agreements"][0]["layers"][2]["cap"] = {"rate": 0.04, "overflow": "guarantor",
                                                    "period_years": 2}
    _error(minimal, r"agreements\[0\]\.layers\[2\]\.cap\.period_years is 2 but "
           r"agreements\[0\]\.layers\[3\]\.cap\.period_years is 1: every cap must use the "
           "same statistics period")
    minimal["agreements"][0]["layers"][3]["cap"]["period_years"] = 2.0
    s = from_dict(minimal)
    assert s.agreements[0].layers[3].cap.period_years == 2.0
    assert s.cap_period_years == 2  # the one rule the Monte Carlo reads


@pytest.mark.parametrize("rate", [1e308, 1e12, 1.5e7])
def test_applications_per_year_is_bounded(minimal, rate: float) -> None:
    # issue 7 item 9: `lam value too large` / a 7 TiB array in the DES
    minimal["segments"][0]["applications_per_year"] = rate
    _error(minimal, r"segments\[0\]\.applications_per_year must be <= 1e\+07 \(ten times the "
           r"1\.05 million firms")


def test_memory_check_refuses_runs_that_cannot_fit(minimal) -> None:
    # issue 7 item 9: count / block_size / n_paths at their maxima -> MemoryError
    from simkit.experiments import run_des_summary, run_summary
    from simkit.resources import check_memory, des_bytes, monte_carlo_bytes

    minimal["segments"][0]["count"] = 10**8
    minimal["run"].update(n_paths=10**10, block_size=10**7)
    s = from_dict(minimal, source="big.toml")
    assert monte_carlo_bytes(s) > 10**12  # the result arrays alone: 1e10 paths
    assert des_bytes(s) > 10**11  # 3e8 applications
    with pytest.raises(ScenarioError, match=r"^big\.toml: needs about [\d,.]+ GiB of memory for "
                       "the Monte Carlo run, more than the 1 MiB available; reduce run.n_paths"):
        check_memory(s, "montecarlo", available=2**20)
    with pytest.raises(ScenarioError, match=r"needs about .* for the discrete-event run"):
        check_memory(s, "des", available=2**20)
    # the real check (this machine has far less than a terabyte) runs before any work
    with pytest.raises(ScenarioError, match="of memory for the Monte Carlo run"):
        run_summary(s)
    with pytest.raises(ScenarioError, match="of memory for the discrete-event run"):
        run_des_summary(s)
    small = from_dict(_minimal_copy())
    assert check_memory(small, "montecarlo", available=2**34) < 2**28
    assert check_memory(small, "des", available=2**34) < 2**28


def _minimal_copy() -> dict:
    import copy

    from tests.conftest import MINIMAL

    return copy.deepcopy(MINIMAL)


def test_memory_estimate_scales_with_its_drivers(minimal) -> None:
    from simkit.resources import MC_BYTES_PER_LOAN, monte_carlo_bytes

    s = from_dict(minimal)
    more_loans = s.with_changes({"segments[0].count": 101_000})
    assert monte_carlo_bytes(more_loans) - monte_carlo_bytes(s) == 100_000 * MC_BYTES_PER_LOAN
    assert monte_carlo_bytes(s.with_changes({"run.n_paths": 4000})) > monte_carlo_bytes(s)
    assert monte_carlo_bytes(s, workers=4) > monte_carlo_bytes(s)


def test_available_bytes_is_positive() -> None:
    from simkit.resources import available_bytes

    have = available_bytes()
    assert have is None or have > 0


@pytest.mark.parametrize("name", ["smes\n", "a" * 65, "-x", "ünï", "a b", ""])
def test_identifiers_are_full_matches_and_bounded(minimal, name: str) -> None:
    # issue 7 item 17: trailing newline accepted by re.match("^...$"), 100,000 characters
    minimal["segments"][0]["name"] = name
    err = _error(minimal, r"segments\[0\]\.name must be a name of at most 64 ASCII letters")
    assert len(str(err)) < 300


def test_identifier_of_64_characters_is_fine(minimal) -> None:
    minimal["segments"][0]["name"] = "a" * 64
    assert from_dict(minimal).segments[0].name == "a" * 64


@pytest.mark.parametrize("label", ["region", "sector"])
@pytest.mark.parametrize("value", [" ", "", "\t", " north", "a\nb", "x" * 65])
def test_labels_must_not_be_blank(minimal, label: str, value: str) -> None:
    minimal["segments"][0][label] = value
    _error(minimal, rf"segments\[0\]\.{label} must be a non-blank label")


def test_party_region_label(minimal) -> None:
    minimal["parties"]["guarantor"]["region"] = "  "
    _error(minimal, r"parties\.guarantor\.region must be a non-blank label")


def test_numpy_scalars_in_with_changes(minimal) -> None:
    # issue 7 item 17: `got np.int64(1000)`
    import numpy as np

    s = from_dict(minimal)
    for n in np.arange(1000, 3000, 1000):
        assert s.with_changes({"run.n_paths": n}).run.n_paths == int(n)
    s2 = s.with_changes({"agreements[0].layers[0].share": np.float64(0.25),
                         "agreements[0].layers[1].share": np.float64(0.35),
                         "factors.national": np.float32(0.25),
                         "des.direct_lending": np.bool_(True),
                         "segments[0].count": np.int32(10)})
    assert s2.agreements[0].layers[0].share == 0.25
    assert type(s2.run.n_paths) is int and s2.des.direct_lending is True
    assert s2.segments[0].count == 10
    with pytest.raises(ScenarioError, match=r"run\.n_paths must be an integer in \[1, "):
        s.with_changes({"run.n_paths": np.int64(0)})


def test_with_changes_needs_a_dict(minimal) -> None:
    with pytest.raises(ScenarioError, match="changes must be a dict"):
        from_dict(minimal).with_changes([("run.n_paths", 5)])  # type: ignore[arg-type]


def test_long_bad_values_are_cut_in_messages(minimal) -> None:
    minimal["segments"][0]["tenor_years"] = "x" * 100_000
    err = _error(minimal, r"segments\[0\]\.tenor_years must be a number")
    assert "100,002 characters" in str(err) and len(str(err)) < 300


@pytest.mark.parametrize("kind", ["dir", "fifo"])
def test_scenario_path_must_be_a_regular_file(tmp_path: Path, kind: str) -> None:
    import os

    f = tmp_path / "s.toml"
    if kind == "dir":
        f.mkdir()
    else:
        os.mkfifo(f)
    what = "directory" if kind == "dir" else "FIFO"
    with pytest.raises(ScenarioError, match=rf"s\.toml: is a {what}, not a regular file"):
        load(f)


# --------------------------------------------------------------------------------------
# policy-rule warnings (issue 7 item 18)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_follow_the_policy_rules(path: Path) -> None:
    from simkit.policy_rules import policy_warnings

    assert policy_warnings(load(path)) == []


@pytest.mark.parametrize("changes,rule", [
    ({"agreements[0].layers[0].share": 0.05, "agreements[0].layers[1].share": 0.55},
     r"agreements\[0\] \(std\): the lending bank 'bank' bears 5 % .* at least 20 % .*\[S2\]\[S9\]"),
    ({"agreements[0].fees[0].rate": 0.012},
     r"agreements\[0\]\.fees\[0\]: guarantee fee 1\.2 % on single guarantees of at most 5 million "
     r"yuan is above the 1 % cap .*\[S9\]"),
    ({"agreements[0].layers[2].share": 0.1, "agreements[0].layers[1].share": 0.5},
     r"the provincial share 10 % is below the national fund's 20 %.*\[S9\]"),
    ({"agreements[0].layers[3].cap.rate": 0.10},
     r"agreements\[0\]\.layers\[3\]\.cap\.rate: 10 % lies outside .* 3 % .* 5 %"),
    ({"parties.guarantor.leverage_limit": 20},
     r"parties\.guarantor\.leverage_limit: 20x net assets is above .*\[S16\]\[S19\]"),
    ({"parties.guarantor.single_client_limit": 0.5},
     r"parties\.guarantor\.single_client_limit: 50 % .* 10 % single-client .*\[S16\]"),
    ({"agreements[0].layers[3].share": 0.3, "agreements[0].layers[2].share": 0.3,
      "agreements[0].layers[1].share": 0.2},
     r"national fund's share 30 % is above the 20 % of its general rule"),
])
def test_policy_breaches_warn_with_their_source(minimal, changes: dict, rule: str) -> None:
    from simkit.policy_rules import policy_warnings

    s = from_dict(minimal)
    assert policy_warnings(s) == []
    warnings = policy_warnings(s.with_changes(changes))
    assert len(warnings) == 1, warnings
    assert re.search(rule, warnings[0]), warnings[0]
    assert "DOMAIN.md" in warnings[0]


def test_tech_tier_agreements_follow_the_tech_plan(minimal) -> None:
    from simkit.policy_rules import policy_warnings

    s = from_dict(minimal).with_changes({
        "agreements[0].layers[3].share": 0.4, "agreements[0].layers[1].share": 0.2,
        "segments[0].tech_tier": 1})
    assert policy_warnings(s) == []  # tier 1: fund up to 40 %, provincial >= 20 %
    tier3 = s.with_changes({"segments[0].tech_tier": 3})
    (w,) = policy_warnings(tier3)
    assert "above the tech plan's 30 % for tier 3" in w


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from simkit.cli import main

    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_prints_warnings_and_strict_fails(tmp_path: Path, minimal, capsys) -> None:
    minimal["agreements"][0]["fees"][0]["rate"] = 0.012
    f = tmp_path / "fee.toml"
    f.write_text(_toml(minimal), encoding="utf-8")
    rc, out, err = _cli(["validate", str(f)], capsys)
    assert rc == 0 and out.startswith(f"ok: {f}") and "1 policy warning(s)" in out
    assert err.startswith(f"warning: {f}: agreements[0].fees[0]: guarantee fee 1.2 %")
    assert len(err.splitlines()) == 1
    rc, out, err = _cli(["validate", "--strict", str(f)], capsys)
    assert rc == 2 and out == "" and err.startswith(f"error: {f}: agreements[0].fees[0]")
    rc, out, err = _cli(["run", "--strict", "--quiet", "--paths", "10", str(f)], capsys)
    assert rc == 2 and out == ""
    assert err.splitlines() == [f"error: {f}: " + err.split(": ", 2)[2].rstrip()]
    assert err.rstrip().endswith("(--strict)")
    rc, out, err = _cli(["run", "--quiet", "--paths", "200", str(f)], capsys)
    assert rc == 0 and err.startswith(f"warning: {f}: agreements[0].fees[0]")


def test_cli_validate_reports_every_file(tmp_path: Path, minimal, capsys, monkeypatch) -> None:
    # issue 7 item 8: one crashing file stopped `simkit validate a b` before b
    good = tmp_path / "good.toml"
    good.write_text(_toml(minimal), encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text("x = " + "[" * 600 + "]" * 600 + "\n", encoding="utf-8")
    rc, out, err = _cli(["validate", str(bad), str(good)], capsys)
    assert rc == 2
    assert out.startswith(f"ok: {good}")
    assert err.startswith(f"error: {bad}: ") and len(err.splitlines()) == 1
    # even a bug in a check does not stop the other files
    import simkit.policy_rules

    def boom(s):
        raise RuntimeError("bug")

    monkeypatch.setattr(simkit.policy_rules, "policy_warnings", boom)
    rc, out, err = _cli(["validate", str(good), str(good)], capsys)
    assert rc == 2 and err.count("internal error while validating (RuntimeError: bug)") == 2


def test_cli_des_refuses_a_tape_only_scenario(tmp_path: Path, minimal, capsys) -> None:
    # issue 7 item 15: 0 applications and exit 0
    (tmp_path / "loans.csv").write_text("exposure,default_prob,lgd\n1e6,0.02,0.4\n")
    del minimal["segments"]
    minimal["book"] = {"tape": "loans.csv"}
    f = tmp_path / "tape.toml"
    f.write_text(_toml(minimal), encoding="utf-8")
    rc, out, err = _cli(["des", "--quiet", str(f)], capsys)
    assert rc == 2 and out == ""
    assert err.splitlines() == [f"error: {f}: segments are required by the discrete-event "
                                "model, which draws applicants from [[segments]]; this "
                                "scenario has only a loan tape ([book] tape), which only "
                                "`simkit run` (Monte Carlo) uses"]
    from simkit.des import run_des

    with pytest.raises(ScenarioError, match="segments are required by the discrete-event"):
        run_des(load(f))


@pytest.mark.parametrize("field,value", [("lgd", {"mean": 0.5, "sd": 1e-300}),
                                         ("default_prob", {"dist": "beta", "mean": 0.5,
                                                           "sd": 1e-300})])
def test_tiny_beta_sd_is_a_clear_error(minimal, field: str, value: dict) -> None:
    # found by the fuzz battery: sd**2 underflowed to 0 -> ZeroDivisionError
    minimal["segments"][0][field] = value
    _error(minimal, rf"segments\[0\]\.{field}\.sd must be 0 \(a fixed value\) or >= 1e-06")


def test_cli_validate_warns_about_runs_that_cannot_fit(tmp_path: Path, minimal, capsys) -> None:
    minimal["segments"][0]["count"] = 10**8
    minimal["run"].update(n_paths=10**10, block_size=10**7)
    f = tmp_path / "big.toml"
    f.write_text(_toml(minimal), encoding="utf-8")
    rc, out, err = _cli(["validate", str(f)], capsys)
    assert rc == 0 and out.startswith(f"ok: {f}")
    lines = err.splitlines()
    assert len(lines) == 2 and all(x.startswith(f"warning: {f}: needs about ") for x in lines)
    assert "Monte Carlo" in lines[0] and "discrete-event" in lines[1]
    rc, out, err = _cli(["validate", "--strict", str(f)], capsys)
    assert rc == 2


def test_long_names_are_cut_in_reference_and_key_errors(minimal) -> None:
    minimal["agreements"][0]["layers"][0]["party"] = "p" * 100_000
    err = _error(minimal, r"agreements\[0\]\.layers\[0\]\.party names unknown party 'ppp")
    assert len(str(err)) < 400
    minimal["agreements"][0]["layers"][0]["party"] = "bank"
    minimal["k" * 100_000] = 1
    err = _error(minimal, "unknown key 'kkk")
    assert len(str(err)) < 600


def test_long_keys_are_cut_in_the_field_path(minimal) -> None:
    """A 5,000-character party name is cut in the field path as in the value (found by
    the fuzz battery's random profile: the message was one 5,000-character line)."""
    minimal["parties"]["k" * 5000] = {"kind": "other"}
    with pytest.raises(ScenarioError) as info:
        from_dict(minimal)
    text = str(info.value)
    assert len(text) < 400 and "(5,000 characters)" in text
    assert info.value.path == "parties." + "k" * 5000  # the attribute keeps the whole path


# --------------------------------------------------------------------------------------
# value objects hold their invariants; to_dict round-trips (issue 8, item 5)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_to_dict_round_trips(path: Path) -> None:
    s = load(path)
    again = from_dict(s.to_dict())
    assert again == s
    assert again.to_dict() == s.to_dict()
    # the mapping is plain TOML data: it pickles and holds no simkit objects
    assert pickle.loads(pickle.dumps(s.to_dict())) == s.to_dict()


def test_no_raw_copy_is_stored() -> None:
    import dataclasses

    from simkit.scenario import Scenario

    assert "raw" not in {f.name for f in dataclasses.fields(Scenario)}
    s = load(SCENARIOS[0])
    assert s.raw == s.to_dict()  # derived on demand, for older callers


def test_to_dict_round_trips_generated_scenarios() -> None:
    from hypothesis import HealthCheck, given, settings

    from tests.strategies import valid_tweaks

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(valid_tweaks())
    def check(data: dict) -> None:
        try:
            s = from_dict(data)
        except ScenarioError:
            return
        assert from_dict(s.to_dict()) == s

    check()


@pytest.mark.parametrize("build, message", [
    (lambda s: replace(s.agreements[0].layers[0], share=1.7),
     "Layer.share must be in [0, 1], got 1.7"),
    (lambda s: replace(s.agreements[0].layers[0], lag_days=-1.0),
     "Layer.lag_days must be in [0, 3650], got -1.0"),
    (lambda s: replace(s.run, n_paths=0),
     "RunSettings.n_paths must be an integer in [1, 1e+10], got 0"),
    (lambda s: replace(s.des, years=0.0), "DesSettings.years must be in (0, 50], got 0.0"),
    (lambda s: replace(s.factors, copula="clayton"),
     "Factors.copula must be one of 'gaussian', 'student_t', got 'clayton'"),
    (lambda s: replace(s.factors.loadings, national=0.8, regional=0.7),
     "Loadings.r_squared (sum of squared loadings) must be below 1, got 1.13"),
    (lambda s: replace(s.segments[0], count=-1),
     "Segment.count must be an integer in [0, 1e+08], got -1"),
    (lambda s: replace(s.segments[0].lgd, mean=1.5), "Lgd.mean must be in [0, 1], got 1.5"),
    (lambda s: replace(s.parties[0], kind="insurer"), "Party.kind must be one of"),
    (lambda s: replace(s.regulation, small_weight=2.0),
     "Regulation.small_weight must be in [0, 1], got 2.0"),
])
def test_replace_with_a_bad_value_raises_the_clear_error(minimal, build, message) -> None:
    s = from_dict(minimal)
    with pytest.raises(ScenarioError) as info:
        build(s)
    assert str(info.value).startswith(message), str(info.value)


def test_replace_cap_period_and_agreement_shares(minimal) -> None:
    from simkit.scenario import Cap, Layer

    with pytest.raises(ScenarioError, match=re.escape("Cap.period_years must be a whole "
                                                      "number of years in [1, 10]")):
        Cap(rate=0.04, overflow="guarantor", period_years=0.5)
    s = from_dict(minimal)
    ag = s.agreements[0]
    with pytest.raises(ScenarioError, match=r"^Agreement\.layers shares must sum to 1"):
        replace(ag, layers=(*ag.layers[:-1], Layer(ag.layers[-1].party, 0.9)))


def test_replace_of_the_scenario_checks_cross_references(minimal) -> None:
    """A scenario built by dataclasses.replace is checked by the loader again: a layer
    naming no party fails with the loader's dotted path."""
    s = from_dict(minimal, source="x.toml")
    ag = s.agreements[0]
    bad = replace(ag, layers=(replace(ag.layers[0], party="nobody"), *ag.layers[1:]))
    with pytest.raises(ScenarioError, match=re.escape("x.toml: agreements[0].layers[0].party "
                                                      "names unknown party 'nobody'")):
        replace(s, agreements=(bad,))
    ok = replace(s, run=replace(s.run, n_paths=10))
    assert ok.run.n_paths == 10 and ok == s.with_changes({"run.n_paths": 10})


def test_with_changes_keeps_the_book_seed_without_raw(minimal) -> None:
    s = from_dict(minimal)
    assert s.book_seed == s.run.seed
    s2 = s.with_changes({"run.seed": 99})
    assert s2.run.seed == 99 and s2.book_seed == s.book_seed
    s3 = s.with_changes({"book.seed": 5})
    assert s3.book_seed == 5 and s3.run.seed == s.run.seed


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_validated_scenarios_run_in_both_engines(path: Path) -> None:
    """What the loader accepts both engines run (shipped files at a tiny size; the fuzz
    battery does the same for generated variants)."""
    from tests.test_fuzz import _run_both

    _run_both(load(path))


def test_validated_variants_run_in_both_engines(minimal) -> None:
    """Legal variants that exercise engine restrictions: caps over a 2-year statistics
    period on a 2-year horizon, the Student-t copula with a downturn LGD, an
    ``annualised`` cap base with short tenors."""
    from tests.test_fuzz import _run_both

    s = from_dict(minimal)
    capped = [i for i, la in enumerate(s.agreements[0].layers) if la.cap is not None]
    changes: dict = {"run.horizon_years": 2, "factors.copula": "student_t",
                     "factors.downturn_lgd": 0.5, "segments[0].tenor_years": 0.5}
    for i in capped:
        changes[f"agreements[0].layers[{i}].cap.period_years"] = 2
        changes[f"agreements[0].layers[{i}].cap.base"] = "annualised"
    _run_both(s.with_changes(changes))


def test_with_changes_renames_the_only_agreement(minimal) -> None:
    """Segments of a one-agreement scenario follow it (the file leaves them implicit)."""
    s = from_dict(minimal).with_changes({"agreements[0].name": "renamed"})
    assert [seg.agreement for seg in s.segments] == ["renamed"] * len(s.segments)
