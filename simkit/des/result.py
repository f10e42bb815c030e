"""Results of the discrete-event model: time series, ledger, originated book, checks.

A :class:`DesResult` holds one replication; :class:`DesRuns` a set of replications with
their across-replication summary. Series are monthly, shape ``(n_months, n_parties)``,
columns in ``scenario.party_names`` order; month ``m`` covers days
``[m * 365/12, (m + 1) * 365/12)`` and stocks are taken at its end.

With the run-off (default) the run continues after the horizon until the loans already
originated have settled: the monthly series stop at the horizon, while the ledger, the
loan table, :attr:`DesResult.cohort_losses` and the summary totals (losses, fees,
recoveries...) include the run-off.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from simkit.book import Book, assemble
from simkit.des.codes import EVENTS, REASONS
from simkit.des.ledger import FEE_KINDS, LOSS_KINDS, LedgerArrays
from simkit.des.lines import amounts_at
from simkit.des.review import wait_series, wait_summary

if TYPE_CHECKING:
    from simkit.des.model import Model
    from simkit.scenario import Scenario

__all__ = ["SERIES", "DesResult", "DesRuns", "book_from_loans", "build_result", "series_unit"]

#: Monthly series of :attr:`DesResult.series` (all shape ``(n_months, n_parties)``):
#: counts are attributed to the loan's original guarantor (to the lender for direct,
#: unguaranteed loans: ``des.direct_lending``), yuan flows to the party that pays or
#: receives, stocks are month-end values.
SERIES = {
    "applications": "applications received (count, by original guarantor)",
    "approvals": "new guarantees issued, renewals excluded (count, by original guarantor)",
    "renewed": "loans renewed at maturity, direct ones included (count, by original "
               "guarantor)",
    "new_loans": "loans originated incl. renewals and direct loans (count, by original "
                 "guarantor)",
    "direct_loans": "direct (unguaranteed) loans originated incl. renewals (count, by lender)",
    "direct_lent": "principal of direct loans originated incl. renewals (yuan, by lender)",
    "new_guaranteed": "guaranteed principal originated (yuan, by original guarantor)",
    "queued": "applications put in the queue (count, by refusing party)",
    "matured": "loans repaid at maturity (count, by original guarantor)",
    "defaults": "defaults (count, by original guarantor)",
    "default_amount": "defaulted principal (yuan, by original guarantor)",
    "claims": "bank claims filed (count, by original guarantor)",
    "compensation_paid": "compensation, reimbursements and cap overflow paid (yuan)",
    "reimbursements_received": "reimbursements and cap overflow received (yuan)",
    "recoveries": "recoveries received (yuan)",
    "fees_received": "fees received (yuan)",
    "fees_paid": "fees paid (yuan)",
    "injections": "capital injections received (yuan)",
    "net_loss": "default losses paid minus received, recoveries included (yuan)",
    "capital": "capital at month end (yuan)",
    "outstanding": "guarantee liability balance at month end (yuan)",
    "weighted_outstanding": "risk-weighted liability balance at month end (yuan)",
    "leverage": "weighted liability / capital at month end (nan if untracked)",
    "approval_wait_days": "days from application to guarantee, summed over the month's "
                          "approvals (by original guarantor; / approvals = mean wait)",
    "review_queue": "applications waiting for a reviewer at month end (count, by "
                    "original guarantor; des.review_staff)",
}


@dataclass
class DesResult:
    """One replication of the discrete-event model.

    Attributes
    ----------
    scenario_name : str
    seed, replication : int
    years : float
    parties : tuple of str
        Scenario parties, the column order of every series.
    months : ndarray, shape (n_months,)
        Month-end times in days.
    series : dict of str to ndarray, shape (n_months, n_parties)
        See :data:`SERIES`.
    refusals : dict of str to ndarray, shape (n_months, n_parties)
        Refusals of applications per reason (:data:`~simkit.des.model.REASONS`), by
        refusing party.
    renewal_refusals : dict of str to ndarray, shape (n_months, n_parties)
        Renewals refused at maturity per reason (the loan is repaid; not applications).
    cohort_losses : ndarray, shape (n_years, n_parties)
        Settled net loss (default losses paid minus received, recoveries included, yuan)
        of the loans originated in each year of the horizon (renewals included), by
        party, from the ledger. With the run-off every loss of a cohort is final; year
        ``y`` covers origination days ``[365 y, 365 (y + 1))``.
    run_off : bool
        Whether the run continued after the horizon until everything settled.
    end_time : float
        Time (days) of the last event of the run.
    caps : tuple of str
        Capped layer pools, named by :func:`simkit.sharing.cap_label` (``"agreement:party"``
        for an agreement-wide pool, else ``"agreement:party:pool=value"``).
    cap_refused : ndarray, shape (n_months, n_caps)
        Yuan refused by each cap per month.
    credit_lines : tuple of str
        ``"provider->holder"``.
    credit_line_use : ndarray, shape (n_months, n_lines)
        Yuan used in the line's current period at month end.
    credit_line_amount : ndarray, shape (n_lines,)
        The scenario's amount of each line (yuan); ``credit_line_limit`` (shape
        ``(n_months, n_lines)``) holds the amount in effect during each month.
    ledger : LedgerArrays
        Every cash flow (see :mod:`simkit.des.ledger`).
    loans : dict of str to ndarray, each shape (n_loans,)
        ``id, application, segment, start, end`` (days), ``defaulted`` (by the end of
        the run, i.e. including the run-off),
        ``renewal``, ``direct`` (lent without a guarantee, ``des.direct_lending``),
        ``exposure``, ``guaranteed`` (yuan; 0 for direct loans), ``default_prob``
        (annual, moral hazard included), ``recovered`` (yuan received by the horizon).
    scenario : Scenario
        The scenario that was run.
    events : dict of str to ndarray or None
        Event log (``time, event, id, party, amount, reason``) when requested.
    summary : dict
        See :func:`build_result`.
    checks : dict of str to bool
        ``conservation``, ``loss_once``, ``no_gain`` (see :meth:`check`).
    wall_seconds : float
    simpy_events : int
        Events scheduled on the SimPy environment and on the claims agenda
        (:class:`simkit.des.agenda.Agenda`).
    model_events : int
        Model events: applications, bank and guarantor decisions, originations,
        maturities, defaults, claims and non-fee payments (see the benchmark).
    """

    scenario_name: str
    seed: int
    replication: int
    years: float
    parties: tuple[str, ...]
    months: np.ndarray
    series: dict[str, np.ndarray]
    refusals: dict[str, np.ndarray]
    renewal_refusals: dict[str, np.ndarray]
    cohort_losses: np.ndarray
    run_off: bool
    end_time: float
    caps: tuple[str, ...]
    cap_refused: np.ndarray
    credit_lines: tuple[str, ...]
    credit_line_use: np.ndarray
    credit_line_amount: np.ndarray
    ledger: LedgerArrays
    loans: dict[str, np.ndarray]
    scenario: Scenario = field(repr=False)
    events: dict[str, np.ndarray] | None
    summary: dict[str, Any]
    checks: dict[str, bool]
    wall_seconds: float
    simpy_events: int
    model_events: int
    check_detail: dict[str, float] = field(default_factory=dict, repr=False)
    _book: Book | None = field(default=None, repr=False)
    #: the amount of each line in effect during each month, shape (n_months, n_lines)
    #: (yuan; differs from ``credit_line_amount`` with changes or an allocation rule)
    credit_line_limit: np.ndarray | None = field(default=None, repr=False)

    @property
    def book(self) -> Book:
        """The originated guaranteed loans (renewals included) as a
        :class:`simkit.book.Book`, the input the Monte Carlo takes; built on first use.
        Direct (unguaranteed) loans are excluded: the guarantee system bears none of
        their loss."""
        if self._book is None:
            self._book = book_from_loans(self.scenario, self.loans)
        return self._book

    def check(self) -> None:
        """Raise ``AssertionError`` unless money is conserved and each loss borne once."""
        bad = [k for k, ok in self.checks.items() if not ok]
        if bad:
            raise AssertionError(f"DES checks failed: {bad} ({self.check_detail})")

    def balances(self) -> dict[str, float]:
        """Net money received minus paid per account over the run (yuan)."""
        return dict(zip(self.ledger.accounts, self.ledger.balances().tolist(), strict=True))

    def to_table(self) -> dict[str, np.ndarray]:
        """Every monthly series as one long (tidy) table, without pandas
        (``des_series.csv``).

        Returns
        -------
        dict of str to ndarray, all shape ``(n_rows,)``
            ``scenario`` (str), ``replication`` (int), ``month`` (int, 0-based),
            ``time_days`` (month end, days), ``series`` (str: a key of :data:`SERIES`;
            refusals as ``"refusals:<reason>"``, caps as ``"cap_refused"`` with the cap
            label as party, credit lines as ``"credit_line_use"`` with the line as
            party), ``party`` (str), ``value`` and ``unit`` (:func:`series_unit`:
            ``"count"``, ``"yuan"`` or ``"ratio"``). Rows run series by series, month
            by month, party by party.
        """
        cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                             ("month", "time_days", "series", "party",
                                              "value", "unit")}
        n = len(self.months)

        def add(name: str, arr: np.ndarray, labels: tuple[str, ...]) -> None:
            k = arr.shape[1]
            cols["month"].append(np.repeat(np.arange(n), k))
            cols["time_days"].append(np.repeat(self.months, k))
            cols["party"].append(np.tile(np.array(labels, dtype=object), n))
            cols["series"].append(np.full(n * k, name, dtype=object))
            cols["value"].append(arr.reshape(-1))
            cols["unit"].append(np.full(n * k, series_unit(name), dtype=object))

        for name, arr in self.series.items():
            add(name, arr, self.parties)
        for reason, arr in self.refusals.items():
            add(f"refusals:{reason}", arr, self.parties)
        if self.caps:
            add("cap_refused", self.cap_refused, self.caps)
        if self.credit_lines:
            add("credit_line_use", self.credit_line_use, self.credit_lines)
        body = {k: np.concatenate(v) for k, v in cols.items()}
        rows = len(body["value"])
        return {"scenario": np.full(rows, self.scenario_name, dtype=object),
                "replication": np.full(rows, self.replication, dtype=np.int64), **body}

    def to_frame(self) -> Any:
        """:meth:`to_table` as a pandas DataFrame (pandas is an optional extra).

        Raises
        ------
        ImportError
            "pandas is needed: pip install 'simkit[pandas]'" when pandas is missing.
        """
        from simkit.report import require_pandas

        pd = require_pandas()
        return pd.DataFrame(self.to_table())

    def annual_loss(self) -> dict[str, float]:
        """Net default loss per party per year of the horizon (yuan/year)."""
        return {p: v / self.years for p, v in self.summary["losses"].items()}


@dataclass
class DesRuns:
    """Replications of one scenario (:func:`simkit.des.run_des`).

    Attributes
    ----------
    results : tuple of DesResult
        In replication order.
    """

    results: tuple[DesResult, ...]

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> DesResult:
        return self.results[i]

    def __iter__(self) -> Iterator[DesResult]:
        return iter(self.results)

    def annual_loss(self) -> tuple[dict[str, float], dict[str, float]]:
        """Mean and standard error over replications of each party's annual net loss."""
        return self.mean_se(lambda r: r.annual_loss())

    def mean_se(self, fn: Any) -> tuple[dict[str, float], dict[str, float]]:
        """Mean and standard error over replications of a per-party dict ``fn(result)``."""
        rows = [fn(r) for r in self.results]
        keys = list(rows[0])
        data = np.array([[row[k] for k in keys] for row in rows])
        mean = data.mean(axis=0)
        se = (data.std(axis=0, ddof=1) / math.sqrt(len(rows)) if len(rows) > 1
              else np.full(len(keys), np.nan))
        return dict(zip(keys, mean.tolist(), strict=True)), dict(zip(keys, se.tolist(),
                                                                     strict=True))

    def summary(self) -> dict[str, Any]:
        """Across-replication means and standard errors of the summary items
        (``des_summary.json``).

        Returns
        -------
        dict
            ``scenario``, ``source``, ``replications``, ``years``; for every numeric
            item of :attr:`DesResult.summary` its mean over the replications and, with
            several replications, ``<key>_se`` (standard error of the mean); per-party
            (and per-cap, per-limit) items as ``{name: mean}`` with ``<key>_se``
            ``{name: se}`` likewise. Counts (integers in every replication) are written
            as integers when their mean is whole (always with one replication).
            ``checks_ok`` is true when every replication passed its checks. Identifiers
            (``seed``, ``replication``) are never averaged: they are in ``provenance``
            (the root ``seed``: replication ``i`` draws from its streams keyed by ``i``;
            ``replications``, ``years``, ``mode``, ``run_off`` and the simkit, numpy,
            simpy and Python versions).
        """
        results = self.results
        first = results[0].summary
        n = len(results)
        out: dict[str, Any] = {"scenario": results[0].scenario_name,
                               "source": results[0].scenario.source,
                               "replications": n, "years": results[0].years}

        def mean_se(vals: np.ndarray, counts: bool) -> tuple[Any, float | None]:
            mean = float(vals.mean())
            if counts and mean.is_integer():
                mean = int(mean)
            return mean, (float(vals.std(ddof=1) / math.sqrt(n)) if n > 1 else None)

        for key, value in first.items():
            if key in _IDENTIFIERS or key in out:
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                vals = np.array([r.summary[key] for r in results], dtype=float)
                out[key], se = mean_se(vals, all(isinstance(r.summary[key], int)
                                                 for r in results))
                if se is not None:
                    out[f"{key}_se"] = se
            elif isinstance(value, dict) and all(isinstance(v, int | float)
                                                 for v in value.values()):
                names = list(dict.fromkeys(k for r in results for k in r.summary[key]))
                means, ses = {}, {}
                for k in names:
                    got = [r.summary[key].get(k, 0) for r in results]
                    means[k], ses[k] = mean_se(np.array(got, dtype=float),
                                               all(isinstance(v, int) for v in got))
                out[key] = means
                if n > 1:
                    out[f"{key}_se"] = ses
        out["checks_ok"] = all(bool(r.summary.get("checks_ok", True)) for r in results)
        out["provenance"] = _provenance(self)
        return out


