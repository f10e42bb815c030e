"""`simkit report`, `simkit calibrate`, `simkit scenarios` and running shipped scenarios
by name."""

from __future__ import annotations

import json
from pathlib import Path

from simkit import catalog
from simkit.cli import main
from tests.conftest import SCENARIOS


def test_shipped_scenarios_are_listed_and_resolved_by_name(capsys) -> None:
    names = catalog.shipped()
    assert set(names) == {p.stem for p in SCENARIOS}
    assert catalog.resolve("anhui_4321") == names["anhui_4321"]
    assert catalog.resolve("anhui_4321.toml") == names["anhui_4321"]
    assert catalog.resolve("no_such_scenario") == Path("no_such_scenario")
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in names)
    assert "4321" in out  # descriptions are shown


def test_run_by_name(capsys) -> None:
    assert main(["run", "nfgf_2422", "--paths", "500", "--quiet"]) == 0
    assert "simkit run nfgf_2422" in capsys.readouterr().out


def test_unknown_name_is_a_clear_error(capsys) -> None:
    assert main(["run", "no_such_scenario", "--paths", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no_such_scenario") and "Traceback" not in err


def test_calibrate_command(tmp_path: Path, capsys) -> None:
    code = main(["calibrate", "nfgf_2422", "--rates", "1.9%,2.4%,1.6%,2.1%,1.84%",
                 "--paths", "300", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "mle" in out and "moments" in out and "--set 'factors.national=" in out
    data = json.loads((tmp_path / "calibration.json").read_text())
    assert data["fit"]["method"] == "mle" and data["fit"]["n_years"] == 5
    assert (tmp_path / "effect.csv").read_text().startswith("case,default_prob,rho,party")


def test_calibrate_bad_rates_is_one_line(capsys) -> None:
    assert main(["calibrate", "nfgf_2422", "--rates", "2%,abc"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --rates: item 'abc' is not a number or a percentage " \
                          "(e.g. 3.69% or 0.0369)"
    assert main(["calibrate", "nfgf_2422", "--rates", "2%,2%,2%"]) == 2
    assert "rates are all equal" in capsys.readouterr().err


def test_report_command(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", "nfgf_2422", "--paths", "400", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").stat().st_size > 5_000
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a folder of simkit results" in capsys.readouterr().err
