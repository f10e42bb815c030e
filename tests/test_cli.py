"""The command line: exit codes, clear errors without tracebacks, tables and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simkit import load
from simkit.cli import main
from simkit.estimate import expected_results
from tests.conftest import ROOT, SCENARIOS


def test_validate_all_shipped(capsys) -> None:
    assert main(["validate", *map(str, SCENARIOS)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok: ") == len(SCENARIOS)
    assert "126,700 loans" in out


def test_validate_reports_bad_file_without_traceback(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    text = (ROOT / "scenarios" / "nfgf_2422.toml").read_text()
    bad.write_text(text.replace('{ party = "provincial", share = 0.20',
                                '{ party = "provincial", share = 1.2', 1))
    code = main(["validate", str(SCENARIOS[0]), str(bad)])
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    assert f"error: {bad}: agreements[0].layers[2].share must be in [0, 1], got 1.2" \
        in captured.err


def test_run_bad_option_value(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(SCENARIOS[0]), "--paths", "-3"])
    assert info.value.code == 2
    assert "--paths: must be a positive integer, got '-3'" in capsys.readouterr().err


def test_version(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("simkit ")


def test_analytic_table_and_json(tmp_path: Path, capsys) -> None:
    path = str(ROOT / "scenarios" / "anhui_4321.toml")
    assert main(["run", path, "--analytic"]) == 0
    text = capsys.readouterr().out
    for party in ("bank", "hefei_guarantor", "provincial", "local_gov"):
        assert party in text
    assert main(["run", path, "--analytic", "--json", "--out", str(tmp_path / "o")]) == 0
    payload = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert payload == saved
    assert payload["n_loans"] == 126_700
    assert (tmp_path / "o" / "parties.csv").read_text().startswith("party,expected_loss")


def test_closed_form_without_caps_is_exact_share(minimal) -> None:
    """Without caps each party's expected loss is its share of PD x guaranteed x LGD."""
    from simkit import from_dict

    del minimal["agreements"][0]["layers"][3]["cap"]
    s = from_dict(minimal)
    est = expected_results(s)
    total = 1000 * 1e6 * 0.02 * 0.45
    np.testing.assert_allclose(est.expected_loss, [0.2 * total, 0.4 * total, 0.2 * total,
                                                   0.2 * total], rtol=1e-12)
    assert est.fee_income[1] == pytest.approx(0.01 * 1e9)


def test_closed_form_cap_moves_loss_to_overflow(minimal) -> None:
    from simkit import from_dict

    minimal["factors"] = {"national": 0.45}
    s = from_dict(minimal)
    capped = expected_results(s)
    uncapped = expected_results(s.with_changes(
        {"agreements[0].layers[3].cap.rate": 1.0}))
    assert capped.expected_loss[3] < uncapped.expected_loss[3]
    assert capped.expected_loss[1] > uncapped.expected_loss[1]
    np.testing.assert_allclose(capped.expected_loss.sum(), uncapped.expected_loss.sum(),
                               rtol=1e-12)


def test_out_is_not_a_directory(tmp_path: Path, capsys) -> None:
    f = tmp_path / "file"
    f.write_text("keep me")
    assert main(["run", str(SCENARIOS[0]), "--analytic", "--out", str(f)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    assert f.read_text() == "keep me"


def test_shipped_scenario_loads_for_cli() -> None:
    assert load(SCENARIOS[0]).run.n_paths > 0


def test_out_below_a_file_is_a_clear_error(tmp_path: Path, capsys) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["run", str(SCENARIOS[0]), "--analytic", "--out", str(f / "sub")]) == 2
    err = capsys.readouterr().err
    assert "--out cannot be created" in err
    assert "Traceback" not in err


def test_compare_two_scenarios(tmp_path: Path, capsys) -> None:
    a = str(ROOT / "scenarios" / "nfgf_2422.toml")
    b = str(ROOT / "scenarios" / "total_to_total_batch.toml")
    # two different books: refused unless --different-books says the user means it
    assert main(["compare", a, b, "--paths", "1000", "--json"]) == 2
    assert "--different-books" in capsys.readouterr().err
    assert main(["compare", a, b, "--paths", "1000", "--json", "--different-books",
                 "--out", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["note"].startswith("DIFFERENT BOOKS") and not out["paired"]
    rows = out["rows"]
    assert {r["variant"] for r in rows} == {"nfgf_2422", "total_to_total_batch"}
    by = {(r["variant"], r["party"]): r for r in rows if r["measure"] == "el"}
    # 20/40/20/20 without binding caps: the guarantor's expected loss is about twice the bank's
    ratio = by[("nfgf_2422", "guarantor")]["value"] / by[("nfgf_2422", "bank")]["value"]
    assert 1.9 < ratio < 2.2
    assert (tmp_path / "compare.csv").exists() and (tmp_path / "compare.png").exists()


def test_compare_validates_every_file_before_work(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nn_paths = 0\n")
    code = main(["compare", str(SCENARIOS[0]), str(bad), "--out", str(tmp_path / "o")])
    assert code == 2
    assert not (tmp_path / "o").exists()
    assert "bad.toml" in capsys.readouterr().err
