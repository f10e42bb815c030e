"""The segments of the discrete-event model: each agreement compiled once per segment.

:func:`compile_segment` turns the rulebook's plan (:func:`simkit.sharing.compile_plan`)
of a segment's agreement into account indices, settlement :class:`~simkit.des.caps.Step`
objects, fee triples and limit coefficients; :class:`Segments` holds the compiled
segments and the per-segment arrays every other part of the model indexes by an
application's segment. Read-only once built; the cap accounts it creates are handed to
:class:`simkit.des.caps.CapSettlement`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simkit.des.caps import CapAccount, Step
from simkit.des.codes import DAYS_PER_YEAR
from simkit.des.ledger import KIND_CODE
from simkit.des.parties import CreditLineState, EnterpriseSegment
from simkit.regulation import liability_coefficients
from simkit.scenario import BORROWER
from simkit.sharing import compile_plan

if TYPE_CHECKING:
    from simkit.scenario import Scenario

__all__ = ["Segments", "compile_segment"]


def compile_segment(sc: Scenario, s: int, seg: Any, caps: list[CapAccount],
                    lines: list[CreditLineState], borrower: int,
                    n_accounts: int) -> EnterpriseSegment:
    """Segment ``s``'s agreement as the rulebook compiles it (:func:`compile_plan`),
    turned into account indices and settlement steps; a cap not yet in ``caps`` (by its
    label) is appended to it."""
    col = {n: i for i, n in enumerate(sc.party_names)}
    col[BORROWER] = borrower
    a_idx = [a.name for a in sc.agreements].index(seg.agreement)
    plan = compile_plan(sc, a_idx, seg.guarantor, seg.region, seg.name)
    out = EnterpriseSegment(s, seg)
    lender = col[plan.lender]
    front = col[plan.front]
    resolved = [(col[lp.party], lp) for lp in plan.layers]
    steps = []
    for c, layer in resolved:
        holder = lender if c == lender else front
        cap_id, overflow = -1, holder
        if layer.cap is not None:
            cap = layer.cap
            ids = [i for i, x in enumerate(caps) if x.label == cap.label]
            if ids:
                cap_id = ids[0]
            else:
                cap_id = len(caps)
                caps.append(CapAccount(cap.label, cap.rate, layer.share,
                                       cap.base == "annualised",
                                       cap.period_years * DAYS_PER_YEAR, layer.lag_days))
            overflow = col[cap.overflow]
        frac = layer.compensation
        budget = col[layer.budget] if layer.budget is not None else -1
        if c == holder and cap_id < 0:
            if budget >= 0:  # the budget reimburses the holder's own compensated share
                steps.append(Step(budget, layer.share * frac, -1, layer.lag_days,
                                  holder, holder))
            continue  # the holder's own uncapped share: nothing moves
        steps.append(Step(c, layer.share, cap_id, layer.lag_days, holder, overflow,
                          budget, frac))
    steps.sort(key=lambda st: st.lag)
    fees = []
    fee_rate = 0.0
    for fee in plan.fees:
        payer, payee = col[fee.payer], col[fee.payee]
        fees.append((payer, payee, KIND_CODE[fee.kind], fee))
        if payer == borrower and payee == front:
            fee_rate += fee.rate
    inside = {c for c, layer in resolved if layer.share > 0} | {front}
    out.lines = [i for i, line in enumerate(lines)
                 if line.provider in inside and line.holder in inside]
    out.agreement = a_idx
    out.lender = lender
    out.front = front
    out.front_share = sum(layer.share for c, layer in resolved if c == front)
    out.lender_share = plan.lender_share
    out.layers = tuple(steps)
    out.coef = liability_coefficients(plan, sc.party_names, n_accounts)
    out.fees = tuple(fees)
    out.fee_rate = fee_rate if fee_rate > 0 else 0.01
    rate = seg.count if seg.applications_per_year is None else seg.applications_per_year
    out.rate_per_day = rate / DAYS_PER_YEAR
    out.tenor_days = seg.tenor_years * DAYS_PER_YEAR
    out.lgd_mean = seg.lgd.mean
    out.lgd_sd = seg.lgd.sd
    out.margin = seg.interest_margin
    out.recovery_lag_days = plan.recovery_lag_years * DAYS_PER_YEAR
    out.single_limit = plan.single_limit
    out.loadings = (seg.loadings or sc.factors.loadings).as_tuple()
    out.region = sorted({x.region for x in sc.segments}).index(seg.region)
    out.sector = sorted({x.sector for x in sc.segments}).index(seg.sector)
    out.gfactor = front
    return out


class Segments:
    """The compiled segments of a scenario and their per-segment arrays.

    Parameters
    ----------
    scenario : Scenario
    lines : list of CreditLineState
    borrower : int
        Account index of the borrowers.
    n_accounts : int

    Attributes
    ----------
    specs : list of EnterpriseSegment
    caps : list of CapAccount
        Every capped layer pool, in the order the segments first name them.
    coef : ndarray, shape (n_segments, n_accounts)
        Liability per yuan guaranteed (:func:`simkit.regulation.liability_coefficients`).
    line_applies : ndarray, shape (n_segments, n_lines)
        1 where a credit line applies to the segment's loans.
    front, lender, region, sector : int ndarray, shape (n_segments,)
    tenor_years : ndarray, shape (n_segments,)
    tenors : list of float
        The distinct tenors, sorted.
    liab : list of list of (int, float)
        (party, liability per yuan guaranteed) of each segment, for single-loan updates.
    loadings : ndarray, shape (n_segments, 4)
    idio_r2 : ndarray, shape (n_segments,)
        Sum of the squared loadings (``R^2``).
    """

    def __init__(self, scenario: Scenario, lines: list[CreditLineState], borrower: int,
                 n_accounts: int, claim_days: float):
        self.caps: list[CapAccount] = []
        self.specs = [compile_segment(scenario, s, seg, self.caps, lines, borrower,
                                      n_accounts)
                      for s, seg in enumerate(scenario.segments)]
        for spec in self.specs:
            for step in spec.layers:
                if step.cap >= 0:
                    cap = self.caps[step.cap]
                    cap.settle_extra = max(cap.settle_extra,
                                           spec.tenor_days + claim_days + cap.lag)
        specs = self.specs
        n_seg = len(specs)
        self.coef = np.array([s.coef for s in specs]).reshape(n_seg, n_accounts)
        self.line_applies = np.array(
            [[1.0 if li in s.lines else 0.0 for li in range(len(lines))]
             for s in specs]).reshape(n_seg, len(lines))
        self.front = np.array([s.front for s in specs], dtype=np.intp)
        self.lender = np.array([s.lender for s in specs], dtype=np.intp)
        self.tenor_years = np.array([s.segment.tenor_years for s in specs])
        self.tenors = sorted(set(self.tenor_years.tolist()))
        self.liab = [[(j, float(c)) for j, c in enumerate(s.coef) if c != 0.0]
                     for s in specs]
        self.loadings = np.array([s.loadings for s in specs]).reshape(n_seg, 4)
        self.region = np.array([s.region for s in specs], dtype=np.intp)
        self.sector = np.array([s.sector for s in specs], dtype=np.intp)
        self.idio_r2 = (self.loadings**2).sum(axis=1)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, s: int) -> EnterpriseSegment:
        return self.specs[s]

    def per_application(self, attr: str, seg: np.ndarray) -> np.ndarray:
        """The compiled segment attribute ``attr`` of each application's segment."""
        return np.array([getattr(s, attr) for s in self.specs])[seg]
