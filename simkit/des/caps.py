"""Cap accounts of the discrete-event model: the one owner of each capped layer's state.

A :class:`CapAccount` is one capped layer in one pool (named by
:func:`simkit.sharing.cap_label`). It holds the base originated per statistics period and
the claims accrued per period until the period's settlement, and settles them with the
rulebook's budget (:func:`simkit.sharing.cap_budget`) and pro-rata fraction
(:func:`simkit.sharing.cap_paid_fraction`). The model schedules the settlement event and
moves the money; a :class:`Step` is one layer's reimbursement on a defaulted loan.
"""

from __future__ import annotations

import math
from typing import Any

from simkit.sharing import cap_budget, cap_paid_fraction

__all__ = ["CapAccount", "Step"]


class CapAccount:
    """State of one capped layer in one pool: base per statistics period (yuan) and the
    claims accrued per period until its settlement date."""

    __slots__ = ("annualised", "base", "label", "lag", "pending", "period_days", "rate",
                 "settle_extra", "settled", "share")

    def __init__(self, label: str, rate: float, share: float, annualised: bool,
                 period_days: float, lag: float):
        self.label = label
        self.rate = rate
        self.share = share
        self.annualised = annualised
        self.period_days = period_days
        self.lag = lag
        #: days from the end of the period (or the horizon) to its settlement: longest
        #: tenor of the segments under the cap + claim trigger + payment + the layer's lag
        self.settle_extra = 0.0
        self.base: dict[int, float] = {}
        #: period -> (settlement event, [(loan, step, due, time due, net), ...])
        self.pending: dict[int, tuple[Any, list[tuple[Any, ...]]]] = {}
        #: period -> (total due, budget) once settled
        self.settled: dict[int, tuple[float, float]] = {}

    def period_of(self, t: float) -> int:
        """Statistics period of time ``t`` (days)."""
        return int(t // self.period_days)

    def add_base(self, now: float, guaranteed: float, annualised: float) -> None:
        """Add loans originated now to the base of the current period (yuan, or
        yuan-years for an ``annualised`` base)."""
        period = self.period_of(now)
        add = annualised if self.annualised else guaranteed
        self.base[period] = self.base.get(period, 0.0) + float(add)

    def settlement_time(self, period: int, horizon: float) -> float:
        """When the claims of ``period`` are settled (days): the period's end (at most
        the horizon) plus :attr:`settle_extra`."""
        return min((period + 1) * self.period_days, horizon) + self.settle_extra

    def close(self, period: int) -> tuple[list[tuple[Any, ...]], float]:
        """Settle ``period``: its accrued entries and the fraction of each due paid."""
        _ev, entries = self.pending.pop(period)
        total = math.fsum(e[2] for e in entries)
        budget = float(cap_budget(self.rate, self.share, self.base.get(period, 0.0)))
        self.settled[period] = (total, budget)
        return entries, float(cap_paid_fraction(total, budget))


class Step:
    """One layer's reimbursement on a defaulted loan of a segment."""

    __slots__ = ("budget", "budget_frac", "cap", "holder", "lag", "overflow", "payer",
                 "share")

    def __init__(self, payer: int, share: float, cap: int, lag: float, holder: int,
                 overflow: int, budget: int = -1, budget_frac: float = 0.0):
        self.payer = payer
        self.share = share
        self.cap = cap
        self.lag = lag
        self.holder = holder
        self.overflow = overflow
        #: fiscal compensation: the budget account and the fraction of what this layer
        #: pays that it reimburses to the payer (sharing.compensation_fraction)
        self.budget = budget
        self.budget_frac = budget_frac
