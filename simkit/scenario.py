"""Scenario model: frozen dataclasses loaded from TOML and validated before any work.

A scenario holds everything both engines need: borrower segments (or a loan tape), the
factor model, parties and their balance sheets, risk-share agreements (layers, single
limits, portfolio caps, fees, recoveries), credit lines, discrete-event settings and run
settings. :func:`load` reads a file; :func:`from_dict` builds one from a mapping;
:meth:`Scenario.variant` derives a changed copy (validated again).

Amounts are in yuan, rates per year, times in years unless a field says ``_days``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from simkit._validate import Reader, ScenarioError, check_name, check_number, join, plain
from simkit.factors import beta_concentration, beta_shape

__all__ = [
    "PARTY_KINDS",
    "Agreement",
    "Cap",
    "CreditLine",
    "DesSettings",
    "Distribution",
    "Factors",
    "Fee",
    "FiscalCompensation",
    "Layer",
    "Lgd",
    "LineAllocation",
    "LineChange",
    "Party",
    "Regulation",
    "RunSettings",
    "Scenario",
    "ScenarioError",
    "Segment",
    "UncertainParameter",
    "from_dict",
    "load",
]

#: Kinds of party. ``borrower`` is implicit: it pays guarantee fees and is never a layer.
PARTY_KINDS = ("bank", "guarantor", "provincial", "national_fund", "local_gov", "other")
BORROWER = "borrower"
CAP_POOLS = ("agreement", "guarantor", "region", "segment")
CAP_BASES = ("guaranteed", "annualised")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*", re.ASCII)
#: Smallest positive sd of a Beta (LGD or default probability): below it sd**2 underflows
#: towards 0 and the shape parameters overflow; use 0 for a fixed value.
MIN_BETA_SD = 1e-6
#: Longest identifier (party, agreement, segment name) or label (region, sector).
MAX_NAME = 64
#: Deepest nesting of arrays / tables accepted in a scenario (a real one needs 5).
MAX_DEPTH = 32
#: Largest scenario file read (bytes); real scenarios are a few kilobytes.
MAX_FILE_BYTES = 16 * 2**20
#: Most DES applications per segment and year: ten times the 1.05 million firms NFGF
#: served nationally in 2024 (DOMAIN.md (d), [S1]); the DES keeps arrays per application.
MAX_APPLICATIONS_PER_YEAR = 1e7
DIST_KINDS = ("fixed", "uniform", "loguniform", "lognormal", "beta")
FEE_KINDS = ("guarantee", "reguarantee", "subsidy", "fee")


# --------------------------------------------------------------------------------------
# self-checks of the value objects (``__post_init__``)
# --------------------------------------------------------------------------------------
# The loader checks every field first, with the file and the dotted path of the input
# (its messages are pinned by the tests and the fuzz battery); a value object then checks
# its own invariants again, with no stricter bounds, so an object built directly or by
# ``dataclasses.replace`` fails with the same message under its own field name, e.g.
# ``Layer.share must be in [0, 1], got 1.7``.
def _own(obj: Any, name: str, *, optional: bool = False, infinite: bool = False,
         **bounds: Any) -> None:
    """Check the number ``obj.name`` (``optional``: None allowed; ``infinite``: inf
    allowed) against the bounds of :func:`simkit._validate.check_number`."""
    value = getattr(obj, name)
    if (optional and value is None) or (infinite and value == math.inf):
        return
    check_number(value, "", f"{type(obj).__name__}.{name}", **bounds)


def _own_choice(obj: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    if value not in choices:
        raise ScenarioError("", f"{type(obj).__name__}.{name}", "must be one of "
                            + ", ".join(repr(c) for c in choices) + f", got {value!r}")


def _own_text(obj: Any, name: str, *, optional: bool = False, empty: bool = False) -> None:
    value = getattr(obj, name)
    if optional and value is None:
        return
    if not isinstance(value, str) or not (value or empty):
        raise ScenarioError("", f"{type(obj).__name__}.{name}",
                            f"must be a non-empty string, got {value!r}")


def _own_fail(obj: Any, name: str, message: str) -> ScenarioError:
    return ScenarioError("", f"{type(obj).__name__}.{name}", message)


# --------------------------------------------------------------------------------------
# value objects
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Distribution:
    """A distribution of a per-loan quantity (exposure in yuan, or default probability).

    ``kind`` is one of ``fixed`` (``value``), ``uniform`` / ``loguniform`` (``low``,
    ``high``), ``lognormal`` (``median``, ``sigma``) or ``beta`` (``mean``, ``sd``).
    """

    kind: str
    params: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        _own_choice(self, "kind", DIST_KINDS)
        wanted = {"fixed": ("value",), "uniform": ("low", "high"),
                  "loguniform": ("low", "high"), "lognormal": ("median", "sigma"),
                  "beta": ("mean", "sd")}[self.kind]
        if tuple(sorted(k for k, _ in self.params)) != tuple(sorted(wanted)):
            raise _own_fail(self, "params", f"of a {self.kind!r} distribution must be "
                            f"{', '.join(wanted)}, got {dict(self.params)!r}")
        p = dict(self.params)
        for key, value in p.items():
            check_number(value, "", f"Distribution.params.{key}")
        if self.kind in ("uniform", "loguniform") and p["high"] < p["low"]:
            raise _own_fail(self, "params.high", f"must be >= low ({p['low']:g}), "
                            f"got {p['high']:g}")
        if self.kind == "loguniform" and p["low"] <= 0:
            raise _own_fail(self, "params.low", f"must be > 0 for a loguniform "
                            f"distribution, got {p['low']:g}")
        if self.kind == "lognormal":
            check_number(p["median"], "", "Distribution.params.median", low=0, low_open=True)
            check_number(p["sigma"], "", "Distribution.params.sigma", low=0, high=5)
        if self.kind == "beta":
            check_number(p["mean"], "", "Distribution.params.mean", low=0, high=1,
                         low_open=True, high_open=True)
            _beta_sd_ok(self, p["mean"], p["sd"], "params.sd")

    def param(self, name: str) -> float:
        return dict(self.params)[name]

    def mean(self) -> float:
        """The distribution's mean."""
        p = dict(self.params)
        if self.kind == "fixed":
            return p["value"]
        if self.kind == "uniform":
            return 0.5 * (p["low"] + p["high"])
        if self.kind == "loguniform":
            lo, hi = p["low"], p["high"]
            return lo if hi == lo else (hi - lo) / math.log(hi / lo)
        if self.kind == "lognormal":
            return p["median"] * math.exp(0.5 * p["sigma"] ** 2)
        return p["mean"]  # beta

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values (float64 array, shape ``(n,)``)."""
        p = dict(self.params)
        if self.kind == "fixed":
            return np.full(n, p["value"])
        if self.kind == "uniform":
            return rng.uniform(p["low"], p["high"], n)
        if self.kind == "loguniform":
            return np.exp(rng.uniform(math.log(p["low"]), math.log(p["high"]), n))
        if self.kind == "lognormal":
            return p["median"] * np.exp(p["sigma"] * rng.standard_normal(n))
        a, b = _beta_ab(p["mean"], p["sd"])
        if not math.isfinite(a):
            return np.full(n, p["mean"])
        return rng.beta(a, b, n)


def _beta_sd_ok(obj: Any, mean: float, sd: float, name: str) -> None:
    """A Beta sd: 0 (fixed) or in ``[MIN_BETA_SD, sqrt(mean (1 - mean)))``."""
    check_number(sd, "", f"{type(obj).__name__}.{name}", low=0)
    if sd == 0:
        return
    if sd < MIN_BETA_SD or mean in (0.0, 1.0) or sd >= math.sqrt(mean * (1 - mean)) \
            or min(_beta_ab(mean, sd)) <= 0:
        raise _own_fail(obj, name, f"must be 0 or in [{MIN_BETA_SD:g}, sqrt(mean*(1-mean)) "
                        f"= {math.sqrt(mean * (1 - mean)):.6g}), got {sd!r}")


def _beta_ab(mean: float, sd: float) -> tuple[float, float]:
    """Beta shape parameters from mean and standard deviation (inf when sd == 0), by the
    credit model's rule (:func:`simkit.factors.beta_concentration`, ``beta_shape``)."""
    if sd == 0:
        return math.inf, math.inf
    a, b = beta_shape(mean, beta_concentration(mean, sd))
    return float(a), float(b)


@dataclass(frozen=True, slots=True)
class Lgd:
    """Loss given default of a defaulted amount: Beta with ``mean`` and ``sd`` (0 = fixed).

    The recovered fraction is ``1 - LGD``; recoveries come back after a lag and are
    returned pro rata to what each party paid.
    """

    mean: float
    sd: float = 0.0

    def __post_init__(self) -> None:
        _own(self, "mean", low=0, high=1)
        _beta_sd_ok(self, self.mean, self.sd, "sd")

    @property
    def beta_ab(self) -> tuple[float, float]:
        """Beta shape parameters ``(a, b)``; ``(inf, inf)`` when fixed."""
        return _beta_ab(self.mean, self.sd)


@dataclass(frozen=True, slots=True)
class Loadings:
    """Factor loadings (betas) of a loan's latent asset value; squares add to R²."""

    national: float = 0.0
    regional: float = 0.0
    sector: float = 0.0
    guarantor: float = 0.0

    def __post_init__(self) -> None:
        for name in ("national", "regional", "sector", "guarantor"):
            _own(self, name, low=0, high=1, high_open=True)
        if self.r_squared >= 1:
            raise _own_fail(self, "r_squared", f"(sum of squared loadings) must be below 1, "
                            f"got {self.r_squared:.6g}")

    @property
    def r_squared(self) -> float:
        return self.national**2 + self.regional**2 + self.sector**2 + self.guarantor**2

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.national, self.regional, self.sector, self.guarantor)