#: Summary items that identify a replication; never averaged.
_IDENTIFIERS = frozenset({"seed", "replication", "scenario"})


def _provenance(runs: DesRuns) -> dict[str, Any]:
    """Seeds, replications, horizon and library versions of a set of DES runs."""
    import platform

    import simpy

    import simkit

    r0 = runs.results[0]
    return {"seed": int(r0.seed), "replications": len(runs.results), "years": float(r0.years),
            "mode": r0.scenario.des.mode, "run_off": bool(r0.run_off),
            "simkit": simkit.__version__, "numpy": np.__version__,
            "simpy": getattr(simpy, "__version__", "unknown"),
            "python": platform.python_version()}


def series_unit(name: str) -> str:
    """The unit of a series of :meth:`DesResult.to_table`: ``"count"``, ``"yuan"`` or
    ``"ratio"`` (leverage)."""
    if name.startswith("refusals:"):
        return "count"
    if name in ("cap_refused", "credit_line_use"):
        return "yuan"
    text = SERIES.get(name, "")
    if "(count" in text:
        return "count"
    return "yuan" if "yuan" in text else "ratio"


def build_result(model: Model, *, wall_seconds: float, simpy_events: int) -> DesResult:
    """Assemble a :class:`DesResult` from a finished :class:`~simkit.des.model.Model`."""
    sc = model.scenario
    ledger = model.ledger.freeze()
    n_m = model.n_months
    months = np.minimum((np.arange(n_m) + 1) * (365.0 / 12.0), model.horizon)
    loans = _loan_table(model)
    series = _series(model, ledger)
    series.update(wait_series(model, loans))
    n_caps = len(model.caps)
    flat = np.zeros((n_m + 1) * n_caps)
    if model.cap_settlement.refusals:
        t, cap, amount = (np.array(x) for x in zip(*model.cap_settlement.refusals,
                                                   strict=True))
        month = model.records.months(t)  # summed in order (a running sum)
        flat = np.bincount(month * n_caps + cap.astype(np.intp), weights=amount,
                           minlength=(n_m + 1) * n_caps).astype(np.float64)
    by_month = flat.reshape(n_m + 1, n_caps)
    cap_refused_total = by_month.sum(axis=0)
    cap_refused = by_month[:n_m]
    cohort_losses = _cohort_losses(model, ledger, loans["start"])
    checks, detail = _checks(model, ledger, loans)
    events = _event_log(model) if model.records.keep_log else None

    counts = model.records.counts
    n_nonfee = int((~ledger.mask(FEE_KINDS)).sum())
    model_events = (counts["applications"] + counts["bank_decisions"]
                    + counts["guarantor_decisions"] + counts["originations"]
                    + counts["maturities"] + counts["defaults"] + counts["claims"] + n_nonfee)
    summary = _summary(model, ledger, loans, series, cap_refused, checks)
    summary["cap_refused"] = {c.label: float(cap_refused_total[k])
                              for k, c in enumerate(model.caps)}
    summary.update(wait_summary(model, loans))
    summary.update(wall_seconds=wall_seconds, simpy_events=simpy_events,
                   model_events=model_events,
                   model_events_per_second=model_events / max(wall_seconds, 1e-12))
    rec = model.records
    return DesResult(
        scenario_name=sc.name, seed=model.seed, replication=model.replication,
        years=model.years, parties=sc.party_names, months=months, series=series,
        refusals={k: v[:n_m] for k, v in rec.refusals.items()},
        renewal_refusals={k: v[:n_m] for k, v in rec.renewal_refusals.items()},
        cohort_losses=cohort_losses, run_off=model.run_off, end_time=model.end_time,
        caps=tuple(c.label for c in model.caps),
        cap_refused=cap_refused, credit_lines=tuple(x.label for x in model.lines),
        credit_line_use=model.monthly.line_use,
        credit_line_amount=np.array([x.amount for x in sc.credit_lines]),
        credit_line_limit=np.array([amounts_at(x, months) for x in model.lines]
                                   ).reshape(len(model.lines), n_m).T,
        ledger=ledger, loans=loans, scenario=sc, events=events, summary=summary,
        checks=checks, wall_seconds=wall_seconds, simpy_events=simpy_events,
        model_events=model_events, check_detail=detail,
    )


