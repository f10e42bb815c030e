"""The SimPy model of one replication: the coordinator of the parts of the model.

Time is measured in **days** from the start of the run (a year is 365 days, a month
365/12 days); amounts are in yuan. One :class:`Model` owns one ``simpy.Environment`` and
builds the parts of a run, each the one owner of its state (nothing at module level),
layered without import cycles (each imports only those above it in this list, types
aside):

* :mod:`simkit.des.codes`: units, reason and event codes (no state);
* :mod:`simkit.des.ledger`, :mod:`simkit.des.parties`: the ledger, the accounts and
  institutions, the credit lines;
* :mod:`simkit.des.caps`: cap accounts and their settlement (:class:`CapSettlement`);
* :mod:`simkit.des.segments`: each segment's agreement compiled from the rulebook;
* :mod:`simkit.des.records`: counters, monthly flows, refusals, loan table, event log;
* :mod:`simkit.des.treasury`: every capital movement and the injection rule;
* :mod:`simkit.des.underwriting`: arrivals, the bank's and the guarantor's decisions,
  the refusal queue;
* :mod:`simkit.des.draws`: factor path, applications, per-firm fates, default and loss
  draws;
* :mod:`simkit.des.limits`: guarantee liability, leverage, single-client limits, credit
  lines;
* :mod:`simkit.des.claims`: defaults, claims, reimbursements, recoveries;
* :mod:`simkit.des.loans`: origination, fees, maturity, renewal;
* :mod:`simkit.des.monthly`: month-end stocks;
* this module; then :mod:`simkit.des.result` reads a finished model and
  :mod:`simkit.des.run` runs replications.

Rules (the README states them):

* **Applications** of segment ``s`` arrive as a Poisson process with rate
  ``applications_per_year`` (default ``count``) per year, modulated by
  ``1 + des.seasonality * sin(2 pi t / 365)``. Arrivals are batched per day: the firms
  arriving in day ``d`` are handled together at time ``d`` in a fixed order (by segment,
  then by draw), which keeps the trace reproducible and the event count small.
* **Bank decision** (:meth:`Underwriting.decide_bank
  <simkit.des.underwriting.Underwriting.decide_bank>`): the bank lends when
  ``retained x PD x LGD_mean + des.bank_cost <= segment.interest_margin``, where
  ``retained`` is the lender's share of the loan's loss under its agreement (its layer
  share of the guaranteed amount plus all of the part above the single limit, per yuan
  of exposure; 1.0 for an agreement that covers nothing). A lower retained share means
  more lending. Refusals are counted as ``"bank_margin"`` under the lender.
  **With and without a guarantee** (``des.direct_lending``, default off): the bank first
  checks the same rule with ``retained = 1`` (``PD x LGD_mean + des.bank_cost <=
  interest_margin``); when it passes it lends at once **directly, without a guarantee**
  (:meth:`Loans.originate_direct <simkit.des.loans.Loans.originate_direct>`): no guarantee or other
  fee, no review, no filing, no
  limit or credit line used, no cap base. Only the others go the guaranteed path below,
  so every guaranteed loan is one the bank would not have made alone. A direct loan
  defaults by the same factor model (no moral-hazard uplift: the bank retains all);
  the lender pays the whole principal (``default`` flow) and receives the whole
  recovery (:meth:`Claims.default_direct <simkit.des.claims.Claims.default_direct>`, no claim); at
  maturity it is renewed with
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
* **Mechanisms** (each off by default; the rules in their modules):
  noisy screening with effort (:mod:`simkit.des.screening`: the bank decides on an
  estimate of ``PD`` from a signal whose noise grows as ``retained`` falls), review
  capacity (:mod:`simkit.des.review`: staff per original guarantor in individual mode),
  credit lines that change during the year or are re-allocated per period and
  applications that wait for credit-line room (:mod:`simkit.des.lines`).
* **Guarantor decision** (:meth:`Underwriting.underwrite_guarantee
  <simkit.des.underwriting.Underwriting.underwrite_guarantee>`) after the review time of
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
* **Filing** (:meth:`Limits.file_reguarantee <simkit.des.limits.Limits.file_reguarantee>`): an
  approved guarantee uses every credit
  line whose provider and holder both stand behind the loan, by its guaranteed amount,
  in the line's current period (periods of ``period_years`` from the start).
* **Loan life** (:meth:`Loans.run_loan <simkit.des.loans.Loans.run_loan>`): per loan year the
  conditional default
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
* **Claims** (:meth:`Claims.claim <simkit.des.claims.Claims.claim>`): the bank claims
  ``claim_trigger_days`` after
  default; ``claim_payment_days`` later the original guarantor pays it the covered part
  (guaranteed amount minus the lender's share). Each uncapped layer reimburses its share
  ``lag_days`` after that payment. A capped layer **settles pro rata per statistics
  period** (:meth:`CapSettlement.settle <simkit.des.caps.CapSettlement.settle>`): what it owes
  (``share x guaranteed``) accrues per
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
  fraction of each payment at once (:func:`simkit.des.caps.compensate`).
* **Random draws per firm** (:meth:`Draws.fates <simkit.des.draws.Draws.fates>`): every uniform and
  normal that decides
  a loan's fate (loan life above, recoveries below) is drawn up front per (segment,
  renewal number) from a stream keyed by ``("des.fate", replication, segment, renewal
  number)``, one row per application in arrival order: loan ``r`` of an application
  (``r = 0`` the first, ``r`` its ``r``-th renewal) always uses the same row, whatever
  was decided for other firms. The renewal at maturity happens when the loan's renewal
  uniform is below ``des.renewal_prob``.
* **Recoveries** (:meth:`Claims.recover <simkit.des.claims.Claims.recover>`): ``exposure x (1 -
  LGD)``, LGD ~ Beta(mean, sd)
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
  and renewal number (:meth:`Draws.fates <simkit.des.draws.Draws.fates>`), not in event order, so
  two variants of a
  scenario that draw the same applications (same segments, counts, exposure and PD
  settings, seed and replication) give a firm served in both the same default, LGD,
  lag and renewal outcomes; the factor path is shared too. Decisions, limits and caps
  still differ, and with moral hazard on the default thresholds differ by the retained
  share.
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import TYPE_CHECKING

import simpy

from simkit.des.agenda import Agenda
from simkit.des.caps import CapAccount, CapSettlement
from simkit.des.claims import Claims
from simkit.des.codes import DAYS_PER_MONTH, DAYS_PER_YEAR, EVENTS, REASONS
from simkit.des.draws import Applications, Draws, FactorPath
from simkit.des.limits import Limits
from simkit.des.lines import line_stats, make_line
from simkit.des.loans import Loans
from simkit.des.monthly import Monthly
from simkit.des.parties import Account, CreditLineState, Institution, make_institution
from simkit.des.records import Records
from simkit.des.review import ReviewDesk
from simkit.des.segments import Segments
from simkit.des.treasury import Treasury
from simkit.des.underwriting import Underwriting

if TYPE_CHECKING:
    from simkit.scenario import Scenario

__all__ = ["DAYS_PER_MONTH", "DAYS_PER_YEAR", "EVENTS", "REASONS", "Model"]


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

    Attributes
    ----------
    records : Records
    treasury : Treasury
        Holds the :attr:`ledger`.
    segments : Segments
    factors : FactorPath
    apps : Applications
    draws : Draws
    limits : Limits
    cap_settlement : CapSettlement
    claims : Claims
    loans : Loans
    underwriting : Underwriting
    monthly : Monthly
    """

    def __init__(self, scenario: Scenario, *, seed: int, replication: int = 0,
                 years: float | None = None, event_log: bool = False, run_off: bool = True):
        self.scenario = scenario
        self.des = des = scenario.des
        self.seed = int(seed)
        self.replication = int(replication)
        self.years = float(des.years if years is None else years)
        if not self.years > 0:
            raise ValueError(f"years must be > 0, got {self.years!r}")
        self.horizon = horizon = self.years * DAYS_PER_YEAR
        self.run_off = bool(run_off)
        #: events of loans (claims, maturities, fees) are scheduled up to this time
        self.settle_until = math.inf if self.run_off else self.horizon
        self.env = env = simpy.Environment()
        self.n_months = max(1, math.ceil(self.years * 12 - 1e-9))

        # -- accounts, segments, caps, credit lines --------------------------------------
        names = scenario.party_names
        self.n_parties = n_parties = len(names)
        self.institutions: list[Institution] = [make_institution(p, i)
                                                for i, p in enumerate(scenario.parties)]
        self.borrower = n_parties
        self.fiscal = n_parties + 1
        self.accounts: list[Account] = [*self.institutions, Account("borrower", n_parties),
                                        Account("fiscal", n_parties + 1)]
        self.n_accounts = len(self.accounts)
        stats = partial(line_stats, self)  # allocation inputs (simkit.des.lines)
        self.lines: list[CreditLineState] = [
            make_line(line, names.index(line.from_party), names.index(line.to_party), k,
                      stats)
            for k, line in enumerate(scenario.credit_lines)]
        self.segments = Segments(scenario, self.lines, self.borrower, self.n_accounts,
                                 des.claim_trigger_days + des.claim_payment_days)
        self.caps: list[CapAccount] = self.segments.caps

        # -- the parts of the run ------------------------------------------------------
        self.records = rec = Records(horizon, self.n_months, n_parties, event_log)
        self.treasury = Treasury(self.accounts, self.institutions, des)
        self.ledger = self.treasury.ledger
        self.factors = FactorPath(scenario, self.seed, self.replication, self.years,
                                  self.n_accounts)
        self.apps = Applications(scenario, self.segments, self.seed, self.replication,
                                 horizon)
        self.draws = Draws(scenario, self.segments, self.apps, self.factors, self.seed,
                           self.replication)
        self.limits = Limits(self.institutions, self.lines, self.segments, self.apps)
        self.cap_settlement = CapSettlement(env, self.caps, self.treasury, self.accounts,
                                            horizon)
        #: the claim steps of defaulted loans, interleaved with SimPy's events
        self.agenda = Agenda(env)
        self.claims = Claims(env, self.agenda, des, self.settle_until, self.segments,
                             self.apps, self.draws, self.limits, self.cap_settlement,
                             self.treasury, rec)
        self.loans = Loans(env, des, horizon, self.settle_until, self.segments, self.apps,
                           self.draws, self.limits, self.cap_settlement, self.treasury, rec,
                           self.claims)
        self.underwriting = Underwriting(env, des, horizon, self.apps, self.segments,
                                         self.limits, self.loans, rec)
        self.monthly = Monthly(env, horizon, self.n_months, self.institutions, self.lines)
        #: review capacity (simkit.des.review): individual mode with staff only
        self.review = (ReviewDesk(self) if des.review_staff > 0
                       and des.mode == "individual" else None)
        self.underwriting.desk = self.review

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
            Events scheduled by SimPy and on the claims agenda
            (:class:`~simkit.des.agenda.Agenda`).
        """
        import gc

        env = self.env
        started = time.perf_counter()
        enabled = gc.isenabled()
        gc.disable()
        try:
            env.process(self.underwriting.arrive_applications())
            if self.review is not None:  # after the arrivals of each day
                env.process(self.review.serve())
            env.process(self.monthly.record_months())
            self.agenda.run(until=self.horizon)
            self.monthly.snapshot(self.n_months - 1)
            if self.run_off:  # no arrivals any more: loans already originated settle
                self.agenda.run()
        finally:
            if enabled:
                gc.enable()
        wall = time.perf_counter() - started
        #: time of the last event of the run (days)
        self.end_time = max(float(env.now), self.agenda.now)
        # events scheduled by SimPy (its private counter) and on the agenda
        return wall, next(env._eid) + self.agenda.scheduled