@dataclass(frozen=True, slots=True)
class Factors:
    """Factor copula: loadings, copula family, persistence and downturn LGD.

    Attributes
    ----------
    loadings : Loadings
        Default loadings; segments may override them.
    copula : str
        ``"gaussian"`` or ``"student_t"`` (common chi-square mixing per scenario).
    dof : float
        Degrees of freedom of the Student-t copula.
    national_persistence : float
        AR(1) coefficient of the national factor from one year to the next.
    downturn_lgd : float
        LGD sensitivity to the national factor: the LGD mean becomes
        ``Phi(Phi^-1(mean) - downturn_lgd * Z_national)``.
    national_path : tuple of float
        Stress path: a fixed shift of the national factor in year 1, 2, ... (standard
        deviations, each in ``[-NATIONAL_PATH_MAX, NATIONAL_PATH_MAX]``, at most
        ``NATIONAL_PATH_YEARS`` years; none after the path ends), applied by both engines
        (:func:`simkit.factors.stressed_national`). Empty: no stress.
    """

    loadings: Loadings = Loadings(national=0.3)
    copula: str = "gaussian"
    dof: float = 6.0
    national_persistence: float = 0.0
    downturn_lgd: float = 0.0
    national_path: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.loadings, Loadings):
            raise _own_fail(self, "loadings", f"must be Loadings, got {self.loadings!r}")
        _own_choice(self, "copula", ("gaussian", "student_t"))
        _own(self, "dof", low=2, low_open=True, high=1000)
        _own(self, "national_persistence", low=0, high=1, high_open=True)
        _own(self, "downturn_lgd", low=0, high=2)
        _national_path(self.national_path, "", "Factors.national_path")


#: Largest shift of the national factor in one year of ``factors.national_path`` (sd).
NATIONAL_PATH_MAX = 5.0
#: Most years of ``factors.national_path`` (the longest horizon, ``run.horizon_years``).
NATIONAL_PATH_YEARS = 50


def _national_path(value: Any, file: str, path: str) -> tuple[float, ...]:
    """Check a ``national_path`` (an array of at most :data:`NATIONAL_PATH_YEARS`
    numbers in ``[-NATIONAL_PATH_MAX, NATIONAL_PATH_MAX]``) and return it as a tuple."""
    value = plain(value)
    if not isinstance(value, list | tuple):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:60] + "..."
        raise ScenarioError(file, path, "must be an array of numbers (the national "
                            f"factor's shift in year 1, 2, ...), got {shown}")
    if len(value) > NATIONAL_PATH_YEARS:
        raise ScenarioError(file, path, f"must have at most {NATIONAL_PATH_YEARS} years, "
                            f"got {len(value)}")
    return tuple(float(check_number(v, file, join(path, i), low=-NATIONAL_PATH_MAX,
                                    high=NATIONAL_PATH_MAX))
                 for i, v in enumerate(value))


@dataclass(frozen=True, slots=True)
class Segment:
    """A group of similar borrowers (one row of the synthetic book).

    ``count`` loans per annual cohort; ``exposure`` in yuan; ``default_prob`` annual;
    ``guarantor`` (optional) names the original guarantor that replaces the agreement's
    guarantor-kind layer for these loans (many county guarantors under one agreement).
    """

    name: str
    count: int
    exposure: Distribution
    default_prob: Distribution
    lgd: Lgd
    agreement: str
    sector: str = "general"
    region: str = "default"
    guarantor: str | None = None
    tech_tier: int = 0
    tenor_years: float = 1.0
    loadings: Loadings | None = None
    applications_per_year: float | None = None
    interest_margin: float = 0.03

    def __post_init__(self) -> None:
        _own_text(self, "name")
        _own_text(self, "agreement", empty=True)  # "" = not attached (policies)
        _own_text(self, "guarantor", optional=True)
        _own(self, "count", low=0, high=10**8, integer=True)
        _own(self, "tech_tier", low=0, high=3, integer=True)
        _own(self, "tenor_years", low=0, high=30, low_open=True)
        _own(self, "applications_per_year", optional=True, low=0,
             high=MAX_APPLICATIONS_PER_YEAR)
        _own(self, "interest_margin", low=0, high=1)
        if not isinstance(self.lgd, Lgd):
            raise _own_fail(self, "lgd", f"must be Lgd, got {self.lgd!r}")
        if self.exposure.kind == "beta":
            raise _own_fail(self, "exposure", "must be fixed, uniform, loguniform or "
                            "lognormal (an amount), got a beta distribution")
        for key, value in self.exposure.params:
            if key != "sigma":
                check_number(value, "", f"Segment.exposure.{key}", low=0, high=1e12)
        lowest = {"fixed": "value", "uniform": "low", "loguniform": "low"}.get(
            self.exposure.kind)
        if lowest is not None and self.exposure.param(lowest) <= 0:
            raise _own_fail(self, f"exposure.{lowest}", "must be > 0 yuan, got "
                            f"{self.exposure.param(lowest)!r}")
        if self.default_prob.kind == "lognormal":
            raise _own_fail(self, "default_prob", "must be fixed, uniform, loguniform or "
                            "beta (a probability), got a lognormal distribution")
        for key, value in self.default_prob.params:
            if key != "sd":
                check_number(value, "", f"Segment.default_prob.{key}", low=0, high=1,
                             low_open=True, high_open=True)

    def key(self, **values: Any) -> tuple[Any, ...]:
        """The segment's field values in order, with the named fields set to ``values``:
        what a comparison of books needs (``seg.key(agreement="") == other.key(
        agreement="")``), without building (and checking) a new segment."""
        return tuple(values.get(f.name, getattr(self, f.name))
                     for f in dataclasses.fields(self))


@dataclass(frozen=True, slots=True)
class Party:
    """An institution that bears losses or receives fees.

    ``net_assets`` in yuan (capital at the start), ``leverage_limit`` as a multiple of net
    assets on the risk-weighted guarantee balance (10 or 15 for guarantors), ``region``
    for local institutions. Absent values mean "not tracked / unlimited".
    """

    name: str
    kind: str
    net_assets: float | None = None
    leverage_limit: float | None = None
    region: str | None = None
    single_client_limit: float | None = None

    def __post_init__(self) -> None:
        _own_text(self, "name")
        _own_choice(self, "kind", PARTY_KINDS)
        _own(self, "net_assets", optional=True, low=0)
        _own(self, "leverage_limit", optional=True, low=0, low_open=True)
        _own(self, "single_client_limit", optional=True, low=0, high=1, low_open=True)


@dataclass(frozen=True, slots=True)
class Cap:
    """A portfolio compensation-rate cap on one layer.

    The layer pays at most ``rate * share * base`` per ``period_years`` and ``pool``,
    where ``base`` is the pool's guaranteed principal (``"guaranteed"``) or principal x
    tenor (``"annualised"``). What the cap refuses goes to ``overflow``.
    """

    rate: float
    overflow: str
    base: str = "guaranteed"
    pool: str = "agreement"
    period_years: float = 1.0

    def __post_init__(self) -> None:
        _own(self, "rate", low=0, high=1, low_open=True)
        _own_text(self, "overflow")
        _own_choice(self, "base", CAP_BASES)
        _own_choice(self, "pool", CAP_POOLS)
        _own(self, "period_years", low=0, low_open=True, high=10)
        if self.period_years < 1 or not float(self.period_years).is_integer():
            raise _own_fail(self, "period_years", "must be a whole number of years in "
                            f"[1, 10] (caps are settled per statistics period of whole "
                            f"annual cohorts), got {self.period_years!r}")


@dataclass(frozen=True, slots=True)
class Layer:
    """One party's proportional share of every covered default amount."""

    party: str
    share: float
    cap: Cap | None = None
    lag_days: float = 0.0

    def __post_init__(self) -> None:
        _own_text(self, "party")
        _own(self, "share", low=0, high=1)
        _own(self, "lag_days", low=0, high=3650)
        if self.cap is not None and self.cap.overflow == self.party:
            raise _own_fail(self, "cap.overflow", "must be a party other than the capped "
                            f"one, got {self.party!r}")


@dataclass(frozen=True, slots=True)
class Fee:
    """An annual fee ``from_party -> to_party``.

    Amount per loan and year: ``rate x guaranteed x share(on_share_of)`` where the rate is
    ``rate_above`` instead of ``rate`` for guaranteed amounts above ``threshold``.
    ``on_share_of`` = None means the whole guaranteed amount.
    """

    from_party: str
    to_party: str
    rate: float
    on_share_of: str | None = None
    threshold: float = math.inf
    rate_above: float | None = None
    kind: str = "fee"

    def __post_init__(self) -> None:
        _own_text(self, "from_party")
        _own_text(self, "to_party")
        _own_text(self, "on_share_of", optional=True)
        if self.to_party == self.from_party:
            raise _own_fail(self, "to_party", "must be a party other than from_party, "
                            f"got {self.to_party!r}")
        _own(self, "rate", low=0, high=0.2)
        _own(self, "threshold", infinite=True, low=0)
        _own(self, "rate_above", optional=True, low=0, high=0.2)
        if (self.rate_above is None) != (self.threshold == math.inf):
            raise _own_fail(self, "rate_above", "and threshold go together (both given or "
                            f"neither), got {self.rate_above!r} and {self.threshold!r}")
        _own_choice(self, "kind", FEE_KINDS)


@dataclass(frozen=True, slots=True)
class FiscalCompensation:
    """A budget compensates one layer for the part of its share above a standard share.

    Under the 2024 science-and-technology plan (财金〔2024〕60号, DOMAIN.md (b), [S12])
    the central budget (``from_party``) compensates the national fund (``to_party``) for
    the *additional* compensation caused by its share above the standard 20 %: of what
    the layer actually pays (after its cap) the budget bears
    ``(share - standard_share) / share``, and takes the same fraction of the layer's
    recoveries (:func:`simkit.sharing.compensation_fraction`). A share at or below the
    standard gives nothing.
    """

    from_party: str
    to_party: str
    standard_share: float = 0.20

    def __post_init__(self) -> None:
        _own_text(self, "from_party")
        _own_text(self, "to_party")
        if self.to_party == self.from_party:
            raise _own_fail(self, "from_party", "must be a party other than the "
                            f"compensated one ({self.to_party!r})")
        _own(self, "standard_share", low=0, high=1, high_open=True)


