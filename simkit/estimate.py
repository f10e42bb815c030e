"""Closed-form expected loss, fees and net result per party for a whole scenario.

A quick estimate that needs no simulation: each cell's expected covered default amount
is ``sum(guaranteed x default_prob)``; uncapped layers take their share of it; a capped
layer's expected payout treats its pool's default rate as a Vasicek large-pool rate with
the pool's exposure-weighted default probability and asset correlation equal to the
loadings' R² (DOMAIN.md f1, f5), so the layer pays ``share x base x E[min(DR, c)]`` and the
overflow party ``share x base x E[(DR - c)+]``. Net loss applies the LGD mean
(recoveries pro rata). Exact without caps; an approximation with caps (granularity and
default-probability dispersion are ignored) that the Monte Carlo refines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simkit import analytic
from simkit.book import Book, book_for
from simkit.scenario import Scenario
from simkit.sharing import _pool_keys, fee_flows

__all__ = ["ClosedForm", "expected_results"]


@dataclass(frozen=True)
class ClosedForm:
    """Closed-form annual figures per party (yuan), in ``parties`` order.

    Attributes
    ----------
    parties : tuple of str
    expected_loss : ndarray, shape (n_parties,)
        Expected net loss after recoveries.
    fee_income : ndarray, shape (n_parties,)
        Fees received minus fees paid.
    guaranteed : float
        Guaranteed principal of the book.
    n_loans : int
    """

    parties: tuple[str, ...]
    expected_loss: np.ndarray
    fee_income: np.ndarray
    guaranteed: float
    exposure: float
    n_loans: int

    @property
    def net_result(self) -> np.ndarray:
        """Fee income minus expected loss, shape (n_parties,), yuan per year."""
        return self.fee_income - self.expected_loss

    def rows(self) -> list[dict[str, float | str]]:
        """One dict per party, for tables and JSON."""
        return [
            {"party": p, "expected_loss": float(el), "fee_income": float(f),
             "net_result": float(f - el)}
            for p, el, f in zip(self.parties, self.expected_loss, self.fee_income,
                                strict=True)
        ]


def expected_results(scenario: Scenario, book: Book | None = None) -> ClosedForm:
    """Closed-form expected loss, fee income and net result per party.

    Parameters
    ----------
    scenario : Scenario
    book : Book, optional
        Defaults to the scenario's book (synthetic draw or loan tape).
    """
    book = book_for(scenario) if book is None else book
    parties = scenario.party_names
    col = {p: i for i, p in enumerate(parties)}
    kinds = {p.name: p.kind for p in scenario.parties}
    cells = book.cells
    n_cells = len(cells)
    lgd = book.lgd_mean
    # expected covered / uncovered default amounts and net losses per cell
    cov_net = np.bincount(book.cell, book.guaranteed * book.default_prob * lgd, n_cells)
    unc_net = np.bincount(book.cell, book.uncovered * book.default_prob * lgd, n_cells)
    rho_loan = (book.loadings**2).sum(axis=1)
    el = np.zeros(len(parties))
    for a_idx, agreement in enumerate(scenario.agreements):
        mine = np.flatnonzero(cells.agreement == a_idx)
        if mine.size == 0:
            continue
        el[col[agreement.lender]] += unc_net[mine].sum()
        for layer in agreement.layers:
            def party_of(c: int, name: str) -> str:
                g = cells.guarantor[c]
                return g if (g is not None and kinds[name] == "guarantor") else name

            if layer.cap is None:
                for c in mine:
                    el[col[party_of(c, layer.party)]] += layer.share * cov_net[c]
                continue
            cap = layer.cap
            keys = _pool_keys(cap.pool, cells, mine)
            for key in dict.fromkeys(keys):
                pool = mine[[k == key for k in keys]]
                base = (cells.guaranteed if cap.base == "guaranteed" else cells.annualised)[pool]
                g = cells.guaranteed[pool].sum()
                if g <= 0:
                    continue
                in_pool = np.isin(book.cell, pool)
                w = book.guaranteed[in_pool]
                dp = float(np.average(book.default_prob[in_pool], weights=w))
                rho = float(np.clip(np.average(rho_loan[in_pool], weights=w), 1e-6, 0.999))
                # pool default rate on the cap's base, capped at the cap rate
                c_rate = cap.rate * base.sum() / g
                capped = float(analytic.vasicek_capped_mean(min(c_rate, 1.0), dp, rho))
                frac_paid = capped / dp if dp > 0 else 1.0
                for c in pool:
                    amount = layer.share * cov_net[c]
                    el[col[party_of(c, layer.party)]] += amount * frac_paid
                    over = party_of(c, cap.overflow)
                    el[col[over]] += amount * (1 - frac_paid)
    fees = fee_flows(scenario, book.cell, cells, book.guaranteed, book.tenor_years)
    return ClosedForm(
        parties=parties, expected_loss=el, fee_income=fees.net_income(parties),
        guaranteed=float(book.guaranteed.sum()), exposure=float(book.exposure.sum()),
        n_loans=len(book),
    )

