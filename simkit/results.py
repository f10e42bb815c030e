"""Run reports: the summary of a Monte Carlo run as a dict, a text table and files.

:class:`RunReport` wraps a :class:`simkit.montecarlo.LossResult` with its scenario and
derives everything people read: per-party expected loss, SD, VaR and ES at 99 % and
99.9 % (or the ``levels`` asked) with standard errors, fee income, expected net result,
the probability that each cap binds, which segments drive each party's tail, and
(multi-year runs) the probability that a party's capital is exhausted or its leverage
limit breached.

Summary JSON (``simkit run --json`` and ``summary.json``)::

    {
      "scenario": name, "source": file, "n_paths": int, "n_loans": int,
      "guaranteed": yuan per year (mean cohort), "borrower_fees": yuan per year,
      "time_basis": {"horizon_years", "per_year": [keys], "horizon": [keys], "note"},
      "effective_sample_size": Kish ESS (n_paths for plain Monte Carlo),
      "importance": {"effective_sample_size", "ess_fraction", "tail_level",
                     "tail_effective_sample_size": {party: ..} or null, "ok", "warning"},
      "total_loss": {"el", "el_se", ...},
      "parties": {party: {"el", "el_se", "sd", "sd_se", "var_99", "var_99_se",
                          "es_99", "es_99_se", "var_99.9", "var_99.9_se", "es_99.9",
                          "es_99.9_se", "fee_income", "net_result", "el_pct_guaranteed",
                          "tail_drivers": {segment: fraction of ES 99 %}}},
      "caps": {cap: {"p_binding", "p_binding_se", "expected_overflow"}},
      "horizon": {"years", "guaranteed", "parties": {party: {"el", "el_se", "fee_income",
                  "net_result", "el_pct_guaranteed"}}, "total": {...},
                  "caps": {cap: {"expected_overflow"}}},        # totals over the horizon
      "notes": [str],            # e.g. "var_99.9_se ... null: not enough paths"
      "capital": {party: {"p_exhausted", "p_leverage_breach"}}   # horizon > 1
      "injections": {"parties": {party: {"received", "paid", "p_received", "p_paid"}},
                     "external": {"paid", "p_paid"}}   # des.injection_trigger > 0
      "fiscal": simkit.fiscal.fiscal_summary (cost to the public purse by payer)
      "provenance": {...}
    }

Time basis: ``el``, ``el_se``, ``fee_income``, ``net_result``, ``expected_overflow``
and ``guaranteed`` are yuan per year (averages over the ``H``-year horizon); ``sd``,
``var_*`` and ``es_*`` are of the loss summed over the whole horizon (one year when
``H = 1``); probabilities are within the horizon; ``horizon`` holds the totals.
``el_pct_guaranteed`` = per-year EL / one cohort's guaranteed principal (mean cohort) =
horizon EL / all cohorts' guaranteed principal. A standard error that cannot be estimated
(fewer than ``1 / (1 - level)`` paths) is NaN, written as ``null`` with a note.
"""

from __future__ import annotations

import textwrap
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from simkit import fiscal, measures, report
from simkit.scenario import Scenario

__all__ = ["RunReport"]

#: Default confidence levels of VaR and ES.
LEVELS = (0.99, 0.999)
#: The one money unit of the text report.
UNIT_LABEL = "million yuan"
#: What "net result" means, printed with every table that shows it.
NET_RESULT_NOTE = ("net result = fee income minus expected loss; it leaves out the bank's "
                   "interest margin, operating costs and the cost of capital")


