"""Money of the discrete-event model: the one writer of every account's ``capital``.

:class:`Treasury` records each flow in the :class:`~simkit.des.ledger.Ledger` and moves
it between the two accounts at once, then applies the capital-injection rule
(:func:`simkit.regulation.capital_injection`) to a payer that may be injected: when a
guarantor, provincial or national-fund party with net assets pays something and its
capital falls below ``des.injection_trigger x initial``, the local government of its
region (else the first ``local_gov`` party, else the external ``fiscal`` account) injects
``des.injection_target x initial - capital``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simkit.des.codes import K_INJ
from simkit.des.ledger import Ledger
from simkit.des.parties import Account, Institution
from simkit.regulation import capital_injection, injection_parties

if TYPE_CHECKING:
    from simkit.scenario import DesSettings

__all__ = ["Treasury"]


class Treasury:
    """The accounts of a run, their ledger and the injection rule.

    Parameters
    ----------
    accounts : list of Account
        Parties first (``institutions``), then ``borrower`` and ``fiscal``.
    institutions : list of Institution
    des : DesSettings
        ``injection_trigger`` and ``injection_target``.
    """

    def __init__(self, accounts: list[Account], institutions: list[Institution],
                 des: DesSettings):
        self.accounts = accounts
        self.institutions = institutions
        self.des = des
        self.ledger = Ledger(tuple(a.name for a in accounts))
        self.fiscal = len(institutions) + 1
        receives, payer = injection_parties([a.kind for a in institutions],
                                            [a.initial for a in institutions],
                                            [a.region for a in institutions])
        self.injectable = ({a.index for a, r in zip(institutions, receives, strict=True) if r}
                           if des.injection_trigger > 0 else set())
        self.injector: dict[int, int] = {
            a.index: institutions[int(j)].index if j >= 0 else self.fiscal
            for a, j in zip(institutions, payer, strict=True)}

    def pay(self, t: float, payer: int, payee: int, kind: int, amount: float,
            loan: int) -> None:
        """Record one flow of ``amount`` yuan and move it between the two accounts."""
        if amount <= 0.0:
            return
        times, payers, payees, kinds, amounts, loans = self.ledger.columns  # Ledger.add
        times.append(t)
        payers.append(payer)
        payees.append(payee)
        kinds.append(kind)
        amounts.append(amount)
        loans.append(loan)
        acc = self.accounts
        acc[payer].capital -= amount
        acc[payee].capital += amount
        if payer in self.injectable:
            self.inject_capital(t, payer)

    def pay_many(self, t: float, payer: int, payee: int, kind: int, amount: np.ndarray,
                 loans: np.ndarray) -> None:
        """Record one flow per loan (``amount``, yuan, shape ``(n,)``) between the same two
        accounts and move their sum."""
        self.pay_blocks(t, [(payer, payee, kind, amount, loans)])

    def pay_blocks(self, t: float,
                   blocks: list[tuple[int, int, int, np.ndarray, np.ndarray]]) -> None:
        """:meth:`pay_many` of each ``(payer, payee, kind, amount, loans)`` block in
        order, the flows recorded as one ledger chunk."""
        if not blocks:
            return
        sizes = [len(b[3]) for b in blocks]
        self.ledger.add_many(
            t, np.repeat([b[0] for b in blocks], sizes), np.repeat([b[1] for b in blocks], sizes),
            np.repeat([b[2] for b in blocks], sizes), np.concatenate([b[3] for b in blocks]),
            np.concatenate([b[4] for b in blocks]))
        acc = self.accounts
        injectable = self.injectable
        for payer, payee, _kind, amount, _loans in blocks:
            total = float(amount.sum())
            acc[payer].capital -= total
            acc[payee].capital += total
            if payer in injectable:
                self.inject_capital(t, payer)

    def inject_capital(self, t: float, index: int) -> None:
        """Apply the injection rule to party ``index`` after it paid something."""
        party = self.institutions[index]
        des = self.des
        amount = float(capital_injection(party.capital, party.initial,
                                         des.injection_trigger, des.injection_target))
        if amount > 0:
            party.injected += amount
            self.pay(t, self.injector[index], index, K_INJ, amount, -1)
