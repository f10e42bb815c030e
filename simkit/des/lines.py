"""Credit lines that change during the run and are re-allocated per period (DES).

Rules (the README states them; a line without ``changes`` and ``allocation`` is the plain
:class:`~simkit.des.parties.CreditLineState`, unchanged):

* **Changes during the year** (``[[credit_lines]] changes = [{ at_years, factor }]``):
  from ``at_years`` (years from the start of the run) on, the line's amount is multiplied
  by ``factor``; the room left in the current period is the new amount minus what was
  already used. A change is permanent: with ``allocation`` absent the later periods keep
  the changed amount. Changes apply in time order, lazily at the first decision (or
  month-end snapshot) at or after their time, with their own time in the amount path.
* **Allocation at the start of each period** (``allocation = { growth, reference_rate,
  rate_weight, leverage_weight }``, absent: the amount stays): the amount of period
  ``p >= 1`` is

      ``A_p = B x growth x clip(1 + w_r (1 - c / c_ref) + w_l (1 - L / L_max), 0.5, 1.5)``

  with ``B`` the guaranteed principal filed on the line in period ``p - 1`` (its amount
  when nothing was filed), ``c`` the holder's compensation rate on the line in ``p - 1``
  (guaranteed principal of the loans filed on the line that defaulted during ``p - 1``
  over the principal filed in ``p - 1``), ``c_ref = reference_rate``, ``L / L_max`` the
  holder's leverage over its limit at the period's start (term 0 for a holder without a
  leverage limit). The form and the clip bounds are **assumptions** (the national fund
  publishes no formula; DOMAIN.md names the inputs: last year's business, its growth,
  the province's compensation rate and leverage).
* **Waiting for room** (``des.refusal``): ``"queue"`` queues every limit refusal;
  ``"queue_credit_line"`` queues only the credit-line refusals (leverage and
  single-client refusals are final). A queued application is retried first at each
  later decision batch, so it is served as soon as a change or a new period gives the
  line room, and it is given up after ``des.queue_patience_days``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from simkit.des.parties import CreditLineState
from simkit.scenario import CreditLine

__all__ = ["SCORE_BOUNDS", "ChangingLine", "LineStats", "allocate", "amounts_at",
           "line_stats", "make_line", "queued_mask"]

#: Clip bounds of the allocation score (an assumption).
SCORE_BOUNDS = (0.5, 1.5)

#: (line index, period start, period end) -> (defaulted guaranteed principal of the
#: line's loans in the period (yuan), holder leverage / limit or nan)
LineStats = Callable[[int, float, float], tuple[float, float]]


def allocate(filed: float, amount: float, comp_rate: float, leverage_ratio: float, *,
             growth: float, reference_rate: float, rate_weight: float,
             leverage_weight: float) -> float:
    """The next period's amount of a credit line (yuan; module docstring).

    Parameters
    ----------
    filed : float
        Guaranteed principal filed on the line in the last period (yuan).
    amount : float
        The line's amount in the last period (yuan): the base when nothing was filed.
    comp_rate : float
        The holder's compensation rate on the line in the last period (0..1).
    leverage_ratio : float
        The holder's leverage over its limit (``nan``: no limit, term 0).
    growth, reference_rate, rate_weight, leverage_weight : float
        The rule's parameters (:class:`simkit.scenario.LineAllocation`).
    """
    base = filed if filed > 0 else amount
    score = 1.0 + rate_weight * (1.0 - comp_rate / reference_rate)
    if math.isfinite(leverage_ratio):
        score += leverage_weight * (1.0 - leverage_ratio)
    lo, hi = SCORE_BOUNDS
    return base * growth * min(max(score, lo), hi)


class ChangingLine(CreditLineState):
    """A credit line whose amount changes during the run and is re-allocated at each
    period start (module docstring).

    Attributes
    ----------
    amount_path : list of (float, float)
        ``(time in days, amount in yuan)`` from each change or period start on.
    """

    __slots__ = ("_changes", "_index", "_next", "_stats", "allocation", "amount_path")

    def __init__(self, line: CreditLine, provider: int, holder: int, index: int,
                 stats: LineStats):
        super().__init__(line, provider, holder)
        self._changes = [(c.at_years * 365.0, c.factor) for c in line.changes]
        self._next = 0
        self._index = index
        self._stats = stats
        self.allocation = line.allocation
        self.amount_path: list[tuple[float, float]] = [(0.0, self.amount)]

    def roll(self, now: float) -> None:
        """Apply the period starts and changes due by ``now`` (days), in time order."""
        period = int(now // self.period_days)
        while True:
            t_change = (self._changes[self._next][0] if self._next < len(self._changes)
                        else math.inf)
            t_period = (self.period + 1) * self.period_days
            if t_change < t_period and t_change <= now:
                self.amount *= self._changes[self._next][1]
                self._next += 1
                self.amount_path.append((t_change, self.amount))
            elif self.period < period:
                self._new_period(t_period)
            else:
                return

    def _new_period(self, start: float) -> None:
        a = self.allocation
        if a is not None:
            filed = self.history[self.period]
            defaulted, lev = self._stats(self._index, start - self.period_days, start)
            rate = defaulted / filed if filed > 0 else 0.0
            self.amount = allocate(filed, self.amount, rate, lev, growth=a.growth,
                                   reference_rate=a.reference_rate,
                                   rate_weight=a.rate_weight,
                                   leverage_weight=a.leverage_weight)
            self.amount_path.append((start, self.amount))
        self.period += 1
        self.used = 0.0
        self.history[self.period] = 0.0


def make_line(line: CreditLine, provider: int, holder: int, index: int,
              stats: LineStats) -> CreditLineState:
    """The state of one credit line: a :class:`ChangingLine` when the line has changes
    or an allocation rule, else the plain :class:`CreditLineState`."""
    if line.changes or line.allocation is not None:
        return ChangingLine(line, provider, holder, index, stats)
    return CreditLineState(line, provider, holder)


def line_stats(model: Any, k: int, t0: float, t1: float) -> tuple[float, float]:
    """The allocation inputs of line ``k`` of a running :class:`~simkit.des.model.Model`
    over ``[t0, t1)`` (days): the guaranteed principal of the loans filed on the line
    (direct loans excluded) that defaulted then (yuan), and the holder's leverage over
    its limit now (``nan`` without a limit)."""
    line = model.lines[k]
    inst = model.institutions[line.holder]
    lev = inst.leverage() / inst.leverage_limit if inst.constrained else math.nan
    rec = model.records
    if not rec.defaults or not rec.loans:
        return 0.0, lev
    d = np.array(rec.defaults)
    when = d[:, 1]
    loan = d[(when >= t0) & (when < t1), 0].astype(np.int64)
    # loan ids are 0..n_loans-1 in origination order
    apps = np.concatenate([c[1] for c in rec.loans])[loan]
    direct = np.concatenate([c[6] for c in rec.loans])[loan]
    apps = apps[~direct]
    seg = model.apps.seg[apps]
    applies = model.segments.line_applies[seg, k]
    return float((model.apps.guaranteed[apps] * applies).sum()), lev


def amounts_at(line: CreditLineState, times: np.ndarray) -> np.ndarray:
    """The line's amount in effect just before each time (days; a change at a month end
    counts from the next month), shape ``times.shape`` (yuan)."""
    path = getattr(line, "amount_path", [(0.0, line.amount)])
    t = np.array([p[0] for p in path])
    a = np.array([p[1] for p in path])
    return a[np.maximum(np.searchsorted(t, times, side="left") - 1, 0)]


def queued_mask(refusal: str, reasons: np.ndarray, credit_line_code: int) -> np.ndarray:
    """Which limit refusals wait in the queue (bool, shape of ``reasons``) under
    ``des.refusal``: none (``"refuse"``), all (``"queue"``) or the credit-line ones
    (``"queue_credit_line"``)."""
    if refusal == "queue":
        return np.ones(len(reasons), dtype=bool)
    if refusal == "queue_credit_line":
        return reasons == credit_line_code
    return np.zeros(len(reasons), dtype=bool)