class RunReport:
    """Summary, text and files for one Monte Carlo run.

    Parameters
    ----------
    scenario : Scenario
    result : simkit.montecarlo.LossResult
    discount_rate : float
        Discount rate per year of the fiscal present value.
    levels : sequence of float
        Confidence levels of VaR and ES (each in (0, 1), default 99 % and 99.9 %); the
        summary, text, CSV and figures use them.
    """

    def __init__(self, scenario: Scenario, result: Any, *,
                 discount_rate: float = fiscal.DEFAULT_DISCOUNT_RATE,
                 levels: tuple[float, ...] = LEVELS):
        self.scenario = scenario
        self.result = result
        #: discount rate of the fiscal present value (``summary["fiscal"]``)
        self.discount_rate = discount_rate
        #: confidence levels of VaR / ES (set before :attr:`summary` is first read)
        self.levels = tuple(float(a) for a in levels)

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary (see the module docstring for the keys)."""
        r = self.result
        parties = list(r.parties)
        base = r.summary(self.levels)
        h = int(base["horizon_years"])
        stats = base["parties"]
        cohorts = [float(g) for g in r.provenance.get("guaranteed", [np.nan])]
        guaranteed = float(np.mean(cohorts))  # per year: one cohort on average
        horizon = base["horizon"]
        horizon["guaranteed"] = float(np.sum(cohorts))
        for p in parties:
            # per-year EL over one (average) cohort's guarantees = horizon EL over all
            # cohorts' guarantees
            pct = (100 * stats[p]["el"] / guaranteed) if guaranteed > 0 else None
            stats[p]["el_pct_guaranteed"] = pct
            horizon["parties"][p]["el_pct_guaranteed"] = pct
        _add_tail_drivers(r, stats)
        caps, horizon["caps"] = _cap_summary(r, base["cap_binding"], h)
        notes = [f"var_{lab}_se and es_{lab}_se are null: not enough paths "
                 f"({base['n_paths']:,} < 1 / (1 - {a:g}) = {1 / (1 - a):,.0f})"
                 for a in self.levels if not measures.enough_paths(base["n_paths"], a)
                 for lab in [measures.level_label(a)]]
        if base["importance"]["warning"]:
            notes.append(base["importance"]["warning"])
        out: dict[str, Any] = {
            "scenario": self.scenario.name,
            "source": self.scenario.source,
            "n_paths": base["n_paths"],
            "n_loans": int(r.provenance.get("n_loans", [0])[0]),
            "guaranteed": guaranteed,
            "borrower_fees": float(r.borrower_fees),
            "time_basis": base["time_basis"],
            "effective_sample_size": base["effective_sample_size"],
            "importance": base["importance"],
            "total_loss": base["total"],
            "parties": stats,
            "caps": caps,
            "horizon": horizon,
            "notes": notes,
        }
        if h > 1:
            out["capital"] = {
                p: {"p_exhausted": base["capital_exhausted"].get(p),
                    "p_leverage_breach": base["leverage_breach"].get(p)}
                for p in parties
                if p in base["capital_exhausted"] or p in base["leverage_breach"]}
        if base["injections"]:  # capital injections (yuan over the horizon)
            out["injections"] = base["injections"]
        # the government's cost (simkit.fiscal): public payers, expected / ES 99 % / PV
        out["fiscal"] = fiscal.fiscal_summary(self.scenario, r, self.discount_rate)
        out["provenance"] = base["provenance"]
        return out

    def _fixed(self) -> dict[str, Any]:
        """The columns every row of the tables carries."""
        s = self.summary
        return {"scenario": s["scenario"], "seed": s["provenance"].get("seed"),
                "horizon_years": s["time_basis"]["horizon_years"]}

    def long_rows(self) -> list[dict[str, Any]]:
        """The per-party table in long (tidy) format: one row per party x measure
        (``parties.csv``, :meth:`to_frame`).

        Columns: ``scenario``, ``seed`` (root seed of the paths), ``horizon_years``,
        ``unit`` (``"yuan"``, ``"percent"`` or ``"probability"``), ``party``, ``measure``
        (``el``, ``sd``, ``var_99``, ``es_99``, ``var_99.9``, ``es_99.9``, ``fee_income``,
        ``net_result``, ``el_pct_guaranteed``; with a horizon over one year also
        ``p_exhausted`` and ``p_leverage_breach``), ``value``, ``se`` (Monte Carlo
        standard error; empty where the summary has none, e.g. for fees) and ``basis``
        (``per_year`` or ``horizon``, see ``time_basis``). The last rows, party
        ``TOTAL``, are the whole book's loss measures and the fees borrowers pay.
        """
        s = self.summary
        units = {k: "yuan" for k in ("el", "sd")}
        for a in LEVELS:
            lab = measures.level_label(a)
            units[f"var_{lab}"] = units[f"es_{lab}"] = "yuan"
        units.update(fee_income="yuan", net_result="yuan", el_pct_guaranteed="percent",
                     p_exhausted="probability", p_leverage_breach="probability")
        per_year = set(s["time_basis"]["per_year"])
        basis = {k: "per_year" if k in per_year else "horizon" for k in units}
        stats = {p: {**st, **s.get("capital", {}).get(p, {})} for p, st in s["parties"].items()}
        stats = {p: {k: v for k, v in st.items() if v is not None or k.endswith("_se")}
                 for p, st in stats.items()}
        total = dict(s["total_loss"])
        total["fee_income"] = total.pop("fee_income_borrowers", None)
        stats["TOTAL"] = total
        return report.long_rows(stats, units, basis, **self._fixed())

    def rows(self) -> list[dict[str, Any]]:
        """The per-party table in wide format, one row per party and a last ``TOTAL`` row
        (``parties_wide.csv``): ``scenario``, ``seed``, ``horizon_years``, ``party`` and
        the summary's measures (per-year EL and fees, horizon VaR/ES; see
        ``time_basis``)."""
        rows = []
        fixed = self._fixed()
        for party, s in self.summary["parties"].items():
            row = {**fixed, "party": party}
            row.update({k: v for k, v in s.items() if not isinstance(v, dict)})
            rows.append(row)
        total = dict(self.summary["total_loss"])
        total["fee_income"] = total.pop("fee_income_borrowers", None)
        rows.append({**fixed, "party": "TOTAL", **{k: total.get(k) for k in rows[0]
                                                  if k not in fixed and k != "party"}})
        return rows

    def to_frame(self) -> Any:
        """:meth:`long_rows` as a pandas DataFrame (pandas is an optional extra).

        Returns
        -------
        pandas.DataFrame
            One row per party x measure (and the ``TOTAL`` rows); columns as in
            :meth:`long_rows`.

        Raises
        ------
        ImportError
            "pandas is needed: pip install 'simkit[pandas]'" when pandas is missing.
        """
        pd = report.require_pandas()
        return pd.DataFrame(self.long_rows())

    def format_text(self, wall_seconds: float | None = None) -> str:
        """A readable report: header, per-party table, caps, capital; every amount in
        million yuan (:data:`UNIT_LABEL`), named once in the line above the table."""
        s = self.summary
        prov = s["provenance"]
        h = int(s["time_basis"]["horizon_years"])
        u = UNIT_LABEL
        head = (f"simkit run {s['scenario']}: {s['n_loans']:,} loans, "
                f"{report.fmt_money(s['guaranteed'], digits=1)} {u} guaranteed"
                + (" per year" if h > 1 else "") + f", {s['n_paths']:,} paths "
                f"(seed {prov.get('seed')}"
                + _importance_note(prov)
                + ")" + (f", {wall_seconds:.1f} s" if wall_seconds is not None else ""))

        lines = [head, *_party_table(s, self.levels, h)]
        imp = s["importance"]
        if imp["tail_effective_sample_size"] is not None:
            tail_ess = imp["tail_effective_sample_size"]
            worst = min(tail_ess, key=tail_ess.get)
            lines += ["", f"importance sampling: effective sample size "
                      f"{imp['effective_sample_size']:,.0f} of {s['n_paths']:,} paths (Kish); "
                      f"fewest effective tail paths at {imp['tail_level']:.1%}: "
                      f"{tail_ess[worst]:,.0f} ({worst})"]
        for note in s["notes"]:
            lines.append(f"WARNING: {note}" if note == imp["warning"] else f"note: {note}")
        lines += _driver_cap_capital_lines(s, h, prov)
        lines += report.injection_lines(s.get("injections", {}), h, u)
        fiscal_lines = fiscal.format_fiscal(s["fiscal"])  # the government's cost
        if fiscal_lines:
            lines += ["", *fiscal_lines]
        return "\n".join(lines)

    def titles(self) -> tuple[str, str]:
        """The scenario's split (:func:`simkit.plots.split_label`) and the time basis of
        the tail measures, for figure titles."""
        from simkit.plots import split_label

        h = int(self.summary["time_basis"]["horizon_years"])
        basis = "loss in one year" if h <= 1 else f"loss over the {h}-year horizon"
        # a long split takes two lines (a figure title holds about 76 characters)
        return textwrap.fill(split_label(self.scenario), 76), basis

    def save(self, out_dir: str | Path, figures: bool = True, paths: bool = False
             ) -> list[Path]:
        """Write ``summary.json``, ``parties.csv`` (long format, :meth:`long_rows`),
        ``parties_wide.csv`` (:meth:`rows`), figures and, with ``paths``,
        ``paths.parquet`` (per-path losses and weights,
        :meth:`simkit.montecarlo.LossResult.path_columns`; needs pyarrow) into ``out_dir``
        as one atomic result set (:func:`simkit.report.result_set`): ``out_dir`` ends up
        holding either its earlier files or the complete new set, never a mixture.

        Returns
        -------
        list of Path
            The files of the set, as they are in ``out_dir``.
        """
        names = ["summary.json", "parties.csv", "parties_wide.csv"]
        if paths:
            report.require_pyarrow()  # before any file is written
            columns = self.result.path_columns()
        with report.result_set(out_dir) as tmp:
            report.write_json(tmp / "summary.json", self.summary)
            report.write_csv(tmp / "parties.csv", self.long_rows())
            report.write_csv(tmp / "parties_wide.csv", self.rows())
            if paths:
                report.write_columns_parquet(tmp / "paths.parquet", columns, {
                    **self._fixed(), "unit": "yuan", "source": self.scenario.source,
                    "losses": "net loss per party over the horizon; total = their sum"})
                names.append("paths.parquet")
            if figures:
                from simkit import plots

                r = self.result
                split, basis = self.titles()
                h = int(self.summary["time_basis"]["horizon_years"])
                colors = plots.scenario_colors(self.scenario)
                w = r.weights if r.party_weights is None else r.party_weights
                ax = plots.exceedance(r.losses, r.parties, w, levels=self.levels,
                                      colors=colors,
                                      title=f"{split}\nprobability of exceeding a {basis}")
                plots.save_figure(ax, tmp / "loss_distribution.png")
                stats = self.summary["parties"]
                top = min(self.levels, key=lambda a: abs(a - 0.99))  # nearest 99 %
                es_key = f"es_{measures.level_label(top)}"

                def col(key: str) -> np.ndarray:
                    return np.array([np.nan if stats[p].get(key) is None else stats[p][key]
                                     for p in r.parties], dtype=float)

                per_year = "per year" if h <= 1 else f"per year (average of {h})"
                ax = plots.party_bars(
                    r.parties,
                    {f"expected loss {per_year}": col("el"),
                     f"ES {measures.level_label(top)}% ({basis})": col(es_key),
                     f"fee income {per_year}": col("fee_income")},
                    errors={f"expected loss {per_year}": col("el_se"),
                            f"ES {measures.level_label(top)}% ({basis})": col(f"{es_key}_se")},
                    colors=colors,
                    title=f"{split}\nexpected loss, tail and fees per party (±2 SE)")
                plots.save_figure(ax, tmp / "parties.png")
                names += ["loss_distribution.png", "parties.png"]
        return [Path(out_dir) / n for n in names]

def _add_tail_drivers(r: Any, stats: dict[str, dict[str, Any]]) -> None:
    """Add each party's ``tail_drivers`` (segment -> share of its ES 99 %) to ``stats``
    when the run kept the per-segment losses and the party has a tail."""
    by_segment = getattr(r, "by_segment", None)
    if by_segment is None:
        return
    names = list(r.segment_names)
    for j, p in enumerate(r.parties):
        if stats[p]["es_99"] <= 0:
            continue
        frac = measures.tail_contributions(by_segment[:, :, j].astype(np.float64),
                                           r.losses[:, j], 0.99, r.weights_of(j))
        stats[p]["tail_drivers"] = {n: float(f) for n, f in zip(names, frac, strict=True)}


def _cap_summary(r: Any, binding: dict[str, float], h: int,
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per cap: the probability it binds (``binding``) with its SE and the expected
    overflow per year; and the horizon block (expected overflow over the ``h`` years)."""
    caps: dict[str, Any] = {}
    horizon: dict[str, Any] = {}
    for k, name in enumerate(r.cap_names):
        over = r.cap_overflow[:, k]
        prob = measures.exceedance_probability(over > 0, weights=r.weights)
        total_over = float(measures.expected_loss(over, r.weights).value)
        caps[name] = {"p_binding": binding[name],
                      "p_binding_se": float(prob.stderr),
                      "expected_overflow": total_over / h}
        horizon[name] = {"expected_overflow": total_over}
    return caps, horizon


