"""Defaults and claims of the discrete-event model: claim, payment, reimbursements,
recoveries.

:class:`Claims` runs the chain of steps of each defaulting loan on the model's
:class:`~simkit.des.agenda.Agenda` (plain timed callbacks, not a SimPy process per loan;
the steps, their times and their order are those of a process that waits between them):
the default (:meth:`Claims.claim`: liability released, the lender pays the principal;
the bank's claim ``claim_trigger_days`` later is counted then, at its own time, as it
moves no money), the original guarantor's payment of the covered part
``claim_payment_days`` after the claim, each uncapped layer's reimbursement after its
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

__all__ = ["Claims", "Defaulted", "touched_accounts"]


class Defaulted:
    """The state of one defaulted loan while its chain of steps runs.

    Attributes
    ----------
    loan, app : int
        Loan id and application.
    spec : EnterpriseSegment
    start : float
        Origination time (days): the statistics period of its capped layers.
    exposure, g : float
        Principal and guaranteed amount (yuan).
    w : float
        Risk weight of the guarantee.
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

    __slots__ = ("app", "exposure", "g", "layer", "loan", "net", "recovery", "spec",
                 "start", "t_paid", "t_recovery", "w", "waits")

    def __init__(self, loan: int, app: int, spec: EnterpriseSegment, start: float,
                 exposure: float, g: float, w: float, recovery: float, t_recovery: float):
        self.loan = loan
        self.app = app
        self.spec = spec
        self.start = start
        self.exposure = exposure
        self.g = g
        self.w = w
        self.recovery = recovery
        self.t_recovery = t_recovery
        self.net: list[float] = []
        self.t_paid = 0.0
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
    settle_until : float
        End of the run's loan events (days; ``inf`` with the run-off).
    segments, apps, draws, limits, caps, treasury, records
        The other parts of the model this one calls.
    """

    def __init__(self, env: simpy.Environment, agenda: Agenda, des: DesSettings,
                 settle_until: float, segments: Segments, apps: Applications, draws: Draws,
                 limits: Limits, caps: CapSettlement, treasury: Treasury, records: Records):
        self.env = env
        self.agenda = agenda
        self.des = des
        self.settle_until = settle_until
        self.segments = segments
        self.apps = apps
        self.draws = draws
        self.limits = limits
        self.caps = caps
        self.treasury = treasury
        self.records = records
        self.n_accounts = len(treasury.accounts)
        self.borrower = len(treasury.institutions)
        #: per segment, the accounts a default can move money for (sorted): the only
        #: ones with a non-zero net payment on a loan
        self.touched = [touched_accounts(spec) for spec in segments.specs]
        #: the monthly flow series this part counts (Records.flows)
        self.f_defaults = records.flows["defaults"]
        self.f_amount = records.flows["default_amount"]
        self.f_claims = records.flows["claims"]

    def schedule(self, ids: np.ndarray, apps: np.ndarray, t_def: np.ndarray, now: float,
                 *, direct: bool = False) -> None:
        """Put the default of each loan originated ``now`` (days) on the agenda at its
        default time ``t_def`` (days, shape ``(n,)``), in order (as a process started
        now that waits ``t_def - now``); its LGD and recovery lag are drawn here
        (:meth:`Draws.losses <simkit.des.draws.Draws.losses>`: they depend on the
        default year only)."""
        at = self.agenda.at
        step = self.default_direct if direct else self.claim
        due = now + (t_def - now)
        lgd, lag = self.draws.losses(apps, due)
        exposure = self.apps.exposure[apps]
        specs = self.segments.specs
        rows = zip(ids.tolist(), apps.tolist(), self.apps.seg[apps].tolist(), due.tolist(),
                   exposure.tolist(), self.apps.guaranteed[apps].tolist(),
                   self.apps.weight[apps].tolist(), (exposure * (1.0 - lgd)).tolist(),
                   (due + lag).tolist(), strict=True)
        for loan, app, s, t, x, g, w, amount, t_rec in rows:
            at(t, step, Defaulted(loan, app, specs[s], now, x, g, w, amount, t_rec))

    def _default(self, t: float, c: Defaulted, party: int) -> None:
        """Count a default at ``t`` (under ``party``) and let the lender pay the
        principal; starts the loan's net payments per account (paid minus received,
        yuan)."""
        rec = self.records
        exposure = c.exposure
        lender = c.spec.lender
        rec.counts["defaults"] += 1
        m = rec.month(t)
        self.f_defaults[m, party] += 1.0
        self.f_amount[m, party] += exposure
        if rec.keep_log:
            rec.log_rows(t, "default", np.array([c.loan]), party, exposure)
        net = c.net = [0.0] * self.n_accounts
        self.treasury.pay(t, lender, self.borrower, K_DEFAULT, exposure, c.loan)
        net[lender] += exposure
        rec.defaults.append((c.loan, t, exposure))

    def default_direct(self, t: float, c: Defaulted) -> None:
        """Step: default of a direct loan; the lender bears it and recovers alone."""
        self._default(t, c, c.spec.lender)
        self.recover(t, c)

    def claim(self, t: float, c: Defaulted) -> None:
        """Step: default of a guaranteed loan (liability released, the lender pays the
        principal); the bank's claim ``claim_trigger_days`` later is counted now at its
        own time (it moves no money) when it falls within the run, and the guarantor's
        payment follows ``claim_payment_days`` after it."""
        spec = c.spec
        self.limits.release_one(spec, c.g, c.w)
        self._default(t, c, spec.front)
        t_claim = t + self.des.claim_trigger_days
        if t_claim < self.settle_until:
            rec = self.records
            rec.counts["claims"] += 1
            self.f_claims[rec.month(t_claim), spec.front] += 1.0
            if rec.keep_log:
                rec.log_rows(t_claim, "claim", np.array([c.loan]), spec.lender, c.exposure)
        self.agenda.at(t_claim + self.des.claim_payment_days, self._paid, c)

    def _paid(self, t: float, c: Defaulted) -> None:
        """Step: the original guarantor pays the bank the covered part; then the
        layers."""
        spec = c.spec
        lender, front = spec.lender, spec.front
        covered = (1.0 - spec.lender_share) * c.g if front != lender else 0.0
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
            if step.cap >= 0:
                c.waits.append(self.caps.accrue(t, c.loan, step, c.g, c.t_paid, c.start,
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
        due = step.share * c.g
        self.treasury.pay(t, step.payer, step.holder, K_REIMB, due, c.loan)
        c.net[step.payer] += due
        c.net[step.holder] -= due
        if step.budget >= 0:
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

    def recover(self, t: float, c: Defaulted) -> None:
        """Step: the recovery arrives at ``c.t_recovery`` (or at once when that has
        passed) and is returned pro rata to the net payments
        (:func:`simkit.sharing.split_recovery` over the accounts the default touched,
        in account order: the others have no net payment)."""
        wait = c.t_recovery - t
        if wait > 0:
            self.agenda.at(t + wait, self._recovered, c)
        else:
            self._recovered(t, c)

    def _recovered(self, t: float, c: Defaulted) -> None:
        """Step: the recovery is paid out (:meth:`recover`)."""
        amount, net = c.recovery, c.net
        touched = self.touched[c.spec.index]
        parts = [net[j] for j in touched]
        if amount <= 0 or not any(x > 0 for x in parts):
            return
        pay = self.treasury.pay
        for j, part in zip(touched, split_recovery(amount, parts), strict=True):
            if part > 0:
                pay(t, self.borrower, j, K_REC, part, c.loan)
        self.records.recovered[c.loan] = amount


def touched_accounts(spec: EnterpriseSegment) -> tuple[int, ...]:
    """The accounts whose net payment on a default of ``spec``'s segment may be non-zero
    (lender, original guarantor, every layer's payer, holder, overflow and budget),
    sorted."""
    out = {spec.lender, spec.front}
    for step in spec.layers:
        out.update((step.payer, step.holder, step.overflow))
        if step.budget >= 0:
            out.add(step.budget)
    return tuple(sorted(out))
