"""Loans of the discrete-event model: origination, fees, maturity and renewal.

:class:`Loans` books guaranteed loans (:meth:`Loans.originate`: liability, cap bases,
fees, default draws) and direct ones (:meth:`Loans.originate_direct`,
``des.direct_lending``), pays the agreement fees per loan year (:meth:`Loans.pay_fees`),
schedules each loan's end (:meth:`Loans.run_loan`: the claim steps of
:class:`simkit.des.claims.Claims` per defaulting loan, one maturity callback per group)
and matures and renews loans (:meth:`Loans.mature_loans`, :meth:`Loans.mature_direct`).
The loan table, counts and flows are written to :class:`simkit.des.records.Records`.
"""

from __future__ import annotations

import itertools
import math
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from simkit.des.codes import DAYS_PER_YEAR
from simkit.sharing import fee_amount

if TYPE_CHECKING:
    import simpy

    from simkit.des.caps import CapSettlement
    from simkit.des.claims import Claims
    from simkit.des.draws import Applications, Draws
    from simkit.des.limits import Limits
    from simkit.des.records import Records
    from simkit.des.segments import Segments
    from simkit.des.treasury import Treasury
    from simkit.scenario import DesSettings

__all__ = ["Loans"]


class Loans:
    """Origination, fees, maturity and renewal of the loans of a run.

    Parameters
    ----------
    env : simpy.Environment
    des : DesSettings
    horizon, settle_until : float
        End of the horizon and of the run's loan events (``inf`` with the run-off), days.
    segments, apps, draws, limits, caps, treasury, records, claims
        The other parts of the model this one calls.
    """

    def __init__(self, env: simpy.Environment, des: DesSettings, horizon: float,
                 settle_until: float, segments: Segments, apps: Applications, draws: Draws,
                 limits: Limits, caps: CapSettlement, treasury: Treasury, records: Records,
                 claims: Claims):
        self.env = env
        self.des = des
        self.horizon = horizon
        self.settle_until = settle_until
        self.segments = segments
        self.apps = apps
        self.draws = draws
        self.limits = limits
        self.caps = caps
        self.treasury = treasury
        self.records = records
        self.claims = claims
        self.any_fees = any(s.fees for s in segments.specs)
        #: each segment's fee terms per fee position (rate, rate above the threshold,
        #: threshold, share), shape (n_segments, most fees) each (0 where none)
        n_fee = max((len(s.fees) for s in segments.specs), default=0)
        self.fee_terms = tuple(np.zeros((len(segments.specs), n_fee)) for _ in range(4))
        for s, spec in enumerate(segments.specs):
            for f, (_payer, _payee, _kind, fee) in enumerate(spec.fees):
                for k, v in enumerate((fee.rate, fee.rate_above, fee.threshold, fee.share)):
                    self.fee_terms[k][s, f] = v

    def originate(self, apps: np.ndarray, *, renewal: bool) -> None:
        """Disburse guaranteed loans now: balances, cap bases, fees, default draws."""
        env = self.env
        now = env.now
        rec = self.records
        n = len(apps)
        ids = rec.new_loan_ids(n)
        seg = self.apps.seg[apps]
        g = self.apps.guaranteed[apps]
        self.limits.take(apps)
        m = rec.month(now)
        front = self.segments.front[seg]
        np.add.at(rec.flows["approvals" if not renewal else "renewed"][m], front, 1.0)
        np.add.at(rec.flows["new_loans"][m], front, 1.0)
        np.add.at(rec.flows["new_guaranteed"][m], front, g)
        n_seg = len(self.segments)
        tenor = self.segments.tenor_years[seg]
        per_seg_g = np.bincount(seg, weights=g, minlength=n_seg)
        per_seg_a = np.bincount(seg, weights=g * tenor, minlength=n_seg)
        for s in np.flatnonzero(per_seg_g):
            self.caps.add_base(now, self.segments[int(s)], per_seg_g[s], per_seg_a[s])
        # default draws, per loan year
        kmax = math.ceil(float(tenor.max()) - 1e-12)
        t_def = self.draws.default_times(apps, now)
        end = np.where(np.isfinite(t_def), t_def, now + tenor * DAYS_PER_YEAR)
        # fees: the first loan year now, each later one at its anniversary if the loan is
        # still running then (and the anniversary falls before the end of the run)
        self.pay_fees(ids, apps, np.minimum(tenor, 1.0))
        for k in range(1, kmax):
            t_k = now + DAYS_PER_YEAR * k
            if t_k >= self.settle_until:
                break
            sel = (tenor > k) & (t_def > t_k)
            if sel.any():
                ev = env.timeout(DAYS_PER_YEAR * k)
                ev.callbacks.append(partial(self.pay_fees, ids[sel], apps[sel],
                                            np.minimum(tenor[sel] - k, 1.0)))
        rec.loans.append((ids, apps.astype(np.int64), np.full(n, now), end,
                          np.isfinite(t_def), np.full(n, renewal), np.zeros(n, dtype=bool)))
        if rec.keep_log:
            rec.log_rows(now, "renewal" if renewal else "origination", ids, front, g)
        self.run_loan(ids, apps, t_def, tenor)

    def originate_direct(self, apps: np.ndarray, *, renewal: bool) -> None:
        """Lend now without a guarantee (``des.direct_lending``): no fee, no filing, no
        limit used; the lender bears the whole loss and gets every recovery."""
        env = self.env
        now = env.now
        rec = self.records
        n = len(apps)
        ids = rec.new_loan_ids(n)
        seg = self.apps.seg[apps]
        x = self.apps.exposure[apps]
        lender = self.segments.lender[seg]
        m = rec.month(now)
        np.add.at(rec.flows["direct_loans"][m], lender, 1.0)
        np.add.at(rec.flows["direct_lent"][m], lender, x)
        np.add.at(rec.flows["new_loans"][m], lender, 1.0)
        if renewal:
            np.add.at(rec.flows["renewed"][m], lender, 1.0)
        tenor = self.segments.tenor_years[seg]
        t_def = self.draws.default_times(apps, now)
        end = np.where(np.isfinite(t_def), t_def, now + tenor * DAYS_PER_YEAR)
        rec.loans.append((ids, apps.astype(np.int64), np.full(n, now), end,
                          np.isfinite(t_def), np.full(n, renewal), np.ones(n, dtype=bool)))
        if rec.keep_log:
            rec.log_rows(now, "direct", ids, lender, x)
        horizon = self.settle_until
        dflt = t_def < horizon
        if dflt.any():
            self.claims.schedule(ids[dflt], apps[dflt], t_def[dflt], now, direct=True)
        alive = np.isinf(t_def)
        for ten in self.segments.tenors:
            if now + ten * DAYS_PER_YEAR >= horizon:
                continue
            sel = alive & (tenor == ten)
            if sel.any():
                ev = env.timeout(ten * DAYS_PER_YEAR)
                ev.callbacks.append(partial(self.mature_direct, ids[sel], apps[sel]))

    def mature_direct(self, ids: np.ndarray, apps: np.ndarray, _event: Any = None) -> None:
        """Callback: direct loans repaid at maturity; some renew as direct loans."""
        now = self.env.now
        rec = self.records
        lender = self.segments.lender[self.apps.seg[apps]]
        rec.counts["maturities"] += len(ids)
        np.add.at(rec.flows["matured"][rec.month(now)], lender, 1.0)
        if rec.keep_log:
            rec.log_rows(now, "maturity", ids, lender)
        p = self.des.renewal_prob
        if p > 0 and now < self.horizon:
            again = self.draws.renewing(apps)
            if again.size:
                self.originate_direct(again, renewal=True)

    def pay_fees(self, ids: np.ndarray, apps: np.ndarray, years: np.ndarray,
                 _event: Any = None) -> None:
        """Pay the agreement fees of one loan year (``years``: its length, <= 1) now:
        the fee's amount (:func:`simkit.sharing.fee_amount`, with each loan's fee terms)
        per fee, one block of flows per segment (in segment order) and fee."""
        if not self.any_fees or len(apps) == 0:
            return
        seg = self.apps.seg[apps]
        order = np.argsort(seg, kind="stable")
        seg, ids, years = seg[order], ids[order], years[order]
        g = self.apps.guaranteed[apps][order]
        terms = self.fee_terms
        amounts = [fee_amount(terms[0][seg, f], terms[1][seg, f], terms[2][seg, f],
                              terms[3][seg, f], g, years) for f in range(terms[0].shape[1])]
        cuts = [0, *(np.flatnonzero(seg[1:] != seg[:-1]) + 1).tolist(), len(seg)]
        blocks = []
        for lo, hi in itertools.pairwise(cuts):
            for f, (payer, payee, kind, _fee) in enumerate(self.segments[int(seg[lo])].fees):
                blocks.append((payer, payee, kind, amounts[f][lo:hi], ids[lo:hi]))
        self.treasury.pay_blocks(self.env.now, blocks)

    def run_loan(self, ids: np.ndarray, apps: np.ndarray, t_def: np.ndarray,
                 tenor: np.ndarray) -> None:
        """Schedule each new loan's end: the claim steps of each defaulting loan (on the
        agenda), one maturity callback per group of loans ending at the same time."""
        env = self.env
        now = env.now
        horizon = self.settle_until
        dflt = t_def < horizon
        if dflt.any():
            self.claims.schedule(ids[dflt], apps[dflt], t_def[dflt], now)
        alive = np.isinf(t_def)
        tenors = self.segments.tenors
        for ten in tenors:
            if now + ten * DAYS_PER_YEAR >= horizon:
                continue
            sel = alive & (tenor == ten) if len(tenors) > 1 else alive
            if not sel.any():
                continue
            ev = env.timeout(ten * DAYS_PER_YEAR)
            ev.callbacks.append(partial(self.mature_loans, ids[sel], apps[sel]))

    def mature_loans(self, ids: np.ndarray, apps: np.ndarray, _event: Any = None) -> None:
        """Callback: loans repaid at maturity release their guarantees; some renew (limits
        re-checked, no bank review; a refused renewal is counted apart)."""
        now = self.env.now
        rec = self.records
        self.limits.release(apps)
        rec.counts["maturities"] += len(ids)
        front = self.segments.front[self.apps.seg[apps]]
        np.add.at(rec.flows["matured"][rec.month(now)], front, 1.0)
        if rec.keep_log:
            rec.log_rows(now, "maturity", ids, front)
        p = self.des.renewal_prob
        if p > 0 and now < self.horizon:
            again = self.draws.renewing(apps)
            if again.size:
                approved, (r_pos, r_reason, r_party) = self.limits.check(again, now)
                for reason in np.unique(r_reason).tolist():
                    sel = r_reason == reason
                    rec.refuse(now, again[r_pos[sel]], reason, r_party[sel], renewal=True)
                if approved.size:
                    self.limits.file_reguarantee(approved)
                    self.originate(approved, renewal=True)
