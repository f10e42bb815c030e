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

__all__ = ["compare", "run_des_summary", "run_summary", "sweep"]


def run_summary(scenario: Scenario, *, executor: Executor | None = None,
                progress: bool = False, keep_segments: bool = True) -> RunReport:
    """Simulate ``scenario`` and wrap the result in a :class:`RunReport`."""
    from simkit.montecarlo import simulate

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
    """Run the discrete-event model and return ``{"summary", "text", "results"}``."""
    from simkit.des import run_des, summarize_replications

    results = run_des(scenario, replications=replications, seed=seed, executor=executor,
                      progress=progress)
    summary, text = summarize_replications(scenario, results)
    if out is not None:
        from simkit import report
        from simkit.des import plot_des

        report.write_json(Path(out) / "des_summary.json", summary)
        plot_des(results[0], Path(out))
    return {"summary": summary, "text": text, "results": results}
