"""What the figures draw, checked through matplotlib's objects (not pixels): axis ranges,
labels with units, titles with the split, one colour per party across figures, VaR / ES
markers, error bars, absent parties absent, limit lines, the credit-line peak."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest

import simkit
from simkit import plots
from simkit.des import plots as des_plots
from simkit.des import simulate
from simkit.results import RunReport

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _hex(c: Any) -> str:
    return mcolors.to_hex(c)


def _line_colors(ax: Any) -> dict[str, str]:
    return {ln.get_label(): _hex(ln.get_color()) for ln in ax.get_lines()
            if not ln.get_label().startswith("_")}


# --------------------------------------------------------------------------------------
# palette and split label
# --------------------------------------------------------------------------------------
def test_palette_follows_kind_and_position() -> None:
    sc = simkit.load(ROOT / "scenarios" / "anhui_4321.toml")
    col = plots.scenario_colors(sc)
    guarantors = ["hefei_guarantor", "north_guarantor", "south_guarantor"]
    assert len({col[g] for g in guarantors}) == 3  # a family of shades, all distinct
    assert len(set(col.values())) == len(col)
    assert col["TOTAL"] == "#000000"
    assert plots.scenario_colors(sc) == col  # same scenario, same colours
    # the bank is the bank's colour whatever its position
    assert plots.party_colors(["provincial", "bank"])["bank"] == col["bank"]
    assert plots.party_colors(["x", "y"], {"x": "guarantor", "y": "guarantor"})["x"] \
        == col["hefei_guarantor"]


def test_split_label_states_the_split() -> None:
    sc = simkit.load(ROOT / "scenarios" / "anhui_4321.toml")
    assert plots.split_label(sc) == \
        "anhui_4321 — bank 20 / guarantor 40 / provincial 30* / local_gov 10 (* capped)"


# --------------------------------------------------------------------------------------
# Monte Carlo figures
# --------------------------------------------------------------------------------------
def _losses(n: int = 4000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    losses = np.column_stack([rng.lognormal(16, 0.6, n), rng.lognormal(17, 0.8, n)])
    w = np.ones(n)
    # one importance-sampled path far out with a tiny weight: must not set the x range
    losses[0] = [1e12, 1e12]
    w[0] = 1.6e-8
    return losses, w


def test_exceedance_range_markers_bands_and_labels() -> None:
    losses, w = _losses()
    n = losses.shape[0]
    ax = plots.exceedance(losses, ["bank", "guarantor"], w, levels=(0.99, 0.999))
    p_min = max(1e-4, 10 / n)
    x_hi = ax.get_xlim()[1] * 1e6
    assert x_hi < 1e11  # not the 1e12 path
    q = max(simkit.measures.value_at_risk(losses[:, j], 1 - p_min, w,
                                          n_batches=None).value for j in range(2))
    assert q <= x_hi <= 1.05 * q
    assert ax.get_yscale() == "log"
    assert p_min / 2 < ax.get_ylim()[0] < p_min
    assert "million yuan" in ax.get_xlabel()
    gids = [ln.get_gid() for ln in ax.get_lines()]
    assert gids.count("var_99") == 2 and gids.count("es_99") == 2
    assert "var_99.9" not in gids  # 1 - 0.999 < p_min: below the range shown
    assert len(ax.collections) == 2  # one ±2 SE band per party
    # VaR marker at the party's VaR
    var = next(ln for ln in ax.get_lines() if ln.get_gid() == "var_99")
    v0 = simkit.measures.value_at_risk(losses[:, 0], 0.99, w, n_batches=None).value
    assert var.get_xdata()[0] == pytest.approx(v0 / 1e6)
    assert var.get_ydata()[0] == pytest.approx(0.01)


def test_party_bars_error_bars_and_absent_party() -> None:
    parties = ["bank", "guarantor", "provincial"]
    el = np.array([1e6, 2e6, np.nan])  # provincial has no value: absent
    se = np.array([1e5, 2e5, np.nan])
    ax = plots.party_bars(parties, {"expected loss": el}, errors={"expected loss": se})
    bars = ax.patches
    assert len(bars) == 2
    col = plots.party_colors(parties)
    assert [_hex(b.get_facecolor()[:3]) for b in bars] == [col["bank"], col["guarantor"]]
    assert ax.get_ylabel() == "million yuan"
    errs = [c for c in ax.containers if isinstance(c, mpl.container.ErrorbarContainer)]
    assert len(errs) == 1
    seg = errs[0].lines[2][0].get_segments()
    assert [s[1, 1] - s[0, 1] for s in seg] == pytest.approx([0.4, 0.8])  # ±2 SE


def test_compare_and_paired_bars_leave_absent_parties_out() -> None:
    rows = [{"scenario": "a", "party": "bank", "el_pct_guaranteed": 1.0},
            {"scenario": "a", "party": "national_fund", "el_pct_guaranteed": 0.5},
            {"scenario": "b", "party": "bank", "el_pct_guaranteed": 2.0}]
    ax = plots.compare_bars(rows)
    assert len(ax.patches) == 3  # not 4: b has no national_fund
    assert sorted(b.get_height() for b in ax.patches) == [0.5, 1.0, 2.0]
    prow = [{"variant": v, "party": p, "measure": "el", "diff": d, "diff_se": 1e4}
            for v, p, d in [("base", "bank", 0.0), ("base", "local_gov", 0.0),
                            ("v1", "bank", 2e6), ("v2", "bank", 1e6),
                            ("v2", "local_gov", -1e6)]]
    ax = plots.paired_bars(prow)
    assert len(ax.patches) == 3  # v1 has no local_gov row
    assert "million yuan" in ax.get_ylabel()


def test_run_report_figures_share_colours_and_state_the_split(tmp_path: Path,
                                                              monkeypatch) -> None:
    sc = simkit.load(ROOT / "scenarios" / "nfgf_2422.toml")
    sc = sc.with_changes({"run.n_paths": 400, "run.block_size": 200}
                         | {f"segments[{i}].count": max(1, s.count // 200)
                            for i, s in enumerate(sc.segments)})
    from simkit.montecarlo import simulate as mc

    rep = RunReport(sc, mc(sc), levels=(0.9, 0.99))
    drawn: dict[str, Any] = {}
    real = plots.save_figure

    def keep(ax, path, dpi=120):
        drawn[Path(path).name] = ax
        fig = ax if hasattr(ax, "savefig") else ax.figure
        # (a long split is wrapped onto two lines)
        drawn[Path(path).name + ":title"] = fig.axes[0].get_title().replace("\n", " ")
        return real(ax, path, dpi)

    monkeypatch.setattr(plots, "save_figure", keep)
    rep.save(tmp_path)
    ex, bars = drawn["loss_distribution.png"], drawn["parties.png"]
    split = plots.split_label(sc)
    assert split.startswith("nfgf_2422 — bank 20 / guarantor 40")
    assert split in drawn["loss_distribution.png:title"]
    assert "one year" in drawn["loss_distribution.png:title"]
    assert split in drawn["parties.png:title"]
    col = plots.scenario_colors(sc)
    for party, c in _line_colors(ex).items():
        if party in col:
            assert c == col[party]
    bar_cols = {_hex(b.get_facecolor()[:3]) for b in bars.patches}
    assert bar_cols <= set(col.values())
    gids = {ln.get_gid() for ln in ex.get_lines()}
    assert "var_90" in gids and "es_90" in gids  # the levels asked
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "var_90" in summary["parties"]["bank"]
    assert "var_99.9" not in summary["parties"]["bank"]


# --------------------------------------------------------------------------------------
# DES figures
# --------------------------------------------------------------------------------------
DES_BASE: dict[str, Any] = {
    "scenario": {"name": "des_plot"},
    "parties": {
        "bank": {},
        "guarantor": {"net_assets": 5e8, "leverage_limit": 15},
        "provincial": {"net_assets": 2e10, "leverage_limit": 10},
        "national_fund": {},
    },
    "agreements": [{
        "name": "a",
        "recovery_lag_years": 0.5,
        "layers": [{"party": "bank", "share": 0.2}, {"party": "guarantor", "share": 0.4},
                   {"party": "provincial", "share": 0.2},
                   {"party": "national_fund", "share": 0.2}],
        "fees": [{"from": "borrower", "to": "guarantor", "rate": 0.01, "kind": "guarantee"}],
    }],
    "segments": [{
        "name": "smes", "count": 1500,
        "exposure": {"dist": "lognormal", "median": 800_000, "sigma": 0.5},
        "default_prob": {"dist": "uniform", "low": 0.02, "high": 0.06},
        "lgd": {"mean": 0.6, "sd": 0.2}, "interest_margin": 0.05,
    }],
    # the line runs out within the year, then resets at the year end
    "credit_lines": [{"from": "national_fund", "to": "provincial", "amount": 6e8,
                      "period_years": 1}],
    "factors": {"national": 0.15, "regional": 0.1},
    "run": {"seed": 11},
    "des": {"years": 2, "mode": "batch"},
}


@pytest.fixture(scope="module")
def des_result():
    return simulate(simkit.from_dict(copy.deepcopy(DES_BASE)), seed=8)


def test_des_credit_line_figure_shows_exhaustion(des_result) -> None:
    r = des_result
    assert r.summary["refusals"]["credit_line"] > 0  # the line was exhausted
    ax = des_plots.plot_credit_lines(r)
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "national_fund->provincial"]
    y = np.asarray(line.get_ydata())
    # the month that ends at the annual reset shows the year's full use, not 0
    assert y[11] >= 95 and y[11] >= y[10]
    assert y.max() == pytest.approx(100, abs=5)
    limit = [ln for ln in ax.get_lines() if ln.get_gid() == "limit:100%"]
    assert limit and limit[0].get_ydata()[0] == 100
    assert ax.get_ylim()[1] > 100
    assert "%" in ax.get_ylabel()


def test_des_capital_plain_axis_and_only_parties_with_capital(des_result) -> None:
    ax = des_plots.plot_capital(des_result)
    ax.figure.canvas.draw()
    assert ax.yaxis.get_offset_text().get_text() == ""
    assert "million yuan" in ax.get_ylabel()
    assert set(_line_colors(ax)) == {"guarantor", "provincial"}  # bank etc. absent
    ymax = max(np.max(ln.get_ydata()) for ln in ax.get_lines())
    assert 100 < ymax < 1e5  # million yuan, not yuan
    assert "des_plot — bank 20 / guarantor 40" in ax.get_title()
    assert "2-year horizon" in ax.get_title()


def test_des_leverage_has_limit_lines_and_colours_match(des_result) -> None:
    ax = des_plots.plot_leverage(des_result)
    limits = {ln.get_gid(): ln for ln in ax.get_lines()
              if (ln.get_gid() or "").startswith("limit:")}
    assert "limit:guarantor" in limits
    assert limits["limit:guarantor"].get_ydata()[0] == 15
    col = plots.scenario_colors(des_result.scenario)
    assert _hex(limits["limit:guarantor"].get_color()) == col["guarantor"]
    cap = des_plots.plot_capital(des_result, ax=plt.subplots()[1])
    assert _line_colors(cap)["guarantor"] == _line_colors(ax)["guarantor"] == col["guarantor"]


def test_plot_helpers_take_ax_and_make_pyplot_figures(des_result) -> None:
    n = len(plt.get_fignums())
    ax = des_plots.plot_claims(des_result)
    assert len(plt.get_fignums()) == n + 1  # a pyplot figure: Jupyter shows it
    assert "million yuan" in ax.get_ylabel()
    _fig, given = plt.subplots()
    assert des_plots.plot_refusals(des_result, ax=given) is given
    losses, w = _losses(500)
    assert plots.exceedance(losses, ["a", "b"], w, ax=given) is given


# --------------------------------------------------------------------------------------
# --levels and --analytic on the CLI, the text report's units and words
# --------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "simkit.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


@pytest.mark.parametrize("bad", ["0.99,1.5", "0", "abc", "0.9,0.91,0.92,0.93,0.94,0.95,0.96",
                                 "nan", ""])
def test_levels_rejected(bad: str) -> None:
    import argparse

    from simkit.cli import _levels

    with pytest.raises(argparse.ArgumentTypeError, match="levels"):
        _levels(bad)


def test_levels_rejected_on_the_cli() -> None:
    out = _cli("run", "scenarios/anhui_4321.toml", "--levels", "0.99,1.5")
    assert out.returncode == 2
    assert "--levels" in out.stderr and "Traceback" not in out.stderr


def test_levels_parsed_sorted() -> None:
    from simkit.cli import _levels

    assert _levels("0.999,0.95,0.99,0.99") == (0.95, 0.99, 0.999)


def test_analytic_flags_approximation_with_caps(tmp_path: Path) -> None:
    out = _cli("run", "scenarios/anhui_4321.toml", "--analytic", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["approximation"] is True and "cap" in payload["note"]
    text = _cli("run", "scenarios/anhui_4321.toml", "--analytic").stdout
    assert "approximation:" in text and "net result = fee income minus expected loss" in text
    assert "亿" not in text and "expected loss (million yuan)" in text


@pytest.mark.filterwarnings("ignore::simkit.montecarlo.ImportanceSamplingWarning")
def test_text_report_one_unit_and_net_result_defined() -> None:
    sc = simkit.load(ROOT / "scenarios" / "anhui_4321.toml")
    sc = sc.with_changes({"run.n_paths": 50, "run.block_size": 50}
                         | {f"segments[{i}].count": max(1, s.count // 500)
                            for i, s in enumerate(sc.segments)})
    from simkit.montecarlo import simulate as mc

    text = RunReport(sc, mc(sc), levels=(0.95, 0.99, 0.999)).format_text()
    head = text.splitlines()[0]
    assert "million yuan guaranteed" in head and "亿" not in head
    assert "net result = fee income minus expected loss" in text
    assert "interest margin" in text
    assert "amounts in million yuan per year" in text  # the unit, once, above the table
    assert "VaR 95%" in text and "ES 99.9%" in text
    assert " m\n" not in text + "\n" and "million yuan" in text.split("portfolio caps")[1]
    assert "not enough paths" in text  # 50 paths for a 99.9 % VaR: caveat, not a number
    assert "WARNING: importance sampling" in text  # the ESS warning is kept


NO_CAPS = """
[scenario]
name = "nocaps"
[parties.bank]
[parties.guarantor]
[[agreements]]
name = "a"
layers = [{ party = "bank", share = 0.3 }, { party = "guarantor", share = 0.7 }]
[[segments]]
name = "s"
count = 100
exposure = 1000000
default_prob = 0.02
lgd = 0.45
"""


def test_analytic_without_caps_is_exact(tmp_path: Path) -> None:
    f = tmp_path / "nocaps.toml"
    f.write_text(NO_CAPS, encoding="utf-8")
    out = _cli("run", str(f), "--analytic", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["approximation"] is False and "note" not in payload
    assert "approximation" not in _cli("run", str(f), "--analytic").stdout


def test_many_parties_draw_the_largest_and_say_how_many_are_left_out() -> None:
    """The national book has 64 parties: the split reads by kind (one group), and the
    per-party figures draw the MAX_PARTIES largest and name the rest in a note."""
    sc = simkit.load(ROOT / "scenarios" / "nfgf_national_2024.toml")
    assert plots.split_label(sc) == ("nfgf_national_2024 — bank 20 / guarantor 40 / "
                                     "provincial 20 / national_fund 20* (* capped)")
    k = plots.MAX_PARTIES + 5
    rng = np.random.default_rng(1)
    scale = np.arange(1, k + 1, dtype=float)  # party j's losses grow with j
    losses = rng.lognormal(10, 0.5, (3000, k)) * scale
    names = [f"p{j}" for j in range(k)]
    ax = plots.exceedance(losses, names, None, levels=(0.99,))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:plots.MAX_PARTIES] == names[5:]  # the largest, in their order
    assert "+ 5 smaller parties not shown" in labels
    el = losses.mean(axis=0)
    ax = plots.party_bars(names, {"expected loss": el})
    assert len(ax.patches) == plots.MAX_PARTIES
    assert ax.get_xlabel() == "(+ 5 smaller parties not shown)"
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == names[5:]
