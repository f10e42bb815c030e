"""Review capacity of the original guarantors (DES, individual mode).

Rules (``des.review_staff`` = ``S`` > 0 and ``des.mode = "individual"``; otherwise off:
every application the bank passes goes to the guarantor's decision after the fixed
review delay of its mode, as before):

* each original guarantor has ``S`` review staff, a SimPy ``Resource`` of capacity ``S``,
  and a first-in first-out queue of the applications the bank passed;
* service is vectorised per day (no process per application): on day ``d`` a guarantor's
  staff start reviewing the next ``floor((d + 1) c) - floor(d c)`` applications of its
  queue, ``c = S x des.review_rate`` (so ``c`` a day on average), holding
  ``ceil(started / review_rate)`` staff units of the ``Resource`` for the day; a review
  started on day ``d`` ends with the guarantor's decision (review rule, limits) after
  ``des.review_days_individual`` days;
* an applicant still waiting for a reviewer more than ``des.review_patience_days`` after
  it applied withdraws (a refusal with reason ``"withdrawn"``, under the guarantor);
* the day's service runs after the day's arrivals; it stops at the horizon (what is
  still queued is ``pending``).

Batch ("total-to-total") mode checks compliance automatically: no staff, the fixed
``des.review_days_batch``, whatever ``review_staff`` says. The wait of an approval
(application to guarantee, days: queue, review and any limit queue) is reported per
month (``approval_wait_days``, summed) and in the summary (``wait_mean_days``,
``wait_p95_days``); the month-end queue is the series ``review_queue``.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from simkit.des.codes import REASON_CODE

__all__ = ["ReviewDesk", "daily_capacity", "wait_series", "wait_summary"]

#: The refusal reason of an applicant who gave up waiting for a reviewer.
WITHDRAWN = REASON_CODE["withdrawn"]


def daily_capacity(day: int, per_day: float) -> int:
    """Applications started on ``day`` at ``per_day`` a day on average:
    ``floor((day + 1) per_day) - floor(day per_day)``."""
    return math.floor((day + 1) * per_day + 1e-9) - math.floor(day * per_day + 1e-9)


class ReviewDesk:
    """The review queues and staff of every original guarantor of a model.

    Parameters
    ----------
    model : simkit.des.model.Model
        The model being built: its environment, settings, applications (``apps``),
        segments, records (refusals) and underwriting (the guarantor's decision and the
        refusal queue).
    """

    def __init__(self, model: Any):
        des = model.des
        self.env = env = model.env
        self.apps = model.apps
        self.front_of_seg = model.segments.front
        self.records = model.records
        self.underwriting = model.underwriting
        self.n_days = model.apps.n_days
        self.staff = int(des.review_staff)
        self.rate = float(des.review_rate)
        self.per_day = self.staff * self.rate
        self.patience = float(des.review_patience_days)
        self.fronts = sorted(set(self.front_of_seg.tolist()))
        #: staff of each original guarantor (party index -> Resource)
        self.staff_pool = {j: simpy.Resource(env, capacity=self.staff) for j in self.fronts}
        #: waiting applications (application indices, in arrival order) per guarantor
        self.queue: dict[int, np.ndarray] = {j: np.zeros(0, np.intp) for j in self.fronts}
        #: queue length per guarantor after each day's service, shape (n_days, n_parties)
        self.queue_length = np.zeros((self.n_days, model.n_parties))
        #: staff-days used per guarantor (for the utilisation)
        self.staff_days = dict.fromkeys(self.fronts, 0)

    def submit(self, apps: np.ndarray) -> None:
        """Queue the applications the bank passed today (in arrival order)."""
        if apps.size == 0:
            return
        front = self.front_of_seg[self.apps.seg[apps]]
        for j in np.unique(front).tolist():
            self.queue[j] = np.concatenate([self.queue[j], apps[front == j]])

    def serve(self) -> Generator[simpy.Event, Any, None]:
        """Process: each day, after the arrivals, start the reviews the staff can take."""
        env = self.env
        uw = self.underwriting
        day = self.apps.day
        for d in range(self.n_days):
            if d > env.now:
                yield env.timeout(d - env.now)
            started: list[np.ndarray] = []
            held: list[tuple[simpy.Resource, Any]] = []
            for j in self.fronts:
                q = self.queue[j]
                if q.size == 0:
                    continue
                late = env.now - day[q] > self.patience
                if late.any():
                    gone = q[late]
                    self.records.refuse(env.now, gone, WITHDRAWN,
                                        np.full(len(gone), j, np.intp))
                    q = q[~late]
                n = min(q.size, daily_capacity(d, self.per_day))
                if n:
                    started.append(q[:n])
                    busy = min(self.staff, math.ceil(n / self.rate))
                    self.staff_days[j] += busy
                    pool = self.staff_pool[j]
                    held.extend((pool, pool.request()) for _ in range(busy))
                    q = q[n:]
                self.queue[j] = q
                self.queue_length[d, j] = q.size
            apps = (np.sort(np.concatenate(started)) if started
                    else np.zeros(0, np.intp))
            if apps.size or uw.q_app.size:
                env.process(uw.underwrite_guarantee(apps))
            if held:  # the staff are busy for the day
                ev = env.timeout(1.0)
                ev.callbacks.append(lambda _e, h=held: [p.release(r) for p, r in h])

    def month_end_queue(self, months: int, days_per_month: float) -> np.ndarray:
        """Queue length per guarantor at each month end, shape ``(months, n_parties)``."""
        n = self.queue_length.shape[0]
        last = np.minimum(np.ceil((np.arange(months) + 1) * days_per_month - 1e-9)
                          .astype(np.intp) - 1, n - 1)
        return self.queue_length[np.maximum(last, 0)]

    def utilisation(self) -> dict[int, float]:
        """Staff-days used over staff-days available, per guarantor (0..1)."""
        days = max(self.n_days, 1)
        return {j: self.staff_days[j] / (self.staff * days) for j in self.fronts}


def _approval_waits(model: Any, loans: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Start time, wait (days) and original guarantor of each approval in the horizon
    (first guaranteed loans: no renewals, no direct loans)."""
    sel = ~loans["renewal"] & ~loans["direct"] & (loans["start"] < model.horizon)
    start = loans["start"][sel]
    apps = loans["application"][sel]
    return (start, start - model.apps.day[apps],
            model.segments.front[model.apps.seg[apps]])


