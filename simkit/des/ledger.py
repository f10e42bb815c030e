"""The cash-flow ledger of one DES run.

Every flow of money is recorded exactly once as ``(time, from, to, kind, amount, loan)``:
time in days since the start of the run, ``from``/``to`` account indices, ``kind`` an index
into :data:`KINDS`, amount in yuan (always > 0) and the loan id (-1 for flows that belong
to no loan, e.g. capital injections).

Accounts are the scenario's parties (in ``scenario.party_names`` order) followed by two
external accounts: ``"borrower"`` (firms: they pay fees, keep the principal of a defaulted
loan, repay recoveries) and ``"fiscal"`` (the government budget, used for injections when
the scenario has no ``local_gov`` party). Because each flow has one payer and one payee the
ledger is double-entry: balances over all accounts sum to zero.

Rows are appended either one at a time (claims, recoveries) into six Python lists,
or in vectorised chunks (fees of a day's originations) as numpy arrays;
:meth:`Ledger.freeze` merges both into compact arrays (about 28 bytes per flow) sorted
stably by time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FEE_KINDS", "KINDS", "KIND_CODE", "LOSS_KINDS", "Ledger", "LedgerArrays"]

#: Kinds of flow. ``default``: the lender's unpaid principal (lender -> borrower).
KINDS = ("default", "compensation", "reimbursement", "overflow", "recovery", "injection",
         "guarantee", "reguarantee", "subsidy", "fee")
KIND_CODE = {k: i for i, k in enumerate(KINDS)}
#: Kinds that move a default's loss between parties (a party's net loss on a loan is its
#: outflows minus its inflows of these kinds).
LOSS_KINDS = ("default", "compensation", "reimbursement", "overflow", "recovery")
#: Fee kinds (the agreement's ``fees[].kind``).
FEE_KINDS = ("guarantee", "reguarantee", "subsidy", "fee")


@dataclass(frozen=True)
class LedgerArrays:
    """The frozen ledger, all arrays of shape ``(n_flows,)`` sorted by time.

    Attributes
    ----------
    time : float64, days
    payer, payee : int16, account index into :attr:`accounts`
    kind : int8, index into :data:`KINDS`
    amount : float64, yuan (> 0)
    loan : int64, loan id or -1
    accounts : tuple of str
    """

    time: np.ndarray
    payer: np.ndarray
    payee: np.ndarray
    kind: np.ndarray
    amount: np.ndarray
    loan: np.ndarray
    accounts: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.time)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.time, self.payer, self.payee, self.kind,
                                      self.amount, self.loan))

    def mask(self, kinds: tuple[str, ...] | str) -> np.ndarray:
        """Boolean mask of the rows whose kind is in ``kinds``."""
        if isinstance(kinds, str):
            kinds = (kinds,)
        codes = sorted({KIND_CODE[k] for k in kinds})
        if codes == list(range(codes[0], codes[-1] + 1)):  # a run of codes
            return (self.kind >= codes[0]) & (self.kind <= codes[-1])
        return np.logical_or.reduce([self.kind == c for c in codes])

    def balances(self, kinds: tuple[str, ...] | str | None = None,
                 until: float | None = None) -> np.ndarray:
        """Net inflow per account (received minus paid), shape ``(n_accounts,)``, yuan."""
        sel = np.ones(len(self), dtype=bool) if kinds is None else self.mask(kinds)
        if until is not None:
            sel &= self.time <= until
        n = len(self.accounts)
        amt = self.amount[sel]
        return (np.bincount(self.payee[sel], weights=amt, minlength=n)
                - np.bincount(self.payer[sel], weights=amt, minlength=n))

    def loan_losses(self, loans: np.ndarray) -> np.ndarray:
        """Net loss per loan and account over :data:`LOSS_KINDS`.

        Parameters
        ----------
        loans : int array, shape (n,)
            Loan ids.

        Returns
        -------
        ndarray, shape (n, n_accounts)
            Paid minus received (yuan) on each loan by each account.
        """
        loans = np.asarray(loans, dtype=np.int64)
        n = len(self.accounts)
        out = np.zeros((len(loans), n))
        if len(loans) == 0:
            return out
        sel = self.mask(LOSS_KINDS) & (self.loan >= 0)
        order = np.argsort(loans, kind="stable")
        ordered = loans[order]
        pos = np.minimum(np.searchsorted(ordered, self.loan[sel]), len(loans) - 1)
        hit = ordered[pos] == self.loan[sel]
        rows = order[pos[hit]]
        amt = self.amount[sel][hit]
        # the payers' amounts, then minus the payees' (running sums, as np.add.at)
        flat = np.concatenate([rows * n + self.payer[sel][hit], rows * n + self.payee[sel][hit]])
        return np.bincount(flat, weights=np.concatenate([amt, -amt]),
                           minlength=len(loans) * n).astype(np.float64).reshape(len(loans), n)


class Ledger:
    """Append-only ledger used during a run (see the module docstring).

    Parameters
    ----------
    accounts : tuple of str
        Account names; flows refer to them by index.
    """

    __slots__ = ("_chunks", "_frozen", "accounts", "columns")

    def __init__(self, accounts: tuple[str, ...]):
        self.accounts = accounts
        #: the flows recorded one at a time, per column: time, payer, payee, kind,
        #: amount, loan (a writer may append to all six, as :meth:`add`)
        self.columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
        self._chunks: list[tuple[np.ndarray, ...]] = []
        self._frozen: LedgerArrays | None = None

    def add(self, time: float, payer: int, payee: int, kind: int, amount: float,
            loan: int) -> None:
        """Record one flow (amount in yuan; zero amounts are skipped)."""
        if amount > 0.0:
            t, p, q, k, a, ln = self.columns
            t.append(time)
            p.append(payer)
            q.append(payee)
            k.append(kind)
            a.append(amount)
            ln.append(loan)

    def add_many(self, time: float, payer: int | np.ndarray, payee: int | np.ndarray,
                 kind: int | np.ndarray, amount: np.ndarray, loan: np.ndarray) -> None:
        """Record a chunk of flows at one time.

        Parameters
        ----------
        time : float, days
        payer, payee : int, or int ndarray of shape (n,)
        kind : int, or int ndarray of shape (n,)
        amount : ndarray, shape (n,), yuan (zero amounts are skipped)
        loan : ndarray of int, shape (n,)
        """
        n = len(amount)
        payer = np.broadcast_to(np.asarray(payer, dtype=np.int16), (n,))
        payee = np.broadcast_to(np.asarray(payee, dtype=np.int16), (n,))
        kind = np.broadcast_to(np.asarray(kind, dtype=np.int8), (n,))
        keep = amount > 0
        if not keep.all():
            amount, loan = amount[keep], loan[keep]
            payer, payee, kind = payer[keep], payee[keep], kind[keep]
        n = len(amount)
        if n == 0:
            return
        self._chunks.append((
            np.full(n, time), payer.copy(), payee.copy(), kind.copy(),
            amount.astype(np.float64, copy=False), loan.astype(np.int64, copy=False),
        ))

    def __len__(self) -> int:
        return len(self.columns[0]) + sum(len(c[0]) for c in self._chunks)

    def freeze(self) -> LedgerArrays:
        """Merge rows and chunks into :class:`LedgerArrays` (stable sort by time)."""
        if self._frozen is not None:
            return self._frozen
        parts = list(self._chunks)
        if self.columns[0]:
            n = len(self.columns[0])
            t, p, q, k, a, ln = (np.fromiter(c, dtype=np.float64 if i in (0, 4) else np.int64,
                                             count=n) for i, c in enumerate(self.columns))
            parts.append((t, p.astype(np.int16), q.astype(np.int16), k.astype(np.int8), a, ln))
        if parts:
            cols = [np.concatenate([p[i] for p in parts]) for i in range(6)]
        else:
            cols = [np.zeros(0), np.zeros(0, np.int16), np.zeros(0, np.int16),
                    np.zeros(0, np.int8), np.zeros(0), np.zeros(0, np.int64)]
        # the order of recording is deterministic: a stable sort by time keeps it
        order = np.argsort(cols[0], kind="stable")
        cols = [c[order] for c in cols]
        self._frozen = LedgerArrays(cols[0], cols[1], cols[2], cols[3], cols[4], cols[5],
                                    accounts=self.accounts)
        self.columns = ([], [], [], [], [], [])
        self._chunks = []
        return self._frozen