def _loan_table(model: Model) -> dict[str, np.ndarray]:
    """:attr:`DesResult.loans` from the model's loan-table chunks."""
    chunks = model.records.loans
    if chunks:
        ids, apps, start, end, dflt, renewal, direct = (
            np.concatenate([c[i] for c in chunks]) for i in range(7))
    else:
        ids = apps = np.zeros(0, np.int64)
        start = end = np.zeros(0)
        dflt = renewal = direct = np.zeros(0, bool)
    defaulted = dflt & (end < model.settle_until)
    rec = np.zeros(len(ids))
    for loan, amount in model.records.recovered.items():
        rec[loan] = amount
    a = model.apps
    return {
        "id": ids, "application": apps, "segment": a.seg[apps], "start": start,
        "end": end, "defaulted": defaulted, "renewal": renewal, "direct": direct,
        "exposure": a.exposure[apps],
        "guaranteed": np.where(direct, 0.0, a.guaranteed[apps]),
        "default_prob": a.pd_eff[apps], "recovered": rec,
    }


def _series(model: Model, ledger: LedgerArrays) -> dict[str, np.ndarray]:
    """:attr:`DesResult.series`: the counted flows, the ledger-derived monthly flows
    (within the horizon) and the month-end stocks."""
    n_p = model.n_parties
    n_m = model.n_months
    mon = np.minimum((ledger.time / (365.0 / 12.0)).astype(np.intp), n_m - 1)
    in_horizon = ledger.time < model.horizon

    def flow(kinds: tuple[str, ...], side: str) -> np.ndarray:
        n_a = model.n_accounts
        sel = ledger.mask(kinds) & in_horizon
        acct = ledger.payer if side == "paid" else ledger.payee
        out = np.bincount(mon[sel] * n_a + acct[sel], weights=ledger.amount[sel],
                          minlength=n_m * n_a).astype(np.float64).reshape(n_m, n_a)
        return out[:, :n_p]

    series: dict[str, np.ndarray] = {k: v[:n_m] for k, v in model.records.flows.items()}
    series["compensation_paid"] = flow(("compensation", "reimbursement", "overflow"), "paid")
    series["reimbursements_received"] = flow(("reimbursement", "overflow"), "received")
    series["recoveries"] = flow(("recovery",), "received")
    series["fees_received"] = flow(FEE_KINDS, "received")
    series["fees_paid"] = flow(FEE_KINDS, "paid")
    series["injections"] = flow(("injection",), "received")
    series["net_loss"] = flow(LOSS_KINDS, "paid") - flow(LOSS_KINDS, "received")
    series.update({k: v[:n_m] for k, v in model.monthly.stocks.items()})
    return series


