"""Matplotlib figures. Each function takes ``ax=`` and returns it; with ``ax=None`` it
makes a pyplot figure (so it displays in Jupyter). :func:`save_figure` writes and closes.

One palette (:func:`party_colors`) colours every party the same way in every figure of
a run; money is in one unit per figure (million yuan by default) named in every axis
label. matplotlib is imported inside the functions, so ``import simkit`` stays light.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["compare_bars", "exceedance", "paired_bars", "party_bars", "party_colors",
           "save_figure", "scenario_colors", "split_label", "sweep_lines", "tornado",
           "unit_label"]

#: Money unit of every figure: million yuan.
UNIT = 1e6
_UNIT_NAMES = {1.0: "yuan", 1e4: "万 yuan", 1e6: "million yuan", 1e8: "亿 yuan",
               1e9: "billion yuan"}
#: Base colour per party kind (Okabe–Ito, colour-blind safe). Guarantors get a family of
#: orange shades by position; TOTAL is black.
_KIND_COLORS = {"bank": "#0072B2", "provincial": "#CC79A7", "national_fund": "#D55E00",
                "local_gov": "#009E73", "central_fiscal": "#56B4E9", "other": "#999999",
                "total": "#000000"}
_GUARANTOR_SHADES = ("#E69F00", "#B07800", "#F5C04A", "#8A5A00", "#FFD98A", "#6B4500")
_OTHER_SHADES = ("#999999", "#F0E442", "#666666", "#BBBBBB")
_TOTAL_NAMES = ("TOTAL", "total", "all", "-")


def unit_label(unit: float = UNIT) -> str:
    """The name of a money unit: ``1e6 -> "million yuan"``."""
    return _UNIT_NAMES.get(float(unit), f"{unit:g} yuan")


def _guess_kind(name: str) -> str:
    if name in _TOTAL_NAMES:
        return "total"
    if name in _KIND_COLORS:
        return name
    if "guarant" in name:
        return "guarantor"
    if "bank" in name:
        return "bank"
    return "other"


def party_colors(parties: Iterable[str],
                 kinds: dict[str, str] | Sequence[str] | None = None) -> dict[str, str]:
    """The colour of each party, the same in every figure of a run.

    A party's colour follows from its kind and its position among the parties of that
    kind, so one scenario always gets the same colours: the bank blue, the guarantors a
    family of orange shades (in scenario order), provincial purple, national fund
    vermilion, local government green, ``central_fiscal`` sky blue, ``TOTAL`` black.

    Parameters
    ----------
    parties : iterable of str
        Party names in scenario order (``TOTAL`` / ``all`` / ``-`` may be included).
    kinds : dict or sequence of str, optional
        Each party's kind (``simkit.scenario.PARTY_KINDS``); guessed from the name when
        missing (``"provincial"``, ``"..._guarantor"``, ...).

    Returns
    -------
    dict of str to str
        Hex colour per party.
    """
    names = list(parties)
    if kinds is None:
        kind_of: dict[str, str] = {}
    elif isinstance(kinds, dict):
        kind_of = dict(kinds)
    else:
        kind_of = dict(zip(names, kinds, strict=True))
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for p in names:
        kind = "total" if p in _TOTAL_NAMES else kind_of.get(p) or _guess_kind(p)
        if kind == "other" and p in _KIND_COLORS:  # central_fiscal is kind "other"
            kind = p
        i = seen.get(kind, 0)
        seen[kind] = i + 1
        if kind == "guarantor":
            out[p] = _GUARANTOR_SHADES[i % len(_GUARANTOR_SHADES)]
        elif kind == "other":
            out[p] = _OTHER_SHADES[i % len(_OTHER_SHADES)]
        elif i == 0:
            out[p] = _KIND_COLORS.get(kind, "#999999")
        else:  # a second party of the same kind: a darker shade of it
            import matplotlib.colors as mcolors

            r, g, b = mcolors.to_rgb(_KIND_COLORS.get(kind, "#999999"))
            f = 0.75 ** i
            out[p] = mcolors.to_hex((r * f, g * f, b * f))
    return {p: c.lower() for p, c in out.items()}


def scenario_colors(scenario: Any, extra: Iterable[str] = ("TOTAL",)) -> dict[str, str]:
    """:func:`party_colors` of a scenario's parties (its kinds, its order), plus ``extra``
    names (``TOTAL`` by default) and ``central_fiscal``."""
    names = list(scenario.party_names)
    kinds = {p.name: p.kind for p in scenario.parties}
    for e in (*extra, "central_fiscal"):
        if e not in names:
            names.append(e)
    return party_colors(names, kinds)


def split_label(scenario: Any, most: int = 2) -> str:
    """The scenario's split in a few words: ``"anhui_4321 — bank 20 / guarantor 40 /
    provincial 30* / local_gov 10 (* capped)"`` (shares in %, one group per distinct
    agreement split, at most ``most`` of them then "(+N more splits)"; a capped layer
    marked ``*``; with several parties of a kind (guarantors, provincial re-guarantors,
    local governments) their layer reads by the kind, as each agreement's own takes it)."""
    kinds = {p.name: p.kind for p in scenario.parties}
    count = Counter(kinds.values())
    by_kind = {k for k in ("guarantor", "provincial", "local_gov") if count[k] > 1}
    groups = []
    for a in scenario.agreements:
        shares: dict[str, float] = {}
        capped = set()
        for layer in a.layers:
            # with several parties of a kind each agreement's own one takes the layer
            kind = kinds.get(layer.party, "")
            name = kind if kind in by_kind else layer.party
            shares[name] = shares.get(name, 0.0) + layer.share
            if layer.cap is not None:
                capped.add(name)
        groups.append(" / ".join(f"{p} {100 * s:.3g}" + ("*" if p in capped else "")
                                 for p, s in shares.items()))
    uniq = list(dict.fromkeys(groups))
    note = " (* capped)" if any("*" in g for g in uniq) else ""
    more = f" (+{len(uniq) - most} more splits)" if len(uniq) > most else ""
    return f"{scenario.name} — " + "; ".join(uniq[:most]) + more + note


