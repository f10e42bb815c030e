"""The SimPy model of one replication: processes, decisions and money flows.

Time is measured in **days** from the start of the run (a year is 365 days, a month
365/12 days); amounts are in yuan. One :class:`Model` owns one ``simpy.Environment`` and
all state of a run; nothing is kept at module level.

Rules (the README states them):

* **Applications** of segment ``s`` arrive as a Poisson process with rate
  ``applications_per_year`` (default ``count``) per year, modulated by
  ``1 + des.seasonality * sin(2 pi t / 365)``. Arrivals are batched per day: the firms
  arriving in day ``d`` are handled together at time ``d`` in a fixed order (by segment,
  then by draw), which keeps the trace reproducible and the event count small.
* **Bank decision** (:meth:`Model.decide_bank`): the bank lends when
  ``retained x PD x LGD_mean + des.bank_cost <= segment.interest_margin``, where
  ``retained`` is the lender's share of the loan's loss under its agreement (its layer
  share of the guaranteed amount plus all of the part above the single limit, per yuan
  of exposure; 1.0 for an agreement that covers nothing). A lower retained share means
  more lending. Refusals are counted as ``"bank_margin"`` under the lender.
  **With and without a guarantee** (``des.direct_lending``, default off): the bank first
  checks the same rule with ``retained = 1`` (``PD x LGD_mean + des.bank_cost <=
  interest_margin``); when it passes it lends at once **directly, without a guarantee**
  (:meth:`Model.originate_direct`): no guarantee or other fee, no review, no filing, no
  limit or credit line used, no cap base. Only the others go the guaranteed path below,
  so every guaranteed loan is one the bank would not have made alone. A direct loan
  defaults by the same factor model (no moral-hazard uplift: the bank retains all);
  the lender pays the whole principal (``default`` flow) and receives the whole
  recovery (:meth:`Model.default_direct`, no claim); at maturity it is renewed with
  ``des.renewal_prob`` as a new direct loan. Direct loans are in the loan table
  (``direct`` flag, ``guaranteed = 0``), the ledger checks and the loss series, are
  counted in ``direct_loans`` / ``direct_lent`` (and ``new_loans``, ``defaults``,
  ``matured``, ``renewed``) under the lender, not in ``approvals``, and are left out
  of :attr:`DesResult.book <simkit.des.result.DesResult.book>` (the Monte Carlo book
  holds guaranteed loans only). Summary: ``direct_loans``, ``direct_credit`` (yuan)
  and ``additionality``: the firms served with a guarantee that fail the rule with
  ``retained = 1`` as a share of all firms served (renewals excluded; with direct
  lending on, the guaranteed share of new loans).
* **Moral hazard** (default off): the loan's true default probability is
  ``PD x (1 + kappa x (1 - retained)^gamma)`` (the bank decides on ``PD``).
* **Guarantor decision** (:meth:`Model.underwrite_guarantee`) after the review time of
  the mode. Individual mode (``review_days_individual``): the guarantor's own review
  accepts when ``front_share x PD x LGD_mean <= des.review_loss_tolerance x fee_rate``
  (``fee_rate``: the borrower's guarantee fee rate to it, 1 % when the agreement charges
  none), else ``"guarantor_review"``. Batch "total-to-total" mode
  (``review_days_batch``): no own review. Then, in order: the single-client limit of
  every party standing behind the loan (``"single_client"``), the leverage room of every
  constrained party (``"leverage"``) and every credit line that applies
  (``"credit_line"``). With ``des.refusal = "queue"`` these limit refusals wait instead
  (retried first at each later decision batch, given up after
  ``des.queue_patience_days`` and then counted under their last reason).
* **Filing** (:meth:`Model.file_reguarantee`): an approved guarantee uses every credit
  line whose provider and holder both stand behind the loan, by its guaranteed amount,
  in the line's current period (periods of ``period_years`` from the start).
* **Loan life** (:meth:`Model.run_loan`): per loan year the conditional default
  probability is ``Phi((Phi^-1(PD) - b.Z_y) / sqrt(1 - R^2))`` with the systematic
  factors ``Z_y`` of the calendar year in which the loan year starts (national AR(1) with
  ``factors.national_persistence``; regional, sector and guarantor factors iid per year;
  a Student-t copula divides the threshold by a common chi-square mixing per year). A
  fractional loan year of length ``L`` uses ``1 - (1 - p)^L``; the default time is uniform
  within the loan year. Loans that survive mature; with probability ``des.renewal_prob``
  they are renewed at once as a new loan (new fees, re-checked limits, no bank review;
  a refused renewal is counted under its reason in ``renewal_refusals``, apart from the
  refusals of applications, and the loan is simply repaid).
  Applications still in review (or queued) at the horizon are reported as ``pending``.
* **Run-off** (``run_off=True``, default): at the horizon arrivals, decisions and
  renewals stop, and the environment keeps running until every claim, reimbursement,
  recovery, fee and maturity of the loans already originated has happened. The monthly
  series stop at the horizon; the ledger, the loan table, the settled loss per
  origination year (``DesResult.cohort_losses``) and the summary totals include the
  run-off. ``run_off=False`` drops every event at or after the horizon.
* **Claims** (:meth:`Model.claim`): the bank claims ``claim_trigger_days`` after
  default; ``claim_payment_days`` later the original guarantor pays it the covered part
  (guaranteed amount minus the lender's share). Each uncapped layer reimburses its share
  ``lag_days`` after that payment. A capped layer **settles pro rata per statistics
  period** (:meth:`Model.settle_cap`): what it owes (``share x guaranteed``) accrues per
  (layer, pool, statistics period of the loan's origination) and nothing is paid at once;
  at the period's settlement date, ``min(period end, horizon) + longest tenor of the
  segments under the cap + claim_trigger_days + claim_payment_days + lag_days`` (the
  latest date a claim on a loan of that period can fall due, so every claim of the period
  is known), the budget ``rate x share x base`` with ``base`` the guaranteed (or
  annualised) principal originated in the pool over the **whole** period is compared
  with the total due, and each loan gets ``due x min(1, budget / total due)`` (one
  ``reimbursement`` flow per loan); the refused rest of each loan is paid to the original
  guarantor by the cap's overflow party (one ``overflow`` flow per loan; no flow when
  that is the guarantor itself). Every loan of a period thus has the same refused
  fraction, whenever it defaulted. A guarantor-kind overflow party is the loan's own
  original guarantor. The refused amounts (``cap_refused``, ``cap_binding_months``) are
  counted in the month each reimbursement was due (``lag_days`` after the guarantor's
  payment), not in the settlement month. With ``run_off=False`` settlements after the
  horizon do not happen: capped layers have then paid nothing on those periods. An
  agreement's ``fiscal_compensation`` budget reimburses the compensated layer its
  fraction of each payment at once (:meth:`Model.compensate`).
* **Random draws per firm** (:meth:`Model.fates`): every uniform and normal that decides
  a loan's fate (loan life above, recoveries below) is drawn up front per (segment,
  renewal number) from a stream keyed by ``("des.fate", replication, segment, renewal
  number)``, one row per application in arrival order: loan ``r`` of an application
  (``r = 0`` the first, ``r`` its ``r``-th renewal) always uses the same row, whatever
  was decided for other firms. The renewal at maturity happens when the loan's renewal
  uniform is below ``des.renewal_prob``.
* **Recoveries** (:meth:`Model.recover`): ``exposure x (1 - LGD)``, LGD ~ Beta(mean, sd)
  by the inverse CDF at the loan's LGD uniform (mean shifted by ``factors.downturn_lgd``
  with the national factor of the default year),
  arrive after a lognormal lag with median ``agreement.recovery_lag_years`` and sigma
  ``des.recovery_lag_sigma``, but not before the last reimbursement (for a loan under a
  capped layer: not before that layer's period settlement, so a recovery due earlier
  waits for it), and are returned pro rata to what each party finally paid net on the
  loan.
* **Fees** are paid per loan year, per the agreement's fee list: ``rate x guaranteed x
  share x L`` with ``L = min(1, tenor_years - k)`` for loan year ``k``, the first at
  origination and each later one at its anniversary if the loan has not defaulted by
  then (as ``sharing.fee_flows`` charges ``min(tenor, years)`` years).
* **Capital injections**: when a guarantor, provincial or national-fund party with net
  assets pays something and its capital falls below ``des.injection_trigger x initial``,
  the local government of its region (else the first ``local_gov`` party, else the
  external ``fiscal`` account) injects ``des.injection_target x initial - capital``.
  ``injection_trigger = 0`` (default) switches injections off.

Differences from the Monte Carlo waterfall (:mod:`simkit.montecarlo`, :mod:`simkit.sharing`):

* Caps are settled pro rata per (layer, pool, statistics period of origination) against
  the whole period's base, as the Monte Carlo scales all cells of a pool by one factor;
  the DES applies the factor per loan (the same fraction for every loan of the period)
  and pays the capped layer's share only at the period's settlement date, so in the
  series the holder carries it until then and recoveries on those loans wait for it.
* Upper layers reimburse the original guarantor directly; the net shares are the same as
  a chain (provincial -> guarantor, national fund -> provincial).
* A firm the guarantor refuses does not get an unguaranteed loan (it is counted as a
  refusal, no loan is booked): with ``des.direct_lending`` such a firm failed the
  bank's rule without a guarantee already; without it, every loan is guaranteed.
* Guarantee liability (leverage and single-client use) is released at default, before
  the compensation is paid. Reimbursements due from a capped layer count as a receivable
  in the holder's capital for the leverage and single-client limits until the period is
  settled (then the refused part is lost and the paid part arrives as cash).
* Common random numbers: a firm's fate (default uniforms per loan year, position in the
  loan year, LGD uniform, recovery-lag normal, renewal uniform) is drawn per application
  and renewal number (:meth:`Model.fates`), not in event order, so two variants of a
  scenario that draw the same applications (same segments, counts, exposure and PD
  settings, seed and replication) give a firm served in both the same default, LGD,
  lag and renewal outcomes; the factor path is shared too. Decisions, limits and caps
  still differ, and with moral hazard on the default thresholds differ by the retained
  share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy
from scipy import special

from simkit import _interrupt
from simkit._rng import stream
from simkit.des.caps import CapAccount, Step
from simkit.des.ledger import KIND_CODE, Ledger
from simkit.des.parties import (
    Account,
    CreditLineState,
    EnterpriseSegment,
    Institution,
    make_institution,
)
from simkit.factors import default_prob_over, default_threshold, moral_hazard_pd
from simkit.regulation import (
    capital_injection,
    guaranteed_amount,
    liability_coefficients,
    risk_weight,
)
from simkit.scenario import BORROWER
from simkit.sharing import compile_plan, split_recovery

if TYPE_CHECKING:
    from simkit.scenario import Scenario

__all__ = ["DAYS_PER_MONTH", "DAYS_PER_YEAR", "EVENTS", "REASONS", "Model"]

DAYS_PER_YEAR = 365.0
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0
#: Refusal reasons, in the order they are checked.
REASONS = ("bank_margin", "guarantor_review", "single_client", "leverage", "credit_line")
#: Event-log event names.
EVENTS = ("application", "refusal", "queued", "origination", "maturity", "renewal", "default",
          "claim", "renewal_refusal", "direct")
_EV = {e: i for i, e in enumerate(EVENTS)}
_RS = {r: i for i, r in enumerate(REASONS)}
_K_DEFAULT = KIND_CODE["default"]
_K_COMP = KIND_CODE["compensation"]
_K_REIMB = KIND_CODE["reimbursement"]
_K_OVER = KIND_CODE["overflow"]
_K_REC = KIND_CODE["recovery"]
_K_INJ = KIND_CODE["injection"]
#: Type of the generator functions run as SimPy processes.
Process = Generator[simpy.Event, Any, None]
_FLOW_SERIES = ("applications", "approvals", "new_loans", "new_guaranteed", "defaults",
                "default_amount", "matured", "renewed", "queued", "claims", "direct_loans",
                "direct_lent")
_STOCK_SERIES = ("capital", "outstanding", "weighted_outstanding", "leverage")


class Model:
    """One replication of the discrete-event model (see the module docstring).

    Parameters
    ----------
    scenario : Scenario
    seed : int
        Root seed; every random stream is keyed by ``(purpose, replication, ...)``
        (per-firm fates also by segment and renewal number).
    replication : int
    years : float
        Horizon in years (the run covers ``[0, 365 * years)`` days).
    event_log : bool
        Keep a per-application / per-loan event log.
    run_off : bool
        After the horizon, stop arrivals and renewals but keep running until every
        claim, reimbursement, recovery and fee of the loans already originated has
        settled (default). ``False`` stops everything at the horizon.
    """

    # the refusal queue (``refusal = "queue"``), set by _clear_queue and underwrite_guarantee
    q_app: np.ndarray
    q_since: np.ndarray
    q_reason: np.ndarray
    q_party: np.ndarray
    q_need: np.ndarray

    def __init__(self, scenario: Scenario, *, seed: int, replication: int = 0,
                 years: float | None = None, event_log: bool = False, run_off: bool = True):
        self.scenario = scenario
        self.des = des = scenario.des
        self.seed = int(seed)
        self.replication = int(replication)
        self.years = float(des.years if years is None else years)
        if not self.years > 0:
            raise ValueError(f"years must be > 0, got {self.years!r}")
        self.horizon = self.years * DAYS_PER_YEAR
        self.run_off = bool(run_off)
        #: events of loans (claims, maturities, fees) are scheduled up to this time
        self.settle_until = math.inf if self.run_off else self.horizon
        self.env = simpy.Environment()
        self.n_months = max(1, math.ceil(self.years * 12 - 1e-9))
        self.keep_log = event_log
        self._log: list[tuple[np.ndarray, ...]] = []

        # -- accounts ------------------------------------------------------------------
        names = scenario.party_names
        self.n_parties = n_parties = len(names)
        self.institutions: list[Institution] = [make_institution(p, i)
                                                for i, p in enumerate(scenario.parties)]
        self.borrower = n_parties
        self.fiscal = n_parties + 1
        self.accounts: list[Account] = [*self.institutions, Account("borrower", n_parties),
                                        Account("fiscal", n_parties + 1)]
        self.n_accounts = n_accounts = len(self.accounts)
        self.ledger = Ledger(tuple(a.name for a in self.accounts))
        self.constrained = [a.index for a in self.institutions if a.constrained]
        self.single_limited = [a.index for a in self.institutions
                               if math.isfinite(a.single_client_limit)]

        # -- segments, caps, credit lines ----------------------------------------------
        self.caps: list[CapAccount] = []
        self.lines = [CreditLineState(line, names.index(line.from_party),
                                      names.index(line.to_party))
                      for line in scenario.credit_lines]
        self.segments = [self._compile_segment(s, seg) for s, seg in
                         enumerate(scenario.segments)]
        claim_days = des.claim_trigger_days + des.claim_payment_days
        for spec in self.segments:
            for step in spec.layers:
                if step.cap >= 0:
                    cap = self.caps[step.cap]
                    cap.settle_extra = max(cap.settle_extra,
                                           spec.tenor_days + claim_days + cap.lag)
        n_seg = len(self.segments)
        self.coef = np.array([s.coef for s in self.segments]).reshape(n_seg, n_accounts)
        self.line_applies = np.array(
            [[1.0 if li in s.lines else 0.0 for li in range(len(self.lines))]
             for s in self.segments]).reshape(n_seg, len(self.lines))
        self.seg_front = np.array([s.front for s in self.segments], dtype=np.intp)
        self.seg_lender = np.array([s.lender for s in self.segments], dtype=np.intp)
        self.seg_tenor_years = np.array([s.segment.tenor_years for s in self.segments])
        self.tenors = sorted(set(self.seg_tenor_years.tolist()))
        # (party, liability per yuan guaranteed) of each segment, for single-loan updates
        self.seg_liab = [[(j, float(c)) for j, c in enumerate(s.coef) if c != 0.0]
                         for s in self.segments]
        self.seg_loadings = np.array([s.loadings for s in self.segments]).reshape(n_seg, 4)
        self.seg_region = np.array([s.region for s in self.segments], dtype=np.intp)
        self.seg_sector = np.array([s.sector for s in self.segments], dtype=np.intp)
        self.seg_idio = np.sqrt(1.0 - (self.seg_loadings**2).sum(axis=1))
        self.review_days = (des.review_days_individual if des.mode == "individual"
                            else des.review_days_batch)
        self._injectable = {a.index for a in self.institutions
                            if a.kind in ("guarantor", "provincial", "national_fund")
                            and a.initial > 0} if des.injection_trigger > 0 else set()
        local = [a for a in self.institutions if a.kind == "local_gov"]
        self._injector = {}
        for a in self.institutions:
            same = [g for g in local if a.region is not None and g.region == a.region]
            pick: Sequence[Account] = same or local or [self.accounts[self.fiscal]]
            self._injector[a.index] = pick[0].index

        # -- random streams and pre-drawn inputs ----------------------------------------
        self._draw_factors()
        self._draw_applications()
        #: renewal number of each application's current (or last) loan
        self.app_gen = np.zeros(len(self.app_day), dtype=np.int64)
        #: per renewal number: the applications' fates (see :meth:`fates`)
        self._fates: dict[int, tuple[np.ndarray, ...]] = {}

        # -- result accumulators -------------------------------------------------------
        # one extra row collects what happens after the horizon (run-off), dropped from
        # the monthly series
        shape = (self.n_months + 1, n_parties)
        self.flows = {k: np.zeros(shape) for k in _FLOW_SERIES}
        self.stocks = {k: np.zeros(shape) for k in _STOCK_SERIES}
        self.refusals = {r: np.zeros(shape) for r in REASONS}
        self.renewal_refusals = {r: np.zeros(shape) for r in REASONS}
        self.line_use = np.zeros((self.n_months, len(self.lines)))
        self.cap_refusals: list[tuple[float, int, float]] = []
        self._loans: list[tuple[np.ndarray, ...]] = []
        self.n_loans = 0
        self.defaults: list[tuple[int, float, float]] = []  # (loan, time, exposure)
        self.recovered: dict[int, float] = {}
        # the queue (refusal = "queue"): application, time queued, last reason and party
        self._clear_queue()
        self.counts = dict.fromkeys(("applications", "bank_decisions", "guarantor_decisions",
                                     "originations", "maturities", "defaults", "claims"), 0)

    # ==================================================================================
    # set-up
    # ==================================================================================
    def _compile_segment(self, s: int, seg: Any) -> EnterpriseSegment:
        """The segment's agreement as the rulebook compiles it (:func:`compile_plan`),
        turned into account indices and settlement steps."""
        sc = self.scenario
        col = {n: i for i, n in enumerate(sc.party_names)}
        col[BORROWER] = self.borrower
        a_idx = [a.name for a in sc.agreements].index(seg.agreement)
        plan = compile_plan(sc, a_idx, seg.guarantor, seg.region, seg.name)
        out = EnterpriseSegment(s, seg)
        lender = col[plan.lender]
        front = col[plan.front]
        resolved = [(col[lp.party], lp) for lp in plan.layers]
        lender_share = plan.lender_share
        coef = liability_coefficients(plan, sc.party_names, self.n_accounts)
        steps = []
        regions = sorted({x.region for x in sc.segments})
        for c, layer in resolved:
            holder = lender if c == lender else front
            cap_id, overflow = -1, holder
            if layer.cap is not None:
                cap = layer.cap
                label = cap.label
                ids = [i for i, x in enumerate(self.caps) if x.label == label]
                if ids:
                    cap_id = ids[0]
                else:
                    cap_id = len(self.caps)
                    self.caps.append(CapAccount(label, cap.rate, layer.share,
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
            if payer == self.borrower and payee == front:
                fee_rate += fee.rate
        inside = {c for c, layer in resolved if layer.share > 0} | {front}
        out.lines = [i for i, line in enumerate(self.lines)
                     if line.provider in inside and line.holder in inside]
        out.agreement = a_idx
        out.lender = lender
        out.front = front
        out.front_share = sum(layer.share for c, layer in resolved if c == front)
        out.lender_share = lender_share
        out.layers = tuple(steps)
        out.coef = coef
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
        out.region = regions.index(seg.region)
        out.sector = sorted({x.sector for x in sc.segments}).index(seg.sector)
        out.gfactor = front
        return out

    def _draw_factors(self) -> None:
        """Systematic factor path per calendar year (shape ``(n_years, ...)``)."""
        f = self.scenario.factors
        max_tenor = max((s.tenor_years for s in self.scenario.segments), default=1.0)
        n = math.ceil(self.years + max_tenor) + 2
        rng = stream(self.seed, "des.factors", self.replication)
        eps = rng.standard_normal(n)
        phi = f.national_persistence
        z = np.empty(n)
        z[0] = eps[0]
        for t in range(1, n):
            z[t] = phi * z[t - 1] + math.sqrt(1.0 - phi * phi) * eps[t]
        n_reg = len({s.region for s in self.scenario.segments})
        n_sec = len({s.sector for s in self.scenario.segments})
        from simkit.factors import stressed_national  # factors.national_path, as the MC

        self.z_nat = stressed_national(z, np.arange(n), f.national_path)
        self.z_reg = rng.standard_normal((n, max(n_reg, 1)))
        self.z_sec = rng.standard_normal((n, max(n_sec, 1)))
        self.z_gua = rng.standard_normal((n, self.n_accounts))
        if f.copula == "student_t":
            self.mix = np.sqrt(f.dof / rng.chisquare(f.dof, n))
        else:
            self.mix = np.ones(n)
        self.n_cal = n

    def _draw_applications(self) -> None:
        """All applications of the horizon, sorted by day (arrays of shape ``(n_apps,)``)."""
        des = self.des
        n_days = math.ceil(self.horizon - 1e-9)
        days = np.arange(n_days, dtype=np.float64)
        season = 1.0 + des.seasonality * np.sin(2 * np.pi * (days + 0.5) / DAYS_PER_YEAR)
        parts: list[tuple[np.ndarray, ...]] = []
        self._seg_n: list[int] = []
        seg: Any  # an EnterpriseSegment in the loop, then each application's segment index
        for s, seg in enumerate(self.segments):
            rng = stream(self.seed, "des.arrivals", self.replication, s)
            counts = rng.poisson(seg.rate_per_day * season)
            n = int(counts.sum())
            self._seg_n.append(n)
            exposure = seg.segment.exposure.sample(rng, n)
            pd = np.clip(seg.segment.default_prob.sample(rng, n), 1e-12, 1 - 1e-12)
            parts.append((np.repeat(days, counts), np.full(n, s, dtype=np.intp), exposure, pd))
        day = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
        order = np.argsort(day, kind="stable")
        self._app_order = order
        self.app_day = day[order]
        self.app_seg = (np.concatenate([p[1] for p in parts]) if parts
                        else np.zeros(0, np.intp))[order]
        self.app_exposure = (np.concatenate([p[2] for p in parts]) if parts
                             else np.zeros(0))[order]
        pd = (np.concatenate([p[3] for p in parts]) if parts else np.zeros(0))[order]
        self.app_pd = pd
        self.day_start = np.searchsorted(self.app_day, np.arange(n_days + 1), side="left")
        self.n_days = n_days
        seg = self.app_seg
        limit = np.array([s.single_limit for s in self.segments])[seg]
        g = guaranteed_amount(self.app_exposure, limit)
        self.app_guaranteed = g
        lender_share = np.array([s.lender_share for s in self.segments])[seg]
        covers = (self.seg_front != self.seg_lender)[seg]
        retained = np.where(covers, (lender_share * g + self.app_exposure - g)
                            / self.app_exposure, 1.0)
        self.app_retained = retained
        lgd = np.array([s.lgd_mean for s in self.segments])[seg]
        margin = np.array([s.margin for s in self.segments])[seg]
        self.app_bank_ok = retained * pd * lgd + des.bank_cost <= margin + 1e-15
        # the same rule with retained share 1: the bank would lend without a guarantee
        self.app_alone_ok = pd * lgd + des.bank_cost <= margin + 1e-15
        self.app_direct = (self.app_alone_ok if des.direct_lending
                           else np.zeros(len(pd), dtype=bool))
        if des.direct_lending:
            retained = np.where(self.app_direct, 1.0, retained)  # direct: all retained
        front_share = np.array([s.front_share for s in self.segments])[seg]
        fee_rate = np.array([s.fee_rate for s in self.segments])[seg]
        self.app_review_ok = (front_share * pd * lgd
                              <= des.review_loss_tolerance * fee_rate + 1e-15)
        pd_eff = moral_hazard_pd(pd, retained, des.moral_hazard_kappa,
                                 des.moral_hazard_gamma)
        self.app_pd_eff = pd_eff
        fm = self.scenario.factors
        self.app_threshold = default_threshold(pd_eff, fm.copula, fm.dof)
        self.app_weight = risk_weight(g, self.scenario.regulation)

    def fates(self, gen: int) -> tuple[np.ndarray, ...]:
        """The fate of every application's loan number ``gen`` (0: the first loan, ``r``:
        its ``r``-th renewal), drawn once per (segment, ``gen``) in the segment's arrival
        order, so the same firm has the same draws whatever the decisions (common random
        numbers across variants of a scenario).

        Returns
        -------
        u : ndarray, shape (n_apps, max loan years)
            Default uniform per loan year.
        v : ndarray, shape (n_apps,)
            Position of the default within its loan year (uniform).
        lgd_u : ndarray, shape (n_apps,)
            Uniform of the LGD (inverse Beta CDF at default).
        lag_z : ndarray, shape (n_apps,)
            Standard normal of the recovery lag.
        renew_u : ndarray, shape (n_apps,)
            Uniform of the renewal decision at the loan's maturity.
        """
        out = self._fates.get(gen)
        if out is None:
            kmax = max((math.ceil(t - 1e-12) for t in self.tenors), default=1)
            kmax = max(kmax, 1)
            chunks: list[tuple[np.ndarray, ...]] = []
            for s, n in enumerate(self._seg_n):
                rng = stream(self.seed, "des.fate", self.replication, s, gen)
                k_s = max(math.ceil(float(self.seg_tenor_years[s]) - 1e-12), 1)
                u = np.ones((n, kmax))
                u[:, :k_s] = rng.random((n, k_s))
                chunks.append((u, rng.random(n), rng.random(n), rng.standard_normal(n),
                               rng.random(n)))
            order = self._app_order
            if chunks:
                out = tuple(np.concatenate([c[i] for c in chunks])[order] for i in range(5))
            else:
                out = (np.ones((0, kmax)), *(np.zeros(0) for _ in range(4)))
            self._fates[gen] = out
        return out

    def _fate_rows(self, apps: np.ndarray, col: int) -> np.ndarray:
        """Column ``col`` of :meth:`fates` for each application's current loan."""
        gens = self.app_gen[apps]
        g0 = int(gens[0]) if len(gens) else 0
        if (gens == g0).all():
            return self.fates(g0)[col][apps]
        out = np.empty((len(apps), *self.fates(0)[col].shape[1:]))
        for g in np.unique(gens).tolist():
            sel = gens == g
            out[sel] = self.fates(g)[col][apps[sel]]
        return out

    def _renewing(self, apps: np.ndarray) -> np.ndarray:
        """The applications whose loans, maturing now, are renewed (renewal uniform of
        the loan below ``des.renewal_prob``); their renewal number goes up by one."""
        again = apps[self._fate_rows(apps, 4) < self.des.renewal_prob]
        self.app_gen[again] += 1
        return again

    # ==================================================================================
    # bookkeeping helpers
    # ==================================================================================
    def month(self, t: float) -> int:
        """Month index of time ``t`` (days); ``n_months`` for the run-off after the
        horizon."""
        if t >= self.horizon:
            return self.n_months
        return min(int(t / DAYS_PER_MONTH), self.n_months - 1)

    def pay(self, t: float, payer: int, payee: int, kind: int, amount: float,
            loan: int) -> None:
        """Record one flow of ``amount`` yuan and move it between the two accounts."""
        if amount <= 0.0:
            return
        self.ledger.add(t, payer, payee, kind, amount, loan)
        acc = self.accounts
        acc[payer].capital -= amount
        acc[payee].capital += amount
        if payer in self._injectable:
            self.inject_capital(t, payer)

    def inject_capital(self, t: float, index: int) -> None:
        """Apply the injection rule to party ``index`` after it paid something."""
        party = self.institutions[index]
        des = self.des
        amount = float(capital_injection(party.capital, party.initial,
                                         des.injection_trigger, des.injection_target))
        if amount > 0:
            party.injected += amount
            self.pay(t, self._injector[index], index, _K_INJ, amount, -1)

    def _log_rows(self, t: float, event: str, ids: np.ndarray, party: np.ndarray | int,
                  amount: np.ndarray | float = 0.0, reason: np.ndarray | int = -1) -> None:
        n = len(ids)
        self._log.append((np.full(n, t), np.full(n, _EV[event], np.int8),
                          np.asarray(ids, np.int64),
                          np.broadcast_to(np.asarray(party, np.int16), (n,)).copy(),
                          np.broadcast_to(np.asarray(amount, np.float64), (n,)).copy(),
                          np.broadcast_to(np.asarray(reason, np.int8), (n,)).copy()))

    def _refuse(self, t: float, apps: np.ndarray, reason: int, party: np.ndarray, *,
                renewal: bool = False) -> None:
        """Count refusals of applications (or of renewals: kept apart, they are loans
        already served, not applications)."""
        target = self.renewal_refusals if renewal else self.refusals
        np.add.at(target[REASONS[reason]][self.month(t)], party, 1.0)
        if self.keep_log:
            self._log_rows(t, "renewal_refusal" if renewal else "refusal", apps, party, 0.0,
                           reason)

    # ==================================================================================
    # processes and decisions
    # ==================================================================================
    def arrive_applications(self) -> Process:
        """Process: each day, take that day's applications to the bank's decision."""
        env = self.env
        starts = self.day_start
        for d in range(self.n_days):
            lo, hi = int(starts[d]), int(starts[d + 1])
            if hi == lo:
                continue
            if d > env.now:
                yield env.timeout(d - env.now)
            apps = np.arange(lo, hi)
            self.counts["applications"] += hi - lo
            m = self.month(env.now)
            np.add.at(self.flows["applications"][m], self.seg_front[self.app_seg[apps]], 1.0)
            if self.keep_log:
                self._log_rows(env.now, "application", apps, self.seg_front[self.app_seg[apps]])
            ok = self.decide_bank(apps)
            if ok.size or self.q_app.size:
                env.process(self.underwrite_guarantee(ok))

    def decide_bank(self, apps: np.ndarray) -> np.ndarray:
        """The bank's rule (module docstring): with ``des.direct_lending`` it lends at once
        without a guarantee to the applications that pass with retained share 1; returns
        the applications it would lend to with the guarantee."""
        self.counts["bank_decisions"] += len(apps)
        if self.des.direct_lending:
            direct = self.app_direct[apps]
            if direct.any():
                self.originate_direct(apps[direct], renewal=False)
                apps = apps[~direct]
        ok = self.app_bank_ok[apps]
        if not ok.all():
            bad = apps[~ok]
            self._refuse(self.env.now, bad, _RS["bank_margin"], self.seg_lender[self.app_seg[bad]])
        return apps[ok]

    def underwrite_guarantee(self, apps: np.ndarray) -> Process:
        """Process: the guarantor reviews (mode), checks its limits and issues guarantees."""
        env = self.env
        if self.review_days > 0:
            yield env.timeout(self.review_days)
        now = env.now
        if now >= self.horizon:
            return  # run-off: decisions stop at the horizon, these stay pending
        apps = np.asarray(apps, dtype=np.intp)
        since = np.full(len(apps), now)
        queued = np.zeros(len(apps), dtype=bool)
        need = None
        if self.q_app.size:
            expired = now - self.q_since > self.des.queue_patience_days
            if expired.any():
                self._refuse_many(now, self.q_app[expired], self.q_reason[expired],
                                  self.q_party[expired])
            keep = ~expired
            need = np.concatenate([self.q_need[keep], self.limit_need(apps)])
            apps = np.concatenate([self.q_app[keep], apps])
            since = np.concatenate([self.q_since[keep], since])
            queued = np.concatenate([np.ones(int(keep.sum()), dtype=bool), queued])
            self._clear_queue()
        if apps.size == 0:
            return
        self.counts["guarantor_decisions"] += len(apps)
        if self.des.mode == "individual":
            ok = self.app_review_ok[apps]
            if not ok.all():
                bad = apps[~ok]
                self._refuse(now, bad, _RS["guarantor_review"],
                             self.seg_front[self.app_seg[bad]])
                apps, since, queued = apps[ok], since[ok], queued[ok]
                if need is not None:
                    need = need[ok]
        if self.des.refusal == "queue" and need is None:
            need = self.limit_need(apps)
        approved, (r_pos, r_reason, r_party) = self.check_limits(apps, now, need)
        if r_pos.size:
            r_app = apps[r_pos]
            if self.des.refusal == "queue":
                self.q_app, self.q_since = r_app, since[r_pos]
                self.q_reason, self.q_party = r_reason, r_party
                assert need is not None  # computed above for the queue
                self.q_need = need[r_pos]
                new = ~queued[r_pos]
                if new.any():
                    parties = r_party[new]
                    np.add.at(self.flows["queued"][self.month(now)], parties, 1.0)
                    if self.keep_log:
                        self._log_rows(now, "queued", r_app[new], parties)
            else:
                for reason in np.unique(r_reason).tolist():
                    sel = r_reason == reason
                    self._refuse(now, r_app[sel], reason, r_party[sel])
        if approved[0].size:
            self.file_reguarantee(approved[0], approved[3])
            self.originate(approved[0], approved[1], approved[2], renewal=False)

    def _clear_queue(self) -> None:
        self.q_app = np.zeros(0, dtype=np.intp)
        self.q_since = np.zeros(0)
        self.q_reason = np.zeros(0, dtype=np.intp)
        self.q_party = np.zeros(0, dtype=np.intp)
        self.q_need = np.zeros((0, len(self.constrained) + len(self.lines)))

    def _refuse_many(self, t: float, apps: np.ndarray, reasons: np.ndarray,
                     parties: np.ndarray) -> None:
        """Refuse applications with a reason each (counts per reason, log in order)."""
        m = self.month(t)
        for reason in np.unique(reasons).tolist():
            sel = reasons == reason
            np.add.at(self.refusals[REASONS[reason]][m], parties[sel], 1.0)
        if self.keep_log:
            self._log_rows(t, "refusal", apps, parties, 0.0, reasons)

    def limit_need(self, apps: np.ndarray) -> np.ndarray:
        """What each application uses of each limit, shape ``(n, k)`` (yuan): the
        constrained parties' risk-weighted liability, then each credit line's use."""
        seg = self.app_seg[apps]
        g = self.app_guaranteed[apps]
        return np.concatenate([self.coef[seg][:, self.constrained]
                               * (g * self.app_weight[apps])[:, None],
                               self.line_applies[seg] * g[:, None]], axis=1)

    def check_limits(self, apps: np.ndarray, now: float, need: np.ndarray | None = None
                     ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """Single-client, leverage and credit-line checks, in arrival order.

        Each application is checked against the room left by those before it that were
        approved. Applications that do not fit even the room at the start of the batch
        are refused without entering the sequential pass (room only shrinks within a
        batch); their reason is the first check they fail with the room left at their
        position.

        ``need`` is :meth:`limit_need` of ``apps`` when already known (the queue keeps
        it).

        Returns
        -------
        approved : (apps, liability, weighted liability, line use)
            Arrays of shape ``(n,)``, ``(n, n_accounts)``, ``(n, n_accounts)`` and
            ``(n, n_lines)`` (yuan).
        refused : (positions, reason codes, refusing parties)
            Integer arrays: positions in ``apps`` (single-client refusals first, then the
            others, each in arrival order), reasons and parties.
        """
        pos = np.arange(len(apps))
        empty = np.zeros(0, dtype=np.intp)
        r_pos, r_reason, r_party = [empty], [empty], [empty]
        seg = self.app_seg[apps]
        g = self.app_guaranteed[apps]
        inst = self.institutions
        if self.single_limited:
            lim = np.array([inst[j].single_limit() for j in self.single_limited])
            over = self.coef[seg][:, self.single_limited] * g[:, None] > lim
            bad = over.any(axis=1)
            if bad.any():
                r_pos.append(pos[bad])
                r_reason.append(np.full(int(bad.sum()), _RS["single_client"], np.intp))
                r_party.append(np.array(self.single_limited, dtype=np.intp)[
                    over.argmax(axis=1)[bad]])
                ok = ~bad
                apps, pos, seg, g = apps[ok], pos[ok], seg[ok], g[ok]
                if need is not None:
                    need = need[ok]
        for line in self.lines:
            line.roll(now)
        if need is None:
            need = self.limit_need(apps)
        n_c = len(self.constrained)
        room0 = np.array([inst[j].room() for j in self.constrained]
                         + [line.room() for line in self.lines])
        slack0 = room0 + 1e-12 * np.abs(room0) + 1e-6
        fail0 = (need > 0) & (need > slack0)
        if fail0.any() or (need.sum(axis=0) > slack0).any():
            keep = self._fit_in_order(need, room0, np.flatnonzero(~fail0.any(axis=1)))
            # room left at each refused position (approved ones before it) and the
            # first check it fails there
            kept = np.flatnonzero(keep)
            refused = np.flatnonzero(~keep)
            cum = np.concatenate([np.zeros((1, need.shape[1])),
                                  np.cumsum(need[kept], axis=0)])
            left = room0 - cum[np.searchsorted(kept, refused)]
            nr = need[refused]
            col = ((nr > 0) & (nr > left + 1e-12 * np.abs(left) + 1e-6)).argmax(axis=1)
            parties = np.array(self.constrained + [line.provider for line in self.lines],
                               dtype=np.intp)
            r_pos.append(pos[refused])
            r_reason.append(np.where(col < n_c, _RS["leverage"], _RS["credit_line"])
                            .astype(np.intp))
            r_party.append(parties[col])
            apps, seg, g = apps[keep], seg[keep], g[keep]
        liab = self.coef[seg] * g[:, None]
        wliab = liab * self.app_weight[apps][:, None]
        use = self.line_applies[seg] * g[:, None]
        refused_out = (np.concatenate(r_pos), np.concatenate(r_reason),
                       np.concatenate(r_party))
        return (apps, liab, wliab, use), refused_out

    @staticmethod
    def _fit_in_order(need: np.ndarray, room: np.ndarray, cand: np.ndarray) -> np.ndarray:
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

    def file_reguarantee(self, apps: np.ndarray, use: np.ndarray) -> None:
        """File approved guarantees with the re-guarantors: use the credit lines (yuan)."""
        if self.lines:
            totals = use.sum(axis=0)
            for k, line in enumerate(self.lines):
                if totals[k] > 0:
                    line.use(float(totals[k]))

    def _new_loan_ids(self, n: int) -> np.ndarray:
        """Ids of ``n`` new loans (int64, shape ``(n,)``); counts the originations."""
        ids = np.arange(self.n_loans, self.n_loans + n, dtype=np.int64)
        self.n_loans += n
        self.counts["originations"] += n
        return ids

    def originate(self, apps: np.ndarray, liab: np.ndarray, wliab: np.ndarray, *,
                  renewal: bool) -> None:
        """Disburse guaranteed loans now: balances, cap bases, fees, default draws."""
        env = self.env
        now = env.now
        n = len(apps)
        ids = self._new_loan_ids(n)
        seg = self.app_seg[apps]
        g = self.app_guaranteed[apps]
        inst = self.institutions
        lt = liab.sum(axis=0)
        wt = wliab.sum(axis=0)
        for j in range(self.n_parties):
            if lt[j] != 0.0:
                inst[j].outstanding += float(lt[j])
                inst[j].weighted += float(wt[j])
        m = self.month(now)
        front = self.seg_front[seg]
        np.add.at(self.flows["approvals" if not renewal else "renewed"][m], front, 1.0)
        np.add.at(self.flows["new_loans"][m], front, 1.0)
        np.add.at(self.flows["new_guaranteed"][m], front, g)
        n_seg = len(self.segments)
        tenor = self.seg_tenor_years[seg]
        per_seg_g = np.bincount(seg, weights=g, minlength=n_seg)
        per_seg_a = np.bincount(seg, weights=g * tenor, minlength=n_seg)
        for s in np.flatnonzero(per_seg_g):
            spec = self.segments[s]
            for step in spec.layers:
                if step.cap >= 0:
                    self.caps[step.cap].add_base(now, per_seg_g[s], per_seg_a[s])
        # default draws, per loan year
        kmax = math.ceil(float(tenor.max()) - 1e-12)
        t_def = self.draw_default_times(apps, now)
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
        self._loans.append((ids, apps.astype(np.int64), np.full(n, now), end,
                            np.isfinite(t_def), np.full(n, renewal), np.zeros(n, dtype=bool)))
        if self.keep_log:
            self._log_rows(now, "renewal" if renewal else "origination", ids, front, g)
        self.run_loan(ids, apps, t_def, tenor)

    def draw_default_times(self, apps: np.ndarray, now: float) -> np.ndarray:
        """Default time (days, ``inf`` if none) of loans starting now, per loan year from
        the factor model (module docstring); the guarantor factor is the segment's
        original guarantor's."""
        seg = self.app_seg[apps]
        tenor = self.seg_tenor_years[seg]
        front = self.seg_front[seg]
        n = len(apps)
        kmax = math.ceil(float(tenor.max()) - 1e-12)
        u = self._fate_rows(apps, 0)[:, :kmax]
        v = self._fate_rows(apps, 1)
        t_def = np.full(n, np.inf)
        thr = self.app_threshold[apps]
        load = self.seg_loadings[seg]
        idio = self.seg_idio[seg]
        reg, sec = self.seg_region[seg], self.seg_sector[seg]
        for k in range(kmax):
            length = np.clip(tenor - k, 0.0, 1.0)
            cal = min(int((now + DAYS_PER_YEAR * k) // DAYS_PER_YEAR), self.n_cal - 1)
            bz = (load[:, 0] * self.z_nat[cal] + load[:, 1] * self.z_reg[cal, reg]
                  + load[:, 2] * self.z_sec[cal, sec] + load[:, 3] * self.z_gua[cal, front])
            p = special.ndtr((thr / self.mix[cal] - bz) / idio)
            pk = default_prob_over(p, length)  # the time rule (simkit.factors)
            hit = (u[:, k] < pk) & np.isinf(t_def) & (length > 0)
            t_def[hit] = now + DAYS_PER_YEAR * (k + v[hit] * length[hit])
        return t_def

    def originate_direct(self, apps: np.ndarray, *, renewal: bool) -> None:
        """Lend now without a guarantee (``des.direct_lending``): no fee, no filing, no
        limit used; the lender bears the whole loss and gets every recovery."""
        env = self.env
        now = env.now
        n = len(apps)
        ids = self._new_loan_ids(n)
        seg = self.app_seg[apps]
        x = self.app_exposure[apps]
        lender = self.seg_lender[seg]
        m = self.month(now)
        np.add.at(self.flows["direct_loans"][m], lender, 1.0)
        np.add.at(self.flows["direct_lent"][m], lender, x)
        np.add.at(self.flows["new_loans"][m], lender, 1.0)
        if renewal:
            np.add.at(self.flows["renewed"][m], lender, 1.0)
        tenor = self.seg_tenor_years[seg]
        t_def = self.draw_default_times(apps, now)
        end = np.where(np.isfinite(t_def), t_def, now + tenor * DAYS_PER_YEAR)
        self._loans.append((ids, apps.astype(np.int64), np.full(n, now), end,
                            np.isfinite(t_def), np.full(n, renewal), np.ones(n, dtype=bool)))
        if self.keep_log:
            self._log_rows(now, "direct", ids, lender, x)
        horizon = self.settle_until
        for i in np.flatnonzero(t_def < horizon).tolist():
            env.process(self.default_direct(int(ids[i]), int(apps[i]), float(t_def[i])))
        alive = np.isinf(t_def)
        for ten in self.tenors:
            if now + ten * DAYS_PER_YEAR >= horizon:
                continue
            sel = alive & (tenor == ten)
            if sel.any():
                ev = env.timeout(ten * DAYS_PER_YEAR)
                ev.callbacks.append(partial(self.mature_direct, ids[sel], apps[sel]))

    def mature_direct(self, ids: np.ndarray, apps: np.ndarray, _event: Any = None) -> None:
        """Callback: direct loans repaid at maturity; some renew as direct loans."""
        now = self.env.now
        lender = self.seg_lender[self.app_seg[apps]]
        self.counts["maturities"] += len(ids)
        np.add.at(self.flows["matured"][self.month(now)], lender, 1.0)
        if self.keep_log:
            self._log_rows(now, "maturity", ids, lender)
        p = self.des.renewal_prob
        if p > 0 and now < self.horizon:
            again = self._renewing(apps)
            if again.size:
                self.originate_direct(again, renewal=True)

    def default_direct(self, loan: int, app: int, t_def: float) -> Process:
        """Process: default of a direct loan; the lender bears it and recovers alone."""
        env = self.env
        yield env.timeout(t_def - env.now)
        spec = self.segments[self.app_seg[app]]
        exposure = float(self.app_exposure[app])
        lender = spec.lender
        self.counts["defaults"] += 1
        m = self.month(env.now)
        self.flows["defaults"][m, lender] += 1.0
        self.flows["default_amount"][m, lender] += exposure
        if self.keep_log:
            self._log_rows(env.now, "default", np.array([loan]), lender, exposure)
        net = [0.0] * self.n_accounts
        self.pay(env.now, lender, self.borrower, _K_DEFAULT, exposure, loan)
        net[lender] += exposure
        self.defaults.append((loan, env.now, exposure))
        lgd, lag = self.draw_loss(spec, app)
        yield from self.recover(loan, exposure * (1.0 - lgd), env.now + lag, net)

    def draw_loss(self, spec: EnterpriseSegment, app: int) -> tuple[float, float]:
        """LGD and recovery lag (days) of a default now of application ``app``'s current
        loan, from its pre-drawn uniforms (:meth:`fates`; module docstring)."""
        _u, _v, lgd_u, lag_z, _r = self.fates(int(self.app_gen[app]))
        env = self.env
        lgd_mean = spec.lgd_mean
        d = self.scenario.factors.downturn_lgd
        if d > 0 and 0 < lgd_mean < 1:
            cal = min(int(env.now // DAYS_PER_YEAR), self.n_cal - 1)
            lgd_mean = float(special.ndtr(special.ndtri(lgd_mean) - d * self.z_nat[cal]))
        sd = min(spec.lgd_sd, 0.999 * math.sqrt(lgd_mean * (1 - lgd_mean)))
        if sd > 0:
            nu = lgd_mean * (1 - lgd_mean) / sd**2 - 1
            lgd = float(special.betaincinv(lgd_mean * nu, (1 - lgd_mean) * nu,
                                           lgd_u[app]))
        else:
            lgd = lgd_mean
        lag = spec.recovery_lag_days * math.exp(self.des.recovery_lag_sigma
                                                * float(lag_z[app]))
        return lgd, lag

    def pay_fees(self, ids: np.ndarray, apps: np.ndarray, years: np.ndarray,
                 _event: Any = None) -> None:
        """Pay the agreement fees of one loan year (``years``: its length, <= 1) now:
        ``rate x guaranteed x share x years`` per fee."""
        if not any(self.segments[s].fees for s in range(len(self.segments))):
            return
        now = self.env.now
        seg = self.app_seg[apps]
        g = self.app_guaranteed[apps]
        for s in np.unique(seg).tolist():
            spec = self.segments[s]
            if not spec.fees:
                continue
            sel = seg == s
            gs, ys = g[sel], years[sel]
            for payer, payee, kind, fee in spec.fees:
                amount = fee.amount(gs, ys)
                self.ledger.add_many(now, payer, payee, kind, amount, ids[sel])
                total = float(amount.sum())
                self.accounts[payer].capital -= total
                self.accounts[payee].capital += total
                if payer in self._injectable:
                    self.inject_capital(now, payer)

    def run_loan(self, ids: np.ndarray, apps: np.ndarray, t_def: np.ndarray,
                 tenor: np.ndarray) -> None:
        """Schedule each new loan's end: one claim process per defaulting loan, one
        maturity callback per group of loans ending at the same time."""
        env = self.env
        now = env.now
        horizon = self.settle_until
        dflt = np.flatnonzero(t_def < horizon)
        for i in dflt.tolist():
            env.process(self.claim(int(ids[i]), int(apps[i]), float(t_def[i]), now))
        alive = np.isinf(t_def)
        for ten in self.tenors:
            if now + ten * DAYS_PER_YEAR >= horizon:
                continue
            sel = alive & (tenor == ten) if len(self.tenors) > 1 else alive
            if not sel.any():
                continue
            ev = env.timeout(ten * DAYS_PER_YEAR)
            ev.callbacks.append(partial(self.mature_loans, ids[sel], apps[sel]))

    def _release(self, apps: np.ndarray) -> None:
        seg = self.app_seg[apps]
        liab = self.coef[seg] * self.app_guaranteed[apps][:, None]
        lt = liab.sum(axis=0)
        wt = (liab * self.app_weight[apps][:, None]).sum(axis=0)
        inst = self.institutions
        for j in range(self.n_parties):
            if lt[j] != 0.0:
                inst[j].outstanding -= float(lt[j])
                inst[j].weighted -= float(wt[j])

    def mature_loans(self, ids: np.ndarray, apps: np.ndarray, _event: Any = None) -> None:
        """Callback: loans repaid at maturity release their guarantees; some renew."""
        now = self.env.now
        self._release(apps)
        self.counts["maturities"] += len(ids)
        np.add.at(self.flows["matured"][self.month(now)], self.seg_front[self.app_seg[apps]],
                  1.0)
        if self.keep_log:
            self._log_rows(now, "maturity", ids, self.seg_front[self.app_seg[apps]])
        p = self.des.renewal_prob
        if p > 0 and now < self.horizon:
            again = self._renewing(apps)
            if again.size:
                approved, (r_pos, r_reason, r_party) = self.check_limits(again, now)
                for reason in np.unique(r_reason).tolist():
                    sel = r_reason == reason
                    self._refuse(now, again[r_pos[sel]], reason, r_party[sel], renewal=True)
                if approved[0].size:
                    self.file_reguarantee(approved[0], approved[3])
                    self.originate(approved[0], approved[1], approved[2], renewal=True)

    def claim(self, loan: int, app: int, t_def: float,
              start: float) -> Process:
        """Process: default, the bank's claim, the guarantor's payment, reimbursements by
        the upper layers and the recovery of one loan."""
        env = self.env
        yield env.timeout(t_def - env.now)
        spec = self.segments[self.app_seg[app]]
        exposure = float(self.app_exposure[app])
        g = float(self.app_guaranteed[app])
        lender, front = spec.lender, spec.front
        w = float(self.app_weight[app])
        inst = self.institutions
        for j, c in self.seg_liab[spec.index]:
            inst[j].outstanding -= c * g
            inst[j].weighted -= c * g * w
        self.counts["defaults"] += 1
        m = self.month(env.now)
        self.flows["defaults"][m, front] += 1.0
        self.flows["default_amount"][m, front] += exposure
        if self.keep_log:
            self._log_rows(env.now, "default", np.array([loan]), front, exposure)
        net = [0.0] * self.n_accounts  # paid minus received on this loan, per account
        self.pay(env.now, lender, self.borrower, _K_DEFAULT, exposure, loan)
        net[lender] += exposure
        self.defaults.append((loan, env.now, exposure))
        # loss given default and recovery lag
        lgd, lag = self.draw_loss(spec, app)
        t_recovery = env.now + lag
        yield env.timeout(self.des.claim_trigger_days)
        self.counts["claims"] += 1
        self.flows["claims"][self.month(env.now), front] += 1.0
        if self.keep_log:
            self._log_rows(env.now, "claim", np.array([loan]), lender, exposure)
        yield env.timeout(self.des.claim_payment_days)
        covered = (1.0 - spec.lender_share) * g if front != lender else 0.0
        self.pay(env.now, front, lender, _K_COMP, covered, loan)
        net[front] += covered
        net[lender] -= covered
        t_paid = env.now
        settlements = []
        for step in spec.layers:
            if step.cap >= 0:
                settlements.append(self.accrue(loan, step, g, t_paid, start, net))
            else:
                yield from self.reimburse(loan, step, g, t_paid, net)
        yield from settlements  # the capped layers pay at their period's settlement
        yield from self.recover(loan, exposure * (1.0 - lgd), t_recovery, net)

    def reimburse(self, loan: int, step: Step, g: float, t_paid: float,
                  net: list[float]) -> Process:
        """Sub-process: one uncapped layer pays its share of a default after its lag."""
        env = self.env
        wait = t_paid + step.lag - env.now
        if wait > 0:
            yield env.timeout(wait)
        due = step.share * g
        self.pay(env.now, step.payer, step.holder, _K_REIMB, due, loan)
        net[step.payer] += due
        net[step.holder] -= due
        self.compensate(step, due, loan, net)

    def compensate(self, step: Step, paid: float, loan: int, net: list[float]) -> None:
        """The agreement's budget party (``fiscal_compensation``) reimburses the layer's
        payer ``budget_frac`` of what it just paid on the loan (a ``reimbursement`` flow,
        at once); recoveries, returned pro rata to net payments, then give the budget the
        same fraction of the payer's share."""
        if step.budget < 0:
            return
        amount = paid * step.budget_frac
        self.pay(self.env.now, step.budget, step.payer, _K_REIMB, amount, loan)
        net[step.budget] += amount
        net[step.payer] -= amount

    def accrue(self, loan: int, step: Step, g: float, t_paid: float, start: float,
               net: list[float]) -> simpy.Event:
        """Register what a capped layer owes on a default with the (cap, pool, period of
        origination) it falls in; returns that period's settlement event."""
        cap = self.caps[step.cap]
        period = cap.period_of(start)
        entry = cap.pending.get(period)
        if entry is None:
            if period in cap.settled:
                raise RuntimeError(f"claim on cap {cap.label!r} period {period} after its "
                                   "settlement")
            ev = self.env.timeout(cap.settlement_time(period, self.horizon) - self.env.now)
            ev.callbacks.append(partial(self.settle_cap, step.cap, period))
            entry = cap.pending[period] = (ev, [])
        entry[1].append((loan, step, step.share * g, t_paid + step.lag, net))
        self.accounts[step.holder].receivable += step.share * g
        return entry[0]

    def settle_cap(self, k: int, period: int, _event: Any = None) -> None:
        """Callback: settle one capped layer's claims of one statistics period pro rata:
        each loan gets ``due x min(1, budget / total due)``, the overflow party pays the
        rest."""
        now = self.env.now
        entries, frac = self.caps[k].close(period)
        for loan, step, due, t_due, net in entries:
            self.accounts[step.holder].receivable -= due
            paid = due if frac == 1.0 else due * frac
            if step.payer != step.holder:
                self.pay(now, step.payer, step.holder, _K_REIMB, paid, loan)
                net[step.payer] += paid
                net[step.holder] -= paid
            self.compensate(step, paid, loan, net)
            refused = due - paid
            if refused > 0:
                # counted in the month the reimbursement was due
                self.cap_refusals.append((t_due, k, refused))
                if step.overflow != step.holder:
                    self.pay(now, step.overflow, step.holder, _K_OVER, refused, loan)
                    net[step.overflow] += refused
                    net[step.holder] -= refused

    def recover(self, loan: int, amount: float, t_recovery: float,
                net: list[float]):
        """Sub-process: the recovery arrives and is returned pro rata to net payments."""
        env = self.env
        wait = t_recovery - env.now
        if wait > 0:
            yield env.timeout(wait)
        if amount <= 0 or not any(x > 0 for x in net):
            return
        for j, part in enumerate(split_recovery(amount, net)):
            if part > 0:
                self.pay(env.now, self.borrower, j, _K_REC, part, loan)
        self.recovered[loan] = amount

    def record_months(self) -> Process:
        """Process: snapshot the stocks at each month end."""
        env = self.env
        for m in range(self.n_months - 1):
            yield env.timeout((m + 1) * DAYS_PER_MONTH - env.now)
            self.snapshot(m)
            _interrupt.check()  # a deferred Ctrl-C / SIGTERM ends the run at a month end

    def snapshot(self, m: int) -> None:
        """Record capital, balances, leverage and credit-line use for month ``m``."""
        for a in self.institutions:
            j = a.index
            self.stocks["capital"][m, j] = a.capital
            self.stocks["outstanding"][m, j] = a.outstanding
            self.stocks["weighted_outstanding"][m, j] = a.weighted
            self.stocks["leverage"][m, j] = a.leverage()
        now = min(self.env.now, self.horizon - 1e-9)
        for k, line in enumerate(self.lines):
            line.roll(now)
            # peak use within the month: a period that ended during it (the annual reset
            # falls on a month end) counts with its full use, so exhaustion shows
            peak = line.used
            start = line.period * line.period_days
            if start > now - DAYS_PER_MONTH and line.period - 1 in line.history:
                peak = max(peak, line.history[line.period - 1])
            self.line_use[m, k] = peak

    # ==================================================================================
    # run
    # ==================================================================================
    def run(self) -> tuple[float, int]:
        """Run to the horizon (then the run-off, if on).

        The result is assembled from the finished model by
        :func:`simkit.des.result.build_result` (:func:`simkit.des.run.simulate` does
        both), so this module does not import the result module (no import cycle).

        Returns
        -------
        wall_seconds : float
            Wall-clock time of the event loop.
        simpy_events : int
            Events scheduled by SimPy.
        """
        import gc

        env = self.env
        started = time.perf_counter()
        enabled = gc.isenabled()
        gc.disable()
        try:
            env.process(self.arrive_applications())
            env.process(self.record_months())
            env.run(until=self.horizon)
            self.snapshot(self.n_months - 1)
            if self.run_off:  # no arrivals any more: loans already originated settle
                run_to_end(env)
        finally:
            if enabled:
                gc.enable()
        wall = time.perf_counter() - started
        return wall, next(env._eid)  # events scheduled by SimPy (private counter)


def run_to_end(env: simpy.Environment, check_every: int = 4096) -> None:
    """``env.run()`` (until no event is left), checking for a deferred interrupt every
    ``check_every`` events."""
    step = env.step
    try:
        while True:
            for _ in range(check_every):
                step()
            _interrupt.check()
    except simpy.core.EmptySchedule:
        pass


def _slack(room: float) -> float:
    """Room with a relative tolerance of 1e-12 for rounding in running sums (yuan)."""
    return room + 1e-12 * abs(room) + 1e-6