@dataclass(frozen=True, slots=True)
class Agreement:
    """A risk-share agreement: ordered layers, single limit, fees and recovery lag.

    The ``lender`` keeps the part of each loan above ``single_limit`` (yuan) on its own;
    the rest (the guaranteed amount) is shared by ``layers``, whose shares sum to 1.
    """

    name: str
    layers: tuple[Layer, ...]
    lender: str = "bank"
    single_limit: float = math.inf
    fees: tuple[Fee, ...] = ()
    recovery_lag_years: float = 1.5
    fiscal_compensation: FiscalCompensation | None = None

    def __post_init__(self) -> None:
        _own_text(self, "name")
        _own_text(self, "lender")
        if not self.layers or not all(isinstance(la, Layer) for la in self.layers):
            raise _own_fail(self, "layers", f"must be a non-empty tuple of Layer, got "
                            f"{self.layers!r}")
        parties = [layer.party for layer in self.layers]
        if len(set(parties)) != len(parties):
            raise _own_fail(self, "layers", f"must give each party one layer, got {parties}")
        total = sum(layer.share for layer in self.layers)
        if abs(total - 1) > 1e-9:
            raise _own_fail(self, "layers", "shares must sum to 1, got " + " + ".join(
                f"{layer.share:g}" for layer in self.layers) + f" = {total:.6g}")
        _own(self, "single_limit", infinite=True, low=0, low_open=True)
        _own(self, "recovery_lag_years", low=0, high=30)
        for i, fee in enumerate(self.fees):
            if fee.on_share_of is not None and fee.on_share_of not in parties:
                raise _own_fail(self, f"fees[{i}].on_share_of", "must name a layer party "
                                f"({', '.join(parties)}), got {fee.on_share_of!r}")
        fc = self.fiscal_compensation
        if fc is not None and fc.to_party not in parties:
            raise _own_fail(self, "fiscal_compensation.to_party", "must name a layer party "
                            f"({', '.join(parties)}), got {fc.to_party!r}")

    def share_of(self, party: str) -> float:
        return sum(layer.share for layer in self.layers if layer.party == party)

    @property
    def parties(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(layer.party for layer in self.layers))


@dataclass(frozen=True, slots=True)
class LineChange:
    """A change of a credit line during the run (DES): from ``at_years`` (years from the
    start) on, the line's amount is multiplied by ``factor``."""

    at_years: float
    factor: float

    def __post_init__(self) -> None:
        _own(self, "at_years", low=0, low_open=True, high=50)
        _own(self, "factor", low=0, low_open=True, high=100)


@dataclass(frozen=True, slots=True)
class LineAllocation:
    """The rule that re-allocates a credit line at the start of each period (DES; see
    :func:`simkit.des.lines.allocate` and the README): last period's use x ``growth``
    x a score of the holder's compensation rate (against ``reference_rate``) and
    leverage (against its limit), weighted by ``rate_weight`` and ``leverage_weight``."""

    growth: float = 1.0
    reference_rate: float = 0.03
    rate_weight: float = 0.5
    leverage_weight: float = 0.5

    def __post_init__(self) -> None:
        _own(self, "growth", low=0, low_open=True, high=10)
        _own(self, "reference_rate", low=0, low_open=True, high=1)
        _own(self, "rate_weight", low=0, high=10)
        _own(self, "leverage_weight", low=0, high=10)


@dataclass(frozen=True, slots=True)
class CreditLine:
    """An annual quota: ``from_party`` re-guarantees at most ``amount`` of new business
    filed by ``to_party`` per ``period_years``. In the DES the amount may change during
    the run (``changes``, applied in time order) and be re-allocated at the start of each
    period by a rule (``allocation``; ``None``: the amount stays)."""

    from_party: str
    to_party: str
    amount: float
    period_years: float = 1.0
    changes: tuple[LineChange, ...] = ()
    allocation: LineAllocation | None = None

    def __post_init__(self) -> None:
        _own_text(self, "from_party")
        _own_text(self, "to_party")
        if self.to_party == self.from_party:
            raise _own_fail(self, "to_party", "must be a party other than from_party, "
                            f"got {self.to_party!r}")
        _own(self, "amount", low=0, low_open=True)
        _own(self, "period_years", low=0, low_open=True, high=10)
        if not isinstance(self.changes, tuple) or not all(
                isinstance(c, LineChange) for c in self.changes):
            raise _own_fail(self, "changes", "must be a tuple of LineChange, got "
                            f"{self.changes!r}")
        times = [c.at_years for c in self.changes]
        if times != sorted(times):
            raise _own_fail(self, "changes", f"must be in time order, got at_years {times}")
        if self.allocation is not None and not isinstance(self.allocation, LineAllocation):
            raise _own_fail(self, "allocation", "must be a LineAllocation or None, got "
                            f"{self.allocation!r}")


@dataclass(frozen=True, slots=True)
class Regulation:
    """Leverage measurement (融资担保责任余额计量办法, DOMAIN.md (c))."""

    small_threshold: float = 5_000_000.0
    small_weight: float = 0.75
    default_weight: float = 1.0

    def __post_init__(self) -> None:
        _own(self, "small_threshold", low=0)
        _own(self, "small_weight", low=0, high=1)
        _own(self, "default_weight", low=0, high=1)


@dataclass(frozen=True, slots=True)
class DesSettings:
    """Settings of the discrete-event model (``[des]``); see the README."""

    years: float = 3.0
    mode: str = "individual"
    review_days_individual: float = 20.0
    review_days_batch: float = 3.0
    claim_trigger_days: float = 90.0
    claim_payment_days: float = 60.0
    refusal: str = "refuse"
    seasonality: float = 0.0
    bank_cost: float = 0.005
    moral_hazard_kappa: float = 0.0
    moral_hazard_gamma: float = 1.0
    renewal_prob: float = 0.0
    injection_trigger: float = 0.0
    injection_target: float = 1.0
    #: individual mode: the guarantor accepts when its expected loss rate on its own layer
    #: (share x PD x LGD mean, per year) is at most this multiple of the guarantee fee rate
    review_loss_tolerance: float = 2.0
    #: queue mode: days a refused application waits for room before it is given up
    queue_patience_days: float = 90.0
    #: sigma of the lognormal recovery lag (its median is agreement.recovery_lag_years)
    recovery_lag_sigma: float = 0.5
    #: the bank first checks its rule with retained share 1 (PD x LGD mean + bank_cost <=
    #: interest_margin) and lends directly, without a guarantee, when it passes
    direct_lending: bool = False
    #: screening: sd of the noise on log PD in the bank's signal at full retention
    #: (0: the bank sees the true PD); screening_effort: how fast the sd grows as the
    #: retained share falls (sd = noise x (1 + effort x (1 - retained)))
    screening_noise: float = 0.0
    screening_effort: float = 0.0
    #: review capacity (individual mode): staff per original guarantor (0: unlimited,
    #: the fixed review delay), applications one staff member starts per day, and the
    #: days an applicant waits for a reviewer before it withdraws
    review_staff: int = 0
    review_rate: float = 5.0
    review_patience_days: float = 60.0

    def __post_init__(self) -> None:
        for name, low, high in _DES_BOUNDS:
            _own(self, name, low=low, high=high)
        _own(self, "years", low=0, low_open=True, high=50)
        _own(self, "seasonality", low=0, high=1, high_open=True)
        _own(self, "moral_hazard_gamma", low=0, low_open=True, high=10)
        _own_choice(self, "mode", ("individual", "batch"))
        _own_choice(self, "refusal", REFUSAL_MODES)
        _own(self, "review_staff", low=0, high=10**6, integer=True)
        _own(self, "review_rate", low=0, low_open=True, high=10**4)
        if not isinstance(self.direct_lending, bool):
            raise _own_fail(self, "direct_lending", "must be true or false, got "
                            f"{self.direct_lending!r}")


#: Closed bounds of the DES settings checked by the objects (as the loader's :func:`_des`).
_DES_BOUNDS = (("review_days_individual", 0, 365), ("review_days_batch", 0, 365),
               ("claim_trigger_days", 0, 3650), ("claim_payment_days", 0, 3650),
               ("bank_cost", 0, 1), ("moral_hazard_kappa", 0, 10), ("renewal_prob", 0, 1),
               ("injection_trigger", 0, 1), ("injection_target", 0, 10),
               ("review_loss_tolerance", 0, 1000), ("queue_patience_days", 0, 3650),
               ("recovery_lag_sigma", 0, 5), ("screening_noise", 0, 5),
               ("screening_effort", 0, 10), ("review_patience_days", 0, 3650))