#: The most parties a per-party figure (:func:`exceedance`, :func:`party_bars`) draws: with
#: more (the national book has 64) it draws those with the largest values and says how
#: many it leaves out (the CSV and JSON files keep every party).
MAX_PARTIES = 12


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    return ax


def _colors_for(parties: Sequence[str], colors: dict[str, str] | None) -> dict[str, str]:
    base = party_colors(parties)
    if colors:
        base.update({p: c for p, c in colors.items()})
    return base


def exceedance(losses: np.ndarray, parties: tuple[str, ...] | list[str],
               weights: np.ndarray | None = None, *, unit: float = UNIT,
               levels: Sequence[float] = (0.99, 0.999), colors: dict[str, str] | None = None,
               title: str | None = None, ax: Any = None) -> Any:
    """Exceedance curves ``P(L > x)`` per party on a log scale, with ±2 SE bands and
    VaR / ES markers.

    The x range ends at the largest party's loss at the smallest probability shown,
    ``p_min = max(1e-4, 10 / n_paths)`` (the y axis starts just below it), not at the largest
    (possibly importance-sampled) path. The band is ±2 standard errors of the weighted
    tail-probability estimate (:func:`simkit.measures.exceedance_curve`); VaR (triangle)
    and ES (diamond) at each of ``levels`` sit at height ``1 - level`` when that height
    is shown.

    Parameters
    ----------
    losses : ndarray, shape (n_paths, n_parties)
        Net loss per path and party (yuan).
    parties : sequence of str, length n_parties
    weights : ndarray, shape (n_paths,) or (n_paths, n_parties), optional
        Likelihood-ratio weights of importance sampling, one column per party when
        each has its own (:attr:`simkit.lossresult.LossResult.party_weights`).
    unit : float
        Money unit of the x axis (default million yuan).
    levels : sequence of float
        Confidence levels of the VaR / ES markers.
    colors : dict, optional
        Party colours (default :func:`party_colors`).
    title : str, optional

    Returns
    -------
    matplotlib Axes
    """
    from simkit import measures

    ax = _axes(ax)
    losses = np.asarray(losses, dtype=float)
    n = losses.shape[0]
    w = None if weights is None else np.asarray(weights, dtype=float)

    def w_of(j: int) -> np.ndarray | None:
        return w[:, j] if w is not None and w.ndim == 2 else w

    col = _colors_for(parties, colors)
    p_min = max(1e-4, 10.0 / n)
    active = [j for j in range(len(parties)) if np.any(losses[:, j] > 0)]
    reach = {j: float(measures.value_at_risk(losses[:, j], 1 - p_min, w_of(j),
                                             n_batches=None).value) for j in active}
    hidden = 0
    if len(active) > MAX_PARTIES:  # the parties with the largest tails, in their order
        keep = set(sorted(active, key=lambda j: -reach[j])[:MAX_PARTIES])
        hidden = len(active) - len(keep)
        active = [j for j in active if j in keep]
    x_max = max((reach[j] for j in active), default=1.0)
    x_max = float(x_max) if x_max > 0 else float(np.max(losses, initial=1.0))
    grid = np.linspace(0.0, x_max, 300)
    for j in active:
        _exceedance_curve(ax, losses[:, j], grid, w_of(j), parties[j], col[parties[j]],
                          unit, p_min, levels)
    for a in levels:
        if 1 - a >= p_min:
            ax.axhline(1 - a, color="grey", lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_xlim(0, x_max * 1.02 / unit)
    ax.set_ylim(p_min / 1.6, 1.0)  # room below p_min: markers there stay whole
    ax.set_xlabel(f"loss ({unit_label(unit)})")
    ax.set_ylabel("probability of exceeding")
    ax.grid(True, which="both", alpha=0.3)
    _exceedance_legend(ax, levels, p_min, hidden)
    ax.set_title(title or "Loss exceedance per party (band: ±2 SE)")
    return ax


def _exceedance_curve(ax: Any, x: np.ndarray, grid: np.ndarray, w: np.ndarray | None,
                      label: str, c: str, unit: float, p_min: float,
                      levels: Sequence[float]) -> None:
    """One party's curve of :func:`exceedance`: ``P(L > grid)`` (losses ``x``, yuan, (n,))
    with its ±2 SE band and the VaR / ES markers at the levels shown (``1 - level >=
    p_min``)."""
    from simkit import measures

    curve = measures.exceedance_curve(x, grid, w)
    p, se = curve.probability, np.nan_to_num(curve.stderr)
    keep = p > 0
    ax.plot(grid[keep] / unit, p[keep], color=c, label=label)
    ax.fill_between(grid[keep] / unit, np.maximum(p[keep] - 2 * se[keep], p_min / 10),
                    p[keep] + 2 * se[keep], color=c, alpha=0.18, lw=0)
    for a in levels:
        if 1 - a < p_min:
            continue
        var = float(measures.value_at_risk(x, a, w, n_batches=None).value)
        es = float(measures.expected_shortfall(x, a, w, n_batches=None).value)
        ax.plot([var / unit], [1 - a], marker="v", ls="none", color=c, ms=7,
                markeredgecolor="black", gid=f"var_{measures.level_label(a)}")
        ax.plot([es / unit], [1 - a], marker="D", ls="none", color=c, ms=5,
                markeredgecolor="black", gid=f"es_{measures.level_label(a)}")


def _exceedance_legend(ax: Any, levels: Sequence[float], p_min: float,
                       hidden: int = 0) -> None:
    """The legend of :func:`exceedance`: the parties, the VaR / ES markers and how many
    parties with smaller tails are not drawn (``hidden``)."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    if hidden:
        handles.append(Line2D([], [], ls="none"))
        labels.append(f"+ {hidden} smaller parties not shown")
    shown = [f"{100 * a:g} %" for a in levels if 1 - a >= p_min]
    if shown:
        handles += [Line2D([], [], marker="v", ls="none", color="white",
                           markeredgecolor="black"),
                    Line2D([], [], marker="D", ls="none", color="white",
                           markeredgecolor="black")]
        labels += [f"VaR {', '.join(shown)}", f"ES {', '.join(shown)}"]
    if handles:
        ax.legend(handles, labels, fontsize="small")


def _grouped_bars(ax: Any, parties: Sequence[str], groups: Sequence[str],
                  value: Any, error: Any, col: dict[str, str]) -> None:
    """Bars of ``value(group, party)`` (None: absent, nothing drawn) grouped by party,
    coloured by party, one hatch/shade per group, ±2 SE whiskers where ``error`` gives
    one."""
    from matplotlib.patches import Patch

    hatches = ("", "//", "..", "xx", "\\\\", "oo", "--", "++")
    k = len(groups)
    width = 0.8 / max(k, 1)
    x = np.arange(len(parties))
    for i, g in enumerate(groups):
        pos, vals, errs, cols = [], [], [], []
        for jp, p in enumerate(parties):
            v = value(g, p)
            if v is None or not np.isfinite(v):
                continue  # absent, not zero
            pos.append(x[jp] + (i - (k - 1) / 2) * width)
            vals.append(v)
            e = error(g, p)
            errs.append(np.nan if e is None else e)
            cols.append(col[p])
        if not pos:
            continue
        alpha = 1.0 - 0.45 * i / max(k - 1, 1) if k > 1 else 1.0
        ax.bar(pos, vals, width, color=cols, alpha=alpha, hatch=hatches[i % len(hatches)],
               edgecolor="black", lw=0.4, label=f"_{g}")
        e = np.asarray(errs, dtype=float)
        if np.isfinite(e).any():
            ax.errorbar(np.asarray(pos)[np.isfinite(e)], np.asarray(vals)[np.isfinite(e)],
                        yerr=2 * e[np.isfinite(e)], fmt="none", ecolor="black", lw=0.8,
                        capsize=2)
    ax.set_xticks(x, parties, rotation=20, ha="right")
    if k >= 1:
        ax.legend([Patch(facecolor="white", edgecolor="black",
                         hatch=hatches[i % len(hatches)]) for i in range(k)],
                  list(groups), fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)


def party_bars(parties: tuple[str, ...] | list[str], values: dict[str, np.ndarray], *,
               errors: dict[str, np.ndarray] | None = None, unit: float = UNIT,
               colors: dict[str, str] | None = None, title: str | None = None,
               ax: Any = None) -> Any:
    """Grouped bars per party with ±2 SE error bars.

    Parameters
    ----------
    parties : sequence of str
    values : dict of str to ndarray, shape (n_parties,)
        Measure name to value per party (yuan), e.g. ``{"expected loss": el, "ES 99%": es,
        "fee income": f}``; NaN marks a party that does not have the measure (absent, not
        drawn as 0).
    errors : dict of str to ndarray, shape (n_parties,), optional
        Standard errors (yuan) of the measures that have them.
    unit : float
        Money unit of the y axis (default million yuan).
    colors : dict, optional
        Party colours (default :func:`party_colors`); measures differ by hatch.
    """
    ax = _axes(ax)
    errors = errors or {}
    idx = {p: j for j, p in enumerate(parties)}
    shown = list(parties)
    if len(shown) > MAX_PARTIES:  # the largest, in their order
        size = np.nanmax(np.abs(np.array([np.asarray(v, dtype=float) for v in
                                          values.values()])), axis=0, initial=0.0)
        keep = set(np.argsort(-np.nan_to_num(size), kind="stable")[:MAX_PARTIES].tolist())
        shown = [p for p in shown if idx[p] in keep]
        ax.set_xlabel(f"(+ {len(parties) - len(shown)} smaller parties not shown)",
                      fontsize="small")

    def val(g: str, p: str) -> float:
        return float(np.asarray(values[g], dtype=float)[idx[p]]) / unit

    def err(g: str, p: str) -> float | None:
        if g not in errors:
            return None
        return float(np.asarray(errors[g], dtype=float)[idx[p]]) / unit

    _grouped_bars(ax, shown, list(values), val, err, _colors_for(parties, colors))
    ax.set_ylabel(unit_label(unit))
    ax.axhline(0, color="black", lw=0.8)
    if title:
        ax.set_title(title)
    return ax


def compare_bars(rows: list[dict[str, Any]], key: str = "el_pct_guaranteed", *,
                 colors: dict[str, str] | None = None, title: str | None = None,
                 ax: Any = None) -> Any:
    """Bars of ``key`` per party, one group per scenario (rows from ``experiments.compare``),
    with ±2 SE whiskers where the rows carry ``{key}_se`` (or ``el_se`` for
    ``el_pct_guaranteed`` with ``guaranteed``). A party a scenario does not have is absent.
    """
    ax = _axes(ax)
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    parties = list(dict.fromkeys(r["party"] for r in rows))
    by = {(r["scenario"], r["party"]): r for r in rows}
    money = key in _MONEY_MEASURES or key.startswith(("var_", "es_"))
    scale = UNIT if money else 1.0

    def val(s: str, p: str) -> float | None:
        r = by.get((s, p))
        return None if r is None or r.get(key) is None else float(r[key]) / scale

    def err(s: str, p: str) -> float | None:
        r = by.get((s, p))
        if r is None:
            return None
        if r.get(f"{key}_se") is not None:
            return float(r[f"{key}_se"]) / scale
        if key == "el_pct_guaranteed" and r.get("el_se") is not None and r.get("guaranteed"):
            return 100 * float(r["el_se"]) / float(r["guaranteed"])
        return None

    _grouped_bars(ax, parties, scenarios, val, err, _colors_for(parties, colors))
    ax.set_ylabel("expected loss, % of guaranteed" if key == "el_pct_guaranteed"
                  else f"{key} ({unit_label()})" if money else key)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title(title or "Who bears the expected loss")
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
                parties: list[str] | None = None, colors: dict[str, str] | None = None,
                ax: Any = None) -> Any:
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
    colors : dict, optional
        Party colours (default :func:`party_colors`; the system-wide row is TOTAL).
    """
    ax = _axes(ax)
    unit, label = _measure_unit(measure)
    sel = [r for r in rows if r["measure"] == measure and r.get(param) is not None
           and isinstance(r.get(param), int | float)]
    names = list(dict.fromkeys(r["party"] for r in sel))
    if parties is not None:  # system-wide rows (party "-") are always drawn
        names = [p for p in names if p in parties or p == "-"]
    col = _colors_for(names, colors)
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
        c = col.get("TOTAL", col[p]) if p == "-" else col[p]
        ax.plot(xs, v, marker="o", ms=3, color=c, label="all" if p == "-" else p)
        ax.fill_between(xs, v - 2 * se, v + 2 * se, color=c, alpha=0.2, lw=0)
    ax.set_xlabel(param)
    ax.set_ylabel(f"{measure} ({label})" if label else measure)
    ax.axhline(0, color="black", lw=0.6)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small")
    return ax


def tornado(rows: list[dict[str, Any]], *, colors: dict[str, str] | None = None,
            ax: Any = None) -> Any:
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
    party = rows[0]["party"]
    c = _colors_for([party], colors)[party]
    ax.barh(y, lo, color=c, alpha=0.45, hatch="//", edgecolor="black", lw=0.4,
            label="low value")
    ax.barh(y, hi, color=c, alpha=0.95, edgecolor="black", lw=0.4, label="high value")
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


def paired_bars(rows: list[dict[str, Any]], measure: str = "el", *,
                colors: dict[str, str] | None = None, ax: Any = None) -> Any:
    """Paired differences (variant minus base) of ``measure`` per party, one group per
    variant, with ±2 SE whiskers (rows of :func:`simkit.policies.comparison_rows`).
    Bars are in the party's colour, variants differ by hatch; a party a variant does not
    have is absent (no bar), not drawn as 0."""
    ax = _axes(ax)
    unit, label = _measure_unit(measure)
    sel = [r for r in rows if r["measure"] == measure]
    variants = list(dict.fromkeys(r["variant"] for r in sel))[1:]
    parties = list(dict.fromkeys(r["party"] for r in sel))
    by = {(r["variant"], r["party"]): r for r in sel}

    def val(v: str, p: str) -> float | None:
        r = by.get((v, p))
        return None if r is None or r.get("diff") is None else float(r["diff"]) / unit

    def err(v: str, p: str) -> float | None:
        r = by.get((v, p))
        return None if r is None or r.get("diff_se") is None else float(r["diff_se"]) / unit

    col = _colors_for(parties, colors)
    if "-" in col:
        col["-"] = col.get("TOTAL", "#000000")
    _grouped_bars(ax, parties, variants, val, err, col)
    ax.set_ylabel(f"difference in {measure}" + (f" ({label})" if label else ""))
    ax.axhline(0, color="black", lw=0.8)
    return ax
