"""Discrete-event (SimPy) model of the guarantee system: credit supply, claims, capital.

Time unit: **days** from the start of a run (year = 365 days, month = 365/12 days);
amounts in yuan. One ``simpy.Environment`` per replication, no module-level state.

Public API::

    run_des(scenario, *, years=None, replications=1, seed=None, executor=None,
            progress=False, event_log=False, run_off=True) -> DesRuns
    simulate(scenario, *, replication=0, seed=None, years=None, event_log=False,
             run_off=True) -> DesResult

``run_off`` (default on) keeps the run going after the horizon, without new arrivals,
until the loans already originated have settled; ``DesResult.cohort_losses`` then holds
the final net loss per party of each origination year, comparable with the Monte Carlo
expected loss of an annual cohort.
    DesResult, DesRuns, SERIES, REASONS
    plot_des(result, out_dir) and the plot_* functions (matplotlib imported lazily)

The rules of the model (bank decision, guarantor review, limits, claims, caps,
recoveries, injections) are documented in :mod:`simkit.des.model`.
"""

from simkit.des.model import DAYS_PER_MONTH, DAYS_PER_YEAR, REASONS, Model
from simkit.des.plots import (
    plot_capital,
    plot_claims,
    plot_credit_lines,
    plot_credit_supply,
    plot_des,
    plot_leverage,
    plot_refusals,
)
from simkit.des.result import SERIES, DesResult, DesRuns
from simkit.des.run import run_des, simulate

__all__ = [
    "DAYS_PER_MONTH",
    "DAYS_PER_YEAR",
    "REASONS",
    "SERIES",
    "DesResult",
    "DesRuns",
    "Model",
    "plot_capital",
    "plot_claims",
    "plot_credit_lines",
    "plot_credit_supply",
    "plot_des",
    "plot_leverage",
    "plot_refusals",
    "run_des",
    "simulate",
]
