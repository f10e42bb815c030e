"""Matplotlib figures. Each function takes ``ax=`` (created when None) and returns it.

matplotlib is imported inside the functions, so ``import simkit`` stays light.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["compare_bars", "exceedance", "party_bars", "save_figure"]


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
