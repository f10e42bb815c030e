"""Figures of a DES run. matplotlib is imported inside the functions, never at import.

Every ``plot_*`` function takes ``ax=`` (a matplotlib Axes; a new Figure without pyplot
when omitted) and returns the Axes. :func:`plot_des` writes PNG files of the main series.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from simkit.des.result import DesResult

__all__ = ["plot_capital", "plot_claims", "plot_credit_lines", "plot_credit_supply",
           "plot_des", "plot_leverage", "plot_refusals"]


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure
    return Figure(figsize=(7, 4), layout="constrained").add_subplot()


def _months(result: DesResult) -> np.ndarray:
    return result.months / 365.0 * 12.0


def _active(result: DesResult, arr: np.ndarray) -> list[int]:
    return [j for j in range(arr.shape[1]) if np.any(arr[:, j] != 0)]


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
    ax.set_title("Credit supply")
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
    ax.set_title("Refusals by reason")
    return ax


def plot_capital(result: DesResult, ax: Any = None) -> Any:
    """Month-end capital of every party that holds any (yuan)."""
    ax = _axes(ax)
    m = _months(result)
    cap = result.series["capital"]
    for j in _active(result, cap):
        ax.plot(m, cap[:, j], label=result.parties[j])
    ax.set_xlabel("month")
    ax.set_ylabel("capital (yuan)")
    ax.set_title("Capital")
    ax.legend(fontsize="small")
    return ax


def plot_leverage(result: DesResult, ax: Any = None) -> Any:
    """Month-end leverage (risk-weighted liability / capital) of constrained parties."""
    ax = _axes(ax)
    m = _months(result)
    lev = result.series["leverage"]
    for j in range(lev.shape[1]):
        col = lev[:, j]
        if np.isfinite(col).any() and np.nanmax(np.where(np.isfinite(col), col, 0)) > 0:
            ax.plot(m, col, label=result.parties[j])
    ax.set_xlabel("month")
    ax.set_ylabel("weighted liability / capital")
    ax.set_title("Leverage")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return ax


def plot_claims(result: DesResult, ax: Any = None) -> Any:
    """Compensation paid, reimbursements received and recoveries per month (yuan)."""
    ax = _axes(ax)
    m = _months(result)
    s = result.series
    for key in ("compensation_paid", "reimbursements_received", "recoveries"):
        ax.plot(m, s[key].sum(axis=1), label=key.replace("_", " "))
    if result.cap_refused.size:
        ax.plot(m, result.cap_refused.sum(axis=1), label="refused by caps", linestyle="--")
    ax.set_xlabel("month")
    ax.set_ylabel("yuan per month")
    ax.set_title("Claims")
    ax.legend(fontsize="small")
    return ax


def plot_credit_lines(result: DesResult, ax: Any = None) -> Any:
    """Use of each credit line in its current period at month end (share of the line)."""
    ax = _axes(ax)
    m = _months(result)
    for k, label in enumerate(result.credit_lines):
        ax.plot(m, result.credit_line_use[:, k] / result.credit_line_amount[k], label=label)
    ax.set_xlabel("month")
    ax.set_ylabel("share of the line used")
    ax.set_title("Credit lines")
    if result.credit_lines:
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
        fig = Figure(figsize=(7, 4), layout="constrained")
        fn(result, ax=fig.add_subplot())
        written.append(save_figure(fig, out / f"{name}.png", dpi=100))
    return written
