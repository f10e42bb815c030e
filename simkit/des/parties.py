"""The institutions of the discrete-event model and the state each holds.

Every account (party or external) has a ``capital`` in yuan: its net assets at the start
(0 when the scenario gives none) plus everything it received minus everything it paid
in the run's ledger. Institutions that guarantee or re-guarantee also hold their
guarantee liability balance (``outstanding``, yuan) and its risk-weighted version
(``weighted``, yuan; the regulation's small-guarantee weight applies to guaranteed amounts
up to ``regulation.small_threshold``), against which the leverage limit is checked:

    weighted + new weighted liability <= leverage_limit x capital.

A party's liability on a loan is the part of the guaranteed amount it stands behind: the
original guarantor (the party that pays the bank) stands behind the whole covered part
(guaranteed amount minus the lender's own share), every other layer behind its share.
Parties without ``net_assets`` or ``leverage_limit`` are not leverage-constrained.
The liability, risk weight, leverage and single-client rules are :mod:`simkit.regulation`'s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simkit.regulation import leverage, single_client_room
from simkit.scenario import CreditLine, Party

__all__ = [
    "Account",
    "Bank",
    "CreditLineState",
    "EnterpriseSegment",
    "Institution",
    "LocalGov",
    "NationalFund",
    "OriginalGuarantor",
    "ProvincialReguarantor",
    "make_institution",
]


class Account:
    """An account in the ledger: a party or an external source (borrowers, fiscal).

    Attributes
    ----------
    name : str
    index : int
        Column of this account in the ledger and in every per-party series.
    capital : float
        Yuan; starts at net assets (or 0) and moves with every recorded flow.
    receivable : float
        Reimbursements due from capped layers and not yet settled (yuan). Counted as an
        asset for the leverage and single-client limits until the period's settlement.
    """

    __slots__ = ("capital", "index", "initial", "kind", "name", "receivable")

    def __init__(self, name: str, index: int, kind: str = "external", initial: float = 0.0):
        self.name = name
        self.index = index
        self.kind = kind
        self.initial = initial
        self.capital = initial
        self.receivable = 0.0


class Institution(Account):
    """A scenario party with a balance sheet.

    Attributes
    ----------
    leverage_limit : float
        Multiple of capital allowed for the risk-weighted liability (``inf`` = none).
    single_client_limit : float
        Largest liability on one client as a fraction of capital (``inf`` = none).
    outstanding, weighted : float
        Guarantee liability balance and its risk-weighted version (yuan).
    region : str or None
    injected : float
        Capital injections received so far (yuan).
    """

    __slots__ = (
        "constrained",
        "injected",
        "leverage_limit",
        "outstanding",
        "region",
        "single_client_limit",
        "weighted",
    )

    def __init__(self, party: Party, index: int):
        super().__init__(party.name, index, party.kind, party.net_assets or 0.0)
        tracked = party.net_assets is not None
        self.leverage_limit = (party.leverage_limit
                               if tracked and party.leverage_limit is not None else math.inf)
        self.single_client_limit = (party.single_client_limit
                                    if tracked and party.single_client_limit is not None
                                    else math.inf)
        self.constrained = math.isfinite(self.leverage_limit)
        self.outstanding = 0.0
        self.weighted = 0.0
        self.region = party.region
        self.injected = 0.0

    def room(self) -> float:
        """Weighted liability this party may still take on (yuan; ``inf`` if unlimited)."""
        if not self.constrained:
            return math.inf
        return self.leverage_limit * (self.capital + self.receivable) - self.weighted

    def single_limit(self) -> float:
        """Largest liability on one client now (yuan; ``inf`` if unlimited)."""
        return single_client_room(self.single_client_limit, self.capital + self.receivable)

    def leverage(self) -> float:
        """Weighted liability / capital (``nan`` when capital is not tracked or <= 0)."""
        if self.initial <= 0 and not self.constrained:
            return math.nan
        return float(leverage(self.weighted, self.capital + self.receivable))


class Bank(Institution):
    """A lending bank: decides on applications and keeps its retained share of losses."""

    __slots__ = ()


class OriginalGuarantor(Institution):
    """A city/county guarantor: reviews, issues guarantees, pays claims, pursues recovery."""

    __slots__ = ()


class ProvincialReguarantor(Institution):
    """The provincial re-guarantor: reimburses its share, subject to its cap."""

    __slots__ = ()


class NationalFund(Institution):
    """The national fund: re-guarantees against annual credit lines to the provinces."""

    __slots__ = ()


class LocalGov(Institution):
    """The local government: bears its share directly and injects capital by the rule."""

    __slots__ = ()


_CLASSES: dict[str, type[Institution]] = {
    "bank": Bank, "guarantor": OriginalGuarantor, "provincial": ProvincialReguarantor,
    "national_fund": NationalFund, "local_gov": LocalGov,
}


def make_institution(party: Party, index: int) -> Institution:
    """The institution object of the party's kind."""
    return _CLASSES.get(party.kind, Institution)(party, index)


