"""Defaults and claims of the discrete-event model: claim, payment, reimbursements,
recoveries.

:class:`Claims` runs one process per defaulting loan: the default (liability released,
the lender pays the principal), the bank's claim after ``claim_trigger_days``, the
original guarantor's payment of the covered part ``claim_payment_days`` later, each
uncapped layer's reimbursement after its lag (:meth:`Claims.reimburse`), each capped
layer's accrual with :class:`simkit.des.caps.CapSettlement`, and the recovery, returned
pro rata to what each party finally paid net on the loan
(:func:`simkit.sharing.split_recovery`). A direct loan's default
(:meth:`Claims.default_direct`) has no claim: the lender bears it and recovers alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simkit.des.caps import compensate
from simkit.des.codes import K_COMP, K_DEFAULT, K_REC, K_REIMB, Process
from simkit.sharing import split_recovery

if TYPE_CHECKING:
    import simpy

    from simkit.des.caps import CapSettlement, Step
    from simkit.des.draws import Applications, Draws
    from simkit.des.limits import Limits
    from simkit.des.records import Records
    from simkit.des.segments import Segments
    from simkit.des.treasury import Treasury
    from simkit.scenario import DesSettings

__all__ = ["Claims"]


class Claims:
    """The default, claim, reimbursement and recovery processes of the loans of a run.

    Parameters
    ----------
    env : simpy.Environment
    des : DesSettings
    segments, apps, draws, limits, caps, treasury, records
        The other parts of the model this one calls.
    """

    def __init__(self, env: simpy.Environment, des: DesSettings, segments: Segments,
                 apps: Applications, draws: Draws, limits: Limits, caps: CapSettlement,
                 treasury: Treasury, records: Records):
        self.env = env
        self.des = des
        self.segments = segments
        self.apps = apps
        self.draws = draws
        self.limits = limits
        self.caps = caps
        self.treasury = treasury
        self.records = records
        self.n_accounts = len(treasury.accounts)
        self.borrower = len(treasury.institutions)

    def _default(self, loan: int, app: int, party: int, lender: int) -> list[float]:
        """Count a default now (under ``party``) and let the lender pay the principal;
        returns the loan's net payments per account (paid minus received, yuan)."""
        env = self.env
        rec = self.records
        exposure = float(self.apps.exposure[app])
        rec.counts["defaults"] += 1
        m = rec.month(env.now)
        rec.flows["defaults"][m, party] += 1.0
        rec.flows["default_amount"][m, party] += exposure
        if rec.keep_log:
            rec.log_rows(env.now, "default", np.array([loan]), party, exposure)
        net = [0.0] * self.n_accounts
        self.treasury.pay(env.now, lender, self.borrower, K_DEFAULT, exposure, loan)
        net[lender] += exposure
        rec.defaults.append((loan, env.now, exposure))
        return net

    def default_direct(self, loan: int, app: int, t_def: float) -> Process:
        """Process: default of a direct loan; the lender bears it and recovers alone."""
        env = self.env
        yield env.timeout(t_def - env.now)
        spec = self.segments[self.apps.seg[app]]
        exposure = float(self.apps.exposure[app])
        net = self._default(loan, app, spec.lender, spec.lender)
        lgd, lag = self.draws.loss(spec, app, env.now)
        yield from self.recover(loan, exposure * (1.0 - lgd), env.now + lag, net)

    def claim(self, loan: int, app: int, t_def: float, start: float) -> Process:
        """Process: default, the bank's claim, the guarantor's payment, reimbursements by
        the upper layers and the recovery of one loan."""
        env = self.env
        yield env.timeout(t_def - env.now)
        spec = self.segments[self.apps.seg[app]]
        exposure = float(self.apps.exposure[app])
        g = float(self.apps.guaranteed[app])
        lender, front = spec.lender, spec.front
        self.limits.release_one(spec, app)
        net = self._default(loan, app, front, lender)
        # loss given default and recovery lag
        lgd, lag = self.draws.loss(spec, app, env.now)
        t_recovery = env.now + lag
        yield env.timeout(self.des.claim_trigger_days)
        rec = self.records
        rec.counts["claims"] += 1
        rec.flows["claims"][rec.month(env.now), front] += 1.0
        if rec.keep_log:
            rec.log_rows(env.now, "claim", np.array([loan]), lender, exposure)
        yield env.timeout(self.des.claim_payment_days)
        covered = (1.0 - spec.lender_share) * g if front != lender else 0.0
        self.treasury.pay(env.now, front, lender, K_COMP, covered, loan)
        net[front] += covered
        net[lender] -= covered
        t_paid = env.now
        settlements = []
        for step in spec.layers:
            if step.cap >= 0:
                settlements.append(self.caps.accrue(loan, step, g, t_paid, start, net))
            else:
                yield from self.reimburse(loan, step, g, t_paid, net)
        yield from settlements  # the capped layers pay at their period's settlement
        yield from self.recover(loan, exposure * (1.0 - lgd), t_recovery, net)

    def reimburse(self, loan: int, step: Step, g: float, t_paid: float,
                  net: list[float]) -> Process:
        """Sub-process: one uncapped layer pays its share of a default after its lag."""
        env = self.env
        wait = t_paid + step.lag - env.now
        if wait > 0:
            yield env.timeout(wait)
        due = step.share * g
        self.treasury.pay(env.now, step.payer, step.holder, K_REIMB, due, loan)
        net[step.payer] += due
        net[step.holder] -= due
        compensate(self.treasury, env.now, step, due, loan, net)

    def recover(self, loan: int, amount: float, t_recovery: float,
                net: list[float]) -> Process:
        """Sub-process: the recovery arrives and is returned pro rata to net payments."""
        env = self.env
        wait = t_recovery - env.now
        if wait > 0:
            yield env.timeout(wait)
        if amount <= 0 or not any(x > 0 for x in net):
            return
        for j, part in enumerate(split_recovery(amount, net)):
            if part > 0:
                self.treasury.pay(env.now, self.borrower, j, K_REC, part, loan)
        self.records.recovered[loan] = amount

