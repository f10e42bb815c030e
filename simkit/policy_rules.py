"""Policy-rule checks: legal scenarios that breach a documented rule of the Chinese system.

Users explore, so a breach is not an error: :func:`policy_warnings` returns one line per
breach naming the field, the rule and its source in DOMAIN.md; ``simkit validate`` and
``simkit run`` print them as ``warning: FILE: ...`` and ``--strict`` turns them into
errors. The rules (DOMAIN.md sections (b) and (c)):

=====================  ==================================================  ==============
rule                   check                                               source
=====================  ==================================================  ==============
bank share             a bank lender bears >= 20 % of each covered loss    [S2][S9]
guarantee fee          borrower -> guarantor fee <= 1 % (single <= 5       [S9]
                       million), <= 1.5 % above 5 million
fund fee               re-guarantee fee to the national fund <= 0.3 %      [S2][S24]
                       (single <= 5 million), <= 0.5 % above
provincial vs fund     provincial share >= the national fund's share       [S9]
fund share             national fund 20 % (general rule); tech-plan tiers  [S2][S12][S24]
                       1/2/3 at most 40/35/30 % with provincial >= 20 %
compensation cap       cap rate within the documented 3 % - 5 %            [S10][S12][S24]
leverage limit         at most 15x net assets                              [S16][S19]
single client          single-client limit <= 10 % of net assets           [S16]
=====================  ==================================================  ==============

An agreement counts as tech-plan business when every segment on it has a tech tier
(1-3); with a loan tape the tiers are unknown and the tech-plan limits (the looser ones)
apply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simkit.scenario import Agreement, Fee, Scenario

__all__ = ["policy_warnings"]

SMALL = 5_000_000.0  # the 5-million-yuan line of the fee rules [S2][S9]
TECH_FUND_MAX = {1: 0.40, 2: 0.35, 3: 0.30}  # tech plan, fund share per tier [S12][S24]


def _pct(x: float) -> str:
    return f"{100 * x:.4g} %"


def _fee_rates(fee: Fee) -> tuple[float, float]:
    """Highest rate charged on single amounts <= 5 million and on amounts above."""
    above = fee.rate if fee.rate_above is None else fee.rate_above
    small = [fee.rate] + ([above] if fee.threshold < SMALL else [])
    large = [above] + ([fee.rate] if fee.threshold > SMALL else [])
    return max(small), max(large)


def _tiers(scenario: Scenario, agreement: Agreement) -> set[int] | None:
    """Tech tiers of the segments on an agreement; None when unknown (loan tape)."""
    if scenario.tape is not None:
        return None
    return {s.tech_tier for s in scenario.segments if s.agreement == agreement.name}


def policy_warnings(scenario: Scenario) -> list[str]:
    """One line per breached policy rule: ``"<field>: <what>; <rule> (<source>)"``.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario.

    Returns
    -------
    list of str
        Empty when the scenario follows every rule in the module docstring.
    """
    kinds = {p.name: p.kind for p in scenario.parties}
    out: list[str] = []
    for i, ag in enumerate(scenario.agreements):
        out += _share_warnings(scenario, ag, f"agreements[{i}]", kinds)
        out += _fee_warnings(ag, f"agreements[{i}]", kinds)
    return out + _party_warnings(scenario)


def _share_warnings(scenario: Scenario, ag: Agreement, where: str, kinds: dict[str, str],
                    ) -> list[str]:
    """The breached rules on an agreement's shares and caps (``where``: its field path;
    ``kinds``: party name -> kind)."""
    out: list[str] = []
    if kinds.get(ag.lender) == "bank":
        share = ag.share_of(ag.lender)
        if share < 0.2 - 1e-12:
            out.append(f"{where} ({ag.name}): the lending bank {ag.lender!r} bears "
                       f"{_pct(share)} of each covered loss; the national rule asks "
                       "banks to bear at least 20 % (国办发〔2019〕6号; DOMAIN.md (b) "
                       "[S2][S9])")
    by_kind: dict[str, float] = {}
    for layer in ag.layers:
        by_kind[kinds[layer.party]] = by_kind.get(kinds[layer.party], 0.0) + layer.share
    for j, layer in enumerate(ag.layers):
        if layer.cap is not None and not 0.03 - 1e-12 <= layer.cap.rate <= 0.05 + 1e-12:
            out.append(f"{where}.layers[{j}].cap.rate: {_pct(layer.cap.rate)} lies outside "
                       "the documented compensation-rate caps of 3 % (总对总) to 5 % "
                       "(tech plan) (DOMAIN.md (c) [S10][S12][S24])")
    prov, fund = by_kind.get("provincial"), by_kind.get("national_fund")
    tiers = _tiers(scenario, ag)
    tech = tiers is None or (bool(tiers) and 0 not in tiers)
    if fund is not None and tech:
        cap = min(TECH_FUND_MAX[t] for t in tiers) if tiers else max(TECH_FUND_MAX.values())
        if fund > cap + 1e-12:
            out.append(f"{where} ({ag.name}): the national fund's share {_pct(fund)} is "
                       f"above the tech plan's {_pct(cap)} for tier "
                       f"{max(tiers) if tiers else 1} (财金〔2024〕60号; DOMAIN.md (b) "
                       "[S12][S24])")
        if prov is not None and prov < 0.2 - 1e-12:
            out.append(f"{where} ({ag.name}): the provincial share {_pct(prov)} is below "
                       "the tech plan's 20 % (DOMAIN.md (b) [S12][S24])")
    elif fund is not None:
        if prov is not None and prov < fund - 1e-12:
            out.append(f"{where} ({ag.name}): the provincial share {_pct(prov)} is below "
                       f"the national fund's {_pct(fund)}; the national rule asks the "
                       "provincial re-guarantor to bear at least the fund's share "
                       "(国办发〔2019〕6号; DOMAIN.md (b) [S9])")
        if fund > 0.2 + 1e-12:
            out.append(f"{where} ({ag.name}): the national fund's share {_pct(fund)} is "
                       "above the 20 % of its general rule (only tech-plan tiers 1-3 "
                       "allow up to 40/35/30 %) (DOMAIN.md (b) [S2][S12])")
    return out


def _fee_warnings(ag: Agreement, where: str, kinds: dict[str, str]) -> list[str]:
    """The breached rules on an agreement's fees (guarantee fee, fund fee)."""
    out: list[str] = []
    for j, fee in enumerate(ag.fees):
        small, large = _fee_rates(fee)
        path = f"{where}.fees[{j}]"
        if fee.from_party == "borrower" and kinds[fee.to_party] == "guarantor":
            if small > 0.01 + 1e-12:
                out.append(f"{path}: guarantee fee {_pct(small)} on single guarantees of "
                           "at most 5 million yuan is above the 1 % cap (国办发〔2019〕6号; "
                           "DOMAIN.md (c) [S9])")
            if large > 0.015 + 1e-12:
                out.append(f"{path}: guarantee fee {_pct(large)} on single guarantees "
                           "above 5 million yuan is above the 1.5 % cap (国办发〔2019〕6号; "
                           "DOMAIN.md (c) [S9])")
        if kinds[fee.to_party] == "national_fund" and fee.on_share_of is not None:
            if small > 0.003 + 1e-12:
                out.append(f"{path}: re-guarantee fee {_pct(small)} of the fund's share on "
                           "single guarantees of at most 5 million yuan is above the "
                           "national fund's 0.3 % (DOMAIN.md (c) [S2][S24])")
            if large > 0.005 + 1e-12:
                out.append(f"{path}: re-guarantee fee {_pct(large)} of the fund's share "
                           "above 5 million yuan is above the national fund's 0.5 % "
                           "(DOMAIN.md (c) [S2][S24])")
    return out


def _party_warnings(scenario: Scenario) -> list[str]:
    """The breached rules on the parties (leverage, single-client limit)."""
    out: list[str] = []
    for p in scenario.parties:
        where = f"parties.{p.name}"
        if p.leverage_limit is not None and p.leverage_limit > 15 + 1e-12:
            out.append(f"{where}.leverage_limit: {p.leverage_limit:g}x net assets is above "
                       "the 10x (15x for small-micro and 三农 guarantors) regulatory limit "
                       "(DOMAIN.md (c) [S16][S19])")
        if p.single_client_limit is not None and p.single_client_limit > 0.10 + 1e-12:
            out.append(f"{where}.single_client_limit: {_pct(p.single_client_limit)} of net "
                       "assets is above the 10 % single-client concentration limit "
                       "(DOMAIN.md (c) [S16])")
    return out
