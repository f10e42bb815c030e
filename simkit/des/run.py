"""Running replications of the discrete-event model, serially or on any executor."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from simkit import _interrupt
from simkit.des.model import Model
from simkit.des.result import DesResult, DesRuns, build_result

if TYPE_CHECKING:
    from simkit.scenario import Scenario

__all__ = ["check_des_inputs", "run_des", "simulate"]


def check_des_inputs(scenario: Scenario) -> None:
    """Refuse a scenario the discrete-event model cannot run.

    The DES draws its applicants from ``[[segments]]`` (``applications_per_year``,
    default ``count``); a scenario with only a loan tape (``[book] tape``) or whose
    segments draw no applications would simulate nothing.

    Raises
    ------
    ScenarioError
    """
    from simkit.scenario import ScenarioError

    rate = sum(seg.count if seg.applications_per_year is None else seg.applications_per_year
               for seg in scenario.segments)
    if rate > 0:
        return
    if scenario.tape is not None and not scenario.segments:
        raise ScenarioError(scenario.source, "segments", "are required by the discrete-event "
                            "model, which draws applicants from [[segments]]; this scenario "
                            "has only a loan tape ([book] tape), which only `simkit run` "
                            "(Monte Carlo) uses")
    raise ScenarioError(scenario.source, "segments", "draw no DES applications (every "
                        "applications_per_year / count is 0); the discrete-event model needs "
                        "applicants")


def simulate(scenario: Scenario, *, replication: int = 0, seed: int | None = None,
             years: float | None = None, event_log: bool = False,
             run_off: bool = True) -> DesResult:
    """Run one replication.

    Parameters
    ----------
    scenario : Scenario
    replication : int
        Replication index; every random stream is keyed by ``(purpose, replication)``
        under the root ``seed``, so a replication's result does not depend on which
        worker runs it or on the other replications.
    seed : int, optional
        Root seed (default ``scenario.run.seed``).
    years : float, optional
        Horizon in years (default ``scenario.des.years``).
    event_log : bool
        Keep the per-application / per-loan event log.
    run_off : bool
        After the horizon, stop arrivals and keep running until every claim,
        reimbursement, recovery and fee of the loans already originated has settled
        (default); the monthly series stop at the horizon, the ledger and totals include
        the run-off. ``False`` cuts everything at the horizon.

    Returns
    -------
    DesResult
    """
    seed = scenario.run.seed if seed is None else int(seed)
    model = Model(scenario, seed=seed, replication=replication, years=years,
                  event_log=event_log, run_off=run_off)
    wall, events = model.run()
    return build_result(model, wall_seconds=wall, simpy_events=events)


def _one(args: tuple[Scenario, int, int, float | None, bool, bool]) -> DesResult:
    scenario, rep, seed, years, log, run_off = args
    return simulate(scenario, replication=rep, seed=seed, years=years, event_log=log,
                    run_off=run_off)


def run_des(scenario: Scenario, *, years: float | None = None, replications: int = 1,
            seed: int | None = None, executor: Executor | None = None,
            progress: bool | Callable[[int, int], None] = False,
            event_log: bool = False, run_off: bool = True) -> DesRuns:
    """Run ``replications`` replications of the discrete-event model.

    Parameters
    ----------
    scenario : Scenario
    years : float, optional
        Horizon in years (default ``scenario.des.years``).
    replications : int
        Number of replications (>= 1); replication ``r`` uses the streams keyed by ``r``.
    seed : int, optional
        Root seed (default ``scenario.run.seed``).
    executor : concurrent.futures.Executor, optional
        Where to run replications (a ``ProcessPoolExecutor``, a Dask
        ``Client().get_executor()``...). ``None`` runs them in this process. Results are
        identical whichever executor runs them.
    progress : bool or callable
        ``True`` shows a tqdm bar; a callable is called as ``progress(done, total)``.
    event_log : bool
        Keep each replication's event log.
    run_off : bool
        Settle the loans already originated after the horizon (see :func:`simulate`).

    Returns
    -------
    DesRuns
        The results in replication order; ``runs[0]`` is a :class:`DesResult`.
    """
    if isinstance(replications, bool) or int(replications) != replications \
            or replications < 1:
        raise ValueError(f"replications must be an integer >= 1, got {replications!r}")
    if years is not None and not years > 0:
        raise ValueError(f"years must be > 0, got {years!r}")
    check_des_inputs(scenario)
    seed = scenario.run.seed if seed is None else int(seed)
    jobs = [(scenario, r, seed, years, event_log, run_off) for r in range(int(replications))]
    bar = None
    if progress is True:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(jobs), desc="DES replications", unit="rep")

    def tick(done: int) -> None:
        if bar is not None:
            bar.update(1)
        elif callable(progress):
            progress(done, len(jobs))

    results: list[DesResult | None] = [None] * len(jobs)
    try:
        if executor is None:
            for i, job in enumerate(jobs):
                _interrupt.check()  # a deferred Ctrl-C / SIGTERM ends the run here
                results[i] = _one(job)
                tick(i + 1)
        else:
            futures = {executor.submit(_one, job): i for i, job in enumerate(jobs)}
            for done, fut in enumerate(_interrupt.as_completed(futures), start=1):
                results[futures[fut]] = fut.result()
                tick(done)
    finally:
        if bar is not None:
            bar.close()
    return DesRuns(tuple(r for r in results if r is not None))
