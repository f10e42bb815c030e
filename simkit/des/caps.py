"""Cap accounts of the discrete-event model: the one owner of each capped layer's state.

A :class:`CapAccount` is one capped layer in one pool (named by
:func:`simkit.sharing.cap_label`). It holds the base originated per statistics period and
the claims accrued per period until the period's settlement, and settles them with the
rulebook's budget (:func:`simkit.sharing.cap_budget`) and pro-rata fraction
(:func:`simkit.sharing.cap_paid_fraction`). A :class:`Step` is one layer's reimbursement
on a defaulted loan. :class:`CapSettlement` owns the cap accounts of a run: it registers
what a capped layer owes on a default (:meth:`CapSettlement.accrue`), schedules each
period's settlement event and pays it pro rata (:meth:`CapSettlement.settle`), and keeps
the refused amounts. :func:`compensate` is the fiscal-compensation reimbursement of a
layer's payment (uncapped or capped).
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any

from simkit.des.agenda import timeout_at
from simkit.des.codes import K_OVER, K_REIMB
from simkit.sharing import cap_budget, cap_paid_fraction

if TYPE_CHECKING:
    import simpy

    from simkit.des.parties import Account
    from simkit.des.treasury import Treasury

__all__ = ["CapAccount", "CapSettlement", "Step", "compensate"]


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


def compensate(treasury: Treasury, t: float, step: Step, paid: float, loan: int,
               net: list[float]) -> None:
    """The agreement's budget party (``fiscal_compensation``) reimburses the layer's
    payer ``budget_frac`` of what it just paid on the loan (a ``reimbursement`` flow,
    at once); recoveries, returned pro rata to net payments, then give the budget the
    same fraction of the payer's share. ``net`` (paid minus received on the loan per
    account, yuan) is updated."""
    if step.budget < 0:
        return
    amount = paid * step.budget_frac
    treasury.pay(t, step.budget, step.payer, K_REIMB, amount, loan)
    net[step.budget] += amount
    net[step.payer] -= amount


class CapSettlement:
    """The cap accounts of a run: accrual of claims, settlement per statistics period.

    Parameters
    ----------
    env : simpy.Environment
    caps : list of CapAccount
    treasury : Treasury
    accounts : list of Account
        Their ``receivable`` is written here (what capped layers owe until settlement).
    horizon : float
        End of the horizon (days): a period ends at the horizon at the latest.

    Attributes
    ----------
    refusals : list of (float, int, float)
        ``(time due, cap, yuan refused)`` per loan whose reimbursement a cap cut.
    """

    def __init__(self, env: simpy.Environment, caps: list[CapAccount], treasury: Treasury,
                 accounts: list[Account], horizon: float):
        self.env = env
        self.caps = caps
        self.treasury = treasury
        self.accounts = accounts
        self.horizon = horizon
        self.refusals: list[tuple[float, int, float]] = []

    def add_base(self, now: float, spec: Any, guaranteed: float, annualised: float) -> None:
        """Add a segment's loans originated now to the base of each of its caps."""
        for step in spec.layers:
            if step.cap >= 0:
                self.caps[step.cap].add_base(now, guaranteed, annualised)

    def accrue(self, now: float, loan: int, step: Step, g: float, t_paid: float,
               start: float, net: list[float]) -> simpy.Event:
        """Register at ``now`` (days) what a capped layer owes on a default with the
        (cap, pool, period of origination) it falls in; returns that period's settlement
        event (a SimPy timeout, due where one created at ``now`` would be:
        :func:`simkit.des.agenda.timeout_at`)."""
        cap = self.caps[step.cap]
        period = cap.period_of(start)
        entry = cap.pending.get(period)
        if entry is None:
            if period in cap.settled:
                raise RuntimeError(f"claim on cap {cap.label!r} period {period} after its "
                                   "settlement")
            ev = timeout_at(self.env,
                            now + (cap.settlement_time(period, self.horizon) - now))
            ev.callbacks.append(partial(self.settle, step.cap, period))
            entry = cap.pending[period] = (ev, [])
        entry[1].append((loan, step, step.share * g, t_paid + step.lag, net))
        self.accounts[step.holder].receivable += step.share * g
        return entry[0]

    def settle(self, k: int, period: int, _event: Any = None) -> None:
        """Callback: settle one capped layer's claims of one statistics period pro rata:
        each loan gets ``due x min(1, budget / total due)``, the overflow party pays the
        rest."""
        now = self.env.now
        pay = self.treasury.pay
        entries, frac = self.caps[k].close(period)
        for loan, step, due, t_due, net in entries:
            self.accounts[step.holder].receivable -= due
            paid = due if frac == 1.0 else due * frac
            if step.payer != step.holder:
                pay(now, step.payer, step.holder, K_REIMB, paid, loan)
                net[step.payer] += paid
                net[step.holder] -= paid
            if step.budget >= 0:
                compensate(self.treasury, now, step, paid, loan, net)
            refused = due - paid
            if refused > 0:
                # counted in the month the reimbursement was due
                self.refusals.append((t_due, k, refused))
                if step.overflow != step.holder:
                    pay(now, step.overflow, step.holder, K_OVER, refused, loan)
                    net[step.overflow] += refused
                    net[step.holder] -= refused
