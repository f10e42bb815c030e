"""Tidy data for researchers (issue 10 item 5): data frames, long CSVs, paths.parquet and
the DES summary with scenario, provenance, integer counts and standard errors."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simkit import from_dict, load
from simkit.cli import main
from simkit.report import PANDAS_MISSING
from tests.conftest import ROOT

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402


@pytest.fixture(scope="module")
def run() -> Any:
    """A small Monte Carlo run of the minimal scenario, wrapped in a RunReport."""
    from simkit.experiments import run_summary
    from tests.conftest import MINIMAL

    scenario = from_dict(MINIMAL).with_changes({"run.n_paths": 1000})
    return run_summary(scenario)


@pytest.fixture(scope="module")
def des_runs() -> Any:
    from simkit.des import run_des

    return run_des(load(ROOT / "scenarios" / "nfgf_2422.toml"), years=0.1, replications=2)


def _no_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` raises ImportError


# --------------------------------------------------------------------------------------
# LossResult.to_frame
# --------------------------------------------------------------------------------------
def test_loss_frame_wide_and_long(run: Any) -> None:
    r = run.result
    wide = r.to_frame()
    assert list(wide.columns) == ["path", "weight", *r.parties, "total"]
    assert wide.shape == (r.n_paths, len(r.parties) + 3)
    assert wide["path"].tolist() == list(range(r.n_paths))
    assert (wide["weight"] == 1.0).all()  # plain Monte Carlo
    for j, p in enumerate(r.parties):
        np.testing.assert_array_equal(wide[p].to_numpy(), r.losses[:, j])
    np.testing.assert_allclose(wide[list(r.parties)].sum(axis=1), wide["total"],
                               rtol=1e-9, atol=1e-6)
    assert wide["total"].mean() > 0
    long = r.to_frame(shape="long")
    assert list(long.columns) == ["path", "weight", "party", "loss"]
    assert long.shape == (r.n_paths * len(r.parties), 4)
    by_party = long.groupby("party", observed=True)["loss"].mean()
    for j, p in enumerate(r.parties):
        assert by_party[p] == pytest.approx(r.losses[:, j].mean(), rel=1e-12, abs=1e-9)
    with pytest.raises(ValueError, match="shape"):
        r.to_frame(shape="tall")


def test_loss_frame_weights_under_importance_sampling() -> None:
    from simkit.montecarlo import simulate
    from tests.conftest import MINIMAL

    r = simulate(from_dict(MINIMAL).with_changes({"run.n_paths": 400,
                                                  "run.importance_sampling": True}))
    frame = r.to_frame()
    np.testing.assert_array_equal(frame["weight"].to_numpy(), r.weights)
    assert frame["weight"].std() > 0


def test_path_columns_refuse_a_party_named_like_a_fixed_column(run: Any) -> None:
    clash = dataclasses.replace(run.result, parties=("total", *run.result.parties[1:]))
    with pytest.raises(ValueError, match="party 'total' has the name of a fixed column"):
        clash.path_columns()
    assert set(clash.to_frame(shape="long")["party"]) >= {"total"}


def test_frames_without_pandas_say_how_to_install(run: Any, des_runs: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _no_pandas(monkeypatch)
    for call in (run.result.to_frame, run.to_frame, des_runs[0].to_frame):
        with pytest.raises(ImportError, match=r"pandas is needed: pip install "
                                              r"'simkit\[pandas\]'"):
            call()
    assert PANDAS_MISSING == "pandas is needed: pip install 'simkit[pandas]'"


# --------------------------------------------------------------------------------------
# RunReport: long rows, frame, CSVs, paths.parquet
# --------------------------------------------------------------------------------------
def test_run_frame_is_long_with_units_and_total(run: Any) -> None:
    s = run.summary
    frame = run.to_frame()
    assert list(frame.columns) == ["scenario", "seed", "horizon_years", "unit", "party",
                                   "measure", "value", "se", "basis"]
    assert set(frame["scenario"]) == {"minimal"} and set(frame["seed"]) == {7}
    parties = [*s["parties"], "TOTAL"]
    assert list(dict.fromkeys(frame["party"])) == parties
    # one row per party x measure
    assert not frame.duplicated(["party", "measure"]).any()
    el = frame[frame["measure"] == "el"].set_index("party")
    for p, st in s["parties"].items():
        assert el.loc[p, "value"] == st["el"] and el.loc[p, "se"] == st["el_se"]
    assert el.loc["TOTAL", "value"] == s["total_loss"]["el"]
    units = dict(zip(frame["measure"], frame["unit"], strict=True))
    assert units["el"] == units["es_99.9"] == units["fee_income"] == "yuan"
    assert units["el_pct_guaranteed"] == "percent"
    basis = dict(zip(frame["measure"], frame["basis"], strict=True))
    assert basis["el"] == "per_year" and basis["var_99"] == "horizon"
    fee = frame[(frame["measure"] == "fee_income")].set_index("party")["value"]
    assert fee["TOTAL"] == pytest.approx(s["total_loss"]["fee_income_borrowers"])
    assert fee.drop("TOTAL").sum() == pytest.approx(fee["TOTAL"], rel=1e-9)


def test_capital_probabilities_in_long_rows() -> None:
    from simkit.experiments import run_summary
    from tests.conftest import MINIMAL

    rep = run_summary(from_dict(MINIMAL).with_changes({"run.n_paths": 400,
                                                       "run.horizon_years": 2}))
    rows = [r for r in rep.long_rows() if r["unit"] == "probability"]
    assert {r["measure"] for r in rows} == {"p_exhausted", "p_leverage_breach"}
    assert {r["party"] for r in rows} == {"guarantor"}
    assert all(0 <= r["value"] <= 1 and r["basis"] == "horizon" for r in rows)
    assert rows[0]["horizon_years"] == 2


def test_save_writes_tidy_csvs_and_paths(run: Any, tmp_path: Path) -> None:
    files = run.save(tmp_path / "o", figures=False, paths=True)
    assert [f.name for f in files] == ["summary.json", "parties.csv", "parties_wide.csv",
                                       "paths.parquet"]
    with open(tmp_path / "o" / "parties.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [{k: "" if v is None else str(v) for k, v in r.items()}
                    for r in run.long_rows()]
    assert rows[-1]["party"] == "TOTAL"
    with open(tmp_path / "o" / "parties_wide.csv", newline="") as fh:
        wide = list(csv.DictReader(fh))
    assert [w["party"] for w in wide] == [*run.summary["parties"], "TOTAL"]
    assert float(wide[-1]["el"]) == pytest.approx(run.summary["total_loss"]["el"])
    table = pq.read_table(tmp_path / "o" / "paths.parquet")
    assert table.column_names == ["path", "weight", *run.result.parties, "total"]
    np.testing.assert_array_equal(table.column("bank").to_numpy(),
                                  run.result.losses[:, run.result.parties.index("bank")])
    meta = {k.decode(): json.loads(v) for k, v in table.schema.metadata.items()}
    assert meta["scenario"] == "minimal" and meta["seed"] == 7 and meta["unit"] == "yuan"


def _cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(args)
    return rc, out.getvalue(), err.getvalue()


def test_cli_save_paths(tmp_path: Path) -> None:
    path = str(ROOT / "scenarios" / "anhui_4321.toml")
    rc, out, _ = _cli(["run", path, "--paths", "2000", "--quiet", "--out",
                       str(tmp_path / "o"), "--save-paths"])
    assert rc == 0 and "paths.parquet" in out
    table = pq.read_table(tmp_path / "o" / "paths.parquet")
    assert table.num_rows == 2000
    w = table.column("weight").to_numpy()
    assert np.all(w > 0) and w.std() > 0  # the Anhui file uses importance sampling
    saved = json.loads((tmp_path / "o" / "summary.json").read_text())
    weighted = float(np.mean(w * table.column("total").to_numpy()))
    assert weighted == pytest.approx(saved["total_loss"]["el"], rel=1e-9)


@pytest.mark.parametrize(("extra", "message"), [
    ([], "error: --save-paths: needs --out DIR"),
    (["--out", "DIR", "--analytic"], "error: --save-paths: has no paths to save with "
                                     "--analytic"),
])
def test_cli_save_paths_refused_before_work(tmp_path: Path, extra: list[str],
                                            message: str) -> None:
    extra = [str(tmp_path / "o") if a == "DIR" else a for a in extra]
    rc, _, err = _cli(["run", str(ROOT / "scenarios" / "anhui_4321.toml"), "--save-paths",
                       *extra])
    assert rc == 2 and err.strip() == message
    assert not (tmp_path / "o").exists()


def test_cli_save_paths_without_pyarrow(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    rc, _, err = _cli(["run", str(ROOT / "scenarios" / "anhui_4321.toml"), "--save-paths",
                       "--out", str(tmp_path / "o")])
    assert rc == 2
    assert err.strip() == ("error: --save-paths: pyarrow is needed to write Parquet: pip "
                           "install 'simkit[parquet]'")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------
# DES: summary, frame, series table
# --------------------------------------------------------------------------------------
def test_des_summary_scenario_provenance_counts_and_ses(des_runs: Any) -> None:
    s = des_runs.summary()
    assert s["scenario"] == "nfgf_2422"
    assert s["source"].endswith("nfgf_2422.toml")
    prov = s["provenance"]
    assert prov["seed"] == des_runs[0].seed and prov["replications"] == 2
    assert prov["years"] == pytest.approx(0.1)
    assert {"simkit", "numpy", "simpy", "python"} <= set(prov)
    # identifiers are never averaged (seed_se was written before)
    assert not {"seed", "seed_se", "replication", "replication_se"} & set(s)
    # counts: integers when whole, floats only for a mean that is not
    for key in ("applications", "approvals", "loans", "defaults"):
        vals = [r.summary[key] for r in des_runs]
        assert s[key] == pytest.approx(np.mean(vals))
        assert isinstance(s[key], int) == float(np.mean(vals)).is_integer()
    # per-party losses carry their standard error over the replications
    for p in des_runs[0].parties:
        vals = np.array([r.summary["losses"][p] for r in des_runs])
        assert s["losses"][p] == pytest.approx(vals.mean())
        assert s["losses_se"][p] == pytest.approx(vals.std(ddof=1) / math.sqrt(2), abs=1e-9)
    assert any(s["losses_se"][p] > 0 for p in des_runs[0].parties)
    assert s["checks_ok"] is True


def test_des_summary_of_one_replication_has_int_counts(des_runs: Any) -> None:
    from simkit.des.result import DesRuns

    s = DesRuns(des_runs.results[:1]).summary()
    assert type(s["applications"]) is int and type(s["refusals"]["leverage"]) is int
    assert "losses_se" not in s and "applications_se" not in s
    text = json.dumps(s)
    assert '"applications": ' + str(s["applications"]) + "," in text


def test_des_frame_and_table_are_long_with_units(des_runs: Any) -> None:
    r = des_runs[1]
    frame = r.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["scenario", "replication", "month", "time_days", "series",
                                   "party", "value", "unit"]
    assert set(frame["scenario"]) == {"nfgf_2422"} and set(frame["replication"]) == {1}
    units = dict(zip(frame["series"], frame["unit"], strict=True))
    assert units["applications"] == "count" and units["net_loss"] == "yuan"
    assert units["leverage"] == "ratio" and units["refusals:leverage"] == "count"
    sel = frame[(frame["series"] == "net_loss")]
    assert sel["value"].sum() == pytest.approx(sum(r.summary["losses_in_horizon"].values()),
                                               rel=1e-9, abs=1e-3)


def test_des_out_writes_long_series(tmp_path: Path) -> None:
    rc, _, _ = _cli(["des", str(ROOT / "scenarios" / "nfgf_2422.toml"), "--years", "0.1",
                     "--quiet", "--out", str(tmp_path / "o")])
    assert rc == 0
    with open(tmp_path / "o" / "des_series.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == ["scenario", "replication", "month", "time_days", "series", "party",
                      "value", "unit"]
    summary = json.loads((tmp_path / "o" / "des_summary.json").read_text())
    assert summary["scenario"] == "nfgf_2422" and "provenance" in summary
    assert isinstance(summary["applications"], int)
