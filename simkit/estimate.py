"""Closed-form expected loss, fees and net result per party for a whole scenario.

A quick estimate that needs no simulation: each cell's expected covered default amount
is ``sum(guaranteed x PD_life)`` with ``PD_life`` the default probability over the loan's
tenor (:func:`simkit.factors.default_prob_over`, fees over the same life); uncapped
layers take their share of it; a capped
layer's expected payout treats its pool's default rate as a Vasicek large-pool rate with
the pool's exposure-weighted default probability and asset correlation equal to the R² of
the factors all its loans share (DOMAIN.md f1, f5), so the layer pays
``share x base x E[min(DR, c)]`` and the overflow party ``share x base x E[(DR - c)+]``.
Net loss applies the default-weighted LGD mean (with downturn LGD, by quadrature over the
national factor; recoveries pro rata). An agreement's ``fiscal_compensation`` rule moves
:func:`simkit.sharing.compensation_fraction` of the compensated layer's expected loss
(after its cap) to the budget party, as the waterfall does. Exact without caps for the
Gaussian copula; an approximation with caps (granularity and default-probability
dispersion are ignored) that the Monte Carlo refines.

A stress path of the national factor (``factors.national_path``, :func:`simkit.factors.
stressed_national`) gives year ``y``'s national factor the mean ``delta_y``, so each loan's
latent variable has mean ``b_nat delta_y`` and its default probability that year is
``Phi(Phi^-1(PD) - b_nat delta_y)`` (:func:`simkit.factors.conditional_default_prob` with
no conditioning variance); the expected loss per year is the mean over the
``run.horizon_years`` cohorts, each in its own year (the downturn LGD's quadrature and a
capped pool's Vasicek rate shifted alike). Exact for the Gaussian copula and loans of at
most a year; for the Student-t copula or longer loans the result says it is approximate
(:attr:`ClosedForm.notes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from simkit import analytic
from simkit.book import Book, book_for
from simkit.factors import default_prob_over
from simkit.scenario import Scenario
from simkit.sharing import CellPlan, compile_cells, fee_flows

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
    notes : tuple of str
        Where the figures are approximate beyond the caps (e.g. a stress path under the
        Student-t copula).
    """

    parties: tuple[str, ...]
    expected_loss: np.ndarray
    fee_income: np.ndarray
    guaranteed: float
    exposure: float
    n_loans: int
    notes: tuple[str, ...] = ()

    @property
    def net_result(self) -> np.ndarray:
        """Fee income minus expected loss, shape (n_parties,), yuan per year."""
        return self.fee_income - self.expected_loss

    def rows(self) -> list[dict[str, Any]]:
        """One dict per party, for tables and JSON, with the key names of the Monte Carlo
        summary (:class:`simkit.results.RunReport`): ``party``, ``el``, ``fee_income``,
        ``net_result`` (yuan per year) and ``el_pct_guaranteed`` (per cent, None when
        nothing is guaranteed)."""
        return [
            {"party": p, "el": float(el), "fee_income": float(f),
             "net_result": float(f - el),
             "el_pct_guaranteed": (100 * float(el) / self.guaranteed
                                   if self.guaranteed > 0 else None)}
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
    shifts = _year_shifts(scenario)
    plans = compile_cells(scenario, book.cells)  # the same for every year
    el = np.mean([_expected_loss(scenario, book, plans, d) for d in shifts], axis=0)
    fees = fee_flows(scenario, book.cell, book.cells, book.guaranteed, book.tenor_years,
                     years=math.inf)
    notes = []
    if any(d != 0 for d in shifts) and (scenario.factors.copula != "gaussian"
                                        or np.any(book.tenor_years > 1.0)):
        notes.append("the stress path of the national factor (factors.national_path) is "
                     "applied to each cohort's whole life as under the Gaussian copula; "
                     "with the Student-t copula or loans of more than a year this is an "
                     "approximation: run the Monte Carlo for exact figures")
    return ClosedForm(
        parties=scenario.party_names, expected_loss=el,
        fee_income=fees.net_income(scenario.party_names),
        guaranteed=float(book.guaranteed.sum()), exposure=float(book.exposure.sum()),
        n_loans=len(book), notes=tuple(notes),
    )


def _year_shifts(scenario: Scenario) -> list[float]:
    """The national factor's mean in each of the horizon's years (``[0.0]`` without a
    stress path): ``factors.national_path`` over ``run.horizon_years`` years."""
    path = tuple(scenario.factors.national_path)
    if not any(path):
        return [0.0]
    horizon = int(scenario.run.horizon_years)
    return [float(path[y]) if y < len(path) else 0.0 for y in range(horizon)]


def _expected_loss(scenario: Scenario, book: Book, plans: tuple[CellPlan, ...],
                   shift: float = 0.0) -> np.ndarray:
    """Expected net loss per party (yuan) of one cohort in a year whose national factor
    has mean ``shift`` (see the module doc), shape (n_parties,); ``plans`` are
    :func:`simkit.sharing.compile_cells` of the book's cells."""
    parties = scenario.party_names
    col = {p: i for i, p in enumerate(parties)}
    cells = book.cells
    n_cells = len(cells)
    lgd = _effective_lgd(scenario, book, shift=shift)
    # expected covered / uncovered default amounts and net losses per cell
    pd = _shifted(default_prob_over(book.default_prob, book.tenor_years), book, shift)
    cov_net = np.bincount(book.cell, book.guaranteed * pd * lgd, n_cells)
    unc_net = np.bincount(book.cell, book.uncovered * pd * lgd, n_cells)
    el = np.zeros(len(parties))
    for a_idx, agreement in enumerate(scenario.agreements):
        mine = np.flatnonzero(cells.agreement == a_idx)
        if mine.size == 0:
            continue
        el[col[agreement.lender]] += unc_net[mine].sum()
        for j, layer in enumerate(agreement.layers):
            if layer.cap is None:
                for c in mine:
                    _book(el, col, plans[c], j, layer.share * cov_net[c])
                continue
            cap = layer.cap
            keys = [(plans[c].layers[j].party, plans[c].layers[j].cap.pool_key)  # type: ignore[union-attr]
                    for c in mine]
            for key in dict.fromkeys(keys):
                pool = mine[[k == key for k in keys]]
                base = (cells.guaranteed if cap.base == "guaranteed" else cells.annualised)[pool]
                g = cells.guaranteed[pool].sum()
                if g <= 0:
                    continue
                in_pool = np.isin(book.cell, pool)
                w = book.guaranteed[in_pool]
                dp = float(np.average(pd[in_pool], weights=w))
                rho = float(np.clip(np.average(_shared_r2(book, in_pool), weights=w),
                                    1e-6, 0.999))
                # pool default rate on the cap's base, capped at the cap rate
                c_rate = cap.rate * base.sum() / g
                capped = float(analytic.vasicek_capped_mean(min(c_rate, 1.0), dp, rho))
                frac_paid = capped / dp if dp > 0 else 1.0
                for c in pool:
                    amount = layer.share * cov_net[c]
                    _book(el, col, plans[c], j, amount * frac_paid)
                    over = plans[c].layers[j].cap.overflow
                    el[col[over]] += amount * (1 - frac_paid)
    return el


def _shifted(pd: np.ndarray, book: Book, shift: float) -> np.ndarray:
    """Default probabilities in a year whose national factor has mean ``shift``:
    ``Phi(Phi^-1(pd) - b_nat shift)`` (``pd`` itself for no shift)."""
    if shift == 0:
        return pd
    from simkit.factors import conditional_default_prob, default_threshold

    return np.asarray(conditional_default_prob(default_threshold(pd), 0.0,
                                               book.loadings[:, 0] * shift))


def _book(el: np.ndarray, col: dict[str, int], plan: CellPlan, j: int,
          amount: float) -> None:
    """Add layer ``j``'s expected loss ``amount`` (yuan) to its acting party, less the
    part the agreement's fiscal-compensation rule moves to its budget party."""
    layer = plan.layers[j]
    f = layer.compensation
    el[col[layer.party]] += amount * (1.0 - f)
    if f > 0:
        assert layer.budget is not None
        el[col[layer.budget]] += amount * f


def _shared_r2(book: Book, in_pool: np.ndarray) -> np.ndarray:
    """Per-loan R² of the factors every loan of the pool shares (national always;
    regional, sector, guarantor only when the pool has one of each)."""
    load = book.loadings[in_pool]
    r2 = load[:, 0] ** 2
    for k, codes in ((1, book.region), (2, book.sector), (3, book.guarantor)):
        if np.unique(codes[in_pool]).size == 1:
            r2 = r2 + load[:, k] ** 2
    return r2


def _effective_lgd(scenario: Scenario, book: Book, n_nodes: int = 48,
                   shift: float = 0.0) -> np.ndarray:
    """Default-weighted LGD mean per loan, ``E[p_i(Z) LGD_i(Z)] / PD_i``.

    Equal to the LGD mean without downturn; with ``factors.downturn_lgd = d`` the mean in
    state ``Z`` of the national factor is ``Phi(Phi^-1(mean) - d Z)`` and the expectation is
    taken by Gauss-Hermite quadrature over ``Z`` with
    ``p_i(Z) = Phi((Phi^-1(PD_i) - b_i Z) / sqrt(1 - b_i^2))``; with a stress ``shift``
    the national factor is ``shift + Z`` and the default-weighting uses the shifted PD.
    """
    d = scenario.factors.downturn_lgd
    mean = book.lgd_mean
    if d == 0 or scenario.factors.copula != "gaussian":
        return mean
    from simkit.factors import conditional_default_prob, default_threshold, downturn_lgd_mean

    z, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    w = w / w.sum()
    z = z + shift
    b = book.loadings[:, 0:1]
    p = conditional_default_prob(default_threshold(book.default_prob)[:, None], b**2,
                                 b * z[None, :])
    m = downturn_lgd_mean(mean[:, None], d, z[None, :])
    joint = (p * m) @ w
    pd = _shifted(book.default_prob, book, shift)
    return np.where((mean > 0) & (mean < 1), joint / pd, mean)
