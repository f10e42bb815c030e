"""The government's cost: what a run costs the public purse, by payer and in total.

Public payers
-------------
A party is *public* when its ``kind`` is ``provincial`` (provincial re-guarantor),
``national_fund`` (NFGF) or ``local_gov`` (local government), or when an agreement names
it as the payer of a ``fiscal_compensation`` rule (the central budget, whatever its kind;
e.g. ``central_fiscal`` in ``tech_innovation_2024.toml``). Banks, guarantor-kind parties
and other ``other`` parties are not public. :func:`public_parties` gives the list and
each payer's role.

What is counted
---------------
Per path, a payer's **cost** is its net loss (compensation paid minus recoveries
received, cap overflow and fiscal compensation included) minus its net fee income over
the horizon (fees received minus fees paid, e.g. the provincial re-guarantor's fees to
NFGF count against it); the **total** is the per-path sum over the public payers, so fees
and compensation passed between public payers cancel. Reported: the expected cost with
its standard error and the expected shortfall at 99 % (mean of the worst 1 % of paths)
with its batch-means standard error (:func:`simkit.measures.expected_shortfall`), per
payer and of the per-path total.

Present value (the credit-subsidy convention)
---------------------------------------------
As public credit programmes report it (US Federal Credit Reform Act: the present value
at the government's borrowing rate of claims paid minus fees minus recoveries, per cohort,
and as a *subsidy rate*: % of the guaranteed volume; POLICY.md section 2). Cohort ``y``
(``y = 0 .. H-1``) is originated at time ``y`` (years) and pays its fees then; its
defaults fall at ``y + DEFAULT_TIME`` (mid-year: the Monte Carlo does not time defaults
within the year, the DES spreads them over the loan year); a payer's claims are paid
``lag_days / 365`` later and its recoveries ``recovery_lag_years`` after default, with the
lags of the payer's layers (share-weighted means when it has layers in several agreements;
a budget party takes the lags of the layer it compensates; a party without a layer pays
at default). Discount factor ``(1 + r)^-t``. The default rate ``r = 2.5 %`` stands for a
Chinese government borrowing rate (10-year government bond yields were around 2-2.5 % in
2024) **[assumption; pass ``discount_rate`` / ``simkit run --discount-rate``]**. The
subsidy rate divides by the guaranteed principal of all cohorts simulated. This is the
FCRA convention, not CBO's fair-value one (which discounts at risk-adjusted rates and
gives larger costs).

With the discrete-event model, :func:`des_fiscal` gives the public cost per replication
from the settled ledger and the credit supplied and firms served per yuan of expected
public cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from simkit import measures
from simkit.scenario import Scenario

__all__ = ["DEFAULT_DISCOUNT_RATE", "DEFAULT_TIME", "PUBLIC_KINDS", "ROLES", "des_fiscal",
           "discount_factor", "fiscal_summary", "format_fiscal", "party_lags", "present_value",
           "public_parties"]

#: Kinds of party that are public payers.
PUBLIC_KINDS = ("provincial", "national_fund", "local_gov")
#: Role of each public payer, by kind; ``central_budget`` for fiscal-compensation payers.
ROLES = {"provincial": "provincial re-guarantor", "national_fund": "national fund",
         "local_gov": "local government", "central_budget": "central budget"}
#: Discount rate of the present value (per year): a government borrowing rate
#: (assumption, see the module docstring).
DEFAULT_DISCOUNT_RATE = 0.025
#: Time of a cohort's defaults within its year (years after origination).
DEFAULT_TIME = 0.5
#: Tail level of the expected shortfall.
LEVEL = 0.99
DAYS_PER_YEAR = 365.0


def public_parties(scenario: Scenario) -> dict[str, str]:
    """The public payers of a scenario and their roles, in party order.

    Returns
    -------
    dict of str to str
        ``party -> role`` with role ``"provincial"``, ``"national_fund"``,
        ``"local_gov"`` (by kind) or ``"central_budget"`` (named as the ``from`` party
        of an agreement's ``fiscal_compensation``; this wins over the kind).
    """
    budgets = {a.fiscal_compensation.from_party for a in scenario.agreements
               if a.fiscal_compensation is not None}
    out = {}
    for p in scenario.parties:
        if p.name in budgets:
            out[p.name] = "central_budget"
        elif p.kind in PUBLIC_KINDS:
            out[p.name] = p.kind
    return out


def party_lags(scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Claim-payment and recovery lags per party (years after default), party order.

    A party's claim lag is the share-weighted mean of its layers' ``lag_days / 365`` and
    its recovery lag the share-weighted mean of those agreements' ``recovery_lag_years``;
    a fiscal-compensation budget takes the lags of the layer it compensates; a party with
    no layer (a lender's part above the single limit, a cap's overflow party only) pays
    at default (0) and recovers after the mean recovery lag of all agreements.

    Returns
    -------
    claim, recovery : ndarray, shape (n_parties,)
        Years.
    """
    names = scenario.party_names
    col = {p: i for i, p in enumerate(names)}
    w = np.zeros(len(names))
    claim = np.zeros(len(names))
    rec = np.zeros(len(names))
    for ag in scenario.agreements:
        for layer in ag.layers:
            j = col[layer.party]
            w[j] += layer.share
            claim[j] += layer.share * layer.lag_days / DAYS_PER_YEAR
            rec[j] += layer.share * ag.recovery_lag_years
    mean_rec = float(np.mean([a.recovery_lag_years for a in scenario.agreements]))
    has = w > 0
    claim = np.where(has, claim / np.where(has, w, 1.0), 0.0)
    rec = np.where(has, rec / np.where(has, w, 1.0), mean_rec)
    for ag in scenario.agreements:
        rule = ag.fiscal_compensation
        if rule is not None and not has[col[rule.from_party]]:
            claim[col[rule.from_party]] = claim[col[rule.to_party]]
            rec[col[rule.from_party]] = rec[col[rule.to_party]]
    return claim, rec


def discount_factor(t: np.ndarray | float, rate: float) -> np.ndarray:
    """``(1 + rate)^-t`` for times ``t`` in years."""
    if not (rate > -1 and math.isfinite(rate)):
        raise ValueError(f"discount rate must be a finite number > -1, got {rate!r}")
    return np.power(1.0 + rate, -np.asarray(t, dtype=np.float64))


def present_value(annual_paid: np.ndarray, annual_recovered: np.ndarray,
                  fees_by_year: np.ndarray, claim_lag: np.ndarray, recovery_lag: np.ndarray,
                  rate: float, default_time: float = DEFAULT_TIME) -> np.ndarray:
    """Present value of claims minus recoveries minus fees per path and party.

    Parameters
    ----------
    annual_paid, annual_recovered : ndarray, shape (n_paths, H, n_parties)
        Compensation paid and recoveries received on the defaults of each cohort (yuan).
    fees_by_year : ndarray, shape (H, n_parties)
        Net fee income of each cohort (yuan), received at its origination (time ``y``).
    claim_lag, recovery_lag : ndarray, shape (n_parties,)
        Years from default to the claim payment and to the recovery.
    rate : float
        Discount rate per year.
    default_time : float
        Years from a cohort's origination to its defaults.

    Returns
    -------
    ndarray, shape (n_paths, n_parties)
        Yuan at time 0: ``sum_y paid_y d(y + default_time + claim_lag) - recovered_y
        d(y + default_time + recovery_lag) - fees_y d(y)``.
    """
    h = annual_paid.shape[1]
    y = np.arange(h, dtype=np.float64)[:, None]
    d_claim = discount_factor(y + default_time + claim_lag[None, :], rate)  # (H, P)
    d_rec = discount_factor(y + default_time + recovery_lag[None, :], rate)
    d_fee = discount_factor(y, rate)
    return (np.einsum("nhp,hp->np", annual_paid, d_claim)
            - np.einsum("nhp,hp->np", annual_recovered, d_rec)
            - (fees_by_year * d_fee).sum(axis=0)[None, :])


def _annual(result: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Paid and recovered per path, cohort and party (None when not kept)."""
    if result.horizon == 1:
        return result.paid[:, None, :], result.recovered[:, None, :]
    if getattr(result, "annual_paid", None) is None or result.annual_losses is None:
        return None
    return result.annual_paid, result.annual_paid - result.annual_losses


def _stats(x: np.ndarray, weights: np.ndarray | None, prefix: str) -> dict[str, float]:
    el = measures.expected_loss(x, weights)
    es = measures.expected_shortfall(x, LEVEL, weights)
    lab = measures.level_label(LEVEL)
    return {prefix: float(el.value), f"{prefix}_se": float(el.stderr),
            f"{prefix}_es_{lab}": float(es.value), f"{prefix}_es_{lab}_se": float(es.stderr)}


def fiscal_summary(scenario: Scenario, result: Any,
                   discount_rate: float = DEFAULT_DISCOUNT_RATE,
                   default_time: float = DEFAULT_TIME) -> dict[str, Any]:
    """The fiscal view of a Monte Carlo run.

    Parameters
    ----------
    scenario : Scenario
    result : simkit.montecarlo.LossResult
    discount_rate : float
        Per year, for the present value (default 2.5 %, see the module docstring).
    default_time : float
        Years from a cohort's origination to its defaults (default mid-year).

    Returns
    -------
    dict
        ``payers``: per public party ``role``, ``net_loss`` (expected, yuan over the
        horizon), ``fee_income`` (net, over the horizon), ``cost`` and ``cost_se``
        (expected net loss minus fees), ``cost_es_99`` and ``cost_es_99_se`` (expected
        shortfall of the per-path cost), ``pv`` and ``pv_se`` (present value of claims
        minus recoveries minus fees), ``pv_es_99`` (and SE), ``subsidy_rate_pct`` (``pv``
        as % of the guaranteed volume); ``total``: the same for the per-path sum over
        the payers (without ``role``); ``guaranteed_volume`` (yuan, all cohorts),
        ``discount_rate``, ``default_time_years``, ``horizon``, ``claim_lag_years`` and
        ``recovery_lag_years`` per payer. The PV keys are None when a multi-year result
        does not carry its per-year payments. Capital injections (``des.injection_trigger``)
        are reported apart, not in the cost (as in :func:`des_fiscal`): each payer's
        ``injections_paid`` and ``injections_paid_se`` (expected yuan over the horizon it
        pays into other parties' capital), and ``injections_external`` (and ``_se``: the
        budget outside the scenario); ``None`` when the rule is off.
    """
    roles = public_parties(scenario)
    parties = list(result.parties)
    cols = [parties.index(p) for p in roles]
    w = result.weights
    fees = np.asarray(result.fees_by_year, dtype=np.float64)
    if fees.size == 0:
        fees = np.asarray(result.fees, dtype=np.float64)[None, :]
    fee_total = fees.sum(axis=0)
    volume = float(np.sum(result.provenance.get("guaranteed", [np.nan])))
    claim_lag, rec_lag = party_lags(scenario)
    annual = _annual(result)
    pv = (None if annual is None else
          present_value(annual[0], annual[1], fees, claim_lag, rec_lag, discount_rate,
                        default_time))
    cost = result.losses - fee_total[None, :]

    def block(j_cost: np.ndarray, j_loss: np.ndarray, fee: float,
              j_pv: np.ndarray | None) -> dict[str, Any]:
        return _payer_block(j_cost, j_loss, fee, j_pv, w, volume)

    inj = getattr(result, "injections", None)
    paid_inj = None if inj is None else np.maximum(-np.asarray(inj, dtype=np.float64), 0.0)
    payers = {}
    for p, j in zip(roles, cols, strict=True):
        payers[p] = {"role": roles[p],
                     **block(cost[:, j], result.losses[:, j], fee_total[j],
                             None if pv is None else pv[:, j]),
                     **_injection_stats(None if paid_inj is None else paid_inj[:, j], w,
                                        "injections_paid")}
    total = block(cost[:, cols].sum(axis=1), result.losses[:, cols].sum(axis=1),
                  float(fee_total[cols].sum()),
                  None if pv is None else pv[:, cols].sum(axis=1))
    ext = getattr(result, "injections_external", None)
    return {
        "payers": payers,
        "total": total,
        **_injection_stats(None if inj is None else (
            np.zeros(result.n_paths) if ext is None else np.asarray(ext, dtype=np.float64)),
            w, "injections_external"),
        "guaranteed_volume": volume,
        "discount_rate": float(discount_rate),
        "default_time_years": float(default_time),
        "horizon": int(result.horizon),
        "claim_lag_years": {p: float(claim_lag[j]) for p, j in zip(roles, cols,
                                                                    strict=True)},
        "recovery_lag_years": {p: float(rec_lag[j]) for p, j in zip(roles, cols,
                                                                     strict=True)},
    }


def _payer_block(cost: np.ndarray, loss: np.ndarray, fee: float, pv: np.ndarray | None,
                 w: np.ndarray | None, volume: float) -> dict[str, Any]:
    """One payer's (or the total's) block of :func:`fiscal_summary` from its per-path
    ``cost``, ``loss`` and ``pv`` (n,), its fee income and the guaranteed ``volume``."""
    out: dict[str, Any] = {"net_loss": float(measures.expected_loss(loss, w).value),
                           "fee_income": float(fee)}
    out.update(_stats(cost, w, "cost"))
    if pv is None:
        out.update({"pv": None, "pv_se": None, "pv_es_99": None, "pv_es_99_se": None,
                    "subsidy_rate_pct": None})
    else:
        out.update(_stats(pv, w, "pv"))
        out["subsidy_rate_pct"] = 100 * out["pv"] / volume if volume > 0 else None
    return out


def _injection_stats(x: np.ndarray | None, weights: np.ndarray | None,
                     key: str) -> dict[str, float | None]:
    """``{key, key_se}``: the expected injections ``x`` (n,) paid, yuan (None: rule off)."""
    if x is None:
        return {key: None, f"{key}_se": None}
    est = measures.expected_loss(x, weights)
    return {key: float(est.value), f"{key}_se": float(est.stderr)}


def format_fiscal(fiscal: dict[str, Any]) -> list[str]:
    """Text lines of the fiscal block (million yuan), for the run report."""
    if not fiscal["payers"]:
        return []

    def m(v: float | None, se: float | None = None) -> str:
        if v is None:
            return "-"
        text = f"{v / 1e6:,.2f}"
        if se is not None and np.isfinite(se):
            text += f" ± {se / 1e6:,.2f}"
        return text

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}%"

    lines = [f"cost to the public purse over {fiscal['horizon']} year(s), million yuan: "
             "net loss - fees (expected, ES 99 %), present value at "
             f"{fiscal['discount_rate']:.2%} and subsidy rate (% of "
             f"{fiscal['guaranteed_volume'] / 1e6:,.1f} million yuan guaranteed)"]
    rows = [*fiscal["payers"].items(), ("TOTAL", fiscal["total"])]
    for name, b in rows:
        label = name if name == "TOTAL" else f"{name} ({ROLES[b['role']]})"
        lines.append(f"  {label}: cost {m(b['cost'], b['cost_se'])}, "
                     f"ES 99% {m(b['cost_es_99'], b['cost_es_99_se'])}, "
                     f"PV {m(b['pv'], b['pv_se'])}, subsidy rate "
                     f"{pct(b['subsidy_rate_pct'])}")
    paid = {p: b["injections_paid"] for p, b in fiscal["payers"].items()
            if b.get("injections_paid")}
    if paid or fiscal.get("injections_external"):
        parts = [f"{p} {m(v)}" for p, v in paid.items()]
        if fiscal.get("injections_external"):
            parts.append(f"budget outside the scenario {m(fiscal['injections_external'])}")
        lines.append("  capital injections paid (apart from the cost, expected over the "
                     "horizon): " + ", ".join(parts))
    return lines


def des_fiscal(runs: Any, scenario: Scenario | None = None) -> dict[str, Any]:
    """Public cost of discrete-event replications and what it buys.

    Per replication the public cost is the sum over public payers of the settled net
    loss (``summary["losses"]``, run-off included) minus net fee income
    (``summary["fees_net"]``); capital injections are reported apart
    (``injections_paid``), not in the cost.

    Parameters
    ----------
    runs : simkit.des.DesRuns or sequence of DesResult
    scenario : Scenario, optional
        Defaults to the first replication's scenario.

    Returns
    -------
    dict
        ``payers``: per public party ``role``, ``net_loss``, ``fee_income``, ``cost``
        with ``_se`` (mean over replications, yuan); ``total``: ``cost``, ``cost_se``;
        ``credit_supplied``, ``firms_served`` (means); ``credit_per_public_yuan`` and
        ``firms_per_million_public_yuan`` (ratio of means, with a delta-method ``_se``;
        None when the expected public cost is not positive); ``replications``.
    """
    results: Sequence[Any] = list(runs)
    if not results:
        raise ValueError("des_fiscal needs at least one replication")
    scenario = results[0].scenario if scenario is None else scenario
    roles = public_parties(scenario)
    n = len(results)

    def mean_se(x: np.ndarray) -> tuple[float, float]:
        se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        return float(x.mean()), se

    loss = np.array([[r.summary["losses"][p] for p in roles] for r in results]).reshape(
        n, len(roles))
    fee = np.array([[r.summary["fees_net"][p] for p in roles] for r in results]).reshape(
        n, len(roles))
    inj = np.array([[-min(r.summary["injections"].get(p, 0.0), 0.0) for p in roles]
                    for r in results]).reshape(n, len(roles))
    cost = loss - fee
    payers = {}
    for k, p in enumerate(roles):
        c, c_se = mean_se(cost[:, k])
        payers[p] = {"role": roles[p], "net_loss": float(loss[:, k].mean()),
                     "fee_income": float(fee[:, k].mean()), "cost": c, "cost_se": c_se,
                     "injections_paid": float(inj[:, k].mean())}
    tot = cost.sum(axis=1)
    credit = np.array([float(r.summary["credit_supplied"]) for r in results])
    firms = np.array([float(r.summary["firms_served"]) for r in results])
    c_mean, c_se = mean_se(tot)
    out: dict[str, Any] = {
        "payers": payers,
        "total": {"cost": c_mean, "cost_se": c_se},
        "credit_supplied": float(credit.mean()),
        "firms_served": float(firms.mean()),
        "replications": n,
    }
    for key, x, scale in (("credit_per_public_yuan", credit, 1.0),
                          ("firms_per_million_public_yuan", firms, 1e6)):
        ratio, se = _ratio(x, tot)
        out[key] = None if ratio is None else ratio * scale
        out[f"{key}_se"] = None if se is None else se * scale
    return out


def _ratio(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """Ratio of means ``mean(x) / mean(y)`` and its delta-method standard error over
    replications (None when ``mean(y) <= 0``; SE None with one replication)."""
    n = len(x)
    my = float(y.mean())
    if not my > 0:
        return None, None
    ratio = float(x.mean()) / my
    if n < 2:
        return ratio, None
    resid = (x - ratio * y) / my
    return ratio, float(resid.std(ddof=1) / math.sqrt(n))
