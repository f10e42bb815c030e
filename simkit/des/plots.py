"""Figures of a DES run. matplotlib is imported inside the functions, never at import.

Every ``plot_*`` function takes ``ax=`` (a matplotlib Axes; a new pyplot figure when
omitted, so it displays in Jupyter) and returns the Axes. Parties keep the colours of
:func:`simkit.plots.scenario_colors`, money is in million yuan, titles state the split
(:func:`simkit.plots.split_label`) and the time basis. :func:`plot_des` writes PNG files
of the main series.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simkit.plots import UNIT, unit_label

if TYPE_CHECKING:
    from simkit.des.result import DesResult

__all__ = ["plot_capital", "plot_claims", "plot_credit_lines", "plot_credit_supply",
           "plot_des", "plot_leverage", "plot_refusals"]


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    return ax


def _months(result: DesResult) -> np.ndarray:
    return result.months / 365.0 * 12.0


def _colors(result: DesResult) -> dict[str, str]:
    from simkit.plots import scenario_colors

    return scenario_colors(result.scenario)


def _title(result: DesResult, what: str, basis: str) -> str:
    from simkit.plots import split_label

    return f"{what}, {basis} over the {result.years:g}-year horizon\n{split_label(result.scenario)}"


def _plain_axis(ax: Any) -> None:
    """No offset or scientific notation on the y axis (plain numbers in the unit)."""
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.6g}"))


def plot_credit_supply(result: DesResult, ax: Any = None) -> Any:
    """Applications, new guarantees and refusals per month (counts, all parties)."""
    ax = _axes(ax)
    m = _months(result)
    s = result.series
    ax.plot(m, s["applications"].sum(axis=1), label="applications")
    ax.plot(m, s["approvals"].sum(axis=1), label="new guarantees")
    if s["renewed"].any():
        ax.plot(m, s["renewed"].sum(axis=1), label="renewals")
    ax.plot(m, sum(a.sum(axis=1) for a in result.refusals.values()), label="refusals")
    ax.set_xlabel("month")
    ax.set_ylabel("count per month")
    ax.set_title(_title(result, "Credit supply", "per month"), fontsize="medium")
    ax.legend(fontsize="small")
    return ax


def plot_refusals(result: DesResult, ax: Any = None) -> Any:
    """Refusals per month by reason (stacked counts)."""
    ax = _axes(ax)
    m = _months(result)
    data = [(r, a.sum(axis=1)) for r, a in result.refusals.items() if a.any()]
    if data:
        ax.stackplot(m, *[d[1] for d in data], labels=[d[0] for d in data])
        ax.legend(fontsize="small", loc="upper left")
    ax.set_xlabel("month")
    ax.set_ylabel("refusals per month")
    ax.set_title(_title(result, "Refusals by reason", "per month"), fontsize="medium")
    return ax


def plot_capital(result: DesResult, ax: Any = None) -> Any:
    """Month-end capital (million yuan) of the parties that hold capital (``net_assets``
    set in the scenario); parties without capital are absent."""
    ax = _axes(ax)
    m = _months(result)
    cap = result.series["capital"]
    col = _colors(result)
    held = {p.name for p in result.scenario.parties if p.net_assets is not None}
    for j, p in enumerate(result.parties):
        if p in held:
            ax.plot(m, cap[:, j] / UNIT, label=p, color=col[p])
    ax.set_xlabel("month")
    ax.set_ylabel(f"capital ({unit_label()})")
    _plain_axis(ax)
    ax.set_title(_title(result, "Capital", "month-end"), fontsize="medium")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return ax


def plot_leverage(result: DesResult, ax: Any = None) -> Any:
    """Month-end leverage (risk-weighted liability / capital) of constrained parties, each
    with its leverage-limit line (dashed, same colour)."""
    ax = _axes(ax)
    m = _months(result)
    lev = result.series["leverage"]
    col = _colors(result)
    limits = {p.name: p.leverage_limit for p in result.scenario.parties}
    for j, p in enumerate(result.parties):
        c = lev[:, j]
        if not (np.isfinite(c).any() and np.nanmax(np.where(np.isfinite(c), c, 0)) > 0):
            continue
        ax.plot(m, c, label=p, color=col[p])
        if limits.get(p) is not None:
            ax.axhline(limits[p], color=col[p], ls="--", lw=1.0, gid=f"limit:{p}",
                       label=f"{p} limit {limits[p]:g}x")
    ax.set_xlabel("month")
    ax.set_ylabel("weighted liability / capital (x)")
    ax.set_ylim(bottom=0)
    ax.set_title(_title(result, "Leverage and its limits", "month-end"), fontsize="medium")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small")
    return ax


def plot_claims(result: DesResult, ax: Any = None) -> Any:
    """Compensation paid, reimbursements received and recoveries per month (million
    yuan)."""
    ax = _axes(ax)
    m = _months(result)
    s = result.series
    for key in ("compensation_paid", "reimbursements_received", "recoveries"):
        ax.plot(m, s[key].sum(axis=1) / UNIT, label=key.replace("_", " "))
    if result.cap_refused.size:
        ax.plot(m, result.cap_refused.sum(axis=1) / UNIT, label="refused by caps",
                linestyle="--")
    ax.set_xlabel("month")
    ax.set_ylabel(f"{unit_label()} per month")
    _plain_axis(ax)
    ax.set_title(_title(result, "Claims", "per month"), fontsize="medium")
    ax.legend(fontsize="small")
    return ax


def plot_credit_lines(result: DesResult, ax: Any = None) -> Any:
    """Peak use of each credit line in each month (share of the line, its period's use
    before any reset within the month), with the 100 % line."""
    ax = _axes(ax)
    m = _months(result)
    col = _colors(result)
    limit = (result.credit_line_limit if result.credit_line_limit is not None
             else result.credit_line_amount[None, :])
    for k, label in enumerate(result.credit_lines):
        holder = label.split("->")[-1]
        ax.plot(m, 100 * result.credit_line_use[:, k] / limit[:, k],
                label=label, color=col.get(holder))
    ax.axhline(100, color="black", lw=1.0, ls="--", gid="limit:100%", label="line exhausted")
    ax.set_xlabel("month")
    ax.set_ylabel("share of the line used (%)")
    ax.set_ylim(0, 110)
    ax.set_title(_title(result, "Credit lines", "peak use per month"), fontsize="medium")
    ax.legend(fontsize="small")
    return ax


def plot_des(result: DesResult, out_dir: str | Path) -> list[Path]:
    """Write PNG figures of the main series to ``out_dir`` (created if needed).

    Each file is written atomically (temporary file beside it, then renamed over it), so an
    interrupted call leaves earlier figures intact, and a symbolic link in ``out_dir`` is
    replaced, never followed. For a whole result set written at once, see
    :func:`simkit.report.save_des`.

    Returns
    -------
    list of Path
        The files written.
    """
    from matplotlib.figure import Figure

    from simkit.plots import save_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    plots = [("des_credit_supply", plot_credit_supply), ("des_refusals", plot_refusals),
             ("des_capital", plot_capital), ("des_leverage", plot_leverage),
             ("des_claims", plot_claims)]
    if result.credit_lines:
        plots.append(("des_credit_lines", plot_credit_lines))
    for name, fn in plots:
        fig = Figure(figsize=(7, 4.2), layout="constrained")  # no pyplot: nothing to close
        fn(result, ax=fig.add_subplot())
        written.append(save_figure(fig, out / f"{name}.png", dpi=100))
    return written
