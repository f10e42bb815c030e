"""Parameter uncertainty: a second-order Monte Carlo over the scenario's unknown parameters.

A scenario's ``[[uncertainty.parameters]]`` (or an inline ``uncertain = true``, see
:class:`simkit.scenario.UncertainParameter`) say which of its numbers are not known and
how they might lie. :func:`run_uncertainty` draws them ``n_draws`` times (the outer loop;
draw ``i`` from the keyed stream ``("uncertainty", i)`` of the root seed), runs the
ordinary Monte Carlo of each draw's scenario (the inner loop; by default every draw on the
same paths, common random numbers, so differences between draws are the parameters'
and nothing else) and reports for every party:

- the **mixture** EL, VaR and ES: the loss distribution that averages over the parameters
  (every draw's paths pooled, each draw with weight ``1 / n_draws``), beside the
  **reference** run at the values the scenario states;
- the **spread** of each draw's EL, VaR and ES (the band between two quantiles of the
  per-draw values, 5 % and 95 % by default);
- the **parameter share of the loss variance** by the law of total variance,
  ``Var L = E[Var(L | theta)] + Var(E[L | theta])``: the share ``Var(E[L | theta]) /
  Var L``, with a bootstrap standard error over the draws;
- for the tail, the **ES uplift** ``(ES_mixture - ES_reference) / ES_mixture`` (how much of
  the mixture's ES comes from not knowing the parameters) and the **tail-event share**: the
  same law applied to the indicator of a loss above the mixture's VaR,
  ``Var(P(L > VaR | theta)) / (p (1 - p))``, with its bootstrap standard error.

Amounts are yuan; EL per year (the horizon total / ``H``), VaR and ES of the loss over the
horizon, as in :meth:`simkit.montecarlo.LossResult.summary`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simkit import _interrupt
from simkit._rng import seed_sequence, stream
from simkit.measures import expected_shortfall, level_label, summarize, value_at_risk
from simkit.scenario import Scenario, ScenarioError

__all__ = ["UncertaintyResult", "draw_parameters", "run_uncertainty"]

#: Name of the whole book's column beside the parties.
TOTAL = "total"
#: Bootstrap resamples of the draws for the standard errors of the shares.
N_BOOT = 400
#: Bootstrap resamples of the draws for the mixture's VaR/ES standard errors with
#: independent paths per draw (each resample sorts the pooled paths once per level).
TAIL_BOOT = 100


def draw_parameters(scenario: Scenario, n_draws: int, seed: int | None = None) -> np.ndarray:
    """The values of every uncertain parameter in each outer draw.

    Draw ``i`` takes one uniform per parameter from the keyed stream
    ``stream(seed, "uncertainty", i)`` and maps it through the parameter's quantile
    function (:meth:`~simkit.scenario.UncertainParameter.quantile`), so the first ``n``
    draws are the same whatever ``n_draws`` is.

    Parameters
    ----------
    scenario : Scenario
    n_draws : int
    seed : int, optional
        Root seed (default ``scenario.run.seed``).

    Returns
    -------
    ndarray, shape (n_draws, n_parameters)
        Drawn values (multipliers for ``apply = "scale"``), in the order of
        ``scenario.uncertainty``.
    """
    seed = scenario.run.seed if seed is None else int(seed)
    params = scenario.uncertainty
    u = np.array([stream(seed, "uncertainty", i).random(len(params)) for i in range(n_draws)])
    u = u.reshape(n_draws, len(params))
    return np.column_stack([p.quantile(u[:, k]) for k, p in enumerate(params)]) \
        if params else np.zeros((n_draws, 0))


def _changes(scenario: Scenario, values: Sequence[float]) -> dict[str, Any]:
    """The :meth:`Scenario.with_changes` edits of one draw (the table itself removed, so
    the draw's scenario is a plain one)."""
    from simkit.experiments import get_path

    out: dict[str, Any] = {"uncertainty.parameters": []}
    for p, x in zip(scenario.uncertainty, values, strict=True):
        for path in p.paths:
            out[path] = (float(x) if p.apply == "value"
                         else float(get_path(scenario, path)) * float(x))
    return out


def _draw_moments(losses: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each column under the draw's (self-normalised) weights."""
    p = np.full(len(losses), 1.0 / len(losses)) if w is None else w / w.sum()
    m = p @ losses
    v = p @ (losses - m) ** 2
    return m, v


def _share(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``Var(E[L | theta]) / (E[Var(L | theta)] + Var(E[L | theta]))`` per column (NaN when
    the total variance is 0); ``mean``, ``var``: (n_draws, n_columns)."""
    between = mean.var(axis=0)
    total = var.mean(axis=0) + between
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, between / np.where(total > 0, total, 1.0), np.nan)


def _boot_se(mean: np.ndarray, var: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Bootstrap standard error of :func:`_share` over the draws (``idx``: (B, n_draws))."""
    import warnings

    shares = np.array([_share(mean[i], var[i]) for i in idx])
    if len(idx) < 2:
        return np.full(mean.shape[1], np.nan)
    with warnings.catch_warnings():  # a column with no variance: NaN, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanstd(shares, axis=0, ddof=1)


def _draw_batches(n_draws: int) -> int:
    """Batches of whole draws for the batch-means SE of the mixture's VaR and ES."""
    for k in range(min(n_draws, 20), 1, -1):
        if n_draws % k == 0:
            return k
    return min(n_draws, 20)


@dataclass
class UncertaintyResult:
    """What :func:`run_uncertainty` returns.

    Attributes
    ----------
    scenario : Scenario
    names : tuple of str
        The uncertain parameters (``UncertainParameter.name``).
    draws : ndarray, shape (n_draws, n_parameters)
        Their drawn values (multipliers for ``apply = "scale"``).
    columns : tuple of str
        The parties, then ``"total"`` (the whole book).
    levels : tuple of float
        Confidence levels of VaR and ES.
    n_paths : int
        Inner paths per draw.
    horizon : int
        Years simulated (EL is per year; VaR and ES of the horizon's loss).
    band : tuple of float
        Quantiles of the per-draw values reported (default 5 % and 95 %).
    per_draw : dict of str to ndarray
        ``el`` (yuan per year), ``sd``, ``var_LL``, ``es_LL`` (yuan) per draw and column,
        each of shape (n_draws, n_columns).
    mixture, reference : dict of str to dict
        Per column: :func:`simkit.measures.summarize` of the pooled draws, and of the run
        at the stated values (``el`` and ``el_se`` per year).
    variance : dict of str to ndarray
        ``within`` (``E[Var(L | theta)]``), ``between`` (``Var(E[L | theta])``), ``total``,
        ``share``, ``share_se``, ``noise`` (an upper bound on the part of ``share`` that is
        inner Monte Carlo noise: ``within / n_paths / total``), each (n_columns,).
    tail : dict of str to ndarray
        Per level label: ``uplift_LL`` (``(ES_mix - ES_ref) / ES_mix``), ``share_LL``,
        ``share_LL_se`` (tail-event share and its SE), each (n_columns,).
    common_random_numbers : bool
    seed : int
        Root seed of the parameter draws (and the paths' seed under common random numbers).
    """

    scenario: Scenario
    names: tuple[str, ...]
    draws: np.ndarray
    columns: tuple[str, ...]
    levels: tuple[float, ...]
    n_paths: int
    horizon: int
    band: tuple[float, float]
    per_draw: dict[str, np.ndarray]
    mixture: dict[str, dict[str, float]]
    reference: dict[str, dict[str, float]]
    variance: dict[str, np.ndarray]
    tail: dict[str, np.ndarray]
    common_random_numbers: bool = True
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_draws(self) -> int:
        return int(self.draws.shape[0])

    def _measures(self) -> list[str]:
        return ["el", *(f"{m}_{level_label(a)}" for a in self.levels for m in ("var", "es"))]

    def rows(self) -> list[dict[str, Any]]:
        """One row per column (party, then ``total``): for each measure ``M`` (``el``,
        ``var_LL``, ``es_LL``) the mixture value ``M`` and its ``M_se``, the reference
        ``M_ref``, the mean of the draws ``M_draw_mean`` and the band ``M_draw_pLO`` /
        ``M_draw_pHI``; then ``var_share``, ``var_share_se``, ``var_share_noise`` and per
        level ``es_LL_uplift``, ``tail_share_LL``, ``tail_share_LL_se``. Yuan (EL per
        year); shares are fractions."""
        lo, hi = (f"p{100 * q:g}" for q in self.band)
        out = []
        for j, c in enumerate(self.columns):
            row: dict[str, Any] = {"party": c}
            for m in self._measures():
                x = self.per_draw[m][:, j]
                row[m] = self.mixture[c][m]
                row[f"{m}_se"] = self.mixture[c][f"{m}_se"]
                row[f"{m}_ref"] = self.reference[c][m]
                row[f"{m}_draw_mean"] = float(x.mean())
                row[f"{m}_draw_{lo}"] = float(np.quantile(x, self.band[0]))
                row[f"{m}_draw_{hi}"] = float(np.quantile(x, self.band[1]))
            row["var_share"] = float(self.variance["share"][j])
            row["var_share_se"] = float(self.variance["share_se"][j])
            row["var_share_noise"] = float(self.variance["noise"][j])
            for a in self.levels:
                lab = level_label(a)
                row[f"es_{lab}_uplift"] = float(self.tail[f"uplift_{lab}"][j])
                row[f"tail_share_{lab}"] = float(self.tail[f"share_{lab}"][j])
                row[f"tail_share_{lab}_se"] = float(self.tail[f"share_{lab}_se"][j])
            out.append(row)
        return out

    def draw_rows(self) -> list[dict[str, Any]]:
        """One row per draw: the parameter values, then each column's EL and ES per draw
        (``PARTY:el``, ``PARTY:es_LL``; yuan)."""
        out = []
        for i in range(self.n_draws):
            row: dict[str, Any] = {"draw": i}
            row.update({n: float(self.draws[i, k]) for k, n in enumerate(self.names)})
            for j, c in enumerate(self.columns):
                row[f"{c}:el"] = float(self.per_draw["el"][i, j])
                for a in self.levels:
                    key = f"es_{level_label(a)}"
                    row[f"{c}:{key}"] = float(self.per_draw[key][i, j])
            out.append(row)
        return out

    def to_frame(self) -> Any:
        """:meth:`rows` as a pandas DataFrame indexed by party (needs pandas)."""
        from simkit.report import require_pandas

        pd = require_pandas()
        return pd.DataFrame(self.rows()).set_index("party")

    def summary(self) -> dict[str, Any]:
        """Everything as plain data (the ``uncertainty.json`` of ``simkit uncertainty``)."""
        return {
            "scenario": self.scenario.name,
            "source": self.scenario.source,
            "method": "second-order Monte Carlo (outer parameter draws, inner paths)",
            "n_draws": self.n_draws,
            "n_paths": self.n_paths,
            "seed": self.seed,
            "common_random_numbers": self.common_random_numbers,
            "levels": list(self.levels),
            "band": list(self.band),
            "unit": "yuan; el per year, var and es of the loss over the horizon",
            "horizon_years": self.horizon,
            "parameters": [{**p.as_dict(), "drawn_mean": float(self.draws[:, k].mean()),
                            "drawn_min": float(self.draws[:, k].min()),
                            "drawn_max": float(self.draws[:, k].max())}
                           for k, p in enumerate(self.scenario.uncertainty)],
            "parties": {r["party"]: r for r in self.rows()},
            "notes": list(self.notes),
        }

    def format_text(self) -> str:
        """A short table: per party EL and the top-level ES (reference, mixture, band of
        the draws) and the parameter shares (million yuan)."""
        from simkit.report import fmt_money, format_table

        top = level_label(max(self.levels))
        lo, hi = (f"p{100 * q:g}" for q in self.band)
        head = (f"simkit uncertainty {self.scenario.name}: {self.n_draws} parameter draws x "
                f"{self.n_paths:,} paths ("
                + ("common random numbers" if self.common_random_numbers
                   else "independent paths per draw")
                + "); uncertain: " + ", ".join(self.names))
        rows = []
        for r in self.rows():
            rows.append((
                r["party"], fmt_money(r["el_ref"]), fmt_money(r["el"]),
                f"{fmt_money(r[f'el_draw_{lo}'])}..{fmt_money(r[f'el_draw_{hi}'])}",
                fmt_money(r[f"es_{top}_ref"]), fmt_money(r[f"es_{top}"]),
                f"{fmt_money(r[f'es_{top}_draw_{lo}'])}..{fmt_money(r[f'es_{top}_draw_{hi}'])}",
                _pct(r["var_share"], r["var_share_se"]), _pct(r[f"es_{top}_uplift"]),
                _pct(r[f"tail_share_{top}"], r[f"tail_share_{top}_se"]),
            ))
        band = f"draws {lo}..{hi}"
        table = format_table(rows, [
            "party", "EL ref", "EL mix", f"EL {band}", f"ES{top} ref", f"ES{top} mix",
            f"ES{top} {band}", "var share", f"ES{top} uplift", f"tail share {top}"])
        return "\n".join([head, "amounts in million yuan (EL per year)", table,
                          *self.notes])

    def plot(self, ax: Any = None, level: float | None = None) -> Any:
        """Per party, the distribution of the per-draw ES at ``level`` (default the highest
        level): a box with every draw as a dot, the mixture ES as a diamond and the ES at
        the stated values as a bar; one panel per party (million yuan), coloured by
        :func:`simkit.plots.party_colors`. Returns the figure."""
        import matplotlib.pyplot as plt

        from simkit import plots

        level = max(self.levels) if level is None else level
        key = f"es_{level_label(level)}"
        cols = list(self.columns)
        kinds = {p.name: p.kind for p in self.scenario.parties}
        colors = plots.party_colors(cols, {**kinds, TOTAL: "total"})
        n = len(cols)
        ncol = min(n, 4)
        nrow = -(-n // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.8 * nrow), squeeze=False)
        u = plots.UNIT
        jitter = stream(self.seed, "uncertainty plot").uniform(-0.12, 0.12, self.n_draws)
        for j, c in enumerate(cols):
            a = axes[j // ncol][j % ncol]
            x = self.per_draw[key][:, j] / u
            a.boxplot([x], widths=0.5, showfliers=False, medianprops={"color": colors[c]})
            a.scatter(1 + jitter, x, s=8, color=colors[c], alpha=0.6, zorder=3)
            a.scatter([1], [self.mixture[c][key] / u], marker="D", s=40, color="black",
                      zorder=4, label="mixture")
            a.axhline(self.reference[c][key] / u, color="grey", ls="--", lw=1,
                      label="stated values")
            a.set_xticks([])
            a.set_title(c, fontsize=9, color=colors[c])
            a.set_ylabel(f"ES {level_label(level)}% ({plots.unit_label()})", fontsize=8)
        for j in range(n, nrow * ncol):
            axes[j // ncol][j % ncol].set_visible(False)
        axes[0][0].legend(fontsize=7, loc="best")
        fig.suptitle(f"{self.scenario.name}: ES {level_label(level)}% per parameter draw "
                     f"({self.n_draws} draws; uncertain: {', '.join(self.names)})",
                     fontsize=9)
        fig.tight_layout()
        return fig

    def save(self, out_dir: str | Path, figures: bool = True) -> list[Path]:
        """Write ``uncertainty.json`` (:meth:`summary`), ``uncertainty.csv`` (:meth:`rows`),
        ``draws.csv`` (:meth:`draw_rows`) and ``uncertainty.png`` (:meth:`plot`) into
        ``out_dir`` as one atomic result set (:func:`simkit.report.result_set`)."""
        from simkit import plots, report

        names = ["uncertainty.json", "uncertainty.csv", "draws.csv"]
        with report.result_set(out_dir) as tmp:
            report.write_json(tmp / "uncertainty.json", self.summary())
            report.write_csv(tmp / "uncertainty.csv", self.rows())
            report.write_csv(tmp / "draws.csv", self.draw_rows())
            if figures:
                plots.save_figure(self.plot(), tmp / "uncertainty.png")
                names.append("uncertainty.png")
        return [Path(out_dir) / n for n in names]


def _pct(x: float, se: float | None = None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    s = f"{100 * x:.1f} %"
    return s + (f" ± {100 * se:.1f}" if se is not None and math.isfinite(se) else "")


def run_uncertainty(
    scenario: Scenario,
    n_draws: int,
    *,
    n_paths: int | None = None,
    seed: int | None = None,
    levels: Sequence[float] = (0.99, 0.999),
    band: tuple[float, float] = (0.05, 0.95),
    common_random_numbers: bool = True,
    executor: Executor | None = None,
    progress: bool = False,
    engine: str = "auto",
    n_boot: int = N_BOOT,
) -> UncertaintyResult:
    """Second-order Monte Carlo: ``n_draws`` parameter draws, an inner run for each.

    Parameters
    ----------
    scenario : Scenario
        With at least one uncertain parameter (``scenario.uncertainty``).
    n_draws : int
        Outer draws (>= 2). The shares' standard errors fall like ``1 / sqrt(n_draws)``.
    n_paths : int, optional
        Inner paths per draw (default ``scenario.run.n_paths``).
    seed : int, optional
        Root seed (default ``scenario.run.seed``): the parameter draws are its keyed
        streams ``("uncertainty", i)``; the paths use it too (every draw and the reference
        run on the same paths) unless ``common_random_numbers`` is false, when draw ``i``
        runs on the keyed seed ``("uncertainty paths", i)``.
    levels : sequence of float
        Confidence levels of VaR and ES.
    band : (float, float)
        Quantiles of the per-draw values to report.
    common_random_numbers : bool
        Same paths for every draw (default): the spread between draws is then the
        parameters' alone, and a degenerate distribution gives exactly the plain run.
    executor : concurrent.futures.Executor, optional
        Where each inner run's blocks go (:func:`simkit.montecarlo.simulate`).
    progress : bool
        A tqdm bar over the draws.
    engine : {"auto", "numpy", "numba"}
        Inner loops (:func:`simkit.montecarlo.simulate`).
    n_boot : int
        Bootstrap resamples of the draws for the shares' standard errors.

    Returns
    -------
    UncertaintyResult

    Raises
    ------
    ScenarioError
        When the scenario has no uncertain parameter, for bad ``n_draws``, ``levels`` or
        ``band``, or when the pooled paths would not fit in memory.
    """
    from simkit.montecarlo import simulate

    n_draws, levels, (lo_q, hi_q), m = _checked_request(scenario, n_draws, levels, band,
                                                        n_paths)
    seed = scenario.run.seed if seed is None else int(seed)
    plain = scenario.with_changes({"uncertainty.parameters": []})
    values = draw_parameters(scenario, n_draws, seed)
    columns = (*scenario.party_names, TOTAL)
    ref = simulate(plain, n_paths=m, seed=seed, executor=executor, engine=engine)
    horizon = ref.horizon
    ref_stats = _reference_stats(ref, levels, columns)
    runs = _inner_runs(scenario, values, m, seed, levels, columns, horizon,
                       common_random_numbers, executor, progress, engine)
    gen = stream(seed, "uncertainty bootstrap")
    idx = gen.integers(0, n_draws, size=(int(n_boot), n_draws)) if n_boot > 1 else \
        np.zeros((0, n_draws), dtype=np.int64)
    mix = _mixture(runs, levels, columns, horizon, ref_stats, idx[:TAIL_BOOT])
    variance = _variance_parts(runs, idx, m)
    tail = _tail_parts(runs, idx, levels, columns, mix, ref_stats)
    notes = _notes(n_draws, common_random_numbers, runs.weighted)
    return UncertaintyResult(
        scenario=scenario, names=tuple(p.name for p in scenario.uncertainty), draws=values,
        columns=columns, levels=levels, n_paths=m, horizon=horizon, band=(lo_q, hi_q),
        per_draw=runs.per_draw, mixture=mix, reference=ref_stats, variance=variance, tail=tail,
        common_random_numbers=common_random_numbers, seed=seed, notes=notes)


def _checked_request(scenario: Scenario, n_draws: int, levels: Sequence[float],
                     band: tuple[float, float], n_paths: int | None,
                     ) -> tuple[int, tuple[float, ...], tuple[float, float], int]:
    """The checked ``(n_draws, levels, band, n_paths)`` of :func:`run_uncertainty`
    (levels sorted and unique); raises :class:`ScenarioError` for a bad value or when
    the pooled paths would not fit in memory."""
    from simkit.resources import available_bytes, check_memory

    src = scenario.source
    if not scenario.uncertainty:
        raise ScenarioError(src, "uncertainty", "has no uncertain parameters: add "
                            "[[uncertainty.parameters]] or `uncertain = true` to a value's "
                            "distribution (README, \"Parameter uncertainty\")")
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 2:
        raise ScenarioError(src, "n_draws", f"must be an integer >= 2, got {n_draws!r}")
    levels = tuple(sorted({float(a) for a in levels}))
    if not levels or not all(0 < a < 1 for a in levels):
        raise ScenarioError(src, "levels", f"must be levels in (0, 1), got {levels!r}")
    lo_q, hi_q = (float(q) for q in band)
    if not 0 <= lo_q < hi_q <= 1:
        raise ScenarioError(src, "band", f"must be two quantiles 0 <= lo < hi <= 1, got {band!r}")
    n_draws = int(n_draws)
    m = scenario.run.n_paths if n_paths is None else int(n_paths)
    if m < 2:
        raise ScenarioError(src, "n_paths", f"must be >= 2, got {m}")
    scenario.check_uncertainty()  # every draw a valid scenario (with_changes skips it)
    plain = scenario.with_changes({"uncertainty.parameters": []})
    n_cols = len(scenario.parties) + 1
    pooled_bytes = n_draws * m * (n_cols + 1) * 8
    need = check_memory(plain.with_changes({"run.n_paths": m}), "montecarlo") + pooled_bytes
    avail = available_bytes()
    if avail is not None and need > avail:
        raise ScenarioError(src, "--draws", f"x --paths needs about {need / 2**30:.1f} GiB "
                            f"(the pooled paths of {n_draws} draws x {m:,} paths), more than "
                            f"the {avail / 2**30:.1f} GiB available; use fewer draws or paths")
    return n_draws, levels, (lo_q, hi_q), m


def _reference_stats(ref: Any, levels: tuple[float, ...], columns: tuple[str, ...],
                     ) -> dict[str, dict[str, float]]:
    """The measures of the reference run (at the stated values), per column; EL per
    year."""
    stats: dict[str, dict[str, float]] = {
        str(c): st for c, st in summarize(_columns_of(ref), levels, ref.weights,
                                          list(columns)).items()}
    for st in stats.values():
        st["el"], st["el_se"] = st["el"] / ref.horizon, st["el_se"] / ref.horizon
    return stats


def _notes(n_draws: int, common_random_numbers: bool, weighted: bool) -> list[str]:
    """The notes of an :class:`UncertaintyResult`."""
    notes = [
        f"var share: Var(E[L|theta]) / Var(L) over the {n_draws} draws (law of total "
        f"variance), ± a bootstrap SE over the draws (it falls like 1/sqrt(draws)); "
        f"var_share_noise bounds the part that is inner Monte Carlo noise"
        + (" (common random numbers keep it far below the bound)" if common_random_numbers
           else ""),
        "ES uplift: (ES of the mixture - ES at the stated values) / ES of the mixture; "
        "tail share: the same law for the event of a loss above the mixture's VaR",
    ]
    if weighted:
        notes.append("importance sampling: the variance decomposition uses each draw's "
                     "self-normalised weights")
    return notes


def _columns_of(res: Any) -> np.ndarray:
    """``(n_paths, n_parties + 1)`` losses of a run: each party's, then the total."""
    return np.column_stack([res.losses, res.total_loss]).astype(np.float64)


@dataclass
class _InnerRuns:
    """The pooled inner runs of :func:`run_uncertainty` (``d`` draws of ``m`` paths,
    ``c`` columns)."""

    losses: np.ndarray  # (d, m, c)
    weights: np.ndarray  # (d, m) importance weights (ones without importance sampling)
    weighted: bool  # some run had importance weights
    per_draw: dict[str, np.ndarray]  # measure -> (d, c); EL per year
    mom_mean: np.ndarray  # (d, c) each draw's mean loss
    mom_var: np.ndarray  # (d, c) each draw's loss variance
    common_random_numbers: bool  # every draw on the same paths


def _inner_runs(scenario: Scenario, values: np.ndarray, m: int, seed: int,
                levels: tuple[float, ...], columns: tuple[str, ...], horizon: float,
                common_random_numbers: bool, executor: Executor | None, progress: bool,
                engine: str) -> _InnerRuns:
    """One inner run of ``m`` paths for each parameter draw (row of ``values``)."""
    from simkit.montecarlo import simulate

    n_draws, n_cols = len(values), len(columns)
    losses = np.empty((n_draws, m, n_cols))
    weights = np.ones((n_draws, m))
    weighted = False
    keys = ["el", "sd", *(f"{k}_{level_label(a)}" for a in levels for k in ("var", "es"))]
    per_draw = {k: np.empty((n_draws, n_cols)) for k in keys}
    mom_mean = np.empty((n_draws, n_cols))
    mom_var = np.empty((n_draws, n_cols))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_draws, desc=f"simkit uncertainty {scenario.name}", unit="draw")
    try:
        for i in range(n_draws):
            _interrupt.check()
            variant = scenario.with_changes(_changes(scenario, values[i]))
            path_seed = seed if common_random_numbers else int(
                seed_sequence(seed, "uncertainty paths", i).generate_state(1, np.uint64)[0]
                >> np.uint64(1))
            res = simulate(variant, n_paths=m, seed=path_seed, executor=executor,
                           engine=engine)
            x = _columns_of(res)
            losses[i] = x
            if res.weights is not None:
                weights[i] = res.weights
                weighted = True
            draw = summarize(x, levels, res.weights, list(columns), n_batches=None)
            for j, c in enumerate(columns):
                for k in keys:
                    per_draw[k][i, j] = draw[c][k] / (horizon if k == "el" else 1)
            mom_mean[i], mom_var[i] = _draw_moments(x, res.weights)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return _InnerRuns(losses, weights, weighted, per_draw, mom_mean, mom_var,
                      common_random_numbers)


def _mixture(runs: _InnerRuns, levels: tuple[float, ...], columns: tuple[str, ...],
             horizon: float, ref_stats: dict[str, dict[str, float]],
             idx: np.ndarray) -> dict[str, dict[str, float]]:
    """The measures of the pooled paths (the mixture over the draws), per column; ``idx``
    (``(B, d)``): bootstrap resamples of the draws for the VaR/ES standard errors when
    every draw has its own paths."""
    n_draws, m, n_cols = runs.losses.shape
    flat = runs.losses.reshape(n_draws * m, n_cols)
    w_flat = runs.weights.reshape(-1) if runs.weighted else None
    mix: dict[str, dict[str, float]] = {
        str(c): st for c, st in summarize(flat, levels, w_flat, list(columns),
                                          n_batches=_draw_batches(n_draws)).items()}
    # the mixture's EL: the mean of the draws' ELs. Draws x paths is a crossed design
    # under common random numbers: Var = s_draw^2 / d + s_path^2 / m + s_inter^2 / (d m);
    # the spread of the draw means estimates the first and last terms, that of the path
    # means (over the draws) the second and last, so the interaction, estimated from the
    # two-way residuals, is taken off once
    # (independent paths per draw: the draw means are independent, their spread is all)
    wz = runs.losses * runs.weights[:, :, None]
    by_draw = wz.mean(axis=1)  # (d, n_cols)
    el_var = by_draw.var(axis=0, ddof=1) / n_draws
    if runs.common_random_numbers:
        by_path = wz.mean(axis=0)  # (m, n_cols): each path's loss averaged over the draws
        resid = wz - by_draw[:, None, :] - by_path[None, :, :] + wz.mean(axis=(0, 1))
        inter = (resid**2).sum(axis=(0, 1)) / max((n_draws - 1) * (m - 1), 1)
        el_var = np.maximum(el_var + by_path.var(axis=0, ddof=1) / m
                            - inter / (n_draws * m), 0.0)
    el_se = np.sqrt(el_var)
    for j, c in enumerate(columns):
        st = mix[c]
        st["el"] = float(runs.per_draw["el"][:, j].mean())
        st["el_se"] = float(el_se[j] / horizon)
        if not runs.common_random_numbers:
            continue  # independent paths: the bootstrap over the draws below
        for a in levels:
            for k in ("var", "es"):
                key = f"{k}_{level_label(a)}"
                # the shared inner error is left out of the batches over draws: add the
                # reference run's SE as its measure
                st[f"{key}_se"] = float(math.hypot(st[f"{key}_se"], ref_stats[c][f"{key}_se"]))
    if not runs.common_random_numbers:
        _bootstrap_tail_se(runs, levels, columns, mix, idx)
    return mix


def _bootstrap_tail_se(runs: _InnerRuns, levels: tuple[float, ...],
                       columns: tuple[str, ...], mix: dict[str, dict[str, float]],
                       idx: np.ndarray) -> None:
    """With independent paths per draw the (draw, its paths) pairs are independent, so
    the spread of the pooled VaR/ES over resamples of the draws is their standard error
    (batch means over the draws are not: a batch's tail is not the pooled tail); ``nan``
    with fewer than two resamples."""
    n_draws, m, n_cols = runs.losses.shape
    boot = {f"{k}_{level_label(a)}": np.full((len(idx), n_cols), np.nan)
            for a in levels for k in ("var", "es")}
    for b, rows in enumerate(idx):
        flat = runs.losses[rows].reshape(n_draws * m, n_cols)
        w = runs.weights[rows].reshape(-1) if runs.weighted else None
        for a in levels:
            lab = level_label(a)
            boot[f"var_{lab}"][b] = value_at_risk(flat, a, w, n_batches=None).value
            boot[f"es_{lab}"][b] = expected_shortfall(flat, a, w, n_batches=None).value
    for key, vals in boot.items():
        se = vals.std(axis=0, ddof=1) if len(idx) > 1 else np.full(n_cols, np.nan)
        for j, c in enumerate(columns):
            mix[c][f"{key}_se"] = float(se[j])


def _variance_parts(runs: _InnerRuns, idx: np.ndarray, m: int) -> dict[str, np.ndarray]:
    """The law of total variance over the draws, per column (``idx``: the bootstrap
    resamples of the draws, ``(n_boot, d)``)."""
    mom_mean, mom_var = runs.mom_mean, runs.mom_var
    within = mom_var.mean(axis=0)
    between = mom_mean.var(axis=0)
    total = within + between
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = np.where(total > 0, within / m / np.where(total > 0, total, 1.0), np.nan)
    return {"within": within, "between": between, "total": total,
            "share": _share(mom_mean, mom_var),
            "share_se": _boot_se(mom_mean, mom_var, idx) if len(idx) else
            np.full(mom_mean.shape[1], np.nan),
            "noise": noise}


def _tail_parts(runs: _InnerRuns, idx: np.ndarray, levels: tuple[float, ...],
                columns: tuple[str, ...], mix: dict[str, dict[str, float]],
                ref_stats: dict[str, dict[str, float]]) -> dict[str, np.ndarray]:
    """ES uplift and the tail share of the draws at each level, per column."""
    n_cols = len(columns)
    losses, weights = runs.losses, runs.weights
    tail: dict[str, np.ndarray] = {}
    p_draw = weights / weights.sum(axis=1, keepdims=True)
    for a in levels:
        lab = level_label(a)
        es_mix = np.array([mix[c][f"es_{lab}"] for c in columns])
        es_ref = np.array([ref_stats[c][f"es_{lab}"] for c in columns])
        with np.errstate(invalid="ignore", divide="ignore"):
            tail[f"uplift_{lab}"] = np.where(es_mix > 0, (es_mix - es_ref)
                                             / np.where(es_mix > 0, es_mix, 1.0), np.nan)
        var_mix = np.array([mix[c][f"var_{lab}"] for c in columns])
        hit = (losses > var_mix[None, None, :]).astype(np.float64)
        p_i = np.einsum("im,imc->ic", p_draw, hit)  # P(L > VaR_mix | theta_i)
        tail[f"share_{lab}"] = _share(p_i, p_i * (1 - p_i))
        tail[f"share_{lab}_se"] = (_boot_se(p_i, p_i * (1 - p_i), idx) if len(idx)
                                   else np.full(n_cols, np.nan))
    return tail
