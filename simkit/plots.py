"""Matplotlib figures. Each function takes ``ax=`` (created when None) and returns it.

matplotlib is imported inside the functions, so ``import simkit`` stays light.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["compare_bars", "exceedance", "paired_bars", "party_bars", "save_figure",
           "sweep_lines", "tornado"]


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(7.5, 4.5))
    return ax


def exceedance(losses: np.ndarray, parties: tuple[str, ...] | list[str],
               weights: np.ndarray | None = None, *, unit: float = 1e6,
               ax: Any = None) -> Any:
    """Exceedance curves P(loss > x) per party on a log scale.

    Parameters
    ----------
    losses : ndarray, shape (n_paths, n_parties)
        Net loss per path and party (yuan).
    weights : ndarray, shape (n_paths,), optional
        Likelihood-ratio weights of importance sampling.
    unit : float
        Divides the x axis (default: million yuan).
    """
    ax = _axes(ax)
    n = losses.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    for j, party in enumerate(parties):
        x = losses[:, j]
        if not np.any(x > 0):
            continue
        order = np.argsort(x)[::-1]
        tail = np.cumsum(w[order]) / n  # P(L >= x_k) along descending losses
        ax.step(x[order] / unit, tail, where="post", label=party)
    ax.set_yscale("log")
    ax.set_xlabel(f"loss ({'million ' if unit == 1e6 else ''}yuan)")
    ax.set_ylabel("probability of exceeding")
    ax.set_ylim(bottom=max(1.0 / n / 2, 1e-6))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("Loss exceedance per party")
    return ax


def party_bars(parties: tuple[str, ...] | list[str], values: dict[str, np.ndarray], *,
               unit: float = 1e6, ax: Any = None) -> Any:
    """Grouped bars per party, e.g. ``{"expected loss": el, "ES 99.9%": es, "fees": f}``."""
    ax = _axes(ax)
    k = len(values)
    x = np.arange(len(parties))
    width = 0.8 / max(k, 1)
    for i, (label, v) in enumerate(values.items()):
        ax.bar(x + (i - (k - 1) / 2) * width, np.asarray(v) / unit, width, label=label)
    ax.set_xticks(x, parties, rotation=20, ha="right")
    ax.set_ylabel(f"{'million ' if unit == 1e6 else ''}yuan")
    ax.axhline(0, color="black", lw=0.8)
    ax.legend(fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)
    return ax


def compare_bars(rows: list[dict[str, Any]], key: str = "el_pct_guaranteed", *,
                 ax: Any = None) -> Any:
    """Bars of ``key`` per party, one group per scenario (rows from ``experiments.compare``)."""
    ax = _axes(ax)
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    parties = list(dict.fromkeys(r["party"] for r in rows))
    width = 0.8 / max(len(scenarios), 1)
    x = np.arange(len(parties))
    for i, s in enumerate(scenarios):
        vals = {r["party"]: r[key] or 0.0 for r in rows if r["scenario"] == s}
        ax.bar(x + (i - (len(scenarios) - 1) / 2) * width,
               [vals.get(p, 0.0) for p in parties], width, label=s)
    ax.set_xticks(x, parties, rotation=20, ha="right")
    ax.set_ylabel("expected loss, % of guaranteed" if key == "el_pct_guaranteed" else key)
    ax.legend(fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title("Who bears the expected loss")
    return ax


def save_figure(ax: Any, path: Any, dpi: int = 120) -> Any:
    """Save a figure atomically and close it; the one figure writer of simkit.

    The image goes to a temporary file beside ``path`` that then replaces ``path``
    (:func:`simkit.report.atomic_write`), so an interrupted save leaves the earlier file
    intact, and a symbolic link at ``path`` is replaced, never followed.

    Parameters
    ----------
    ax : matplotlib Axes or Figure
    path : str or Path
        Target file; the format follows its suffix (PNG when it has none).
    dpi : int
        Resolution (dots per inch).

    Returns
    -------
    Path
        ``path``.
    """
    import sys
    from pathlib import Path

    from simkit import _interrupt
    from simkit.report import atomic_write

    _interrupt.check()  # rendering takes a while: a deferred interrupt stops here
    path = Path(path)
    fig = ax if hasattr(ax, "savefig") else ax.figure
    fmt = path.suffix.lstrip(".").lower() or "png"
    try:
        if not fig.get_layout_engine():
            fig.tight_layout()
        atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))
    finally:
        if "matplotlib.pyplot" in sys.modules:  # close figures that pyplot manages
            import matplotlib.pyplot as plt

            if plt.fignum_exists(getattr(fig, "number", -1)):
                plt.close(fig)
    return path


# --------------------------------------------------------------------------------------
# policy comparisons (rows of simkit.policies.comparison_rows / des_rows)
# --------------------------------------------------------------------------------------
_MONEY_MEASURES = ("el", "fee_income", "net_result", "net_loss", "credit_supplied",
                   "guaranteed_supplied", "direct_credit")


def _measure_unit(measure: str) -> tuple[float, str]:
    if measure.startswith(("var_", "es_")) or measure in _MONEY_MEASURES:
        return 1e6, "million yuan"
    if measure.startswith("p_"):
        return 0.01, "%"
    return 1.0, ""


def sweep_lines(rows: list[dict[str, Any]], param: str, measure: str = "el", *,
                parties: list[str] | None = None, ax: Any = None) -> Any:
    """One measure of each party against a swept parameter, with ±2 SE bands.

    Parameters
    ----------
    rows : list of dict
        The tidy sweep table (:func:`simkit.experiments.sweep_table`); the base row
        (``variant`` equal to the scenario name) is skipped when it repeats a swept value.
    param : str
        The swept path (a column of ``rows``).
    measure : str
        E.g. ``"el"``, ``"es_99"``, ``"net_result"``.
    parties : list of str, optional
        Parties or groups to draw (default: every one with a non-zero value).
    """
    ax = _axes(ax)
    unit, label = _measure_unit(measure)
    sel = [r for r in rows if r["measure"] == measure and r.get(param) is not None
           and isinstance(r.get(param), int | float)]
    names = list(dict.fromkeys(r["party"] for r in sel))
    if parties is not None:  # system-wide rows (party "-") are always drawn
        names = [p for p in names if p in parties or p == "-"]
    for p in names:
        pts: dict[float, tuple[float, float]] = {}
        for r in sel:
            if r["party"] == p:
                pts.setdefault(float(r[param]), (r["value"], r["se"]))
        if not pts or all(v == 0 for v, _ in pts.values()):
            continue
        xs = np.array(sorted(pts))
        v = np.array([pts[x][0] for x in xs]) / unit
        se = np.nan_to_num(np.array([pts[x][1] for x in xs]) / unit)
        (line,) = ax.plot(xs, v, marker="o", ms=3, label="all" if p == "-" else p)
        ax.fill_between(xs, v - 2 * se, v + 2 * se, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel(param)
    ax.set_ylabel(f"{measure} ({label})" if label else measure)
    ax.axhline(0, color="black", lw=0.6)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small")
    return ax


def tornado(rows: list[dict[str, Any]], *, ax: Any = None) -> Any:
    """Tornado chart of one-at-a-time paired differences (rows of
    :func:`simkit.experiments.sensitivity`, one party), widest bar on top, ±2 SE whiskers."""
    ax = _axes(ax)
    if not rows:
        return ax
    unit, label = _measure_unit(rows[0]["measure"])
    order = sorted(rows, key=lambda r: max(abs(r["diff_low"]), abs(r["diff_high"])))
    y = np.arange(len(order))
    lo = np.array([r["diff_low"] for r in order]) / unit
    hi = np.array([r["diff_high"] for r in order]) / unit
    lo_se = np.nan_to_num(np.array([r["diff_low_se"] for r in order]) / unit)
    hi_se = np.nan_to_num(np.array([r["diff_high_se"] for r in order]) / unit)
    ax.barh(y, lo, color="tab:blue", alpha=0.8, label="low value")
    ax.barh(y, hi, color="tab:orange", alpha=0.8, label="high value")
    ax.errorbar(lo, y, xerr=2 * lo_se, fmt="none", ecolor="black", lw=0.8)
    ax.errorbar(hi, y, xerr=2 * hi_se, fmt="none", ecolor="black", lw=0.8)
    ax.set_yticks(y, [f"{r['path']}\n[{r['low']:g}, {r['high']:g}]" for r in order],
                  fontsize="small")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"change in {rows[0]['measure']} of {rows[0]['party']}"
                  + (f" ({label})" if label else ""))
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("One-at-a-time sensitivity (paired, ±2 SE)")
    return ax


def paired_bars(rows: list[dict[str, Any]], measure: str = "el", *, ax: Any = None) -> Any:
    """Paired differences (variant minus base) of ``measure`` per party, one group per
    variant, with ±2 SE whiskers (rows of :func:`simkit.policies.comparison_rows`)."""
    ax = _axes(ax)
    unit, label = _measure_unit(measure)
    sel = [r for r in rows if r["measure"] == measure]
    variants = list(dict.fromkeys(r["variant"] for r in sel))[1:]
    parties = list(dict.fromkeys(r["party"] for r in sel))
    width = 0.8 / max(len(variants), 1)
    x = np.arange(len(parties))
    for i, v in enumerate(variants):
        by = {r["party"]: r for r in sel if r["variant"] == v}
        d = np.array([by[p]["diff"] if p in by else 0.0 for p in parties]) / unit
        se = np.nan_to_num(np.array([by[p]["diff_se"] if p in by else 0.0
                                     for p in parties]) / unit)
        pos = x + (i - (len(variants) - 1) / 2) * width
        ax.bar(pos, d, width, label=v)
        ax.errorbar(pos, d, yerr=2 * se, fmt="none", ecolor="black", lw=0.8)
    ax.set_xticks(x, parties, rotation=25, ha="right")
    ax.set_ylabel(f"difference in {measure}" + (f" ({label})" if label else ""))
    ax.axhline(0, color="black", lw=0.8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="x-small")
    return ax
