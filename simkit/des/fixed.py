"""Drive the DES settlement with fixed loan-level outcomes (the conformance battery).

:func:`settle_fixed` books a given set of loans at time 0 in a :class:`~simkit.des.model.Model`
and forces their fates (which loans default, when, and with which LGD) instead of drawing
them, then runs the model's own claim, reimbursement, cap-settlement, compensation,
overflow and recovery processes to the end. What comes out is the DES's allocation of
those outcomes, to be set beside the Monte Carlo waterfall's allocation of the same
outcomes (:class:`simkit.sharing.Waterfall`): both read the same rulebook plan
(:func:`simkit.sharing.compile_plan`), so they must agree to rounding.

No limit is checked (single-client, leverage, credit lines), no renewal happens and no
application is drawn: the loans are the ones given. All loans start at time 0, so they
fall in the first statistics period of every cap, whose base is the whole book, as in
the Monte Carlo's one-cohort waterfall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simkit.des.codes import DAYS_PER_YEAR
from simkit.des.ledger import LOSS_KINDS, LedgerArrays
from simkit.des.model import Model
from simkit.regulation import guaranteed_amount, risk_weight
from simkit.scenario import Scenario

__all__ = ["FixedSettlement", "settle_fixed"]


@dataclass(frozen=True)
class FixedSettlement:
    """What the DES settled on fixed outcomes.

    Attributes
    ----------
    parties : tuple of str
    net_loss : ndarray, shape (n_parties,)
        Paid minus received per party over the loss flows (default, compensation,
        reimbursement, overflow, recovery), yuan.
    fees : ndarray, shape (n_parties,)
        Fees received minus paid per party in the first loan year (yuan).
    caps : tuple of str
        The DES cap labels (:func:`simkit.sharing.cap_label`).
    weighted_liability : ndarray, shape (n_parties,)
        Risk-weighted guarantee liability per party right after origination (yuan;
        :mod:`simkit.regulation`).
    ledger : LedgerArrays
    """

    parties: tuple[str, ...]
    net_loss: np.ndarray
    fees: np.ndarray
    caps: tuple[str, ...]
    weighted_liability: np.ndarray
    ledger: LedgerArrays


def settle_fixed(scenario: Scenario, segment: np.ndarray, exposure: np.ndarray,
                 defaulted: np.ndarray, lgd: np.ndarray, *,
                 default_day: float = 30.0) -> FixedSettlement:
    """Settle fixed outcomes of loans booked at time 0 through the DES processes.

    Parameters
    ----------
    scenario : Scenario
        Its ``des.renewal_prob`` is set to 0 here (no renewals).
    segment : int array, shape (n,)
        Index into ``scenario.segments`` per loan.
    exposure : ndarray, shape (n,)
        Principal per loan (yuan).
    defaulted : bool array, shape (n,)
        Which loans default (at ``default_day``, before any maturity).
    lgd : ndarray, shape (n,)
        Loss given default per loan (fraction); recovery ``exposure x (1 - lgd)``.
    default_day : float
        Day of every default (days from the start; below the shortest tenor).

    Returns
    -------
    FixedSettlement
    """
    sc = scenario.with_changes({"des.renewal_prob": 0.0})
    model = Model(sc, seed=0, years=1.0 / DAYS_PER_YEAR)
    segment = np.asarray(segment, dtype=np.intp)
    exposure = np.asarray(exposure, dtype=np.float64)
    n = len(segment)
    limit = np.array([s.single_limit for s in model.segments.specs])[segment]
    g = guaranteed_amount(exposure, limit)
    apps = model.apps
    apps.seg = segment
    apps.exposure = exposure
    apps.guaranteed = g
    reg = sc.regulation
    apps.weight = risk_weight(g, reg)
    model.draws.gen = np.zeros(n, dtype=np.int64)
    t_def = np.where(np.asarray(defaulted, dtype=bool), float(default_day), np.inf)
    lgd = np.asarray(lgd, dtype=np.float64)
    # the forced fates replace the model's draws (instance attributes shadow the methods)
    draws = model.draws
    draws.default_times = lambda apps, now: t_def[apps]  # type: ignore[method-assign]
    draws.losses = (  # type: ignore[method-assign]
        lambda apps, times: (lgd[apps], np.zeros(len(apps))))
    idx = np.arange(n, dtype=np.intp)
    model.loans.originate(idx, renewal=False)
    weighted = np.array([inst.weighted for inst in model.institutions])
    model.agenda.run()
    led = model.ledger.freeze()
    k = model.n_parties
    loss = -led.balances(LOSS_KINDS)[:k]
    fee_kinds = tuple({kind for s in sc.agreements for kind in (f.kind for f in s.fees)})
    fees = (led.balances(fee_kinds, until=0.0)[:k] if fee_kinds else np.zeros(k))
    return FixedSettlement(parties=sc.party_names, net_loss=loss, fees=fees,
                           caps=tuple(c.label for c in model.caps),
                           weighted_liability=weighted, ledger=led)