#: ``des.refusal``: refuse at once, queue every limit refusal, or queue only the
#: credit-line refusals (leverage and single-client refusals are final).
REFUSAL_MODES = ("refuse", "queue", "queue_credit_line")


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Monte Carlo settings: paths, seed, block size, horizon and importance sampling.

    ``importance_shift`` is the mean of the national factor under the sampling measure
    (0 = plain Monte Carlo); ``importance_auto`` lets simkit choose it.
    """

    n_paths: int = 100_000
    seed: int = 20250101
    block_size: int = 5_000
    horizon_years: int = 1
    importance_shift: float = 0.0
    importance_auto: bool = False

    def __post_init__(self) -> None:
        _own(self, "n_paths", low=1, high=10**10, integer=True)
        _own(self, "seed", low=0, high=2**63 - 1, integer=True)
        _own(self, "block_size", low=1, high=10**7, integer=True)
        _own(self, "horizon_years", low=1, high=50, integer=True)
        _own(self, "importance_shift", low=-4, high=0)
        if not isinstance(self.importance_auto, bool):
            raise _own_fail(self, "importance_auto", "must be true or false, got "
                            f"{self.importance_auto!r}")


# --------------------------------------------------------------------------------------
# parameter uncertainty (``[uncertainty]``; simkit.uncertainty runs it)
# --------------------------------------------------------------------------------------
#: Distributions of an uncertain parameter and their parameters (``low``/``high`` of a
#: normal are optional truncation bounds).
UNCERTAIN_KINDS = {"uniform": ("low", "high"), "loguniform": ("low", "high"),
                   "normal": ("mean", "sd"), "lognormal": ("median", "sigma"),
                   "beta": ("mean", "sd")}
#: ``value``: the draw is the value at every path; ``scale``: it multiplies each stated value.
UNCERTAIN_APPLY = ("value", "scale")
#: Draws are quantiles at probabilities in [QUANTILE_EPS, 1 - QUANTILE_EPS]; the loader
#: checks the scenario at both ends, so every draw makes a valid scenario.
QUANTILE_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class UncertainParameter:
    """A model parameter that is not known: a distribution over its value (second order).

    Not to be confused with a segment's ``default_prob`` distribution, which is the spread
    of default probabilities *across firms* (known); an uncertain parameter is one number
    the scenario states but whose value is unknown, drawn once per outer draw of
    :func:`simkit.uncertainty.run_uncertainty`.

    Attributes
    ----------
    name : str
        Label in results (default: the first path).
    paths : tuple of str
        Dotted paths of :meth:`Scenario.with_changes` that the draw sets together.
    kind : str
        One of :data:`UNCERTAIN_KINDS`.
    params : tuple of (str, float)
        The distribution's parameters (``normal``: ``mean``, ``sd`` and optional ``low`` /
        ``high`` truncation bounds).
    apply : str
        ``"value"`` (the draw is the value) or ``"scale"`` (each path's stated value times
        the draw).
    """

    name: str
    paths: tuple[str, ...]
    kind: str
    params: tuple[tuple[str, float], ...]
    apply: str = "value"

    def __post_init__(self) -> None:
        _own_text(self, "name")
        if not self.paths or not all(isinstance(p, str) and p for p in self.paths):
            raise _own_fail(self, "paths", f"must be a non-empty tuple of dotted paths, got "
                            f"{self.paths!r}")
        _own_choice(self, "kind", tuple(UNCERTAIN_KINDS))
        _own_choice(self, "apply", UNCERTAIN_APPLY)
        p = dict(self.params)
        need = set(UNCERTAIN_KINDS[self.kind])
        extra = {"low", "high"} if self.kind == "normal" else set()
        if not need <= set(p) <= need | extra:
            raise _own_fail(self, "params", f"of a {self.kind!r} parameter must be "
                            f"{', '.join(sorted(need))}, got {p!r}")
        for key, value in p.items():
            check_number(value, "", f"UncertainParameter.params.{key}")
        if self.kind in ("uniform", "loguniform") and p["high"] < p["low"]:
            raise _own_fail(self, "params.high", f"must be >= low, got {p['high']!r}")
        if self.kind == "loguniform" and p["low"] <= 0:
            raise _own_fail(self, "params.low", f"must be > 0, got {p['low']!r}")
        if self.kind == "normal":
            check_number(p["sd"], "", "UncertainParameter.params.sd", low=0)
            lo, hi = p.get("low", -math.inf), p.get("high", math.inf)
            if not lo < hi or not lo <= p["mean"] <= hi:
                raise _own_fail(self, "params", f"must have low < high and the mean "
                                f"within them, got {p!r}")
        if self.kind == "lognormal":
            check_number(p["median"], "", "UncertainParameter.params.median", low=0,
                         low_open=True)
            check_number(p["sigma"], "", "UncertainParameter.params.sigma", low=0, high=5)
        if self.kind == "beta":
            check_number(p["mean"], "", "UncertainParameter.params.mean", low=0, high=1,
                         low_open=True, high_open=True)
            _beta_sd_ok(self, p["mean"], p["sd"], "params.sd")

    def quantile(self, u: Any) -> np.ndarray:
        """The value at probabilities ``u`` (clipped to ``[QUANTILE_EPS, 1 - QUANTILE_EPS]``).

        Parameters
        ----------
        u : array_like, shape (n,)
            Probabilities in [0, 1].

        Returns
        -------
        ndarray, shape (n,)
            Values of the parameter (the multiplier when ``apply == "scale"``).
        """
        from scipy import special, stats

        u = np.clip(np.asarray(u, dtype=np.float64), QUANTILE_EPS, 1 - QUANTILE_EPS)
        p = dict(self.params)
        if self.kind == "uniform":
            return p["low"] + u * (p["high"] - p["low"])
        if self.kind == "loguniform":
            lo, hi = math.log(p["low"]), math.log(p["high"])
            return np.exp(lo + u * (hi - lo))
        if self.kind == "lognormal":
            return p["median"] * np.exp(p["sigma"] * special.ndtri(u))
        if self.kind == "beta":
            a, b = _beta_ab(p["mean"], p["sd"])
            if not math.isfinite(a):
                return np.full(u.shape, p["mean"])
            return special.betaincinv(a, b, u)
        if p["sd"] == 0:  # normal
            return np.full(u.shape, p["mean"])
        lo = (p.get("low", -math.inf) - p["mean"]) / p["sd"]
        hi = (p.get("high", math.inf) - p["mean"]) / p["sd"]
        return np.asarray(stats.truncnorm.ppf(u, lo, hi, loc=p["mean"], scale=p["sd"]),
                          dtype=np.float64)

    def mean(self) -> float:
        """The distribution's mean (the point value of an inline ``uncertain = true``)."""
        p = dict(self.params)
        if self.kind == "normal":
            if p["sd"] == 0 or ("low" not in p and "high" not in p):
                return p["mean"]
            from scipy import stats

            lo = (p.get("low", -math.inf) - p["mean"]) / p["sd"]
            hi = (p.get("high", math.inf) - p["mean"]) / p["sd"]
            return float(stats.truncnorm.mean(lo, hi, loc=p["mean"], scale=p["sd"]))
        return Distribution(self.kind, self.params).mean()

    def as_dict(self) -> dict[str, Any]:
        """The entry of ``[[uncertainty.parameters]]`` (the form :meth:`Scenario.to_dict`
        writes)."""
        return {"name": self.name, "paths": list(self.paths), "apply": self.apply,
                "dist": self.kind, **dict(self.params)}


@dataclass(frozen=True)
class Scenario:
    """A validated, immutable scenario. Build with :func:`load` or :func:`from_dict`."""

    name: str
    description: str
    parties: tuple[Party, ...]
    agreements: tuple[Agreement, ...]
    segments: tuple[Segment, ...]
    factors: Factors
    run: RunSettings
    des: DesSettings = DesSettings()
    regulation: Regulation = Regulation()
    credit_lines: tuple[CreditLine, ...] = ()
    tape: str | None = None
    #: Root seed of the synthetic book (``[book] seed``; default the ``[run] seed`` written
    #: in the file, pinned by :meth:`with_changes`, so a new path seed keeps the loans).
    book_seed: int | None = None
    #: Uncertain parameters (``[uncertainty]``, inline ``uncertain = true``); a plain run
    #: uses the stated values, :func:`simkit.uncertainty.run_uncertainty` draws them.
    uncertainty: tuple[UncertainParameter, ...] = ()
    #: Where the scenario came from (a file name or ``"<dict>"``): provenance only, not
    #: part of the scenario's value (two equal scenarios may come from different files).
    source: str = field(default="<dict>", compare=False)

    def __post_init__(self) -> None:
        # built by the loader: checked already; built directly or by dataclasses.replace:
        # the whole scenario is checked by the loader again, on its plain mapping, so the
        # cross-references (layer parties, segment agreements, cap periods ...) hold and
        # the errors are the loader's, with dotted field paths
        if _TRUSTED.get():
            return
        try:
            data = self.to_dict()
        except (AttributeError, TypeError, KeyError) as exc:
            raise ScenarioError(self.source, "", "is not made of simkit value objects "
                                f"({type(exc).__name__}: {exc})") from None
        _build(data, self.source, tape_base=None)

    @property
    def raw(self) -> dict[str, Any]:
        """The plain mapping of the scenario (:meth:`to_dict`; kept for older callers)."""
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The scenario as the plain mapping of a scenario file (TOML tables and arrays).

        ``from_dict(s.to_dict()) == s`` for every valid scenario: the mapping states
        every field (defaults included, ``None`` and infinite values left out), fixed
        distributions and fixed LGDs as numbers, and the book's seed under ``book.seed``.
        A loan tape's path is the one stored (already resolved against the scenario
        file's directory).
        """
        out: dict[str, Any] = {
            "scenario": {"name": self.name, "description": self.description},
            "parties": {p.name: _party_dict(p) for p in self.parties},
            "agreements": [_agreement_dict(a) for a in self.agreements],
            "factors": {**_fields(self.factors.loadings), "copula": self.factors.copula,
                        "dof": self.factors.dof,
                        "national_persistence": self.factors.national_persistence,
                        "downturn_lgd": self.factors.downturn_lgd,
                        "national_path": list(self.factors.national_path)},
            "regulation": _fields(self.regulation),
            "run": {"n_paths": self.run.n_paths, "seed": self.run.seed,
                    "block_size": self.run.block_size,
                    "horizon_years": self.run.horizon_years,
                    "importance_sampling": (True if self.run.importance_auto
                                            else self.run.importance_shift)},
            "des": _fields(self.des),
        }
        book: dict[str, Any] = {}
        if self.tape is not None:
            book["tape"] = self.tape
        if self.book_seed is not None:
            book["seed"] = self.book_seed
        if book:
            out["book"] = book
        if self.segments:
            out["segments"] = [_segment_dict(seg) for seg in self.segments]
            if len(self.agreements) == 1:  # implicit, as in a file: renaming it keeps them
                for seg in out["segments"]:
                    seg.pop("agreement", None)
        if self.credit_lines:
            out["credit_lines"] = [_credit_line_dict(c) for c in self.credit_lines]
        if self.uncertainty:
            out["uncertainty"] = {"parameters": [p.as_dict() for p in self.uncertainty]}
        return out

    # -- lookups ------------------------------------------------------------------------
    @property
    def party_names(self) -> tuple[str, ...]:
        """Party names in the column order used by every result."""
        return tuple(p.name for p in self.parties)

    def party(self, name: str) -> Party:
        for p in self.parties:
            if p.name == name:
                return p
        raise KeyError(name)

    def agreement(self, name: str) -> Agreement:
        for a in self.agreements:
            if a.name == name:
                return a
        raise KeyError(name)

    @property
    def cap_period_years(self) -> int:
        """The common statistics period of every cap, in whole years (1 without caps).

        Validation guarantees one whole-year period shared by all caps.
        """
        periods = {layer.cap.period_years for a in self.agreements for layer in a.layers
                   if layer.cap is not None}
        return int(next(iter(periods), 1))

    def with_changes(self, changes: dict[str, Any]) -> Scenario:
        """Return a copy with dotted-path ``changes`` applied and validated again.

        >>> s2 = s.with_changes({"run.n_paths": 1000, "agreements[0].layers[1].share": 0.3})
        """
        if not isinstance(changes, dict):
            raise ScenarioError(self.source, "", "changes must be a dict of dotted field paths "
                                f"to values, got {type(changes).__name__}")
        # the world stays put: to_dict states book.seed, so a changed run.seed (or any
        # other edit) keeps the book's seed
        raw = self.to_dict()
        for path, value in changes.items():
            try:
                _check_depth(value, self.source, str(path))
                _set_path(raw, path, plain(value))
            except (KeyError, IndexError, TypeError):
                raise ScenarioError(self.source, repr(path), "is not a field path of this scenario "
                                    "(e.g. 'run.n_paths' or 'agreements[0].layers[1].share')"
                                    ) from None
        # the both-ends trials of uncertain parameters (a dozen builds on anhui_2024) run
        # when a change touches the table; run_uncertainty runs them before it draws
        ends = any(str(p).startswith("uncertainty") for p in changes)
        return _build(raw, self.source, tape_base=None, check_ends=ends)

    def check_uncertainty(self) -> None:
        """Check that every draw of the uncertain parameters gives a valid scenario (each
        at both ends of its draws, and all at their lower or upper ends), as the loader
        does; :func:`simkit.uncertainty.run_uncertainty` calls it before drawing.

        Raises
        ------
        ScenarioError
            Naming the parameter and the field its end value breaks.
        """
        if self.uncertainty:
            _build(self.to_dict(), self.source, tape_base=None, check_ends=True)

    variant = with_changes


def _fields(obj: Any) -> dict[str, Any]:
    """A slotted dataclass's fields as a dict (shallow; values are plain)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _credit_line_dict(c: CreditLine) -> dict[str, Any]:
    out: dict[str, Any] = {"from": c.from_party, "to": c.to_party, "amount": c.amount,
                           "period_years": c.period_years,
                           "changes": [_fields(x) for x in c.changes]}
    if c.allocation is not None:
        out["allocation"] = _fields(c.allocation)
    return out


