"""The command line: exit codes, clear errors without tracebacks, tables and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    lines = (tmp_path / "o" / "parties.csv").read_text().splitlines()
    assert lines[0] == "scenario,seed,horizon_years,unit,party,measure,value,se,basis"
    assert lines[1].startswith("anhui_4321,,1,yuan,bank,el,")


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


# --------------------------------------------------------------------------------------
# issue 7: --out "", help text, key names, result sets, worker deaths
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["run", "des", "compare"])
def test_empty_out_is_a_clear_error(command: str, tmp_path: Path, capsys,
                                    monkeypatch) -> None:
    """``--out ""`` used to write into the current directory (item 14)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main([command, str(SCENARIOS[0]), "--out", ""])
    assert info.value.code == 2
    assert "--out: must name a folder, got ''" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_out_symlink_and_project_folders_are_refused(tmp_path: Path, capsys) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    assert main(["run", str(SCENARIOS[0]), "--analytic", "--out", str(tmp_path / "link")]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    (real / "sub").mkdir()
    assert main(["run", str(SCENARIOS[0]), "--analytic", "--out", str(real)]) == 2
    err = capsys.readouterr().err
    assert "holds folders (sub)" in err and "Traceback" not in err
    assert sorted(p.name for p in real.iterdir()) == ["sub"]


@pytest.mark.parametrize("command", ["run", "compare"])
def test_help_has_no_doubled_percent(command: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "%%" not in out
    assert "99.9 %" in out


def test_analytic_json_uses_the_monte_carlo_key_names(tmp_path: Path, capsys) -> None:
    path = str(ROOT / "scenarios" / "nfgf_2422.toml")
    assert main(["run", path, "--analytic", "--json"]) == 0
    closed = json.loads(capsys.readouterr().out)
    assert main(["run", path, "--paths", "500", "--json", "--quiet"]) == 0
    mc = json.loads(capsys.readouterr().out)
    assert closed["parties"].keys() == mc["parties"].keys()
    for party, row in closed["parties"].items():
        keys = set(row) - {"party"}
        assert keys <= set(mc["parties"][party]), keys - set(mc["parties"][party])
        assert {"el", "fee_income", "net_result", "el_pct_guaranteed"} <= keys
        assert row["net_result"] == pytest.approx(row["fee_income"] - row["el"])
    for key in ("scenario", "source", "n_loans", "guaranteed"):
        assert closed[key] == mc[key]


def test_result_set_replaces_the_folder_whole(tmp_path: Path, capsys) -> None:
    """A second run swaps in a complete new set; unrelated files are kept (item 13)."""
    out = tmp_path / "o"
    path = str(SCENARIOS[0])
    assert main(["run", path, "--analytic", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    first = (out / "summary.json").stat().st_ino
    assert main(["compare", path, "--paths", "2000", "--quiet", "--set",
                 "agreements[0].layers[0].share=0.3", "--set",
                 "agreements[0].layers[1].share=0.3", "--out", str(out)]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in out.iterdir())
    assert names == ["compare.csv", "compare.json", "compare.parquet", "compare.png",
                     "notes.txt", "parties.csv", "summary.json"]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "summary.json").stat().st_ino == first  # carried over, not rewritten
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_result_set_left_as_it_was_when_writing_fails(tmp_path: Path) -> None:
    from simkit import report

    out = tmp_path / "o"
    report.write_json(out / "summary.json", {"old": 1})
    with pytest.raises(RuntimeError), report.result_set(out) as tmp:
        report.write_json(tmp / "summary.json", {"new": 1})
        raise RuntimeError("disk full")
    assert json.loads((out / "summary.json").read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_result_set_cancelled_by_a_deferred_interrupt(tmp_path: Path) -> None:
    """A signal pending when the set is complete cancels the commit, leaves no debris."""
    import os
    import signal

    from simkit import _interrupt, report

    out = tmp_path / "o"
    report.write_json(out / "summary.json", {"old": 1})
    with _interrupt.deferred():
        with pytest.raises(_interrupt.Interrupted) as info, report.result_set(out) as tmp:
            report.write_json(tmp / "summary.json", {"new": 1})
            os.kill(os.getpid(), signal.SIGTERM)  # recorded, not acted on
            report.write_json(tmp / "extra.json", {"new": 2})
        _interrupt.clear()
    assert info.value.signum == signal.SIGTERM
    assert json.loads((out / "summary.json").read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_figures_replace_a_symlink_instead_of_following_it(tmp_path: Path) -> None:
    """Figures are written atomically and never through a link out of DIR (item 12)."""
    from simkit.des import plot_des, simulate
    from tests.test_des import scenario

    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    out = tmp_path / "o"
    out.mkdir()
    (out / "des_capital.png").symlink_to(victim)
    files = plot_des(simulate(scenario(**{"des.years": 1}), seed=5), out)
    assert victim.read_text() == "keep"
    link = out / "des_capital.png"
    assert not link.is_symlink() and link.read_bytes()[:4] == b"\x89PNG"
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in files)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_des_out_is_one_result_set(tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    path = str(ROOT / "scenarios" / "nfgf_2422.toml")
    (tmp_path / "o").mkdir()
    (out / "des_capital.png").symlink_to(tmp_path / "victim.png")
    (tmp_path / "victim.png").write_bytes(b"keep")
    assert main(["des", path, "--years", "0.25", "--quiet", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert {"des_summary.json", "des_series.csv", "des_capital.png"} <= set(names)
    assert (tmp_path / "victim.png").read_bytes() == b"keep"
    assert not (out / "des_capital.png").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o", "victim.png"]


def _pytest(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_suite_runs_without_nbmake() -> None:
    """``--nbmake`` in addopts made pytest fail (exit 4) without the plugin (item 22)."""
    done = _pytest("notebooks", "-q", "-p", "no:nbmake")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nbmake is not installed" in done.stdout
    n_notebooks = len(list((ROOT / "notebooks").glob("*.ipynb")))
    assert n_notebooks >= 3 and f"{n_notebooks} skipped" in done.stdout


def test_slow_marker_selects_real_checks() -> None:
    """``-m slow`` on the command line overrides the default ``-m 'not slow'`` (item 22)."""
    done = _pytest("tests", "-m", "slow", "--collect-only", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    selected = [line for line in done.stdout.splitlines() if "::" in line]
    assert len(selected) >= 3
    assert any("test_sharing.py" in line for line in selected)
    assert any("test_des.py" in line for line in selected)
