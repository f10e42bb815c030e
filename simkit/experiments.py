"""Experiments: run one scenario, compare several, sweep a parameter.

These are thin layers over :func:`simkit.montecarlo.simulate` and :func:`simkit.des.run_des`
that return report objects people can print, save or plot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from simkit.results import RunReport
from simkit.scenario import Scenario

__all__ = ["compare", "format_des", "run_des_summary", "run_summary", "sweep"]


def run_summary(scenario: Scenario, *, executor: Executor | None = None,
                progress: bool = False, keep_segments: bool = True) -> RunReport:
    """Simulate ``scenario`` and wrap the result in a :class:`RunReport`.

    Raises :class:`~simkit.scenario.ScenarioError` before any work when the run's
    estimated memory exceeds what the machine has (:func:`simkit.resources.check_memory`).
    """
    from simkit.montecarlo import simulate
    from simkit.resources import check_memory

    check_memory(scenario, "montecarlo", workers=_workers(executor), keep_cells=keep_segments)

    result = simulate(scenario, executor=executor, progress=progress,
                      keep_cells=keep_segments)
    return RunReport(scenario, result)


def compare(scenarios: Sequence[Scenario], *, executor: Executor | None = None,
            progress: bool = False) -> list[dict[str, Any]]:
    """Run several scenarios and return one tidy row per (scenario, party).

    Columns: ``scenario``, ``party`` and the keys of :func:`simkit.measures.summarize`
    plus ``fee_income`` and ``net_result`` (yuan per year).
    """
    rows = []
    for s in scenarios:
        rep = run_summary(s, executor=executor, progress=progress, keep_segments=False)
        for row in rep.rows():
            rows.append({"scenario": s.name, **row})
    return rows


def sweep(scenario: Scenario, changes: Iterable[dict[str, Any]], *,
          executor: Executor | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Run ``scenario`` once per change set (dotted paths, validated) and tabulate.

    Examples
    --------
    >>> rows = sweep(s, [{"agreements[0].layers[0].share": b,
    ...                   "agreements[0].layers[1].share": 0.6 - b} for b in (0.1, 0.2, 0.3)])
    """
    rows = []
    for change in changes:
        variant = scenario.with_changes(change)
        rep = run_summary(variant, executor=executor, progress=progress, keep_segments=False)
        label = ", ".join(f"{k}={v}" for k, v in change.items())
        for row in rep.rows():
            rows.append({"variant": label, **{k: v for k, v in change.items()}, **row})
    return rows


def run_des_summary(scenario: Scenario, *, replications: int = 1, seed: int | None = None,
                    executor: Executor | None = None, progress: bool = False,
                    out: Path | None = None) -> dict[str, Any]:
    """Run the discrete-event model; return ``{"summary", "text", "runs"}``.

    ``summary`` is :meth:`simkit.des.DesRuns.summary` (means over replications, ``_se``
    keys for their standard errors); ``text`` the printed report. With ``out``,
    ``des_summary.json``, ``des_series.csv`` (replication 0, monthly, tidy) and the
    figures of replication 0 are written there.
    """
    from simkit.des import run_des
    from simkit.resources import check_memory

    check_memory(scenario, "des", workers=_workers(executor))
    runs = run_des(scenario, replications=replications, seed=seed, executor=executor,
                   progress=progress)
    summary = runs.summary()
    text = format_des(scenario, summary)
    if out is not None:
        from simkit import report
        from simkit.des import plot_des

        report.write_json(Path(out) / "des_summary.json", summary)
        table = runs[0].to_table()
        keys = list(table)
        report.write_csv(Path(out) / "des_series.csv",
                         [{k: table[k][i] for k in keys} for i in range(len(table[keys[0]]))])
        plot_des(runs[0], Path(out))
    return {"summary": summary, "text": text, "runs": runs}


def _workers(executor: Executor | None) -> int:
    """Processes an executor runs at once (1 in-process; unknown executors count as 1)."""
    return 1 if executor is None else int(getattr(executor, "_max_workers", 1) or 1)


def format_des(scenario: Scenario, summary: dict[str, Any]) -> str:
    """The printed report of a discrete-event run (amounts in million yuan)."""
    from simkit import report

    n = int(summary.get("replications", 1))

    def pm(key: str, unit: float = 1.0, fmt: str = ",.0f") -> str:
        v, se = summary[key] / unit, summary.get(f"{key}_se", 0.0) / unit
        return f"{v:{fmt}}" + (f" ± {se:{fmt}}" if n > 1 else "")

    lines = [
        f"simkit des {scenario.name}: {summary['years']:g} years, {n} replication(s), "
        f"mode {scenario.des.mode}",
        f"  applications {pm('applications')}, approved {pm('approvals')}, "
        f"firms served {pm('firms_served')}",
        f"  credit supplied {pm('credit_supplied', 1e8, ',.2f')} 亿 yuan "
        f"(guaranteed {pm('guaranteed_supplied', 1e8, ',.2f')} 亿), "
        f"defaults {pm('defaults')}",
        *([f"  direct (unguaranteed) loans {pm('direct_loans')}, credit "
           f"{pm('direct_credit', 1e8, ',.2f')} 亿; additionality "
           f"{summary['additionality']:.1%} of firms served needed the guarantee"]
          if summary.get("direct_loans") else []),
        "  refusals by reason: " + (", ".join(
            f"{k} {v:,.0f}" for k, v in summary["refusals"].items() if v) or "none"),
        "",
    ]
    parties = list(summary["losses"])
    rows = [(p, report.fmt_money(summary["compensation_paid"][p]),
             report.fmt_money(summary["recoveries"][p]), report.fmt_money(summary["losses"][p]),
             report.fmt_money(summary["fees_net"][p]), report.fmt_money(summary["injections"][p]),
             report.fmt_money(summary["capital_end"][p]),
             f"{summary['max_leverage'][p]:.2f}" if p in summary["max_leverage"] else "-")
            for p in parties]
    lines.append("per party, million yuan (mean over replications; loans originated in the "
                 "horizon, settled through the run-off)")
    lines.append(report.format_table(rows, ["party", "compensation", "recoveries",
                                            "net loss", "fees net", "injections",
                                            "capital end", "max leverage"]))
    binding = {**summary.get("cap_binding_months", {}),
               **summary.get("limit_binding_months", {})}
    if binding:
        lines += ["", "months in which a cap or limit bound:"]
        lines += [f"  {k}: {v:g}" for k, v in binding.items()]
    return "\n".join(lines)