def _pm(st: dict[str, Any], key: str) -> str:
    """``value ± SE`` of measure ``key`` in million yuan."""
    v, se = st[key], st.get(f"{key}_se")
    if se is None or not np.isfinite(se):
        return f"{report.fmt_money(v)} (not enough paths)"
    return f"{report.fmt_money(v)} ± {report.fmt_money(se)}"


def _party_table(s: dict[str, Any], levels: tuple[float, ...], h: int) -> list[str]:
    """The lines of the text report's per-party table (summary ``s``, horizon ``h``):
    the basis, the net-result note, the table and, over several years, the totals."""
    u = UNIT_LABEL
    tail_keys = [f"{m}_{measures.level_label(a)}" for a in levels for m in ("var", "es")]
    rows = []
    for party, st in s["parties"].items():
        rows.append([party, _pm(st, "el"), *(_pm(st, k) for k in tail_keys),
                     report.fmt_money(st["fee_income"]),
                     report.fmt_money(st["net_result"])])
    t = s["total_loss"]
    rows.append(["TOTAL", _pm(t, "el"), *(_pm(t, k) for k in tail_keys), "", ""])
    if h > 1:
        basis = (f"amounts in {u}: expected loss, fee income, net result per year "
                 f"(average over the {h}-year horizon); VaR and ES of the loss over the "
                 f"whole {h}-year horizon (± Monte Carlo standard error)")
        tail = f" ({h} y)"
    else:
        basis = f"amounts in {u} per year (± Monte Carlo standard error)"
        tail = ""
    tail_heads = [f"{m} {measures.level_label(a)}%{tail}" for a in levels
                  for m in ("VaR", "ES")]
    lines = [basis, NET_RESULT_NOTE, "",
             report.format_table(rows, ["party", "expected loss", *tail_heads,
                                        "fee income", "net result"])]
    if h > 1:
        lines += ["", f"horizon totals over {h} years ({u}): expected loss, "
                  "fee income, net result"]
        lines += [f"  {p}: {report.fmt_money(c['el'])}, {report.fmt_money(c['fee_income'])}"
                  f", {report.fmt_money(c['net_result'])}"
                  for p, c in s["horizon"]["parties"].items()]
    return lines


