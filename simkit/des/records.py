"""What a run of the discrete-event model records: the one owner of its counters.

:class:`Records` holds the counts of model events, the monthly flow series, the refusals
of applications and of renewals, the loan table (in chunks, one per origination batch),
the defaults, the recoveries and the optional event log. Every other part of the model
writes here through its methods (or appends to its lists) and never keeps a copy;
:func:`simkit.des.result.build_result` reads it at the end.
"""

from __future__ import annotations

import numpy as np

from simkit.des.codes import DAYS_PER_MONTH, EVENT_CODE, REASONS

__all__ = ["FLOW_SERIES", "Records"]

#: Monthly flow series counted while the run goes (per party column).
FLOW_SERIES = ("applications", "approvals", "new_loans", "new_guaranteed", "defaults",
               "default_amount", "matured", "renewed", "queued", "claims", "direct_loans",
               "direct_lent")


class Records:
    """Counters, monthly flows, refusals, the loan table and the event log of a run.

    Parameters
    ----------
    horizon : float
        End of the horizon (days).
    n_months : int
        Months in the horizon; one extra row of every series collects the run-off.
    n_parties : int
    event_log : bool
        Keep the per-application / per-loan event log.
    """

    def __init__(self, horizon: float, n_months: int, n_parties: int, event_log: bool):
        self.horizon = horizon
        self.n_months = n_months
        self.keep_log = event_log
        self.log: list[tuple[np.ndarray, ...]] = []
        # one extra row collects what happens after the horizon (run-off), dropped from
        # the monthly series
        shape = (n_months + 1, n_parties)
        self.flows = {k: np.zeros(shape) for k in FLOW_SERIES}
        self.refusals = {r: np.zeros(shape) for r in REASONS}
        self.renewal_refusals = {r: np.zeros(shape) for r in REASONS}
        #: loan-table chunks: (ids, applications, start, end, defaulted, renewal, direct)
        self.loans: list[tuple[np.ndarray, ...]] = []
        self.n_loans = 0
        self.defaults: list[tuple[int, float, float]] = []  # (loan, time, exposure)
        self.recovered: dict[int, float] = {}
        self.counts = dict.fromkeys(("applications", "bank_decisions", "guarantor_decisions",
                                     "originations", "maturities", "defaults", "claims"), 0)

    def month(self, t: float) -> int:
        """Month index of time ``t`` (days); ``n_months`` for the run-off after the
        horizon."""
        if t >= self.horizon:
            return self.n_months
        return min(int(t / DAYS_PER_MONTH), self.n_months - 1)

    def months(self, t: np.ndarray) -> np.ndarray:
        """:meth:`month` of each time (days, shape ``(n,)``), as an int array."""
        t = np.asarray(t, dtype=np.float64)
        return np.where(t >= self.horizon, self.n_months,
                        np.minimum((t / DAYS_PER_MONTH).astype(np.intp), self.n_months - 1))

    def log_rows(self, t: float, event: str, ids: np.ndarray, party: np.ndarray | int,
                 amount: np.ndarray | float = 0.0, reason: np.ndarray | int = -1) -> None:
        """Append rows to the event log (one per id; scalars broadcast)."""
        n = len(ids)
        self.log.append((np.full(n, t), np.full(n, EVENT_CODE[event], np.int8),
                         np.asarray(ids, np.int64),
                         np.broadcast_to(np.asarray(party, np.int16), (n,)).copy(),
                         np.broadcast_to(np.asarray(amount, np.float64), (n,)).copy(),
                         np.broadcast_to(np.asarray(reason, np.int8), (n,)).copy()))

    def refuse(self, t: float, apps: np.ndarray, reason: int, party: np.ndarray, *,
               renewal: bool = False) -> None:
        """Count refusals of applications (or of renewals: kept apart, they are loans
        already served, not applications)."""
        target = self.renewal_refusals if renewal else self.refusals
        np.add.at(target[REASONS[reason]][self.month(t)], party, 1.0)
        if self.keep_log:
            self.log_rows(t, "renewal_refusal" if renewal else "refusal", apps, party, 0.0,
                          reason)

    def refuse_many(self, t: float, apps: np.ndarray, reasons: np.ndarray,
                    parties: np.ndarray) -> None:
        """Refuse applications with a reason each (counts per reason, log in order)."""
        m = self.month(t)
        for reason in np.unique(reasons).tolist():
            sel = reasons == reason
            np.add.at(self.refusals[REASONS[reason]][m], parties[sel], 1.0)
        if self.keep_log:
            self.log_rows(t, "refusal", apps, parties, 0.0, reasons)

    def new_loan_ids(self, n: int) -> np.ndarray:
        """Ids of ``n`` new loans (int64, shape ``(n,)``); counts the originations."""
        ids = np.arange(self.n_loans, self.n_loans + n, dtype=np.int64)
        self.n_loans += n
        self.counts["originations"] += n
        return ids
