"""Regulation in one place: guaranteed amount, risk weights, guarantee liability, leverage
and the single-client limit, used by both engines.

**Guarantee liability** (融资担保责任余额, DOMAIN.md (c), 融资担保责任余额计量办法): a party's
liability on a loan is the part of the guaranteed amount it is answerable for *towards
the party it guarantees*:

* the **original guarantor** (the plan's ``front``, the party that pays the bank) is
  liable to the bank for the whole **covered part**, ``guaranteed x (1 - lender's
  share)``: a re-guarantee is a separate contract in which the re-guarantor reimburses
  the guarantor, which does not reduce what the guarantor owes the bank (and a capped
  re-guarantee may refuse to reimburse it at all);
* every **other layer** (re-guarantors, the national fund, a local-government pool) is
  liable for its own **share**, as the rules count re-guaranteed business on the
  re-guaranteed share (DOMAIN.md (c), "How re-guarantee counts");
* the lender holds no guarantee liability.

The risk-weighted liability applies ``regulation.small_weight`` to loans guaranteed up to
``regulation.small_threshold`` and ``regulation.default_weight`` above, and a party's
**leverage** is its risk-weighted liability divided by its capital (net assets plus what
it has received minus paid). So the same guarantor and book have the same leverage in the
Monte Carlo (:func:`simkit.montecarlo._capital`) and the DES (:mod:`simkit.des.parties`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simkit.scenario import Regulation
from simkit.sharing import CellPlan

__all__ = ["capital_injection", "guaranteed_amount", "injection_parties", "leverage",
           "liability_coefficients", "risk_weight", "single_client_room"]


def guaranteed_amount(exposure: np.ndarray, single_limit: float | np.ndarray) -> np.ndarray:
    """Guaranteed principal per loan, ``min(exposure, single_limit)`` (yuan); the rest
    stays with the lender."""
    return np.minimum(exposure, single_limit)


def risk_weight(guaranteed: np.ndarray, regulation: Regulation) -> np.ndarray:
    """Risk weight per loan of the liability measure: ``small_weight`` for guaranteed
    amounts up to ``small_threshold`` (yuan), ``default_weight`` above."""
    return np.where(guaranteed <= regulation.small_threshold, regulation.small_weight,
                    regulation.default_weight)


def liability_coefficients(plan: CellPlan, parties: tuple[str, ...],
                           n_columns: int | None = None) -> np.ndarray:
    """Guarantee liability per yuan guaranteed of each party under ``plan`` (module
    docstring: the original guarantor the covered part, other layers their share).

    Parameters
    ----------
    plan : CellPlan
    parties : tuple of str
        Column order.
    n_columns : int, optional
        Length of the result (>= ``len(parties)``; extra columns, e.g. the DES's
        external accounts, are 0).

    Returns
    -------
    ndarray, shape (n_columns,)
    """
    col = {p: i for i, p in enumerate(parties)}
    out = np.zeros(len(parties) if n_columns is None else n_columns)
    lender, front = col[plan.lender], col[plan.front]
    for layer in plan.layers:
        c = col[layer.party]
        if c not in (lender, front):
            out[c] += layer.share
    if front != lender:
        out[front] = 1.0 - plan.lender_share
    return out


def leverage(weighted_liability: float | np.ndarray,
             capital: float | np.ndarray) -> float | np.ndarray:
    """Risk-weighted liability / capital; ``inf`` where the capital is <= 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(capital) > 0, np.divide(weighted_liability, capital),
                        np.inf)


def single_client_room(limit: float, capital: float) -> float:
    """Largest liability on one client (yuan): ``limit`` (a fraction of capital) times
    the capital; ``inf`` without a limit."""
    return np.inf if np.isinf(limit) else limit * capital


def capital_injection(capital: float | np.ndarray, initial: float | np.ndarray,
                      trigger: float, target: float) -> np.ndarray:
    """The capital-injection rule: when a party's capital falls below ``trigger x
    initial`` the local government injects ``target x initial - capital`` (yuan), else 0;
    ``trigger = 0`` switches it off (``des.injection_trigger`` / ``injection_target``).

    Parameters
    ----------
    capital, initial : float or ndarray
        Capital now and at the start (yuan; broadcast together).
    trigger, target : float
        Fractions of the initial capital.

    Returns
    -------
    ndarray
        Amount injected (yuan, >= 0), same shape as the broadcast inputs.
    """
    c = np.asarray(capital, dtype=np.float64)
    c0 = np.asarray(initial, dtype=np.float64)
    short = (trigger > 0) & (c < trigger * c0)
    return np.where(short, np.maximum(target * c0 - c, 0.0), 0.0)


def injection_parties(kinds: Sequence[str], initial: Sequence[float],
                      regions: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Who may receive a capital injection and who pays it (both engines): a guarantor,
    provincial or national-fund party with initial capital > 0 receives; the
    local-government party of its region pays, else the first local-government party,
    else the government budget outside the scenario.

    Parameters
    ----------
    kinds, initial, regions : sequence, length P
        Each party's kind, initial capital (yuan) and region (``None``: none).

    Returns
    -------
    receives : ndarray of bool, shape (P,)
        Whether each party may receive an injection.
    payer : ndarray of intp, shape (P,)
        Index of the party that injects into each party, ``-1`` for the budget outside.
    """
    receives = np.array([k in ("guarantor", "provincial", "national_fund") and c > 0
                         for k, c in zip(kinds, initial, strict=True)], dtype=bool)
    local = [j for j, k in enumerate(kinds) if k == "local_gov"]
    payer = np.full(len(kinds), -1, dtype=np.intp)
    for j, region in enumerate(regions):
        same = [g for g in local if region is not None and regions[g] == region]
        pick = same or local
        payer[j] = pick[0] if pick else -1
    return receives, payer