def _cohort_losses(model: Model, ledger: LedgerArrays, start: np.ndarray) -> np.ndarray:
    """Settled net loss per origination year and party, shape ``(n_years, n_parties)``."""
    n_years = max(1, math.ceil(model.years - 1e-9))
    cohort_losses = np.zeros((n_years, model.n_accounts))
    sel = ledger.mask(LOSS_KINDS) & (ledger.loan >= 0)
    if sel.any():
        # loan ids are 0..n_loans-1 in origination order (loans["id"][i] == i)
        year = np.minimum((start[ledger.loan[sel]] // 365.0).astype(np.intp), n_years - 1)
        amt = ledger.amount[sel]
        n_a = model.n_accounts
        # the payers' amounts, then minus the payees' (running sums, as np.add.at)
        flat = np.concatenate([year * n_a + ledger.payer[sel], year * n_a + ledger.payee[sel]])
        cohort_losses = np.bincount(flat, weights=np.concatenate([amt, -amt]),
                                    minlength=n_years * n_a).astype(np.float64)
        cohort_losses = cohort_losses.reshape(n_years, n_a)
    return cohort_losses[:, :model.n_parties]


def _event_log(model: Model) -> dict[str, np.ndarray]:
    """:attr:`DesResult.events`: the event log sorted by time (stable)."""
    names = ("time", "event", "id", "party", "amount", "reason")
    log = model.records.log
    if log:
        cols = [np.concatenate([c[i] for c in log]) for i in range(6)]
    else:
        cols = [np.zeros(0), np.zeros(0, np.int8), np.zeros(0, np.int64),
                np.zeros(0, np.int16), np.zeros(0), np.zeros(0, np.int8)]
    order = np.argsort(cols[0], kind="stable")
    events = {k: c[order] for k, c in zip(names, cols, strict=True)}
    events["event_names"] = np.array(EVENTS)
    events["reason_names"] = np.array(REASONS)
    return events


def _checks(model: Model, ledger: LedgerArrays, loans: dict[str, np.ndarray]
            ) -> tuple[dict[str, bool], dict[str, float]]:
    """Conservation of money and single bearing of each default's loss."""
    bal = ledger.balances()
    state = np.array([a.capital - a.initial for a in model.accounts])
    tol_state, tol_total = _rounding_tolerances(ledger, np.array(
        [a.initial for a in model.accounts], dtype=np.float64))
    err_state = float(np.abs(state - bal).max()) if len(bal) else 0.0
    err_total = abs(float(bal.sum()))
    conservation = bool(np.all(np.abs(state - bal) <= tol_state)) and err_total <= tol_total
    ids = np.array([d[0] for d in model.records.defaults], dtype=np.int64)
    expo = np.array([d[2] for d in model.records.defaults])
    losses = ledger.loan_losses(ids)[:, :model.n_parties]
    rec = loans["recovered"][ids] if len(ids) else np.zeros(0)
    err_loss = float(np.abs(losses.sum(axis=1) - (expo - rec)).max()) if len(ids) else 0.0
    n_default_rows = np.bincount(ledger.loan[ledger.mask("default")],
                                 minlength=max(len(loans["id"]), 1))
    once = bool((n_default_rows <= 1).all()) and int(n_default_rows.sum()) == len(ids)
    loss_once = once and err_loss <= 1e-9 * max(float(expo.sum()) if len(ids) else 1.0, 1.0)
    min_net = float(losses.min()) if losses.size else 0.0
    no_gain = min_net >= -1e-6 * max(float(expo.max()) if len(ids) else 1.0, 1.0)
    return ({"conservation": conservation, "loss_once": loss_once, "no_gain": no_gain},
            {"state_vs_ledger": err_state, "ledger_total": err_total,
             "state_vs_ledger_tolerance": float(tol_state.max()) if len(bal) else 0.0,
             "loss_identity": err_loss, "min_party_net_loss": min_net})


#: Rounding allowance per floating-point operation, in units of machine epsilon.
_ULPS_PER_OP = 4.0


def _rounding_tolerances(ledger: LedgerArrays, initial: np.ndarray
                         ) -> tuple[np.ndarray, float]:
    """Worst-case rounding of the running capital and of the ledger sums (yuan).

    An account's capital is a running sum of its ``n_j`` flows (one at a time or in chunks)
    that starts from its initial capital; each addition rounds by at most one ulp of the
    running value, which never exceeds ``|initial_j| + G_j`` (``G_j``: gross flows through
    the account), and the ledger's own balance of the account rounds by at most ``n_j`` ulps
    of ``G_j``. The state-versus-ledger tolerance is therefore
    ``c eps (n_j + 1) (|initial_j| + 2 G_j)`` with ``c`` = :data:`_ULPS_PER_OP`; the sum of all
    balances (zero in exact arithmetic) is allowed ``c eps (n + n_accounts) G``. Both scale
    with the magnitudes involved, so tiny flows next to large capital (net assets 1e15, loans
    of 2 yuan) pass while a lost or doubled flow (an error of one flow's size) does not.

    Parameters
    ----------
    ledger : LedgerArrays
    initial : ndarray, shape (n_accounts,)
        Initial capital per account (yuan).

    Returns
    -------
    tol_state : ndarray, shape (n_accounts,)
        Allowed ``|capital - initial - balance|`` per account (yuan).
    tol_total : float
        Allowed ``|sum of balances|`` (yuan).
    """
    n_acc = len(ledger.accounts)
    amt = np.abs(ledger.amount)
    ops = (np.bincount(ledger.payer, minlength=n_acc)
           + np.bincount(ledger.payee, minlength=n_acc)).astype(np.float64)
    gross = (np.bincount(ledger.payer, weights=amt, minlength=n_acc)
             + np.bincount(ledger.payee, weights=amt, minlength=n_acc))
    eps = float(np.finfo(np.float64).eps)
    tol_state = _ULPS_PER_OP * eps * (ops + 1.0) * (np.abs(initial[:n_acc]) + 2.0 * gross)
    tol_total = _ULPS_PER_OP * eps * (len(ledger) + n_acc) * float(amt.sum())
    return tol_state, tol_total


def book_from_loans(scenario: Scenario, loans: dict[str, np.ndarray]) -> Book:
    """The originated loans of a run as a :class:`simkit.book.Book`.

    Parameters
    ----------
    scenario : Scenario
    loans : dict of arrays
        :attr:`DesResult.loans` (uses ``segment``, ``exposure``, ``default_prob`` and
        ``direct``: direct, unguaranteed loans are left out).
    """
    if "direct" in loans and np.any(loans["direct"]):
        keep = ~np.asarray(loans["direct"], dtype=bool)
        loans = {k: np.asarray(v)[keep] for k, v in loans.items()}
    segs = scenario.segments
    seg = np.asarray(loans["segment"], dtype=np.intp)
    regions = tuple(sorted({s.region for s in segs}))
    sectors = tuple(sorted({s.sector for s in segs}))
    g_names = tuple(dict.fromkeys(s.guarantor for s in segs if s.guarantor))
    ag_names = [a.name for a in scenario.agreements]

    def per_seg(values: list[Any], dtype: Any = float) -> np.ndarray:
        return np.array(values, dtype=dtype)[seg] if segs else np.zeros(0, dtype)

    loadings = np.array([(s.loadings or scenario.factors.loadings).as_tuple() for s in segs]
                        ).reshape(len(segs), 4)[seg]
    return assemble(
        scenario, exposure=np.asarray(loans["exposure"], float),
        default_prob=np.asarray(loans["default_prob"], float),
        lgd_mean=per_seg([s.lgd.mean for s in segs]),
        lgd_sd=per_seg([s.lgd.sd for s in segs]),
        tenor_years=per_seg([s.tenor_years for s in segs]),
        agreement=per_seg([ag_names.index(s.agreement) for s in segs], np.intp),
        segment=seg, segment_names=tuple(s.name for s in segs),
        region=per_seg([regions.index(s.region) for s in segs], np.intp),
        region_names=regions,
        sector=per_seg([sectors.index(s.sector) for s in segs], np.intp),
        sector_names=sectors,
        guarantor=per_seg([g_names.index(s.guarantor) if s.guarantor else -1 for s in segs],
                          np.intp),
        guarantor_names=g_names,
        tech_tier=per_seg([s.tech_tier for s in segs], np.int8),
        loadings=loadings,
    )


def _summary(model: Model, ledger: LedgerArrays, loans: dict[str, np.ndarray],
             series: dict[str, np.ndarray], cap_refused: np.ndarray,
             checks: dict[str, bool]) -> dict[str, Any]:
    parties = model.scenario.party_names
    n_p = model.n_parties

    def per_party(values: np.ndarray) -> dict[str, float]:
        return dict(zip(parties, (float(v) for v in values[:n_p]), strict=True))

    paid = np.zeros(model.n_accounts)
    sel = ledger.mask(("compensation", "reimbursement", "overflow"))
    np.add.at(paid, ledger.payer[sel], ledger.amount[sel])
    loss = -ledger.balances(LOSS_KINDS)
    refusals = {r: int(a.sum()) for r, a in model.records.refusals.items()}
    renewal_refusals = {r: int(a.sum()) for r, a in model.records.renewal_refusals.items()}
    limit_months: dict[str, int] = {}
    j: int | np.integer  # a party column below: from np.flatnonzero, then from enumerate
    for reason in ("leverage", "credit_line", "single_client"):
        rec = model.records
        arr = (rec.refusals[reason] + rec.renewal_refusals[reason])[:model.n_months]
        for j in np.flatnonzero(arr.sum(axis=0)):
            limit_months[f"{reason}:{parties[j]}"] = int((arr[:, j] > 0).sum())
    lev = series["leverage"]
    max_lev = {}
    for j, p in enumerate(parties):
        col = lev[:, j]
        if np.isfinite(col).any():
            max_lev[p] = float(np.nanmax(np.where(np.isfinite(col), col, np.nan)))
    direct = loans["direct"]
    new = ~loans["renewal"]
    n_direct_new = int((direct & new).sum())
    # firms served with a guarantee that the bank would not have lent to alone (rule
    # with retained share 1), as a share of all firms served (renewals excluded)
    alone = model.apps.alone_ok[loans["application"]]
    additional = int((new & ~direct & ~alone).sum())
    n_new = int(new.sum())
    return {
        "scenario": model.scenario.name,
        "seed": model.seed,
        "replication": model.replication,
        "years": model.years,
        "applications": int(model.records.counts["applications"]),
        "approvals": int(series["approvals"].sum()),
        "renewals": int(series["renewed"].sum()),
        "loans": len(loans["id"]),
        # each application originates at most one loan that is not a renewal
        "firms_served": int((~loans["renewal"]).sum()),
        "credit_supplied": float(loans["exposure"].sum()),
        "guaranteed_supplied": float(loans["guaranteed"].sum()),
        "defaults": int(loans["defaulted"].sum()),
        "default_amount": float(loans["exposure"][loans["defaulted"]].sum()),
        "refusals": refusals,
        "renewal_refusals": renewal_refusals,
        "direct_loans": int(direct.sum()),
        "direct_credit": float(loans["exposure"][direct].sum()),
        "additionality": additional / n_new if n_new else math.nan,
        "pending": int(model.records.counts["applications"] - series["approvals"].sum()
                       - n_direct_new - sum(refusals.values())),
        "losses": per_party(loss),
        "losses_in_horizon": per_party(-ledger.balances(LOSS_KINDS,
                                                        until=model.horizon - 1e-9)),
        "run_off": model.run_off,
        "end_days": model.end_time,
        "compensation_paid": per_party(paid),
        "fees_net": per_party(ledger.balances(FEE_KINDS)),
        "recoveries": per_party(ledger.balances("recovery")),
        "injections": per_party(ledger.balances("injection")),
        "capital_end": per_party(np.array([a.capital for a in model.accounts])),
        "cap_binding_months": {c.label: int((cap_refused[:, k] > 0).sum())
                               for k, c in enumerate(model.caps)},
        "cap_refused": {c.label: float(cap_refused[:, k].sum())
                        for k, c in enumerate(model.caps)},
        "limit_binding_months": limit_months,
        "max_leverage": max_lev,
        "checks_ok": all(checks.values()),
        "ledger_rows": len(ledger),
    }