def _driver_cap_capital_lines(s: dict[str, Any], h: int, prov: dict[str, Any]) -> list[str]:
    """The text report's sections on tail drivers, caps and capital (summary ``s``)."""
    u = UNIT_LABEL
    lines: list[str] = []
    drivers = {p: st["tail_drivers"] for p, st in s["parties"].items()
               if len(st.get("tail_drivers", {})) > 1}
    if drivers:
        lines += ["", "segments driving each party's 99 % tail (share of ES 99 %)"]
        for p, d in drivers.items():
            top = sorted(d.items(), key=lambda kv: -kv[1])[:3]
            lines.append(f"  {p}: " + ", ".join(f"{n} {f:.0%}" for n, f in top))
    if s["caps"]:
        lines += ["", "portfolio caps: probability the cap binds"
                  + (f" within {h} years" if h > 1 else "") + f", expected overflow ({u}"
                  + (" per year)" if h > 1 else ")")]
        lines += [f"  {name}: {c['p_binding']:.2%} ± {c['p_binding_se']:.2%}, "
                  f"{report.fmt_money(c['expected_overflow'])} {u}"
                  for name, c in s["caps"].items()]
    if "capital" in s:
        lines += ["", f"capital over {prov.get('horizon_years')} years: probability of "
                  "exhaustion / leverage breach"]

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{v:.2%}"

        lines += [f"  {p}: {pct(c['p_exhausted'])} / {pct(c['p_leverage_breach'])}"
                  for p, c in s["capital"].items()]
    return lines


def _importance_note(prov: dict[str, Any]) -> str:
    """A short header note on importance sampling ("" for plain Monte Carlo)."""
    mixture = prov.get("importance_mixture")
    tilt = prov.get("importance_mixing_tilt")
    extra = "" if tilt is None else f", t mixing variable x {tilt:.2f}"
    if mixture:
        return f", importance sampling: mixture of {len(mixture)} factor shifts{extra}"
    shift = prov.get("importance_shift")
    if shift is None:
        return ""
    return f", importance sampling: national shift {np.atleast_1d(shift)[0]:.2f}{extra}"
