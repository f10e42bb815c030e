"""The policy commands: compare, sweep, sensitivity, solve and --set, from the CLI."""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simkit.cli import main
from tests.conftest import MINIMAL, ROOT


def _toml(d: dict[str, Any]) -> str:
    """A tiny TOML writer for the test scenarios (tables, arrays of tables, scalars)."""
    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)
    lines = []
    for key, section in d.items():
        if key == "parties":
            for name, p in section.items():
                lines.append(f"[parties.{name}]")
                lines += [f"{k} = {val(x)}" for k, x in p.items()]
        elif isinstance(section, list):
            for item in section:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {val(x)}" for k, x in item.items()]
        else:
            lines.append(f"[{key}]")
            lines += [f"{k} = {val(x)}" for k, x in section.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    base = copy.deepcopy(MINIMAL)
    base["run"] = {"n_paths": 1000, "seed": 3, "block_size": 500}
    policy = copy.deepcopy(MINIMAL)
    policy["scenario"] = {"name": "bank30"}
    policy["agreements"][0]["layers"][0]["share"] = 0.3
    policy["agreements"][0]["layers"][1]["share"] = 0.3
    policy.pop("segments")  # a policy-only file
    policy.pop("run")
    other_book = copy.deepcopy(MINIMAL)
    other_book["scenario"] = {"name": "other_book"}
    other_book["segments"][0]["count"] = 700
    out = {}
    for name, d in (("base", base), ("policy", policy), ("other", other_book)):
        out[name] = tmp_path / f"{name}.toml"
        out[name].write_text(_toml(d))
    return out


def test_compare_policy_paired(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    code = main(["compare", str(files["base"]), "--policy", str(files["policy"]),
                 "--set", "agreements[0].fees[0].rate=0.02", "--json", "--out",
                 str(tmp_path / "o")])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["paired"]
    rows = {(r["variant"], r["party"], r["measure"]): r for r in out["rows"]}
    bank = rows[("minimal+bank30", "bank", "el")]
    # bank share 0.2 -> 0.3 on the same paths: exactly 1.5x, a tiny paired SE
    base_bank = rows[("minimal", "bank", "el")]
    assert bank["diff"] == pytest.approx(0.5 * base_bank["value"], rel=1e-9)
    assert bank["diff_se"] < 0.6 * bank["unpaired_se"]
    fee = rows[("agreements[0].fees[0].rate=0.02", "guarantor", "fee_income")]
    assert fee["diff"] == pytest.approx(fee["value"] / 2, rel=1e-9)
    with open(tmp_path / "o" / "compare.csv") as fh:
        header = next(csv.reader(fh))
    assert header[:2] == ["variant", "party"] and "diff_se" in header
    assert (tmp_path / "o" / "compare.png").exists()


def test_compare_text_and_different_books(files: dict[str, Path], capsys) -> None:
    assert main(["compare", str(files["base"]), str(files["other"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--different-books" in err and "Traceback" not in err
    assert main(["compare", str(files["base"]), str(files["other"]), "--different-books",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("DIFFERENT BOOKS")
    assert main(["compare", str(files["base"]), "--quiet"]) == 2
    assert "nothing to compare" in capsys.readouterr().err


def test_set_on_run_and_bad_paths(files: dict[str, Path], capsys) -> None:
    assert main(["run", str(files["base"]), "--set", "run.n_paths=500", "--json",
                 "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["n_paths"] == 500
    assert main(["run", str(files["base"]), "--set", "run.n_path=500"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'n_paths'" in err and err.count("\n") == 1
    assert main(["run", str(files["base"]), "--set",
                 "agreements[0].layers[0].share=2"]) == 2
    assert "agreements[0].layers[0].share" in capsys.readouterr().err
    assert main(["des", str(files["base"]), "--set", "des.years=x y"]) == 2
    assert "TOML value" in capsys.readouterr().err


def test_sweep_writes_tidy_table_and_figure(files: dict[str, Path], tmp_path: Path,
                                            capsys) -> None:
    out = tmp_path / "sw"
    code = main(["sweep", str(files["base"]), "--grid",
                 "agreements[0].layers[0].share=0.1:0.3:3", "--link",
                 "agreements[0].layers[1].share=0.6-{agreements[0].layers[0].share}",
                 "--quiet", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "common random numbers" in text
    with open(out / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {"variant", "agreements[0].layers[0].share", "agreements[0].layers[1].share",
            "party", "measure", "value", "se", "diff", "diff_se"} <= set(rows[0])
    assert {r["agreements[0].layers[1].share"] for r in rows} == {"0.5", "0.4", "0.3"}
    assert (out / "sweep_agreements_0__layers_0__share.png").exists()
    pytest.importorskip("pyarrow")
    assert (out / "sweep.parquet").exists()


def test_sweep_bad_grid_is_one_line(files: dict[str, Path], capsys) -> None:
    assert main(["sweep", str(files["base"]), "--grid", "agreements[0].layers[0].shar=0.1"]
                ) == 2
    err = capsys.readouterr().err
    assert "did you mean 'share'" in err and "Traceback" not in err
    assert main(["sweep", str(files["base"]), "--grid", "x=1", "--link", "y=__import__"]
                ) == 2
    assert "--link" in capsys.readouterr().err


def test_solve_and_sensitivity(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    code = main(["solve", str(files["base"]), "--target", "net_result(guarantor)=0",
                 "--vary", "agreements[0].fees[0].rate", "--bracket", "0:0.2", "--json",
                 "--quiet"])
    assert code == 0
    (sol,) = json.loads(capsys.readouterr().out)
    assert 0 < sol["low"] < sol["value"] < sol["high"] < 0.2
    code = main(["sensitivity", str(files["base"]), "--vary",
                 "agreements[0].fees[0].rate=0.005:0.02", "--vary",
                 "agreements[0].layers[3].cap.rate=0.02:0.06", "--measure", "net_result",
                 "--party", "guarantor", "--quiet", "--out", str(tmp_path / "t")])
    assert code == 0
    assert (tmp_path / "t" / "tornado.png").exists()
    assert main(["solve", str(files["base"]), "--target", "nope(guarantor)=0",
                 "--vary", "agreements[0].fees[0].rate"]) == 2
    assert "is not a measure" in capsys.readouterr().err


def test_compare_subprocess_on_the_shipped_anhui_policy(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "simkit.cli", "compare",
         str(ROOT / "scenarios" / "anhui_4321.toml"), "--policy",
         str(ROOT / "scenarios" / "policies" / "national_2422_policy.toml"),
         "--paths", "400", "--set", "run.block_size=400", "--quiet", "--measures", "el"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "anhui_4321+national_2422" in proc.stdout
    assert "national_fund" in proc.stdout and "government" in proc.stdout


def test_des_sweep_cli(tmp_path: Path, capsys) -> None:
    d = copy.deepcopy(MINIMAL)
    d["segments"][0]["applications_per_year"] = 120
    d["des"] = {"years": 0.5}
    f = tmp_path / "des.toml"
    f.write_text(_toml(d))
    code = main(["sweep", str(f), "--engine", "des", "--replications", "2", "--grid",
                 "agreements[0].layers[0].share=0.2,0.3", "--link",
                 "agreements[0].layers[1].share=0.6-{agreements[0].layers[0].share}",
                 "--party", "bank", "--quiet", "--out", str(tmp_path / "o")])
    assert code == 0
    out = capsys.readouterr().out
    assert "paired by replication" in out and "firms_served" in out
    assert (tmp_path / "o" / "sweep_agreements_0__layers_0__share.png").exists()