def wait_series(model: Any, loans: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The monthly series of the review (shape ``(n_months, n_parties)``):
    ``approval_wait_days`` (days from application to guarantee summed over the month's
    approvals, by original guarantor; divide by ``approvals`` for the mean) and
    ``review_queue`` (applications waiting for a reviewer at month end)."""
    n_m, n_p = model.n_months, model.n_parties
    start, wait, front = _approval_waits(model, loans)
    out = np.zeros((n_m, n_p))
    month = np.minimum((start / (365.0 / 12.0)).astype(np.intp), n_m - 1)
    np.add.at(out, (month, front), wait)
    desk = model.review
    queue = (desk.month_end_queue(n_m, 365.0 / 12.0) if desk is not None
             else np.zeros((n_m, n_p)))
    return {"approval_wait_days": out, "review_queue": queue}


def wait_summary(model: Any, loans: dict[str, np.ndarray]) -> dict[str, Any]:
    """Summary items of the waits: ``wait_mean_days`` and ``wait_p95_days`` over the
    approvals in the horizon (nan without any), ``review_utilisation`` per guarantor
    (staff-days used over available; empty when the review capacity is off)."""
    _start, wait, _front = _approval_waits(model, loans)
    desk = model.review
    names = model.scenario.party_names
    return {
        "wait_mean_days": float(wait.mean()) if wait.size else math.nan,
        "wait_p95_days": float(np.percentile(wait, 95)) if wait.size else math.nan,
        "review_utilisation": ({names[j]: u for j, u in desk.utilisation().items()}
                               if desk is not None else {}),
    }