def _dropped(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` without ``None`` and infinite values (the file leaves them out)."""
    return {k: v for k, v in d.items() if v is not None and v != math.inf}


def _distribution_dict(d: Distribution) -> Any:
    return d.param("value") if d.kind == "fixed" else {"dist": d.kind, **dict(d.params)}


def _party_dict(p: Party) -> dict[str, Any]:
    return _dropped({k: v for k, v in _fields(p).items() if k != "name"})


def _agreement_dict(a: Agreement) -> dict[str, Any]:
    layers = []
    for layer in a.layers:
        row: dict[str, Any] = {"party": layer.party, "share": layer.share,
                               "lag_days": layer.lag_days}
        if layer.cap is not None:
            row["cap"] = _fields(layer.cap)
        layers.append(row)
    fees = [_dropped({"from": f.from_party, "to": f.to_party, "rate": f.rate,
                      "on_share_of": f.on_share_of, "threshold": f.threshold,
                      "rate_above": f.rate_above, "kind": f.kind}) for f in a.fees]
    out = _dropped({"name": a.name, "lender": a.lender, "single_limit": a.single_limit,
                    "recovery_lag_years": a.recovery_lag_years})
    out["layers"] = layers
    if fees:
        out["fees"] = fees
    fc = a.fiscal_compensation
    if fc is not None:
        out["fiscal_compensation"] = {"from": fc.from_party, "to": fc.to_party,
                                      "standard_share": fc.standard_share}
    return out


def _segment_dict(seg: Segment) -> dict[str, Any]:
    out = _dropped(_fields(seg))
    out["exposure"] = _distribution_dict(seg.exposure)
    out["default_prob"] = _distribution_dict(seg.default_prob)
    out["lgd"] = seg.lgd.mean if seg.lgd.sd == 0 else {"mean": seg.lgd.mean, "sd": seg.lgd.sd}
    if seg.loadings is not None:
        out["loadings"] = _fields(seg.loadings)
    return out


def _path_tokens(path: str) -> list[str]:
    """The keys and ``[i]`` indices of a dotted path (``KeyError`` when malformed)."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]+(\[\d+\])*(\.[A-Za-z0-9_\-]+(\[\d+\])*)*", path):
        raise KeyError(path)
    return re.findall(r"[^.\[\]]+|\[\d+\]", path)


def _get_path(raw: Any, path: str) -> Any:
    """The value at a dotted path of a plain mapping (``KeyError`` / ``IndexError`` /
    ``TypeError`` when absent)."""
    node = raw
    for tok in _path_tokens(path):
        if tok.startswith("["):
            if not isinstance(node, list):
                raise TypeError(path)
            node = node[int(tok[1:-1])]
        else:
            if not isinstance(node, dict):
                raise TypeError(path)
            node = node[tok]
    return node


def _set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    tokens = _path_tokens(path)
    node: Any = raw
    for i, tok in enumerate(tokens):
        last = i == len(tokens) - 1
        key: Any = int(tok[1:-1]) if tok.startswith("[") else tok
        if isinstance(key, int) != isinstance(node, list):
            raise TypeError(path)
        if last:
            node[key] = value
        else:
            if isinstance(key, str) and key not in node:
                node[key] = {}
            node = node[key]


# --------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------
def load(path: str | Path) -> Scenario:
    """Read and validate a scenario TOML file.

    Raises
    ------
    ScenarioError
        With the file, dotted field path, bad value and allowed values.
    """
    path = Path(path)
    name = str(path)
    text = read_regular_file(path, "a scenario TOML file", MAX_FILE_BYTES)
    try:
        data = tomllib.loads(text.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ScenarioError(name, "", f"is not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(name, "", f"is not valid TOML: {exc}") from None
    except RecursionError:
        raise ScenarioError(name, "", "is not valid TOML for simkit: arrays or tables nested "
                            f"too deep (at most {MAX_DEPTH} levels)") from None
    except ValueError as exc:  # e.g. an integer literal over Python's 4,300-digit limit
        raise ScenarioError(name, "", "is not valid TOML for simkit: a number literal is too "
                            f"long ({str(exc).split(':')[0]})") from None
    return from_dict(data, source=name)


def read_regular_file(path: Path, what: str, max_bytes: int | None = None) -> bytes:
    """Read a regular file, refusing FIFOs, devices and directories before opening them.

    Parameters
    ----------
    path : Path
    what : str
        What the file should be, for the message (``"a loan tape"``).
    max_bytes : int, optional
        Refuse files larger than this (bytes).

    Raises
    ------
    ScenarioError
        When the file is missing, unreadable, not a regular file or too large.
    """
    import stat

    name = str(path)
    try:
        st = path.stat()
    except (OSError, ValueError) as exc:
        raise ScenarioError(name, "", f"cannot be read: {getattr(exc, 'strerror', None) or exc}"
                            ) from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO"
                if stat.S_ISFIFO(st.st_mode) else "a device or other special file")
        raise ScenarioError(name, "", f"is {kind}, not a regular file ({what} is expected)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise ScenarioError(name, "", f"is {st.st_size:,} bytes, more than the "
                            f"{max_bytes:,} accepted for {what}")
    try:
        with path.open("rb") as fh:
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except OSError as exc:
        raise ScenarioError(name, "", f"cannot be read: {exc.strerror or exc}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise ScenarioError(name, "", f"is more than the {max_bytes:,} bytes accepted for {what}")
    return data


def _check_depth(data: Any, source: str, path: str = "") -> None:
    """Refuse arrays / tables nested deeper than :data:`MAX_DEPTH` (iteratively)."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list | tuple):
            if depth >= MAX_DEPTH:
                raise ScenarioError(source, path, f"nests arrays or tables deeper than "
                                    f"{MAX_DEPTH} levels")
            values = node.values() if isinstance(node, dict) else node
            stack.extend((v, depth + 1) for v in values)


#: Set while the loader builds a Scenario it has checked (no second check on construction).
_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("simkit_trusted",
                                                                default=False)


def from_dict(data: dict[str, Any], source: str = "<dict>") -> Scenario:
    """Validate a scenario given as a mapping (the parsed TOML, or :meth:`Scenario.to_dict`).

    A relative ``book.tape`` is taken relative to the directory of ``source`` when
    ``source`` names a file.
    """
    base = None if source == "<dict>" else Path(source).parent
    return _build(data, source, tape_base=base)


def _build(data: dict[str, Any], source: str, tape_base: Path | None,
           check_ends: bool = True) -> Scenario:
    """Check ``data`` and build the Scenario (``tape_base``: directory a relative tape
    path is joined to; ``None`` keeps it as given; ``check_ends``: try the uncertain
    parameters at the ends of their draws)."""
    _check_depth(data, source)
    data = plain(data) if isinstance(data, dict) else data
    inline: list[tuple[UncertainParameter, str, bool]] = []
    if isinstance(data, dict):
        data = _lift_uncertain(data, source, inline)
    top = Reader(data, "", source)
    meta = top.sub("scenario")
    name, description = "scenario", ""
    if meta is not None:
        name = meta.string("name", "scenario")
        if not name.strip() or len(name) > 200:
            raise meta.bad("name", name, "a non-blank name of at most 200 characters")
        description = meta.string("description", "")
        meta.finish()

    parties = _parties(top)
    party_names = [p.name for p in parties]
    agreements = _agreements(top, parties)
    factors = _factors(top)
    tape = None
    book_seed = None
    book = top.sub("book")
    if book is not None:
        tape = book.string("tape", None)
        if tape is not None:
            if not tape:
                raise book.bad("tape", tape, "a file path")
            if tape_base is not None and not Path(tape).is_absolute():
                tape = str(tape_base / tape)  # relative to the scenario file
        book_seed = book.number("seed", None, low=0, high=2**63 - 1, integer=True)
        book.finish()
    segments = _segments(top, parties, agreements, required=tape is None)
    if tape is None and sum(seg.count for seg in segments) == 0:
        raise ScenarioError(source, "segments", "must contain at least one loan (every count "
                            "is 0 or there are no segments)")
    credit_lines = tuple(_credit_line(r, party_names) for r in top.table_list("credit_lines"))
    regulation = _regulation(top)
    run = _run(top)
    des = _des(top)
    uncertainty = [*_uncertainty(top), *inline]
    top.finish()
    if book_seed is None:  # the world's default seed: the run seed written in the file
        book_seed = run.seed
    token = _TRUSTED.set(True)
    try:
        scenario = Scenario(
            name=name, description=description, parties=parties, agreements=agreements,
            segments=segments, factors=factors, run=run, des=des, regulation=regulation,
            credit_lines=credit_lines, tape=tape, book_seed=int(book_seed), source=source,
        )
    finally:
        _TRUSTED.reset(token)
    if uncertainty:
        scenario = _check_uncertainty(scenario, uncertainty, check_ends=check_ends)
    return scenario


def _check_identifier(r: Reader, key: str, value: str) -> None:
    """Names: ASCII letters, digits, '_' or '-' (not first), at most :data:`MAX_NAME` long."""
    if len(value) > MAX_NAME or not _NAME.fullmatch(value):
        raise r.bad(key, value, f"a name of at most {MAX_NAME} ASCII letters, digits, '_' or "
                    "'-' (not starting with '-')")


def _check_label(r: Reader, key: str, value: str | None) -> None:
    """Labels (region, sector): non-blank, no surrounding spaces or control characters."""
    if value is None:
        return
    if (not value.strip() or value != value.strip() or len(value) > MAX_NAME
            or not value.isprintable()):
        raise r.bad(key, value, f"a non-blank label of at most {MAX_NAME} printable "
                    "characters without leading or trailing spaces")


def _parties(top: Reader) -> tuple[Party, ...]:
    table = top.sub("parties", required=True)
    assert table is not None
    if not table.data:
        raise table.error(None, "must define at least one party")
    out = []
    for name in table.data:
        _check_identifier(table, name, name)
        if name == BORROWER:
            raise table.error(name, "is reserved (the borrower is implicit)")
        r = table.sub(name)
        assert r is not None
        default_kind = name if name in PARTY_KINDS else None
        kind = r.string("kind", default_kind, required=default_kind is None, choices=PARTY_KINDS)
        assert kind is not None  # required when there is no default
        out.append(Party(
            name=name,
            kind=kind,
            net_assets=r.number("net_assets", None, low=0),
            leverage_limit=r.number("leverage_limit", None, low=0, low_open=True),
            region=_label(r, "region", None),
            single_client_limit=r.number("single_client_limit", None, low=0, high=1,
                                         low_open=True),
        ))
        r.finish()
    return tuple(out)


def _factors(top: Reader) -> Factors:
    r = top.sub("factors")
    if r is None:
        return Factors()
    loadings = _loadings(r, Loadings(national=0.3))
    copula = r.string("copula", "gaussian", choices=("gaussian", "student_t"))
    f = Factors(
        loadings=loadings,
        copula=copula,
        dof=r.number("dof", 6.0, low=2, low_open=True, high=1000),
        national_persistence=r.number("national_persistence", 0.0, low=0, high=1,
                                      high_open=True),
        downturn_lgd=r.number("downturn_lgd", 0.0, low=0, high=2),
        national_path=_national_path(r.raw("national_path", []), r.file,
                                     join(r.path, "national_path")),
    )
    r.finish()
    return f


def _loadings(r: Reader, default: Loadings) -> Loadings:
    values = {
        k: r.number(k, getattr(default, k), low=0, high=1, high_open=True)
        for k in ("national", "regional", "sector", "guarantor")
    }
    r_squared = sum(v**2 for v in values.values())  # as Loadings.r_squared
    if r_squared >= 1:
        raise r.error(
            None, "loadings must have squares summing below 1, got "
            + " + ".join(f"{v:g}^2" for v in values.values() if v)
            + f" = {r_squared:.6g}"
        )
    return Loadings(**values)


def _distribution(r: Reader, key: str, *, low: float, high: float, required: bool = True,
                  default: Distribution | None = None) -> Distribution:
    """A number (fixed) or a table ``{dist = ..., ...}`` whose values lie in [low, high]."""
    if not r.has(key):
        if required:
            raise r.error(key, "is required")
        assert default is not None
        return default
    value = r.raw(key)
    path = join(r.path, key)
    if not isinstance(value, dict):
        v = r.number(key, low=low, high=high, low_open=low == 0 and high == 1,
                     high_open=high == 1)
        return Distribution("fixed", (("value", v),))
    d = Reader(value, path, r.file)
    kind = d.string("dist", required=True,
                    choices=("fixed", "uniform", "loguniform", "lognormal", "beta"))
    unit_open: dict[str, Any] = dict(low=low, high=high, low_open=low == 0 and high == 1,
                                     high_open=high == 1)
    if kind == "beta" and high > 1:
        raise d.bad("dist", kind, "fixed, uniform, loguniform or lognormal for an amount")
    if kind == "fixed":
        params = {"value": d.number("value", required=True, **unit_open)}
    elif kind in ("uniform", "loguniform"):
        lo = d.number("low", required=True, **unit_open)
        if kind == "loguniform" and lo <= 0:
            raise d.bad("low", lo, "> 0 for a loguniform distribution")
        hi = d.number("high", required=True, **unit_open)
        if hi < lo:
            raise d.bad("high", hi, f">= low ({lo:g})")
        params = {"low": lo, "high": hi}
    elif kind == "lognormal":
        if high <= 1:
            raise d.bad("dist", kind, "fixed, uniform, loguniform or beta for a probability")
        params = {"median": d.number("median", required=True, low=0, low_open=True,
                                     high=high),
                  "sigma": d.number("sigma", required=True, low=0, high=5)}
    else:
        mean = d.number("mean", required=True, low=0, high=1, low_open=True, high_open=True)
        sd = d.number("sd", required=True, low=0)
        _check_beta_sd(d, sd)
        if sd >= math.sqrt(mean * (1 - mean)) or min(_beta_ab(mean, sd)) <= 0:
            # compare sds first: sd**2 overflows for sd = 1e200
            raise d.bad("sd", sd, f"< sqrt(mean*(1-mean)) = {math.sqrt(mean * (1 - mean)):.6g}")
        params = {"mean": mean, "sd": sd}
    d.finish()
    return Distribution(kind, tuple(params.items()))


def _check_beta_sd(d: Reader, sd: float) -> None:
    if 0 < sd < MIN_BETA_SD:
        raise d.bad("sd", sd, f"0 (a fixed value) or >= {MIN_BETA_SD:g} (smaller sds make the "
                    "Beta shape parameters overflow)")


def _lgd(r: Reader) -> Lgd:
    if not r.has("lgd"):
        raise r.error("lgd", "is required (a number or {mean, sd})")
    value = r.raw("lgd")
    if not isinstance(value, dict):
        return Lgd(r.number("lgd", low=0, high=1))
    d = r.sub("lgd")
    assert d is not None
    mean = d.number("mean", required=True, low=0, high=1)
    sd = d.number("sd", 0.0, low=0)
    _check_beta_sd(d, sd)
    if sd > 0 and (mean in (0.0, 1.0) or sd >= math.sqrt(mean * (1 - mean))
                   or min(_beta_ab(mean, sd)) <= 0):
        raise d.bad("sd", sd, f"< sqrt(mean*(1-mean)) = {math.sqrt(mean * (1 - mean)):.6g}")
    d.finish()
    return Lgd(mean, sd)


def _segments(top: Reader, parties: tuple[Party, ...], agreements: tuple[Agreement, ...],
              required: bool) -> tuple[Segment, ...]:
    rows = top.table_list("segments", required=required)
    kinds = {p.name: p.kind for p in parties}
    guarantors = [p.name for p in parties if p.kind == "guarantor"]
    names: set[str] = set()
    out = []
    for r in rows:
        name = r.string("name", required=True)
        _check_identifier(r, "name", name)
        if name in names:
            raise r.bad("name", name, "unique among segments")
        names.add(name)
        if len(agreements) == 1:
            agreement = r.string("agreement", agreements[0].name)
        else:
            agreement = r.string("agreement", required=True)
        check_name(agreement, [a.name for a in agreements], r.file, join(r.path, "agreement"),
                   "agreement")
        guarantor = r.string("guarantor")
        if guarantor is not None:
            check_name(guarantor, guarantors, r.file, join(r.path, "guarantor"),
                       "guarantor-kind party")
            ag = next(a for a in agreements if a.name == agreement)
            if not any(kinds[layer.party] == "guarantor" for layer in ag.layers):
                raise r.error("guarantor", f"is set, but agreement {agreement!r} has no "
                              "guarantor-kind layer to assign it to")
        load = r.sub("loadings")
        loadings = None
        if load is not None:
            loadings = _loadings(load, Loadings())
            load.finish()
        count = r.number("count", required=True, low=0, high=10**8, integer=True)
        exposure = _distribution(r, "exposure", low=0, high=1e12)
        lowest = {"fixed": "value", "uniform": "low", "loguniform": "low"}.get(exposure.kind)
        if lowest is not None and exposure.param(lowest) <= 0:
            raise r.bad("exposure" if exposure.kind == "fixed" else f"exposure.{lowest}",
                        exposure.param(lowest), "> 0 yuan")
        out.append(Segment(
            name=name,
            count=count,
            exposure=exposure,
            default_prob=_distribution(r, "default_prob", low=0, high=1),
            lgd=_lgd(r),
            agreement=agreement,
            sector=_label(r, "sector", "general"),
            region=_label(r, "region", "default"),
            guarantor=guarantor,
            tech_tier=r.number("tech_tier", 0, low=0, high=3, integer=True),
            tenor_years=r.number("tenor_years", 1.0, low=0, high=30, low_open=True),
            loadings=loadings,
            applications_per_year=_applications(r),
            interest_margin=r.number("interest_margin", 0.03, low=0, high=1),
        ))
        r.finish()
    return tuple(out)


_D = TypeVar("_D", str, None)


def _label(r: Reader, key: str, default: _D) -> str | _D:
    value = r.string(key, default)
    _check_label(r, key, value)
    return value


def _applications(r: Reader) -> float | None:
    """``applications_per_year``: >= 0 and at most :data:`MAX_APPLICATIONS_PER_YEAR`."""
    value = r.number("applications_per_year", None, low=0)
    if value is not None and value > MAX_APPLICATIONS_PER_YEAR:
        raise r.bad("applications_per_year", value,
                    f"<= {MAX_APPLICATIONS_PER_YEAR:g} (ten times the 1.05 million firms the "
                    "national fund served in all of China in 2024, DOMAIN.md (d); the DES "
                    "keeps arrays per application)")
    return value


def _cap_period(cr: Reader) -> float:
    """A cap's statistics period: a whole number of years in [1, 10].

    The Monte Carlo engine settles caps per statistics period of whole annual cohorts,
    so a fraction of a year cannot be represented.
    """
    value = cr.number("period_years", 1.0, low=0, low_open=True, high=10)
    if value < 1 or not float(value).is_integer():
        raise cr.bad("period_years", value, "a whole number of years in [1, 10] (caps are "
                     "settled per statistics period of whole annual cohorts)")
    return float(value)


def _common_cap_period(top: Reader, agreements: tuple[Agreement, ...]) -> None:
    """All capped layers must share one statistics period (the Monte Carlo needs one)."""
    periods: dict[float, str] = {}
    for i, agreement in enumerate(agreements):
        for j, layer in enumerate(agreement.layers):
            if layer.cap is not None:
                periods.setdefault(layer.cap.period_years,
                                   f"agreements[{i}].layers[{j}].cap.period_years")
    if len(periods) > 1:
        (p0, w0), (p1, w1) = sorted(periods.items())[:2]
        raise ScenarioError(top.file, w1, f"is {p1:g} but {w0} is {p0:g}: every cap must use "
                            "the same statistics period (the Monte Carlo settles all caps "
                            "per common period)")


def _layers(r: Reader, party_names: list[str], kinds: dict[str, str]) -> list[Layer]:
    """``agreements[i].layers``: party, share, optional cap and lag of each layer."""
    layers = []
    for lr in r.table_list("layers", required=True):
        party = lr.string("party", required=True)
        check_name(party, party_names, lr.file, join(lr.path, "party"), "party")
        share = lr.number("share", required=True, low=0, high=1)
        cap = None
        cr = lr.sub("cap")
        if cr is not None:
            overflow = cr.string("overflow")
            if overflow is None:
                raise cr.error("overflow", "is required: name the party that absorbs "
                               "what the cap refuses (e.g. the original guarantor)")
            check_name(overflow, party_names, cr.file, join(cr.path, "overflow"), "party")
            if overflow == party:
                raise cr.bad("overflow", overflow, "a party other than the capped one")
            if kinds[party] == "guarantor" and kinds[overflow] == "guarantor":
                raise cr.bad("overflow", overflow, "a party not of guarantor kind (a "
                             "guarantor-kind layer and overflow both map to the loan's "
                             "own guarantor)")
            cap = Cap(
                rate=cr.number("rate", required=True, low=0, high=1, low_open=True),
                overflow=overflow,
                base=cr.string("base", "guaranteed", choices=CAP_BASES),
                pool=cr.string("pool", "agreement", choices=CAP_POOLS),
                period_years=_cap_period(cr),
            )
            cr.finish()
        layers.append(Layer(party, share, cap,
                            lr.number("lag_days", 0.0, low=0, high=3650)))
        lr.finish()
    return layers


def _fees(r: Reader, party_names: list[str], layer_parties: set[str]) -> list[Fee]:
    """``agreements[i].fees``: from, to, rate, optional share, threshold and kind."""
    seen = layer_parties
    fees = []
    for fr in r.table_list("fees"):
        frm = fr.string("from", required=True)
        check_name(frm, [*party_names, BORROWER], fr.file, join(fr.path, "from"), "party")
        to = fr.string("to", required=True)
        check_name(to, party_names, fr.file, join(fr.path, "to"), "party")
        if to == frm:
            raise fr.bad("to", to, "a party other than 'from'")
        on = fr.string("on_share_of")
        if on is not None and on not in seen:
            check_name(on, sorted(seen), fr.file, join(fr.path, "on_share_of"),
                       "layer party")
        rate = fr.number("rate", required=True, low=0, high=0.2)
        if fr.has("rate_above") != fr.has("threshold"):
            missing = "threshold" if fr.has("rate_above") else "rate_above"
            raise fr.error(missing, "is required when "
                           f"{'rate_above' if missing == 'threshold' else 'threshold'} "
                           "is given")
        fees.append(Fee(
            from_party=frm, to_party=to, rate=rate, on_share_of=on,
            threshold=fr.number("threshold", math.inf, low=0),
            rate_above=fr.number("rate_above", None, low=0, high=0.2),
            kind=fr.string("kind", "fee", choices=("guarantee", "reguarantee", "subsidy",
                                                   "fee")),
        ))
        fr.finish()
    return fees


def _agreements(top: Reader, parties: tuple[Party, ...]) -> tuple[Agreement, ...]:
    rows = top.table_list("agreements", required=True)
    if not rows:
        raise top.error("agreements", "must define at least one agreement")
    party_names = [p.name for p in parties]
    kinds = {p.name: p.kind for p in parties}
    out: list[Agreement] = []
    for r in rows:
        name = r.string("name", required=True)
        _check_identifier(r, "name", name)
        if any(a.name == name for a in out):
            raise r.bad("name", name, "unique among agreements")
        banks = [p.name for p in parties if p.kind == "bank"]
        lender = r.string("lender", banks[0] if banks else None, required=not banks)
        assert lender is not None  # required when there is no bank
        check_name(lender, party_names, r.file, join(r.path, "lender"), "party")
        layers = _layers(r, party_names, kinds)
        if not layers:
            raise r.error("layers", "must have at least one layer")
        seen: set[str] = set()
        for i, layer in enumerate(layers):
            if layer.party in seen:
                raise r.error(f"layers[{i}]", f"repeats party {layer.party!r}; "
                              "give each party one layer")
            seen.add(layer.party)
        total = sum(layer.share for layer in layers)
        if abs(total - 1) > 1e-9:
            raise r.error("layers", "shares must sum to 1, got "
                          + " + ".join(f"{lay.share:g}" for lay in layers) + f" = {total:.6g}")
        if sum(kinds[layer.party] == "guarantor" for layer in layers) > 1:
            raise r.error("layers", "may have at most one guarantor-kind layer "
                          "(segments choose the original guarantor)")
        fees = _fees(r, party_names, seen)
        out.append(Agreement(
            name=name, layers=tuple(layers), lender=lender,
            single_limit=r.number("single_limit", math.inf, low=0, low_open=True),
            fees=tuple(fees),
            recovery_lag_years=r.number("recovery_lag_years", 1.5, low=0, high=30),
            fiscal_compensation=_fiscal_compensation(r, layers, kinds),
        ))
        r.finish()
    _common_cap_period(top, tuple(out))
    return tuple(out)


def _fiscal_compensation(r: Reader, layers: list[Layer], kinds: dict[str, str]
                         ) -> FiscalCompensation | None:
    """``agreements[i].fiscal_compensation = {from, to, standard_share}`` (optional)."""
    fr = r.sub("fiscal_compensation")
    if fr is None:
        return None
    frm = fr.string("from", required=True)
    check_name(frm, list(kinds), fr.file, join(fr.path, "from"), "party")
    to = fr.string("to", required=True)
    check_name(to, [layer.party for layer in layers], fr.file, join(fr.path, "to"),
               "layer party of this agreement")
    if to == frm:
        raise fr.bad("from", frm, f"a party other than the compensated one ({to!r})")
    for key, name in (("from", frm), ("to", to)):
        if kinds[name] == "guarantor":
            raise fr.bad(key, name, "a party not of guarantor kind (the budget rule names "
                         "one institution, not each loan's original guarantor)")
    rule = FiscalCompensation(frm, to, fr.number("standard_share", 0.20, low=0, high=1,
                                                 high_open=True))
    fr.finish()
    return rule


def _credit_line(r: Reader, party_names: list[str]) -> CreditLine:
    frm = r.string("from", required=True)
    check_name(frm, party_names, r.file, join(r.path, "from"), "party")
    to = r.string("to")
    if to is None:
        raise r.error("to", "is required: name the party whose filings the line limits")
    check_name(to, party_names, r.file, join(r.path, "to"), "party")
    if to == frm:
        raise r.bad("to", to, "a party other than 'from'")
    amount = r.number("amount", required=True, low=0, low_open=True)
    period = r.number("period_years", 1.0, low=0, low_open=True, high=10)
    changes: list[LineChange] = []
    raw = r.raw("changes", [])
    if not isinstance(raw, list):
        raise r.bad("changes", raw, "an array of tables {at_years, factor}")
    for i, item in enumerate(raw):
        c = Reader(item, join(join(r.path, "changes"), i), r.file)
        at = c.number("at_years", required=True, low=0, low_open=True, high=50)
        if changes and at < changes[-1].at_years:
            raise c.bad("at_years", at, f"at least the change before ({changes[-1].at_years};"
                        " changes are listed in time order)")
        changes.append(LineChange(at, c.number("factor", required=True, low=0,
                                               low_open=True, high=100)))
        c.finish()
    allocation = None
    a = r.sub("allocation")
    if a is not None:
        allocation = LineAllocation(
            growth=a.number("growth", 1.0, low=0, low_open=True, high=10),
            reference_rate=a.number("reference_rate", 0.03, low=0, low_open=True, high=1),
            rate_weight=a.number("rate_weight", 0.5, low=0, high=10),
            leverage_weight=a.number("leverage_weight", 0.5, low=0, high=10))
        a.finish()
    line = CreditLine(frm, to, amount, period, tuple(changes), allocation)
    r.finish()
    return line


def _regulation(top: Reader) -> Regulation:
    r = top.sub("regulation")
    if r is None:
        return Regulation()
    reg = Regulation(
        small_threshold=r.number("small_threshold", 5_000_000.0, low=0),
        small_weight=r.number("small_weight", 0.75, low=0, high=1),
        default_weight=r.number("default_weight", 1.0, low=0, high=1),
    )
    r.finish()
    return reg


def _run(top: Reader) -> RunSettings:
    r = top.sub("run")
    if r is None:
        return RunSettings()
    shift: Any = r.raw("importance_sampling", False)
    auto = False
    if shift is True:
        auto, shift = True, 0.0
    elif shift is False:
        shift = 0.0
    else:
        # A national shift deeper than -4 (past the 99.99 % quantile, Phi^-1(1e-4) = -3.72)
        # only degenerates the weights: at -5 to -8 the Kish effective sample size was 2-4
        # of 2,000 paths and expected losses 7 to 48,700 standard errors off.
        try:
            shift = r.number("importance_sampling", low=-4, high=0)
        except ScenarioError as exc:
            raise ScenarioError(exc.file, exc.path, str(exc).split(f"{exc.path} ", 1)[-1]
                                + " (-3.09 aims at the 99.9 % quantile of a one-factor "
                                "book, -3.72 at 99.99 %; true picks the shift itself)"
                                ) from None
    run = RunSettings(
        n_paths=r.number("n_paths", 100_000, low=1, high=10**10, integer=True),
        seed=r.number("seed", 20250101, low=0, high=2**63 - 1, integer=True),
        block_size=r.number("block_size", 5_000, low=1, high=10**7, integer=True),
        horizon_years=r.number("horizon_years", 1, low=1, high=50, integer=True),
        importance_shift=shift,
        importance_auto=auto,
    )
    r.finish()
    return run


def _des(top: Reader) -> DesSettings:
    r = top.sub("des")
    if r is None:
        return DesSettings()
    d = DesSettings(
        years=r.number("years", 3.0, low=0, high=50, low_open=True),
        mode=r.string("mode", "individual", choices=("individual", "batch")),
        review_days_individual=r.number("review_days_individual", 20.0, low=0, high=365),
        review_days_batch=r.number("review_days_batch", 3.0, low=0, high=365),
        claim_trigger_days=r.number("claim_trigger_days", 90.0, low=0, high=3650),
        claim_payment_days=r.number("claim_payment_days", 60.0, low=0, high=3650),
        refusal=r.string("refusal", "refuse", choices=REFUSAL_MODES),
        seasonality=r.number("seasonality", 0.0, low=0, high=1, high_open=True),
        bank_cost=r.number("bank_cost", 0.005, low=0, high=1),
        moral_hazard_kappa=r.number("moral_hazard_kappa", 0.0, low=0, high=10),
        moral_hazard_gamma=r.number("moral_hazard_gamma", 1.0, low=0, low_open=True, high=10),
        renewal_prob=r.number("renewal_prob", 0.0, low=0, high=1),
        injection_trigger=r.number("injection_trigger", 0.0, low=0, high=1),
        injection_target=r.number("injection_target", 1.0, low=0, high=10),
        review_loss_tolerance=r.number("review_loss_tolerance", 2.0, low=0, high=1000),
        queue_patience_days=r.number("queue_patience_days", 90.0, low=0, high=3650),
        recovery_lag_sigma=r.number("recovery_lag_sigma", 0.5, low=0, high=5),
        direct_lending=r.boolean("direct_lending", False),
        screening_noise=r.number("screening_noise", 0.0, low=0, high=5),
        screening_effort=r.number("screening_effort", 0.0, low=0, high=10),
        review_staff=r.number("review_staff", 0, low=0, high=10**6, integer=True),
        review_rate=r.number("review_rate", 5.0, low=0, low_open=True, high=10**4),
        review_patience_days=r.number("review_patience_days", 60.0, low=0, high=3650),
    )
    r.finish()
    return d


# --------------------------------------------------------------------------------------
# loading: parameter uncertainty
# --------------------------------------------------------------------------------------
#: Top-level tables whose values cannot be uncertain parameters.
_NOT_PARAMETERS = ("run", "book", "scenario", "uncertainty")


def _lift_uncertain(data: Any, source: str, found: list[tuple[UncertainParameter, str, bool]],
                    path: str = "") -> Any:
    """Replace every inline ``{dist = ..., ..., uncertain = true}`` by its mean, recording
    the parameter (its path is where it stood); ``uncertain = false`` is dropped (the
    table stays, e.g. a cross-section of default probabilities)."""
    if isinstance(data, dict):
        if path and "uncertain" in data:
            r = Reader(data, path, source)
            if not r.boolean("uncertain", False):
                return {k: v for k, v in data.items() if k != "uncertain"}
            param = _uncertain_parameter(r, inline_path=path)
            r.finish()
            found.append((param, path, True))
            return param.mean()
        return {k: v if (not path and k == "uncertainty")
                else _lift_uncertain(v, source, found, join(path, k))
                for k, v in data.items()}
    if isinstance(data, list):
        return [_lift_uncertain(v, source, found, join(path, i)) for i, v in enumerate(data)]
    return data


def _uncertainty(top: Reader) -> list[tuple[UncertainParameter, str, bool]]:
    """``[[uncertainty.parameters]]``: each with ``path`` or ``paths``, optional ``name``
    and ``apply``, and ``dist`` with its parameters."""
    u = top.sub("uncertainty")
    if u is None:
        return []
    out = []
    for r in u.table_list("parameters", required=True):  # [] = none (a plain scenario)
        out.append((_uncertain_parameter(r), r.path, False))
        r.finish()
    u.finish()
    return out


def _uncertain_parameter(r: Reader, inline_path: str | None = None) -> UncertainParameter:
    if inline_path is not None:
        paths, name, apply = [inline_path], inline_path, "value"
    else:
        if r.has("path") == r.has("paths"):
            raise r.error("path", "give exactly one of path (a dotted path, as in --set) or "
                          "paths (an array of them, drawn together)")
        if r.has("path"):
            paths = [r.string("path", required=True)]
        else:
            raw = r.raw("paths")
            if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and x
                                                               for x in raw):
                raise r.bad("paths", raw, "a non-empty array of dotted paths")
            paths = list(raw)
        name = r.string("name", paths[0])
        if not name.strip() or len(name) > 200:
            raise r.bad("name", name, "a non-blank label of at most 200 characters")
        apply = r.string("apply", "value", choices=UNCERTAIN_APPLY)
    kind = r.string("dist", required=True, choices=tuple(UNCERTAIN_KINDS))
    params: dict[str, float] = {}
    if kind in ("uniform", "loguniform"):
        lo = r.number("low", required=True)
        if kind == "loguniform" and lo <= 0:
            raise r.bad("low", lo, "> 0 for a loguniform distribution")
        hi = r.number("high", required=True)
        if hi < lo:
            raise r.bad("high", hi, f">= low ({lo:g})")
        params = {"low": lo, "high": hi}
    elif kind == "normal":
        params = {"mean": r.number("mean", required=True),
                  "sd": r.number("sd", required=True, low=0)}
        for key in ("low", "high"):
            if r.has(key):
                params[key] = r.number(key)
        lo, hi = params.get("low", -math.inf), params.get("high", math.inf)
        if not lo < hi:
            raise r.bad("high", hi, f"> low ({lo:g})")
        if not lo <= params["mean"] <= hi:
            raise r.bad("mean", params["mean"], f"within the truncation bounds [{lo:g}, {hi:g}]")
    elif kind == "lognormal":
        params = {"median": r.number("median", required=True, low=0, low_open=True),
                  "sigma": r.number("sigma", required=True, low=0, high=5)}
    else:  # beta
        mean = r.number("mean", required=True, low=0, high=1, low_open=True, high_open=True)
        sd = r.number("sd", required=True, low=0)
        _check_beta_sd(r, sd)
        if sd > 0 and (sd >= math.sqrt(mean * (1 - mean)) or min(_beta_ab(mean, sd)) <= 0):
            raise r.bad("sd", sd, f"< sqrt(mean*(1-mean)) = {math.sqrt(mean * (1 - mean)):.6g}")
        params = {"mean": mean, "sd": sd}
    return UncertainParameter(name, tuple(paths), kind, tuple(params.items()), apply)


def _check_uncertainty(scenario: Scenario,
                       items: list[tuple[UncertainParameter, str, bool]],
                       check_ends: bool = True) -> Scenario:
    """Check every uncertain parameter against the built scenario and attach them.

    Each path must name a number of the scenario (not a run setting), at most once; the
    scenario must stay valid with each parameter at either end of its draws (quantiles
    :data:`QUANTILE_EPS` and ``1 - QUANTILE_EPS``) and with all of them at their lower or
    all at their upper ends.
    """
    src = scenario.source
    base = scenario.to_dict()
    names: dict[str, str] = {}
    owner: dict[str, str] = {}
    stated: list[list[float]] = []
    for p, where, inline in items:
        if p.name in names:
            raise ScenarioError(src, join(where, "name"), f"repeats the name {p.name!r} of "
                                f"{names[p.name]}; give each uncertain parameter its own")
        names[p.name] = where
        values = []
        for j, path in enumerate(p.paths):
            at = where if inline else join(where, "path") if len(p.paths) == 1 \
                else f"{where}.paths[{j}]"
            if re.split(r"[.\[]", path, maxsplit=1)[0] in _NOT_PARAMETERS:
                raise ScenarioError(src, at, f"names {path!r}: run settings, the book, names "
                                    "and the uncertainty table itself cannot be uncertain")
            if path in owner:
                raise ScenarioError(src, at, f"names {path!r}, which {owner[path]} draws "
                                    "already; a path may be uncertain once")
            owner[path] = where
            try:
                value = _get_path(base, path)
            except (KeyError, IndexError, TypeError):
                raise ScenarioError(src, at, f"names no field of this scenario: {path!r} "
                                    "(dotted paths as in --set, e.g. 'factors.national' or "
                                    "'segments[0].default_prob')") from None
            if isinstance(value, dict):
                raise ScenarioError(src, at, f"names the table {path!r} ({', '.join(value)}); "
                                    f"name one of its numbers, e.g. '{path}.{next(iter(value))}'"
                                    if value else f"names the empty table {path!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ScenarioError(src, at, f"names {path!r}, which is "
                                    f"{type(value).__name__} {value!r}, not a number")
            values.append(float(value))
        stated.append(values)

    if check_ends:
        _check_ends(scenario, items, stated)
    token = _TRUSTED.set(True)
    try:
        return dataclasses.replace(scenario, uncertainty=tuple(p for p, _, _ in items))
    finally:
        _TRUSTED.reset(token)


def _check_ends(scenario: Scenario, items: list[tuple[UncertainParameter, str, bool]],
                stated: list[list[float]]) -> None:
    """The scenario with each uncertain parameter at either end of its draws, and with all
    at their lower or upper ends, must be valid (else the ScenarioError names it)."""
    src = scenario.source
    ends = [tuple(float(v) for v in p.quantile([0.0, 1.0])) for p, _, _ in items]

    def trial(at: dict[int, float]) -> ScenarioError | None:
        raw = scenario.to_dict()
        for i, x in at.items():
            p = items[i][0]
            for path, s0 in zip(p.paths, stated[i], strict=True):
                _set_path(raw, path, x if p.apply == "value" else s0 * x)
        try:
            _build(raw, src, tape_base=None)
        except ScenarioError as exc:
            return exc
        return None

    def why(exc: ScenarioError) -> str:
        return str(exc).removeprefix(f"{src}: ")

    for i, (p, where, _) in enumerate(items):
        for x in ends[i]:
            exc = trial({i: x})
            if exc is not None:
                what = "multiplies the stated values by" if p.apply == "scale" else "draws"
                raise ScenarioError(src, where, f"{what} {ends[i][0]:.6g} to {ends[i][1]:.6g} "
                                    f"(its {QUANTILE_EPS:g} and {1 - QUANTILE_EPS} quantiles), "
                                    f"but at {x:.6g} the scenario is invalid: {why(exc)}")
    if len(items) > 1:
        for k, side in ((0, "lowest"), (1, "highest")):
            exc = trial({i: e[k] for i, e in enumerate(ends)})
            if exc is not None:
                raise ScenarioError(src, "uncertainty", f"with every uncertain parameter at "
                                    f"its {side} draw the scenario is invalid: {why(exc)}")
