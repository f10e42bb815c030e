"""Defaults and claims of the discrete-event model: claim, payment, reimbursements,
recoveries.

:class:`Claims` runs the chain of steps of each defaulting loan on the model's
:class:`~simkit.des.agenda.Agenda` (plain timed callbacks, not a SimPy process per loan;
the steps, their times and their order are those of a process that waits between them):
the default (:meth:`Claims.claim`: liability released, the lender pays the principal),
the bank's claim after ``claim_trigger_days``, the original guarantor's payment of the
covered part ``claim_payment_days`` later, each uncapped layer's reimbursement after its
lag (:meth:`Claims.reimburse`), each capped layer's accrual with
:class:`simkit.des.caps.CapSettlement` (the chain then waits for the period's settlement
event), and the recovery (:meth:`Claims.recover`), returned pro rata to what each party
finally paid net on the loan (:func:`simkit.sharing.split_recovery`). A direct loan's
default (:meth:`Claims.default_direct`) has no claim: the lender bears it and recovers
alone.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from simkit.des.caps import compensate
from simkit.des.codes import K_COMP, K_DEFAULT, K_REC, K_REIMB
from simkit.sharing import split_recovery

if TYPE_CHECKING:
    import simpy

    from simkit.des.agenda import Agenda
    from simkit.des.caps import CapSettlement
    from simkit.des.draws import Applications, Draws
    from simkit.des.limits import Limits
    from simkit.des.parties import EnterpriseSegment
    from simkit.des.records import Records
    from simkit.des.segments import Segments
    from simkit.des.treasury import Treasury
    from simkit.scenario import DesSettings

__all__ = ["Claims", "Defaulted"]


class Defaulted:
    """The state of one defaulted loan while its chain of steps runs.

    Attributes
    ----------
    loan, app : int
        Loan id and application.
    spec : EnterpriseSegment
    start : float
        Origination time (days): the statistics period of its capped layers.
    net : list of float
        Paid minus received on the loan per account (yuan).
    recovery, t_recovery : float
        Yuan recovered and when (days).
    t_paid : float
        When the original guarantor paid the bank (days).
    layer : int
        Next settlement step of ``spec.layers``.
    waits : list of simpy.Event
        Settlement events of the capped layers, waited for in order.
    """

    __slots__ = ("app", "layer", "loan", "net", "recovery", "spec", "start", "t_paid",
                 "t_recovery", "waits")

    def __init__(self, loan: int, app: int, spec: EnterpriseSegment, start: float):
        self.loan = loan
        self.app = app
        self.spec = spec
        self.start = start
        self.net: list[float] = []
        self.recovery = self.t_recovery = self.t_paid = 0.0
        self.layer = 0
        self.waits: list[Any] = []


class Claims:
    """The default, claim, reimbursement and recovery steps of the loans of a run.

    Parameters
    ----------
    env : simpy.Environment
    agenda : Agenda
        Where the steps are scheduled.
    des : DesSettings
    segments, apps, draws, limits, caps, treasury, records
        The other parts of the model this one calls.
    """

    def __init__(self, env: simpy.Environment, agenda: Agenda, des: DesSettings,
                 segments: Segments, apps: Applications, draws: Draws, limits: Limits,
                 caps: CapSettlement, treasury: Treasury, records: Records):
        self.env = env
        self.agenda = agenda
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

    def schedule(self, ids: np.ndarray, apps: np.ndarray, t_def: np.ndarray, now: float,
                 *, direct: bool = False) -> None:
        """Put the default of each loan originated ``now`` (days) on the agenda at its
        default time ``t_def`` (days, shape ``(n,)``), in order (as a process started
        now that waits ``t_def - now``)."""
        at = self.agenda.at
        step = self.default_direct if direct else self.claim
        due = (now + (t_def - now)).tolist()
        for loan, app, t in zip(ids.tolist(), apps.tolist(), due, strict=True):
            at(t, step, loan, app, now)

    def _default(self, t: float, loan: int, app: int, party: int, lender: int
                 ) -> list[float]:
        """Count a default at ``t`` (under ``party``) and let the lender pay the
        principal; returns the loan's net payments per account (paid minus received,
        yuan)."""
        rec = self.records
        exposure = float(self.apps.exposure[app])
        rec.counts["defaults"] += 1
        m = rec.month(t)
        rec.flows["defaults"][m, party] += 1.0
        rec.flows["default_amount"][m, party] += exposure
        if rec.keep_log:
            rec.log_rows(t, "default", np.array([loan]), party, exposure)
        net = [0.0] * self.n_accounts
        self.treasury.pay(t, lender, self.borrower, K_DEFAULT, exposure, loan)
        net[lender] += exposure
        rec.defaults.append((loan, t, exposure))
        return net

    def default_direct(self, t: float, loan: int, app: int, start: float) -> None:
        """Step: default of a direct loan; the lender bears it and recovers alone."""
        spec = self.segments[self.apps.seg[app]]
        c = Defaulted(loan, app, spec, start)
        exposure = float(self.apps.exposure[app])
        c.net = self._default(t, loan, app, spec.lender, spec.lender)
        lgd, lag = self.draws.loss(spec, app, t)
        c.recovery, c.t_recovery = exposure * (1.0 - lgd), t + lag
        self.recover(t, c)

    def claim(self, t: float, loan: int, app: int, start: float) -> None:
        """Step: default of a guaranteed loan (liability released, the lender pays the
        principal); the bank's claim follows after ``claim_trigger_days``."""
        spec = self.segments[self.apps.seg[app]]
        c = Defaulted(loan, app, spec, start)
        exposure = float(self.apps.exposure[app])
        self.limits.release_one(spec, app)
        c.net = self._default(t, loan, app, spec.front, spec.lender)
        lgd, lag = self.draws.loss(spec, app, t)  # loss given default and recovery lag
        c.recovery, c.t_recovery = exposure * (1.0 - lgd), t + lag
        self.agenda.at(t + self.des.claim_trigger_days, self._claimed, c)

    def _claimed(self, t: float, c: Defaulted) -> None:
        """Step: the bank claims; the guarantor pays after ``claim_payment_days``."""
        rec = self.records
        front = c.spec.front
        rec.counts["claims"] += 1
        rec.flows["claims"][rec.month(t), front] += 1.0
        if rec.keep_log:
            rec.log_rows(t, "claim", np.array([c.loan]), c.spec.lender,
                         float(self.apps.exposure[c.app]))
        self.agenda.at(t + self.des.claim_payment_days, self._paid, c)

    def _paid(self, t: float, c: Defaulted) -> None:
        """Step: the original guarantor pays the bank the covered part; then the
        layers."""
        spec = c.spec
        lender, front = spec.lender, spec.front
        g = float(self.apps.guaranteed[c.app])
        covered = (1.0 - spec.lender_share) * g if front != lender else 0.0
        self.treasury.pay(t, front, lender, K_COMP, covered, c.loan)
        c.net[front] += covered
        c.net[lender] -= covered
        c.t_paid = t
        self._layers(t, c)

    def _layers(self, t: float, c: Defaulted) -> None:
        """The layers from ``c.layer`` on: a capped one accrues with its period, an
        uncapped one reimburses after its lag (the chain waits for it)."""
        layers = c.spec.layers
        while c.layer < len(layers):
            step = layers[c.layer]
            g = float(self.apps.guaranteed[c.app])
            if step.cap >= 0:
                c.waits.append(self.caps.accrue(t, c.loan, step, g, c.t_paid, c.start,
                                                c.net))
            else:
                wait = c.t_paid + step.lag - t
                if wait > 0:
                    self.agenda.at(t + wait, self.reimburse, c)
                    return
                self.reimburse(t, c, advance=False)
            c.layer += 1
        self._settlements(t, c)

    def reimburse(self, t: float, c: Defaulted, *, advance: bool = True) -> None:
        """Step: one uncapped layer (``c.layer``) pays its share of the default; with
        ``advance`` the chain goes on with the next layers."""
        step = c.spec.layers[c.layer]
        due = step.share * float(self.apps.guaranteed[c.app])
        self.treasury.pay(t, step.payer, step.holder, K_REIMB, due, c.loan)
        c.net[step.payer] += due
        c.net[step.holder] -= due
        compensate(self.treasury, t, step, due, c.loan, c.net)
        if advance:
            c.layer += 1
            self._layers(t, c)

    def _settlements(self, t: float, c: Defaulted) -> None:
        """Wait, in order, for the settlement events of the capped layers (one already
        processed is passed at once), then the recovery."""
        while c.waits:
            ev = c.waits[0]
            if not ev.processed:
                ev.callbacks.append(partial(self._settled, c))
                return
            c.waits.pop(0)
        self.recover(t, c)

    def _settled(self, c: Defaulted, _event: Any) -> None:
        """Callback of a settlement event: the chain goes on (at SimPy's time)."""
        c.waits.pop(0)
        self._settlements(self.env.now, c)

    def recover(self, t: float, c: Defaulted, *, due: bool = False) -> None:
        """Step: the recovery arrives at ``c.t_recovery`` (or at once when that has
        passed) and is returned pro rata to the net payments."""
        if not due:
            wait = c.t_recovery - t
            if wait > 0:
                self.agenda.at(t + wait, self._recovered, c)
                return
        amount, net = c.recovery, c.net
        if amount <= 0 or not any(x > 0 for x in net):
            return
        pay = self.treasury.pay
        for j, part in enumerate(split_recovery(amount, net)):
            if part > 0:
                pay(t, self.borrower, j, K_REC, part, c.loan)
        self.records.recovered[c.loan] = amount

    def _recovered(self, t: float, c: Defaulted) -> None:
        self.recover(t, c, due=True)
