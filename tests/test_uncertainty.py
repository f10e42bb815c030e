"""Parameter uncertainty (second-order Monte Carlo): the scenario table, the outer loop,
the variance decomposition and ``simkit uncertainty``."""

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

from simkit import report
from simkit.cli import main
from simkit.montecarlo import simulate
from simkit.scenario import ScenarioError, UncertainParameter, from_dict, load
from simkit.uncertainty import _changes, draw_parameters, run_uncertainty
from tests.conftest import ROOT

N_LOANS, EXPOSURE, LGD = 1000, 1_000_000.0, 0.5

BASE: dict[str, Any] = {
    "scenario": {"name": "uncertain"},
    "parties": {"bank": {}, "guarantor": {}},
    "agreements": [{"name": "a", "layers": [{"party": "bank", "share": 0.2},
                                            {"party": "guarantor", "share": 0.8}]}],
    "factors": {"national": 0.0},
    "segments": [{"name": "s", "count": N_LOANS, "exposure": EXPOSURE,
                  "default_prob": 0.03, "lgd": LGD}],
    "run": {"n_paths": 1000, "seed": 11, "block_size": 1000},
}


def scenario(pd: Any = 0.03, national: float = 0.0,
             parameters: list[dict[str, Any]] | None = None) -> Any:
    data = copy.deepcopy(BASE)
    data["segments"][0]["default_prob"] = pd
    data["factors"]["national"] = national
    if parameters is not None:
        data["uncertainty"] = {"parameters": parameters}
    return from_dict(data)


def uniform_pd(low: float, high: float) -> dict[str, Any]:
    return {"dist": "uniform", "low": low, "high": high, "uncertain": True}


# -- the scenario table ----------------------------------------------------------------
def test_inline_and_table_forms_round_trip() -> None:
    s = scenario(uniform_pd(0.01, 0.05), 0.2,
                 [{"path": "factors.national", "dist": "normal", "mean": 0.2, "sd": 0.05,
                   "low": 0.0, "high": 0.5}])
    assert s.segments[0].default_prob.kind == "fixed"  # the point value: the mean
    assert math.isclose(s.segments[0].default_prob.param("value"), 0.03)
    assert [p.name for p in s.uncertainty] == ["factors.national", "segments[0].default_prob"]
    d = s.to_dict()
    assert d["uncertainty"]["parameters"][1] == {
        "name": "segments[0].default_prob", "paths": ["segments[0].default_prob"],
        "apply": "value", "dist": "uniform", "low": 0.01, "high": 0.05}
    assert from_dict(d) == s
    assert s.with_changes({"run.n_paths": 50}).uncertainty == s.uncertainty
    plain = s.with_changes({"uncertainty.parameters": []})
    assert plain.uncertainty == () and "uncertainty" not in plain.to_dict()


def test_cross_section_is_not_parameter_uncertainty() -> None:
    """A segment's default_prob distribution spreads firms' PDs; it is not uncertain."""
    beta = {"dist": "beta", "mean": 0.03, "sd": 0.01}
    s = scenario(beta)
    assert s.uncertainty == () and s.segments[0].default_prob.kind == "beta"
    assert scenario({**beta, "uncertain": False}) == s
    with pytest.raises(ScenarioError, match="has no uncertain parameters"):
        run_uncertainty(s, 5)
    u = scenario({**beta, "uncertain": True})
    assert u.segments[0].default_prob.kind == "fixed"
    assert u.uncertainty[0].kind == "beta"


def test_scale_moves_paths_together() -> None:
    s = scenario({"dist": "uniform", "low": 0.02, "high": 0.04}, 0.1,
                 [{"name": "pd level", "apply": "scale", "dist": "lognormal",
                   "median": 1.0, "sigma": 0.1,
                   "paths": ["segments[0].default_prob.low", "segments[0].default_prob.high"]}])
    changes = _changes(s, [1.5])
    assert math.isclose(changes["segments[0].default_prob.low"], 0.03)
    assert math.isclose(changes["segments[0].default_prob.high"], 0.06)
    v = s.with_changes(changes)
    assert v.uncertainty == () and math.isclose(v.segments[0].default_prob.mean(), 0.045)


