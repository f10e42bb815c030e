"""Arrivals and underwriting of the discrete-event model: the one owner of the refusal
queue.

* :func:`decision_terms`: the bank's rule (with and without a guarantee), the
  guarantor's own review and the moral-hazard PD, per application, computed once up
  front (they depend only on the application).
* :class:`Underwriting`: the arrival process (each day's applications to the bank's
  decision), the bank decision (direct lending first, with ``des.direct_lending``), the
  guarantor's decision after its review time (review, then the limits of
  :class:`simkit.des.limits.Limits`) and the queue of limit refusals
  (``des.refusal = "queue"``). Approved guarantees are filed and originated by
  :class:`simkit.des.loans.Loans`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simkit.des.codes import REASON_CODE, Process
from simkit.des.lines import queued_mask
from simkit.des.screening import observed_pd
from simkit.factors import moral_hazard_pd, retained_share

if TYPE_CHECKING:
    import simpy

    from simkit.des.draws import Applications
    from simkit.des.limits import Limits
    from simkit.des.loans import Loans
    from simkit.des.records import Records
    from simkit.des.review import ReviewDesk
    from simkit.des.segments import Segments
    from simkit.scenario import DesSettings

__all__ = ["Underwriting", "decision_terms"]


def decision_terms(segments: Segments, des: DesSettings, seg: np.ndarray,
                   exposure: np.ndarray, guaranteed: np.ndarray, pd: np.ndarray,
                   z: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The underwriting terms of each application (arrays of shape ``(n,)``).

    ``z``: the standard normals of the bank's signals when screening is on
    (:mod:`simkit.des.screening`; ``None``: the bank sees the true PD).

    Returns
    -------
    dict
        ``retained`` (the lender's share of the loan's loss per yuan of exposure; 1 for a
        direct loan), ``bank_ok`` (the bank lends with the guarantee), ``alone_ok`` (it
        would lend without: the rule with retained share 1), ``direct`` (lent directly,
        ``des.direct_lending``), ``review_ok`` (the guarantor's own review passes) and
        ``pd_eff`` (the true PD, :func:`simkit.factors.moral_hazard_pd`).
    """
    g = guaranteed
    lender_share = segments.per_application("lender_share", seg)
    covers = (segments.front != segments.lender)[seg]
    retained = retained_share(exposure, g, lender_share, covers)
    lgd = segments.per_application("lgd_mean", seg)
    margin = segments.per_application("margin", seg)
    pd_bank = pd_alone = pd  # what the bank sees of the PD (simkit.des.screening)
    if z is not None:
        pd_bank = observed_pd(pd, seg, retained, z, des.screening_noise,
                              des.screening_effort)
        pd_alone = observed_pd(pd, seg, 1.0, z, des.screening_noise, des.screening_effort)
    bank_ok = retained * pd_bank * lgd + des.bank_cost <= margin + 1e-15
    # the same rule with retained share 1: the bank would lend without a guarantee
    alone_ok = pd_alone * lgd + des.bank_cost <= margin + 1e-15
    direct = alone_ok if des.direct_lending else np.zeros(len(pd), dtype=bool)
    out = {"bank_ok": bank_ok, "alone_ok": alone_ok, "direct": direct}
    if des.direct_lending:
        retained = np.where(direct, 1.0, retained)  # direct: all retained
    out["retained"] = retained
    front_share = segments.per_application("front_share", seg)
    fee_rate = segments.per_application("fee_rate", seg)
    out["review_ok"] = front_share * pd * lgd <= des.review_loss_tolerance * fee_rate + 1e-15
    out["pd_eff"] = moral_hazard_pd(pd, retained, des.moral_hazard_kappa,
                                    des.moral_hazard_gamma)
    return out