class CreditLineState:
    """An annual credit line: ``provider`` re-guarantees at most ``amount`` yuan of new
    guaranteed principal filed through ``holder`` per period of ``period_days`` days.

    Attributes
    ----------
    used : float
        Yuan used in the current period.
    history : dict[int, float]
        Yuan used per past and current period index.
    """

    __slots__ = (
        "amount",
        "history",
        "holder",
        "label",
        "period",
        "period_days",
        "provider",
        "used",
    )

    def __init__(self, line: CreditLine, provider: int, holder: int):
        self.provider = provider
        self.holder = holder
        self.amount = line.amount
        self.period_days = line.period_years * 365.0
        self.period = 0
        self.used = 0.0
        self.history: dict[int, float] = {0: 0.0}
        self.label = f"{line.from_party}->{line.to_party}"

    def roll(self, now: float) -> None:
        """Start a new period when ``now`` (days) has passed the current one."""
        period = int(now // self.period_days)
        if period != self.period:
            self.period = period
            self.used = 0.0
            self.history[period] = 0.0

    def room(self) -> float:
        return self.amount - self.used

    def use(self, amount: float) -> None:
        self.used += amount
        self.history[self.period] += amount


class EnterpriseSegment:
    """Firms of one scenario segment and the fixed terms their guaranteed loans get.

    All per-segment constants the processes need, resolved once: the parties of each layer
    (the agreement's guarantor-kind layer taken by the segment's own guarantor), the
    lender's share, liability coefficients per party (yuan of liability per yuan guaranteed,
    shape ``(n_accounts,)``), the fees, the caps and the credit lines that apply.
    """

    __slots__ = (
        "agreement",
        "caps",
        "coef",
        "fee_rate",
        "fees",
        "front",
        "front_share",
        "gfactor",
        "index",
        "layers",
        "lender",
        "lender_share",
        "lgd_mean",
        "lgd_sd",
        "lines",
        "loadings",
        "margin",
        "name",
        "rate_per_day",
        "recovery_lag_days",
        "region",
        "sector",
        "segment",
        "single_limit",
        "tenor_days",
    )
    # set by the model when it compiles the segment (simkit.des.model.Model._compile_segment)
    agreement: int
    caps: Any
    coef: np.ndarray
    fee_rate: float
    fees: tuple[Any, ...]
    front: int
    front_share: float
    gfactor: int
    index: int
    layers: tuple[Any, ...]
    lender: int
    lender_share: float
    lgd_mean: float
    lgd_sd: float
    lines: list[int]
    loadings: tuple[float, ...]
    margin: float
    name: str
    rate_per_day: float
    recovery_lag_days: float
    region: int
    sector: int
    segment: Any
    single_limit: float
    tenor_days: float

    def __init__(self, index: int, segment: object):
        self.index = index
        self.segment = segment
        self.name = getattr(segment, "name", "")