def test_draws_are_keyed_streams() -> None:
    s = scenario(uniform_pd(0.01, 0.05))
    a = draw_parameters(s, 10)
    assert a.shape == (10, 1)
    np.testing.assert_array_equal(draw_parameters(s, 4), a[:4])  # prefix-stable
    assert not np.array_equal(draw_parameters(s, 10, seed=12), a)
    assert a.min() >= 0.01 and a.max() <= 0.05


@pytest.mark.parametrize("spec, where, text", [
    ({"path": "segments[0].default_pro", "dist": "uniform", "low": 0.01, "high": 0.02},
     "uncertainty.parameters[0].path", "names no field of this scenario"),
    ({"path": "run.seed", "dist": "uniform", "low": 1, "high": 2},
     "uncertainty.parameters[0].path", "run settings"),
    ({"path": "segments[0]", "dist": "uniform", "low": 0.01, "high": 0.02},
     "uncertainty.parameters[0].path", "name one of its numbers"),
    ({"path": "factors.national", "dist": "gamma", "low": 0.1, "high": 0.2},
     "uncertainty.parameters[0].dist", "must be one of 'uniform'"),
    ({"path": "factors.national", "dist": "uniform", "low": 0.3, "high": 0.2},
     "uncertainty.parameters[0].high", "must be >= low (0.3), got 0.2"),
    ({"path": "factors.national", "paths": ["factors.regional"], "dist": "uniform",
      "low": 0.1, "high": 0.2}, "uncertainty.parameters[0].path", "exactly one of path"),
    ({"path": "factors.national", "dist": "uniform", "low": 0.1, "high": 1.2},
     "uncertainty.parameters[0]", "factors.national must be in [0, 1)"),
    ({"path": "segments[0].default_prob", "dist": "normal", "mean": 0.03, "sd": 0.02},
     "uncertainty.parameters[0]", "segments[0].default_prob must be"),
    ({"path": "factors.national", "dist": "beta", "mean": 0.2, "sd": 0.5},
     "uncertainty.parameters[0].sd", "< sqrt(mean*(1-mean))"),
    ({"path": "factors.national", "dist": "uniform", "low": 0.1, "high": 0.2, "foo": 1},
     "", "unknown key 'foo'"),
])
def test_bad_specs_give_clear_errors(spec: dict[str, Any], where: str, text: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario(0.03, 0.1, [spec])
    assert info.value.file == "<dict>"
    assert info.value.path == where
    assert text in str(info.value)


def test_bad_specs_across_parameters(tmp_path: Path) -> None:
    twice = {"path": "factors.national", "dist": "uniform", "low": 0.1, "high": 0.2}
    with pytest.raises(ScenarioError, match="draws already; a path may be uncertain once"):
        scenario(0.03, 0.1, [twice, {**twice, "name": "again"}])
    # each alone is fine, together the loadings' squares reach 1
    both = [{"path": "factors.national", "dist": "uniform", "low": 0.1, "high": 0.75},
            {"path": "factors.regional", "dist": "uniform", "low": 0.1, "high": 0.75}]
    with pytest.raises(ScenarioError, match="with every uncertain parameter at its highest"):
        scenario(0.03, 0.1, both)
    with pytest.raises(ScenarioError) as info:
        scenario({"dist": "uniform", "low": 0.01, "high": 0.05, "uncertain": "yes"})
    assert info.value.path == "segments[0].default_prob.uncertain"
    assert "must be true or false" in str(info.value)
    text = (ROOT / "scenarios" / "anhui_4321.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text + '\n[[uncertainty.parameters]]\npath = "factors.nation"\n'
                          'dist = "uniform"\nlow = 0.1\nhigh = 0.2\n')
    with pytest.raises(ScenarioError) as info:
        load(bad)
    assert str(info.value).startswith(f"{bad}: uncertainty.parameters[0].path names no field")


def test_with_changes_defers_the_end_checks_to_the_run() -> None:
    # national uncertain on [0.1, 0.75]; a changed regional loading of 0.7 makes the
    # upper end invalid (0.75^2 + 0.7^2 >= 1): with_changes stays cheap and lets it
    # through, run_uncertainty (and check_uncertainty) refuse it before drawing
    s = scenario(0.03, 0.1, [{"path": "factors.national", "dist": "uniform", "low": 0.1,
                              "high": 0.75}])
    bad = s.with_changes({"factors.regional": 0.7})
    with pytest.raises(ScenarioError, match=r"at 0\.75 the scenario is invalid"):
        bad.check_uncertainty()
    with pytest.raises(ScenarioError, match=r"at 0\.75 the scenario is invalid"):
        run_uncertainty(bad, 2, n_paths=10)
    # a change to the table itself is checked at once
    with pytest.raises(ScenarioError, match="the scenario is invalid"):
        s.with_changes({"uncertainty.parameters[0].high": 1.2})


def test_parameter_object_checks_itself() -> None:
    with pytest.raises(ScenarioError, match=r"UncertainParameter\.kind"):
        UncertainParameter("x", ("factors.national",), "gamma", ())
    p = UncertainParameter("x", ("factors.national",), "normal",
                           (("mean", 0.2), ("sd", 0.1), ("low", 0.0)))
    q = p.quantile([0.0, 0.5, 1.0])
    assert 0 <= q[0] < 1e-6 and 0.2 < q[1] < 0.21 and q[2] > 0.7  # truncated below at 0
    assert p.mean() > 0.2


# -- the outer loop ----------------------------------------------------------------------
def test_degenerate_distribution_equals_plain_run() -> None:
    s = scenario({"dist": "uniform", "low": 0.03, "high": 0.03, "uncertain": True}, 0.2,
                 [{"path": "factors.national", "dist": "normal", "mean": 0.2, "sd": 0.0}])
    res = run_uncertainty(s, 4, n_boot=50)
    plain = simulate(s).summary()["parties"]
    for p in ("bank", "guarantor"):
        for key in ("el", "var_99", "es_99", "var_99.9", "es_99.9"):
            assert res.mixture[p][key] == pytest.approx(plain[p][key], rel=1e-12)
            assert res.reference[p][key] == pytest.approx(plain[p][key], rel=1e-12)
    j = res.columns.index("guarantor")
    assert res.variance["share"][j] == 0.0
    assert res.tail["share_99"][j] == 0.0 and res.tail["uplift_99"][j] == 0.0
    row = res.to_frame().loc["guarantor"]
    assert row["es_99_draw_p5"] == row["es_99_draw_p95"] == row["es_99_ref"]


def test_independent_paths_share_is_inner_noise() -> None:
    """Fresh paths per draw: a degenerate distribution's share is pure inner noise, of the
    order of its bound ``var_share_noise`` (about 1 / n_paths), not 0 as with common paths."""
    s = scenario({"dist": "uniform", "low": 0.03, "high": 0.03, "uncertain": True}, 0.1)
    res = run_uncertainty(s, 30, n_paths=300, common_random_numbers=False, n_boot=50)
    j = res.columns.index("total")
    share, bound = res.variance["share"][j], res.variance["noise"][j]
    assert 0 < share < 3 * bound
    assert bound == pytest.approx(1 / 300, rel=0.05)
    assert len(set(res.per_draw["el"][:, j])) > 1


def test_parameter_share_grows_with_the_spread() -> None:
    shares, ses = [], []
    for half in (0.0, 0.005, 0.02):
        s = scenario(uniform_pd(0.03 - half, 0.03 + half), 0.1)
        res = run_uncertainty(s, 40, n_paths=500, n_boot=200)
        j = res.columns.index("total")
        shares.append(res.variance["share"][j])
        ses.append(res.variance["share_se"][j])
    assert shares[0] == 0.0
    assert shares[1] < shares[2]
    assert shares[2] - shares[1] > 2 * math.hypot(ses[1], ses[2])
    assert shares[1] > 3 * ses[1]


def test_law_of_total_variance_on_the_draws() -> None:
    s = scenario(uniform_pd(0.01, 0.05), 0.15)
    n_draws, m = 6, 400
    res = run_uncertainty(s, n_draws, n_paths=m, n_boot=20)
    samples = []
    for values in draw_parameters(s, n_draws):
        r = simulate(s.with_changes(_changes(s, values)), n_paths=m)
        samples.append(r.total_loss)
    x = np.array(samples)  # (draws, paths)
    j = res.columns.index("total")
    within, between = x.var(axis=1).mean(), x.mean(axis=1).var()
    assert res.variance["within"][j] == pytest.approx(within, rel=1e-9)
    assert res.variance["between"][j] == pytest.approx(between, rel=1e-9)
    assert within + between == pytest.approx(x.reshape(-1).var(), rel=1e-9)
    assert res.variance["share"][j] == pytest.approx(between / x.reshape(-1).var(), rel=1e-9)
    assert res.per_draw["el"][:, j] == pytest.approx(x.mean(axis=1), rel=1e-12)


def test_known_case_independent_loans_uniform_pd() -> None:
    """PD ~ U[a, b], independent loans: E[EL] = (a+b)/2 x LGD x exposure x n and the
    parameter share is n^2 Var(p) / (n E[p(1-p)] + n^2 Var(p)) (in loss units)."""
    a, b = 0.01, 0.05
    res = run_uncertainty(scenario(uniform_pd(a, b), 0.0), 120, n_paths=300, n_boot=300)
    j = res.columns.index("total")
    el = res.mixture["total"]
    expected = (a + b) / 2 * LGD * EXPOSURE * N_LOANS
    assert abs(el["el"] - expected) < 3 * el["el_se"]
    mean_p, var_p = (a + b) / 2, (b - a) ** 2 / 12
    within = N_LOANS * (mean_p - (var_p + mean_p**2))
    between = N_LOANS**2 * var_p
    share = between / (within + between)
    assert abs(res.variance["share"][j] - share) < 3 * res.variance["share_se"][j]
    # the mixture's ES is above the ES at the stated (mean) PD
    mix, ref = res.mixture["total"], res.reference["total"]
    assert mix["es_99"] - ref["es_99"] > 3 * math.hypot(mix["es_99_se"], ref["es_99_se"])
    assert res.tail["uplift_99"][j] == pytest.approx(1 - ref["es_99"] / mix["es_99"])


# -- results and the command line --------------------------------------------------------
SMALL_TOML = """
[parties.bank]
kind = "bank"
[parties.guarantor]
kind = "guarantor"
[[agreements]]
name = "a"
layers = [{ party = "bank", share = 0.2 }, { party = "guarantor", share = 0.8 }]
[factors]
national = 0.2
[[segments]]
name = "s"
count = 500
exposure = 1e6
default_prob = { dist = "uniform", low = 0.01, high = 0.05, uncertain = true }
lgd = 0.5
[run]
n_paths = 1000
seed = 3
[[uncertainty.parameters]]
path = "factors.national"
dist = "uniform"
low = 0.1
high = 0.3
"""

def test_result_tables_and_summary() -> None:
    res = run_uncertainty(scenario(uniform_pd(0.02, 0.04), 0.1), 5, n_paths=200,
                          levels=(0.95,), n_boot=20)
    frame = res.to_frame()
    assert list(frame.index) == ["bank", "guarantor", "total"]
    for col in ("el", "el_se", "el_ref", "es_95_draw_p5", "es_95_draw_p95", "var_share",
                "var_share_se", "es_95_uplift", "tail_share_95", "tail_share_95_se"):
        assert col in frame.columns
    assert (frame["es_95_draw_p5"] <= frame["es_95_draw_p95"]).all()
    payload = json.loads(json.dumps(report.jsonable(res.summary())))
    assert payload["n_draws"] == 5 and payload["parameters"][0]["dist"] == "uniform"
    assert len(res.draw_rows()) == 5 and "guarantor:es_95" in res.draw_rows()[0]
    assert "var share" in res.format_text()
    with pytest.raises(ScenarioError, match="n_draws must be an integer >= 2"):
        run_uncertainty(res.scenario, 1)


def test_cli_writes_its_files(tmp_path: Path) -> None:
    path = tmp_path / "u.toml"
    path.write_text(SMALL_TOML)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "simkit.cli", "uncertainty", str(path),
                           "--draws", "3", "--paths", "200", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "var share" in proc.stdout
    for name in ("uncertainty.json", "uncertainty.csv", "draws.csv", "uncertainty.png"):
        assert (out / name).stat().st_size > 0
    payload = json.loads((out / "uncertainty.json").read_text())
    assert payload["n_draws"] == 3 and payload["n_paths"] == 200
    assert set(payload["parties"]) == {"bank", "guarantor", "total"}
    assert [p["name"] for p in payload["parameters"]] == ["factors.national",
                                                          "segments[0].default_prob"]


def test_cli_fails_cleanly(tmp_path: Path, capsys) -> None:
    plain = str(ROOT / "scenarios" / "anhui_4321.toml")
    out = tmp_path / "o"
    assert main(["uncertainty", plain, "--draws", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {plain}: uncertainty has no uncertain parameters")
    assert "Traceback" not in err and not out.exists()
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "scenarios" / "anhui_4321.toml").read_text()
                   + '\n[[uncertainty.parameters]]\npath = "factors.national"\n'
                     'dist = "uniform"\nlow = 0.5\nhigh = 1.5\n')
    assert main(["uncertainty", str(bad), "--draws", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: uncertainty.parameters[0] draws 0.5")
    assert err.count("\n") == 1
    with pytest.raises(SystemExit) as info:
        main(["uncertainty", plain, "--draws", "1"])
    assert info.value.code == 2
    assert "--draws: must be an integer >= 2" in capsys.readouterr().err


def test_anhui_2024_marks_the_calibrated_level_and_loadings() -> None:
    s = load(ROOT / "scenarios" / "anhui_2024.toml")
    pd_level, loadings = s.uncertainty
    assert (pd_level.name, loadings.name) == ("pd_level", "loadings")
    assert pd_level.apply == loadings.apply == "scale"
    assert len(pd_level.paths) == 2 * len(s.segments)
    # the file's comment: the 2.5-97.5 % quantiles of the PD multiplier about 0.831-1.203
    # (PD 2.87-4.14 % around the fitted 3.446 %) and the loadings' range 0.647-4.118
    np.testing.assert_allclose(pd_level.quantile([0.025, 0.975]), [0.831, 1.203], atol=1e-3)
    np.testing.assert_allclose(loadings.quantile([0.0, 1.0]), [0.647, 4.118], rtol=1e-6)
    changes = _changes(s, [1.1, 2.0])
    assert changes["segments[2].default_prob.high"] == pytest.approx(0.05978 * 1.1)
    assert changes["factors.national"] == pytest.approx(s.factors.loadings.national * 2)


@pytest.mark.slow
@pytest.mark.parametrize("crn", [True, False])
def test_mixture_standard_errors_match_the_spread_over_replications(crn: bool) -> None:
    """Honest error bars: over 150 independent replications (seeds) the mean reported SE
    of the guarantor's mixture EL and ES 99 % is within 25 % of the spread of the
    estimates (the spread's own relative SE is about 6 %)."""
    s = scenario(uniform_pd(0.01, 0.05), 0.3)
    s = s.with_changes({"segments[0].count": 500, "run.n_paths": 400, "run.block_size": 400})
    el, el_se, es, es_se = [], [], [], []
    for k in range(150):
        g = run_uncertainty(s, 20, seed=1000 + k,
                            common_random_numbers=crn).summary()["parties"]["guarantor"]
        el.append(g["el"])
        el_se.append(g["el_se"])
        es.append(g["es_99"])
        es_se.append(g["es_99_se"])
    assert 0.8 < np.mean(el_se) / np.std(el, ddof=1) < 1.25
    assert 0.8 < np.mean(es_se) / np.std(es, ddof=1) < 1.25