class Underwriting:
    """Arrivals, the bank's and the guarantor's decisions, and the refusal queue.

    Attributes
    ----------
    q_app, q_since, q_reason, q_party : ndarray, shape (n_queued,)
        The queue (``refusal = "queue"``): application, time queued, last reason and
        refusing party.
    """

    def __init__(self, env: simpy.Environment, des: DesSettings, horizon: float,
                 apps: Applications, segments: Segments, limits: Limits, loans: Loans,
                 records: Records):
        self.env = env
        self.des = des
        self.horizon = horizon
        self.apps = apps
        self.segments = segments
        self.limits = limits
        self.loans = loans
        self.records = records
        self.review_days = (des.review_days_individual if des.mode == "individual"
                            else des.review_days_batch)
        #: review capacity (simkit.des.review), set by the model when on
        self.desk: ReviewDesk | None = None
        self.clear_queue()

    def clear_queue(self) -> None:
        """Empty the refusal queue."""
        self.q_app = np.zeros(0, dtype=np.intp)
        self.q_since = np.zeros(0)
        self.q_reason = np.zeros(0, dtype=np.intp)
        self.q_party = np.zeros(0, dtype=np.intp)

    def arrive_applications(self) -> Process:
        """Process: each day, take that day's applications to the bank's decision."""
        env = self.env
        rec = self.records
        starts = self.apps.day_start
        front = self.segments.front
        for d in range(self.apps.n_days):
            lo, hi = int(starts[d]), int(starts[d + 1])
            if hi == lo:
                continue
            if d > env.now:
                yield env.timeout(d - env.now)
            apps = np.arange(lo, hi)
            rec.counts["applications"] += hi - lo
            m = rec.month(env.now)
            np.add.at(rec.flows["applications"][m], front[self.apps.seg[apps]], 1.0)
            if rec.keep_log:
                rec.log_rows(env.now, "application", apps, front[self.apps.seg[apps]])
            ok = self.decide_bank(apps)
            if self.desk is not None:
                self.desk.submit(ok)  # the staff take it from there
            elif ok.size or self.q_app.size:
                env.process(self.underwrite_guarantee(ok))

    def decide_bank(self, apps: np.ndarray) -> np.ndarray:
        """The bank's rule (:mod:`simkit.des.model`): with ``des.direct_lending`` it lends
        at once without a guarantee to the applications that pass with retained share 1;
        returns the applications it would lend to with the guarantee."""
        self.records.counts["bank_decisions"] += len(apps)
        if self.des.direct_lending:
            direct = self.apps.direct[apps]
            if direct.any():
                self.loans.originate_direct(apps[direct], renewal=False)
                apps = apps[~direct]
        ok = self.apps.bank_ok[apps]
        if not ok.all():
            bad = apps[~ok]
            self.records.refuse(self.env.now, bad, REASON_CODE["bank_margin"],
                                self.segments.lender[self.apps.seg[bad]])
        return apps[ok]

    def underwrite_guarantee(self, apps: np.ndarray) -> Process:
        """Process: the guarantor reviews (mode), checks its limits and issues guarantees.

        One decision batch: the queue first (expired entries refused), then the review,
        the limits and the queue or refusals of what does not fit.
        """
        env = self.env
        if self.review_days > 0:
            yield env.timeout(self.review_days)
        now = env.now
        if now >= self.horizon:
            return  # run-off: decisions stop at the horizon, these stay pending
        apps = np.asarray(apps, dtype=np.intp)
        since = np.full(len(apps), now)
        queued = np.zeros(len(apps), dtype=bool)
        if self.q_app.size:
            expired = now - self.q_since > self.des.queue_patience_days
            if expired.any():
                self.records.refuse_many(now, self.q_app[expired], self.q_reason[expired],
                                         self.q_party[expired])
            keep = ~expired
            apps = np.concatenate([self.q_app[keep], apps])
            since = np.concatenate([self.q_since[keep], since])
            queued = np.concatenate([np.ones(int(keep.sum()), dtype=bool), queued])
            self.clear_queue()
        if apps.size == 0:
            return
        self.records.counts["guarantor_decisions"] += len(apps)
        if self.des.mode == "individual":
            ok = self.apps.review_ok[apps]
            if not ok.all():
                bad = apps[~ok]
                self.records.refuse(now, bad, REASON_CODE["guarantor_review"],
                                    self.segments.front[self.apps.seg[bad]])
                apps, since, queued = apps[ok], since[ok], queued[ok]
        approved, refused = self.limits.check(apps, now)
        if refused[0].size:
            self._hold_or_refuse(now, apps, refused, since, queued)
        if approved.size:
            self.limits.file_reguarantee(approved)
            self.loans.originate(approved, renewal=False)

    def _hold_or_refuse(self, now: float, apps: np.ndarray,
                        refused: tuple[np.ndarray, ...], since: np.ndarray,
                        queued: np.ndarray) -> None:
        """Queue the limit refusals that wait for room (``des.refusal``:
        :func:`simkit.des.lines.queued_mask`; counted as ``queued`` when new to the queue)
        and refuse the others."""
        r_pos, r_reason, r_party = refused
        rec = self.records
        wait = queued_mask(self.des.refusal, r_reason, REASON_CODE["credit_line"])
        if wait.any():
            w_pos = r_pos[wait]
            w_app = apps[w_pos]
            self.q_app, self.q_since = w_app, since[w_pos]
            self.q_reason, self.q_party = r_reason[wait], r_party[wait]
            new = ~queued[w_pos]
            if new.any():
                parties = self.q_party[new]
                np.add.at(rec.flows["queued"][rec.month(now)], parties, 1.0)
                if rec.keep_log:
                    rec.log_rows(now, "queued", w_app[new], parties)
        if not wait.all():
            r_app, r_reason, r_party = apps[r_pos[~wait]], r_reason[~wait], r_party[~wait]
            for reason in np.unique(r_reason).tolist():
                sel = r_reason == reason
                rec.refuse(now, r_app[sel], reason, r_party[sel])
