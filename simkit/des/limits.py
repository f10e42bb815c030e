"""Capital and limits of the discrete-event model: the one writer of every party's
guarantee liability (``outstanding``, ``weighted``) and of the credit lines' use.

The rules themselves (liability coefficients, risk weight, leverage room, single-client
room) are :mod:`simkit.regulation`'s, held per party by :mod:`simkit.des.parties`.
:class:`Limits` checks a batch of guarantees against the single-client limit of every
party standing behind the loan, the leverage room of every constrained party and every
credit line that applies, in arrival order (:meth:`Limits.check`), files approved
guarantees with the credit lines, takes on the liability at origination and releases it
at maturity or default.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from simkit.des.codes import REASON_CODE

if TYPE_CHECKING:
    from simkit.des.draws import Applications
    from simkit.des.parties import CreditLineState, EnterpriseSegment, Institution
    from simkit.des.segments import Segments

__all__ = ["Limits", "fit_in_order"]


class Limits:
    """Guarantee liability, leverage, single-client limits and credit lines.

    Parameters
    ----------
    institutions : list of Institution
    lines : list of CreditLineState
    segments : Segments
    apps : Applications

    Attributes
    ----------
    constrained : list of int
        Leverage-constrained parties.
    single_limited : list of int
        Parties with a finite single-client limit.
    n_limits : int
        Columns of :meth:`need`: the constrained parties, then the credit lines.
    """

    def __init__(self, institutions: list[Institution], lines: list[CreditLineState],
                 segments: Segments, apps: Applications):
        self.institutions = institutions
        self.lines = lines
        self.segments = segments
        self.apps = apps
        self.n_parties = len(institutions)
        self.constrained = [a.index for a in institutions if a.constrained]
        self.single_limited = [a.index for a in institutions
                               if math.isfinite(a.single_client_limit)]
        self.n_limits = len(self.constrained) + len(lines)
        coef = segments.coef
        #: per segment, the liability coefficients of :meth:`need`'s columns
        self.need_coef = (coef[:, self.constrained], segments.line_applies)
        #: per segment, the accounts with a liability and their coefficients, padded
        #: with a spare last account (coefficient 0) to the longest list; the same for
        #: the credit lines that apply
        self.liab_cols, self.liab_coef = _padded(coef)
        self.line_cols, self.line_coef = _padded(segments.line_applies)
        #: the same for :meth:`need`'s columns, and which of them are risk-weighted
        self.need_cols, self.need_vals = _padded(np.concatenate(self.need_coef, axis=1))
        self.need_weighted = self.need_cols < len(self.constrained)

    def need(self, apps: np.ndarray) -> np.ndarray:
        """What each application uses of each limit, shape ``(n, k)`` (yuan): the
        constrained parties' risk-weighted liability, then each credit line's use."""
        seg = self.apps.seg[apps]
        g = self.apps.guaranteed[apps]
        lev, line = self.need_coef
        out = np.empty((len(apps), self.n_limits))
        c = len(self.constrained)
        np.multiply(lev[seg], (g * self.apps.weight[apps])[:, None], out=out[:, :c])
        np.multiply(line[seg], g[:, None], out=out[:, c:])
        return out

    def sparse_need(self, apps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`need` as each application's non-zero columns and values, shape
        ``(n, m)`` each (padded with column ``n_limits`` and value 0)."""
        seg = self.apps.seg[apps]
        g = self.apps.guaranteed[apps]
        gw = g * self.apps.weight[apps]
        vals = self.need_vals[seg] * np.where(self.need_weighted[seg], gw[:, None],
                                              g[:, None])
        return self.need_cols[seg], vals

    def binding(self, apps: np.ndarray, room0: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The limit columns that may refuse one of ``apps``, :meth:`need` restricted
        to them, shape ``(n, len(columns))`` (``None`` when no column may), and their
        totals over the applications.

        A column whose applications need in total (summed in order, as numpy sums
        :meth:`need` over its first axis) at most its room less ``1e-9 x |room| + 1``
        yuan cannot refuse anyone: each prefix of it fits with a margin far above the
        rounding of the running sums, so the checks on the other columns decide alone,
        exactly as on all of them."""
        cols, vals = self.sparse_need(apps)
        k = self.n_limits
        flat = cols.ravel()
        total = np.bincount(flat, weights=vals.ravel(), minlength=k + 1)[:k]
        sel = np.flatnonzero(total > room0 - 1e-9 * np.abs(room0) - 1.0)
        if sel.size == 0:
            return sel, None, total[sel]
        where = np.full(k + 1, -1, dtype=np.intp)
        where[sel] = np.arange(sel.size)
        pos = where[flat]
        hit = pos >= 0
        need = np.zeros((len(apps), sel.size))
        need[np.repeat(np.arange(len(apps)), cols.shape[1])[hit], pos[hit]] = vals.ravel()[hit]
        return sel, need, total[sel]

    def totals(self, apps: np.ndarray, *, lines: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
        """Liability of the applications per account and its risk-weighted version
        (yuan, shape ``(n_accounts,)`` each), or with ``lines`` their use of each credit
        line (and zeros). Each total is the sum over the applications in order as
        numpy sums an ``(n, columns)`` array over its first axis: a running sum (over the
        applications' few non-zero terms only), pairwise for a single column."""
        seg = self.apps.seg[apps]
        g = self.apps.guaranteed[apps]
        if lines and len(self.lines) == 1:  # one column: numpy sums it pairwise
            one = np.array([(self.segments.line_applies[seg, 0] * g).sum(), 0.0])
            return one[:1], np.zeros(1)
        cols, coef = ((self.line_cols, self.line_coef) if lines
                      else (self.liab_cols, self.liab_coef))
        k = coef.shape[1] if coef.ndim == 2 else 0
        n_out = (len(self.lines) if lines else self.segments.coef.shape[1]) + 1
        total = np.zeros(n_out)
        weighted = np.zeros(n_out)
        if k and len(apps):
            idx = cols[seg].ravel()
            liab = coef[seg] * g[:, None]
            np.add.at(total, idx, liab.ravel())
            if not lines:
                np.add.at(weighted, idx, (liab * self.apps.weight[apps][:, None]).ravel())
        return total[:-1], weighted[:-1]

    def check(self, apps: np.ndarray, now: float
              ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Single-client, leverage and credit-line checks, in arrival order.

        Each application is checked against the room left by those before it that were
        approved. Applications that do not fit even the room at the start of the batch
        are refused without entering the sequential pass (room only shrinks within a
        batch); their reason is the first check they fail with the room left at their
        position. Only the columns that may refuse someone are checked
        (:meth:`binding`).

        Returns
        -------
        approved : ndarray of int, shape (n_approved,)
            The approved applications, in order.
        refused : (positions, reason codes, refusing parties)
            Integer arrays: positions in ``apps`` (single-client refusals first, then the
            others, each in arrival order), reasons and parties.
        """
        pos = np.arange(len(apps))
        empty = np.zeros(0, dtype=np.intp)
        r_pos, r_reason, r_party = [empty], [empty], [empty]
        seg = self.apps.seg[apps]
        g = self.apps.guaranteed[apps]
        inst = self.institutions
        if self.single_limited:
            over, parties = self._single_over(seg, g)
            bad = over.any(axis=1)
            if bad.any():
                r_pos.append(pos[bad])
                r_reason.append(np.full(int(bad.sum()), REASON_CODE["single_client"],
                                        np.intp))
                r_party.append(parties[bad, over.argmax(axis=1)[bad]])
                ok = ~bad
                apps, pos = apps[ok], pos[ok]
        for line in self.lines:
            line.roll(now)
        room0 = np.array([inst[j].room() for j in self.constrained]
                         + [line.room() for line in self.lines])
        if self.n_limits >= 2:
            sel, need, total = self.binding(apps, room0)
        else:  # one column: summed pairwise by numpy, checked on the full matrix
            sel, need = np.arange(self.n_limits), self.need(apps)
            total = need.sum(axis=0)
        if need is None:
            return apps, tuple(np.concatenate(x) for x in (r_pos, r_reason, r_party))
        room_s = room0[sel]
        slack0 = room_s + 1e-12 * np.abs(room_s) + 1e-6
        fail0 = (need > 0) & (need > slack0)
        if fail0.any() or (total > slack0).any():
            keep = fit_in_order(need, room_s, np.flatnonzero(~fail0.any(axis=1)))
            refused = np.flatnonzero(~keep)
            col = sel[self._first_failed(need, room_s, keep, refused)]
            parties = np.array(self.constrained + [line.provider for line in self.lines],
                               dtype=np.intp)
            r_pos.append(pos[refused])
            r_reason.append(np.where(col < len(self.constrained), REASON_CODE["leverage"],
                                     REASON_CODE["credit_line"]).astype(np.intp))
            r_party.append(parties[col])
            apps = apps[keep]
        refused_out = (np.concatenate(r_pos), np.concatenate(r_reason),
                       np.concatenate(r_party))
        return apps, refused_out

    def _single_over(self, seg: np.ndarray, g: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Which of each application's liable parties (shape ``(n, m)``, in party order)
        its liability exceeds the single-client limit of, and those parties."""
        inst = self.institutions
        lim = np.array([inst[j].single_limit() for j in self.single_limited])
        if (lim < 0).any():  # a negative limit refuses even a zero liability
            parties = np.broadcast_to(np.array(self.single_limited, dtype=np.intp),
                                      (len(seg), len(lim)))
            return self.segments.coef[seg][:, self.single_limited] * g[:, None] > lim, parties
        lim_acc = np.full(self.segments.coef.shape[1] + 1, np.inf)
        lim_acc[self.single_limited] = lim
        cols = self.liab_cols[seg]
        return self.liab_coef[seg] * g[:, None] > lim_acc[cols], cols

    @staticmethod
    def _first_failed(need: np.ndarray, room0: np.ndarray, keep: np.ndarray,
                      refused: np.ndarray) -> np.ndarray:
        """The first limit column each refused position fails with the room left at its
        position (the approved ones before it taken)."""
        kept = np.flatnonzero(keep)
        cum = np.concatenate([np.zeros((1, need.shape[1])), np.cumsum(need[kept], axis=0)])
        left = room0 - cum[np.searchsorted(kept, refused)]
        nr = need[refused]
        return ((nr > 0) & (nr > left + 1e-12 * np.abs(left) + 1e-6)).argmax(axis=1)

    def file_reguarantee(self, apps: np.ndarray) -> None:
        """File approved guarantees (applications ``apps``) with the re-guarantors: use
        the credit lines that apply by the guaranteed amounts (yuan)."""
        if self.lines:
            totals, _ = self.totals(apps, lines=True)
            for k, line in enumerate(self.lines):
                if totals[k] > 0:
                    line.use(float(totals[k]))

    def take(self, apps: np.ndarray) -> None:
        """Take on the liability of new guarantees (applications ``apps``)."""
        lt, wt = self.totals(apps)
        inst = self.institutions
        for j in range(self.n_parties):
            if lt[j] != 0.0:
                inst[j].outstanding += float(lt[j])
                inst[j].weighted += float(wt[j])

    def release(self, apps: np.ndarray) -> None:
        """Release the liability of guaranteed loans repaid at maturity."""
        lt, wt = self.totals(apps)
        inst = self.institutions
        for j in range(self.n_parties):
            if lt[j] != 0.0:
                inst[j].outstanding -= float(lt[j])
                inst[j].weighted -= float(wt[j])

    def release_one(self, spec: EnterpriseSegment, g: float, w: float) -> None:
        """Release the liability of one guaranteed loan at its default (guaranteed
        amount ``g`` yuan, risk weight ``w``)."""
        inst = self.institutions
        for j, c in self.segments.liab[spec.index]:
            inst[j].outstanding -= c * g
            inst[j].weighted -= c * g * w


def _padded(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``coef`` (segments x columns), its non-zero columns and values, padded
    to the longest row with the spare column ``coef.shape[1]`` and value 0."""
    n_seg, n_col = coef.shape
    rows = [np.flatnonzero(r) for r in coef]
    width = max((len(r) for r in rows), default=0)
    cols = np.full((n_seg, width), n_col, dtype=np.intp)
    vals = np.zeros((n_seg, width))
    for s, r in enumerate(rows):
        cols[s, :len(r)] = r
        vals[s, :len(r)] = coef[s, r]
    return cols, vals


def fit_in_order(need: np.ndarray, room: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Approve candidates in order while each fits the room left by those before it.

    ``need`` (n, k) yuan per application and limit, ``room`` (k,), ``cand`` the
    positions to consider, in order. Vectorised: the prefix that fits is taken with
    a cumulative sum, the first that does not is refused, and the rest is filtered
    against the room left; after a few rounds a plain loop finishes the rest.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    keep = np.zeros(len(need), dtype=bool)
    room = room.astype(float)
    for _ in range(32):
        if cand.size == 0:
            return keep
        nd = need[cand]
        cum = np.cumsum(nd, axis=0)
        left = room - (cum - nd)
        bad = ((nd > 0) & (nd > left + 1e-12 * np.abs(left) + 1e-6)).any(axis=1)
        if not bad.any():
            keep[cand] = True
            return keep
        f = int(bad.argmax())
        keep[cand[:f]] = True
        if f > 0:
            room = room - cum[f - 1]
        rest = cand[f + 1:]
        nr = need[rest]
        cand = rest[~((nr > 0) & (nr > room + 1e-12 * np.abs(room) + 1e-6)).any(axis=1)]
    rooms = room.tolist()
    n_col = len(rooms)
    for i, row in zip(cand.tolist(), need[cand].tolist(), strict=True):
        if all(row[k] <= 0 or row[k] <= _slack(rooms[k]) for k in range(n_col)):
            keep[i] = True
            for k in range(n_col):
                rooms[k] -= row[k]
    return keep


def _slack(room: float) -> float:
    """Room with a relative tolerance of 1e-12 for rounding in running sums (yuan)."""
    return room + 1e-12 * abs(room) + 1e-6
