"""One world, many policies: variants, common random numbers and paired comparisons.

A scenario is a *world* (the book: segments or a loan tape and the book seed; the factor
model; the run settings, i.e. the random paths) and a *policy* (parties with their capital
and limits, agreements with their layers, shares, caps, fees and limits, credit lines,
regulation). :func:`with_policy` puts another file's policy on a base's world;
:meth:`simkit.scenario.Scenario.with_changes` edits a policy in place.
:func:`simulate_policies` runs the base and its variants on **common random numbers**:
the factor, default and LGD draws of every block are made once and each policy's waterfall
and fees are applied to the same cell sums, so path ``i`` is the same world under every
policy and per-path differences are paired (:func:`simkit.measures.paired_difference`).

Parties line up by name (a party missing from a policy bears nothing there) and by role:
the group rows ``guarantors`` (every party of kind ``guarantor``) and ``government``
(:func:`simkit.fiscal.public_parties`: kinds ``provincial``, ``national_fund``,
``local_gov`` and any budget a ``fiscal_compensation`` rule names; and a party of kind
``other`` named ``central_fiscal``) sum their members' losses path by path.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from simkit import measures
from simkit.scenario import Scenario, ScenarioError, from_dict

__all__ = ["GOVERNMENT_KINDS", "GROUPS", "PolicyRun", "comparison_rows", "des_rows",
           "group_members", "read_policy", "same_world", "simulate_policies",
           "with_policy"]

#: Party kinds that make up the ``government`` group (with the budgets of
#: :func:`simkit.fiscal.public_parties` and ``central_fiscal``).
GOVERNMENT_KINDS = ("provincial", "national_fund", "local_gov")
#: Names of the group rows of a comparison.
GROUPS = ("guarantors", "government")


def group_members(scenario: Scenario) -> dict[str, list[str]]:
    """The parties of each group row: ``{"guarantors": [...], "government": [...]}``.

    The government is :func:`simkit.fiscal.public_parties` (kinds provincial,
    national_fund, local_gov and the budget an agreement's ``fiscal_compensation`` names)
    plus a party of kind ``other`` named ``central_fiscal``, in party order.
    """
    from simkit.fiscal import public_parties

    public = public_parties(scenario)
    gov = [p.name for p in scenario.parties if p.name in public
           or (p.kind == "other" and p.name == "central_fiscal")]
    return {"guarantors": [p.name for p in scenario.parties if p.kind == "guarantor"],
            "government": gov}


# --------------------------------------------------------------------------------------
# the world and the policy
# --------------------------------------------------------------------------------------
def read_policy(path: str | Path) -> tuple[dict[str, Any], str]:
    """Read a policy file: a scenario TOML whose world (segments, tape, factors, run) may
    be missing. Returns the parsed mapping and its source name (validated only once put
    on a world by :func:`with_policy`)."""
    name = str(path)
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ScenarioError(name, "", f"cannot be read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text.decode("utf-8-sig")), name
    except UnicodeDecodeError as exc:
        raise ScenarioError(name, "", f"is not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(name, "", f"is not valid TOML: {exc}") from None


def with_policy(base: Scenario, other: Scenario | str | Path) -> Scenario:
    """``other``'s policy on ``base``'s world.

    Taken from ``other`` (a Scenario, or the path of a scenario or policy-only file, see
    :func:`read_policy`): parties, agreements, credit lines, regulation (the policy).
    Taken from ``base``: segments or loan tape, book seed, factors, run and DES settings
    (the world). The name is ``base.name + "+" + other's name``.

    Segments are re-attached to ``other``'s agreements by name; when ``other`` has exactly
    one agreement every segment goes to it. A segment's original ``guarantor`` that
    ``other`` lacks is carried over from ``base`` with its capital and limits (it then
    takes ``other``'s guarantor-kind layers for its loans, as segment guarantors always
    do).

    Raises
    ------
    ScenarioError
        When a segment's agreement has no counterpart in ``other`` (several agreements,
        none of that name), or when the merged scenario does not validate.
    """
    if isinstance(other, Scenario):
        raw, source = copy.deepcopy(other.raw), other.source
    else:
        raw, source = read_policy(other)
    agreements = raw.get("agreements", [])
    names = [a.get("name") for a in agreements if isinstance(a, dict)] \
        if isinstance(agreements, list) else []
    if not names:
        raise ScenarioError(source, "agreements", "is required (a policy needs at least "
                            "one agreement)")
    other_name = str(raw.get("scenario", {}).get("name", Path(source).stem))
    segments = copy.deepcopy(base.raw.get("segments", []))
    for i, seg in enumerate(segments):
        agreement = base.segments[i].agreement  # resolved (a file may leave it implicit)
        if agreement in names:
            seg["agreement"] = agreement
            continue
        if len(names) == 1:
            seg["agreement"] = names[0]
            continue
        raise ScenarioError(source, "agreements",
                            f"has no agreement {agreement!r} for segment {i} "
                            f"({seg.get('name', '?')}) of {base.source}; its agreements: "
                            f"{', '.join(map(str, names))} (give one agreement, or one of "
                            "that name)")
    if segments:
        raw["segments"] = segments
    else:
        raw.pop("segments", None)
    parties = raw.setdefault("parties", {})
    base_parties = base.raw.get("parties", {})
    for seg in base.segments:
        g = seg.guarantor
        if g is not None and g not in parties:
            parties[g] = copy.deepcopy(base_parties.get(g, {"kind": "guarantor"}))
    for key in ("factors", "run", "des"):
        if key in base.raw:
            raw[key] = copy.deepcopy(base.raw[key])
        else:
            raw.pop(key, None)
    book: dict[str, Any] = {"seed": base.book_seed}
    if base.tape is not None:
        book["tape"] = str(Path(base.tape).resolve())
    raw["book"] = book
    meta = raw.setdefault("scenario", {})
    meta["name"] = f"{base.name}+{other_name}"
    return from_dict(raw, source=source)


def same_world(base: Scenario, variant: Scenario) -> bool:
    """Whether ``variant`` lives on ``base``'s world, so its draws can be shared: the same
    factor model, run settings, book seed and loan tape, and the same segments up to the
    agreement and original guarantor they are attached to (which are policy)."""
    if (variant.factors != base.factors or variant.run != base.run
            or variant.book_seed != base.book_seed or variant.tape != base.tape):
        return False

    def loans(s: Scenario) -> tuple[Any, ...]:
        return tuple(seg.key(agreement="", guarantor=None) for seg in s.segments)
    return loans(base) == loans(variant)


def simulate_policies(base: Scenario, variants: Sequence[Scenario], *,
                      executor: Executor | None = None, progress: bool = False,
                      keep_cells: bool = False, engine: str = "auto",
                      n_paths: int | None = None, seed: int | None = None,
                      ) -> list[Any]:
    """Monte Carlo of ``base`` and each variant on common random numbers.

    Variants on ``base``'s world (:func:`same_world`) share every draw: one run of the
    base's blocks, where each block draws factors, defaults and LGDs once and applies
    every policy's waterfall and fees to the same cell sums (a variant with another
    ``single_limit`` re-sums the same defaults with its covered/uncovered split). Variants
    on another world (other factors, run settings or loans) run on their own with the
    base's seed (``provenance["common_random_numbers"] = "same seed"``): the same streams,
    but not the same defaults.

    Returns
    -------
    list of LossResult
        One per variant, in order, after the base's.
    """
    from simkit.montecarlo import simulate, simulate_all

    shared = [v for v in variants if same_world(base, v)]
    kwargs: dict[str, Any] = {"executor": executor, "progress": progress, "keep_cells": keep_cells,
              "engine": engine, "n_paths": n_paths, "seed": seed}
    try:
        results = simulate_all(base, variants=shared, **kwargs)
    except ValueError as exc:
        raise ScenarioError(base.source, "policy", str(exc)) from None
    by_id = {id(v): r for v, r in zip(shared, results[1:], strict=True)}
    out = [results[0]]
    for v in variants:
        if id(v) in by_id:
            out.append(by_id[id(v)])
            continue
        r = simulate(v, **{**kwargs, "seed": base.run.seed if seed is None else seed})
        r.provenance["common_random_numbers"] = "same seed"
        out.append(r)
    return out


# --------------------------------------------------------------------------------------
# comparison tables
# --------------------------------------------------------------------------------------
@dataclass
class PolicyRun:
    """One variant's run: its label, parameters (dotted path -> value), scenario, result."""

    label: str
    scenario: Scenario
    result: Any
    params: dict[str, Any] = field(default_factory=dict)


def _columns(runs: Sequence[PolicyRun]) -> tuple[list[str], dict[str, str]]:
    """Every party name over the runs (base's first) and each one's kind."""
    names: dict[str, str] = {}
    for run in runs:
        for p in run.scenario.parties:
            names.setdefault(p.name, p.kind)
    return list(names), names


def _loss_matrix(run: PolicyRun, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Losses (n, K) and fee income (K,) of ``names`` then the groups (0 when absent)."""
    r = run.result
    col = {p: j for j, p in enumerate(r.parties)}
    n = r.losses.shape[0]
    groups = group_members(run.scenario)
    k = len(names) + len(GROUPS)
    loss = np.zeros((n, k))
    fee = np.zeros(k)
    for j, p in enumerate(names):
        if p in col:
            loss[:, j] = r.losses[:, col[p]]
            fee[j] = r.fees[col[p]]
    for g, gname in enumerate(GROUPS):
        members = [col[p] for p in groups[gname] if p in col]
        if members:
            loss[:, len(names) + g] = r.losses[:, members].sum(axis=1)
            fee[len(names) + g] = r.fees[members].sum()
    return loss, fee


def _indicators(run: PolicyRun, caps: list[str], names: list[str]) -> np.ndarray:
    """0/1 per path: each cap binds, then each party's capital is exhausted."""
    r = run.result
    n = r.losses.shape[0]
    out = np.zeros((n, len(caps) + len(names)))
    for i, c in enumerate(caps):
        if c in r.cap_names:
            out[:, i] = r.cap_overflow[:, r.cap_names.index(c)] > 0
    if r.capital_paths is not None:
        col = {p: j for j, p in enumerate(r.parties)}
        hit = np.any(r.capital_paths[:, 1:, :] <= 0, axis=1)
        for i, p in enumerate(names):
            if p in col:
                out[:, len(caps) + i] = hit[:, col[p]]
    return out


def comparison_rows(runs: Sequence[PolicyRun], *, levels: Sequence[float] = (0.99, 0.999),
                    paired: bool = True, n_batches: int = measures.DEFAULT_N_BATCHES,
                    executor: Executor | None = None) -> list[dict[str, Any]]:
    """The tidy comparison table: one row per variant x party (or group) x measure.

    Parameters
    ----------
    runs : sequence of PolicyRun
        ``runs[0]`` is the base; every run's differences are taken against it.
    levels : sequence of float
        VaR/ES levels.
    paired : bool
        The runs share their paths (common random numbers): differences use
        :func:`simkit.measures.paired_difference`. With ``False`` (different books),
        ``diff_se`` is the unpaired error.
    n_batches : int
        Batches of the VaR/ES standard errors (:func:`simkit.measures.paired_difference`).
    executor : concurrent.futures.Executor, optional
        Where the VaR/ES differences of the runs are computed (in chunks of runs, one per
        worker); ``None``: in this process. The table does not depend on it.

    Returns
    -------
    list of dict
        Keys: ``variant``, the variants' parameter paths, ``party``, ``kind`` (the party's
        kind, ``"group"`` or ``"cap"``), ``measure`` (``el``, ``var_LL``, ``es_LL``,
        ``fee_income``, ``net_result``, ``p_binding``, ``p_exhausted``), ``value``,
        ``se``, ``diff`` (variant minus base), ``diff_se`` and ``unpaired_se`` (yuan per
        year, probabilities in [0, 1]).
    """
    names, kinds = _columns(runs)
    cols = names + list(GROUPS)
    col_kinds = [kinds[p] for p in names] + ["group"] * len(GROUPS)
    caps = list(dict.fromkeys(c for run in runs for c in run.result.cap_names))
    multi = any(run.result.capital_paths is not None for run in runs)
    cap_names = names if multi else []
    param_keys = list(dict.fromkeys(k for run in runs for k in run.params))
    base = runs[0]
    b_loss, b_fee = _loss_matrix(base, names)
    b_ind = _indicators(base, caps, cap_names)
    mats = [(_loss_matrix(run, names), _indicators(run, caps, cap_names)) for run in runs]
    groups = _weight_columns(runs, names) if paired else [
        (np.arange(len(cols)), None)]
    parts = []
    for cols_g, w_g in groups:
        def weights_of(run: PolicyRun, w_g: np.ndarray | None = w_g) -> np.ndarray | None:
            return run.result.weights if w_g is None else w_g

        parts.append((cols_g, _tail_table(
            b_loss[:, cols_g], weights_of(base),
            [(loss[:, cols_g], weights_of(run)) for ((loss, _), _), run
             in zip(mats, runs, strict=True)], levels, n_batches, paired, executor)))
    tail_stats = [_scatter([(c, t[i]) for c, t in parts], len(cols))
                  for i in range(len(runs))]
    rows: list[dict[str, Any]] = []
    for run, ((loss, fee), ind), tail in zip(runs, mats, tail_stats, strict=True):
        w = run.result.weights

        def diff(a: np.ndarray, b: np.ndarray, w: np.ndarray | None = w) -> dict[str, Any]:
            if paired:
                return measures.paired_difference(a, b, w, n_batches=n_batches)
            return _unpaired(measures.paired_difference(a, a, base.result.weights),
                             measures.paired_difference(b, b, w))

        el = _scatter([(c, diff(b_loss[:, c], loss[:, c], w if w_g is None else w_g))
                       for c, w_g in groups], len(cols))
        stats = _run_stats(el, tail, levels, fee, b_fee)
        prob = diff(b_ind, ind) if ind.shape[1] else None
        head = {"variant": run.label, **{k: run.params.get(k) for k in param_keys}}
        for measure, st in stats.items():
            rows += _table_rows(head, [(p, col_kinds[j], measure)
                                       for j, p in enumerate(cols)], st)
        if prob is not None:
            labels = ([(c, "cap", "p_binding") for c in caps]
                      + [(p, kinds[p], "p_exhausted") for p in cap_names])
            rows += _table_rows(head, labels, prob)
    return rows


def _weight_columns(runs: Sequence[PolicyRun], names: list[str],
                    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The comparison's columns (``names`` then the groups) grouped by the importance
    weights their differences use: a party's own weights
    (:meth:`simkit.lossresult.LossResult.weights_of`) when every run gives it the same
    ones, else (``None``) each run's full weights; the groups take the full weights."""
    k = len(names) + len(GROUPS)
    key_of: dict[bytes, int] = {}
    out: list[tuple[list[int], np.ndarray | None]] = [([], None)]
    for j in range(k):
        w = None
        if j < len(names) and all(r.result.party_weights is not None and names[j] in
                                  r.result.parties for r in runs):
            ws = [r.result.weights_of(names[j]) for r in runs]
            if all(np.array_equal(ws[0], x) for x in ws[1:]):
                w = ws[0]
        if w is None:
            out[0][0].append(j)
            continue
        key = np.asarray(w).tobytes()
        if key not in key_of:
            key_of[key] = len(out)
            out.append(([], w))
        out[key_of[key]][0].append(j)
    return [(np.array(c, dtype=np.intp), w) for c, w in out if c]


def _scatter(parts: Sequence[tuple[np.ndarray, Any]], k: int) -> Any:
    """Merge records computed on column subsets back into ``(k,)`` arrays: ``parts`` is
    ``(columns, record)`` pairs, each record a dict (nested for the tail table) of values
    per column (arrays, or floats for one column)."""
    first = parts[0][1]
    if isinstance(first, dict):
        return {key: _scatter([(c, r[key]) for c, r in parts], k) for key in first}
    out = np.full(k, np.nan)
    for cols, val in parts:
        out[cols] = np.asarray(val, dtype=np.float64).reshape(-1)
    return out


def _run_stats(el: dict[str, Any], tail: dict[tuple[str, float], dict[str, Any]],
               levels: Sequence[float], fee: np.ndarray, b_fee: np.ndarray,
               ) -> dict[str, dict[str, Any]]:
    """The measures of one variant of :func:`comparison_rows`, each a difference record
    (``other``, ``other_se``, ``diff``, ``diff_se``, ``unpaired_se``, per column): the
    expected loss ``el``, the VaR / ES of ``tail`` (by ``(kind, level)``), the fee income
    ``fee`` against the base's ``b_fee`` (exact, no error) and the net result."""
    stats: dict[str, dict[str, Any]] = {"el": el}
    for a in levels:
        lab = measures.level_label(a)
        stats[f"var_{lab}"] = tail[("var", float(a))]
        stats[f"es_{lab}"] = tail[("es", float(a))]
    zero = np.zeros(len(fee))
    stats["fee_income"] = {"other": fee, "other_se": zero, "diff": fee - b_fee,
                           "diff_se": zero, "unpaired_se": zero}
    stats["net_result"] = {"other": fee - el["other"], "other_se": el["other_se"],
                           "diff": (fee - b_fee) - el["diff"], "diff_se": el["diff_se"],
                           "unpaired_se": el["unpaired_se"]}
    return stats


def _table_rows(head: dict[str, Any], labels: Sequence[tuple[str, str, str]],
                st: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of :func:`comparison_rows`: one per ``(party, kind, measure)`` of ``labels``,
    column ``j`` of the difference record ``st``."""
    return [{**head, "party": p, "kind": kind, "measure": measure,
             "value": _f(st["other"], j), "se": _f(st["other_se"], j),
             "diff": _f(st["diff"], j), "diff_se": _f(st["diff_se"], j),
             "unpaired_se": _f(st["unpaired_se"], j)}
            for j, (p, kind, measure) in enumerate(labels)]


def _unpaired(one: dict[str, Any], two: dict[str, Any]) -> dict[str, Any]:
    """The difference of two separate estimates (``paired_difference(x, x)`` each) with
    the unpaired error ``sqrt(se_1**2 + se_2**2)``."""
    se = np.sqrt(np.asarray(one["base_se"]) ** 2 + np.asarray(two["base_se"]) ** 2)
    return {"base": one["base"], "other": two["base"],
            "diff": np.asarray(two["base"]) - np.asarray(one["base"]),
            "diff_se": se, "other_se": two["base_se"], "unpaired_se": se}


def _tail_chunk(b_loss: np.ndarray, b_w: np.ndarray | None,
                pairs: Sequence[tuple[np.ndarray, np.ndarray | None]],
                levels: Sequence[float], n_batches: int, paired: bool,
                ) -> list[dict[tuple[str, float], dict[str, Any]]]:
    """VaR/ES differences of each ``(losses (n, K), weights)`` against ``b_loss``
    (:func:`simkit.measures.paired_tail_differences`; the base's own estimates once)."""
    cache: dict[Any, Any] = {}
    out = []
    for loss, w in pairs:
        if paired:
            out.append(measures.paired_tail_differences(
                b_loss, loss, w, levels=levels, n_batches=n_batches, cache=cache))
            continue
        one = measures.paired_tail_differences(b_loss, b_loss, b_w, levels=levels,
                                               n_batches=n_batches, cache=cache)
        two = measures.paired_tail_differences(loss, loss, w, levels=levels,
                                               n_batches=n_batches)
        out.append({key: _unpaired(one[key], two[key]) for key in one})
    return out


def _tail_table(b_loss: np.ndarray, b_w: np.ndarray | None,
                pairs: Sequence[tuple[np.ndarray, np.ndarray | None]],
                levels: Sequence[float], n_batches: int, paired: bool,
                executor: Executor | None) -> list[dict[tuple[str, float], dict[str, Any]]]:
    """:func:`_tail_chunk` of every run, in this process or split over ``executor`` in
    contiguous chunks (one per worker); the numbers do not depend on the split."""
    workers = 1 if executor is None else int(getattr(executor, "_max_workers", 0) or 2)
    n_chunks = min(workers, len(pairs))
    if n_chunks <= 1 or executor is None:
        return _tail_chunk(b_loss, b_w, pairs, levels, n_batches, paired)
    from simkit import _interrupt

    edges = [len(pairs) * i // n_chunks for i in range(n_chunks + 1)]
    futures = [executor.submit(_tail_chunk, b_loss, b_w, list(pairs[lo:hi]), list(levels),
                               n_batches, paired)
               for lo, hi in pairwise(edges)]
    return [d for fut in futures for d in _interrupt.result(fut)]


def _f(x: Any, j: int) -> float:
    v = float(np.asarray(x, dtype=np.float64).reshape(-1)[j])
    return v


# --------------------------------------------------------------------------------------
# the discrete-event model
# --------------------------------------------------------------------------------------
#: System-wide DES quantities compared across variants (keys of ``DesResult.summary``).
DES_MEASURES = ("applications", "approvals", "firms_served", "credit_supplied",
                "guaranteed_supplied", "defaults", "direct_loans", "direct_credit")


def des_rows(base: Scenario, variants: Sequence[tuple[str, Scenario, dict[str, Any]]], *,
             replications: int = 4, seed: int | None = None,
             executor: Executor | None = None, progress: bool = False,
             paired: bool = True) -> list[dict[str, Any]]:
    """DES comparison: each variant's credit supply, refusals and settled losses, paired.

    Every variant runs ``replications`` replications with the same seed, so replication
    ``r`` of every variant meets the same firms with the same fates (the DES keys its
    streams by replication, segment and firm); differences are taken replication by
    replication and their standard error is ``std(differences, ddof=1) / sqrt(R)``.

    Parameters
    ----------
    base : Scenario
    variants : sequence of (label, scenario, params)
        The base itself should come first (its differences are 0).
    paired : bool
        ``False`` (variants on other books): ``diff_se`` is the unpaired error.

    Returns
    -------
    list of dict
        Keys as :func:`comparison_rows`; ``party`` is ``"-"`` for system quantities
        (``measure`` in :data:`DES_MEASURES` and ``refusals:<reason>``) and the party or
        group for ``net_loss`` (loss settled through the run-off, yuan over the horizon).
    """
    from simkit.des import run_des

    seed = base.run.seed if seed is None else int(seed)
    per_variant: list[dict[tuple[str, str, str], np.ndarray]] = []
    for _label, scenario, _params in variants:
        runs = run_des(scenario, replications=replications, seed=seed, executor=executor,
                       progress=progress)
        groups = group_members(scenario)
        kinds = {p.name: p.kind for p in scenario.parties}
        table: dict[tuple[str, str, str], list[float]] = {}
        for r in runs:
            s = r.summary
            for m in DES_MEASURES:
                table.setdefault(("-", "-", m), []).append(float(s.get(m, 0.0)))
            for reason, v in s.get("refusals", {}).items():
                table.setdefault(("-", "-", f"refusals:{reason}"), []).append(float(v))
            for p, v in s.get("losses", {}).items():
                table.setdefault((p, kinds.get(p, "?"), "net_loss"), []).append(float(v))
            for g in GROUPS:
                total = sum(float(s.get("losses", {}).get(p, 0.0)) for p in groups[g])
                table.setdefault((g, "group", "net_loss"), []).append(total)
        per_variant.append({k: np.array(v) for k, v in table.items()})
    keys = list(dict.fromkeys(k for t in per_variant for k in t))
    param_keys = list(dict.fromkeys(k for _, _, params in variants for k in params))
    n = int(replications)
    root = math.sqrt(n)
    zeros = np.zeros(n)
    rows = []
    b = per_variant[0]
    for (label, _scenario, params), t in zip(variants, per_variant, strict=True):
        for key in keys:
            x, x0 = t.get(key, zeros), b.get(key, zeros)
            se = float(x.std(ddof=1) / root) if n > 1 else math.nan
            se0 = float(x0.std(ddof=1) / root) if n > 1 else math.nan
            d = x - x0
            unpaired = math.sqrt(se**2 + se0**2) if n > 1 else math.nan
            d_se = float(d.std(ddof=1) / root) if n > 1 else math.nan
            rows.append({"variant": label, **{k: params.get(k) for k in param_keys},
                         "party": key[0], "kind": key[1], "measure": key[2],
                         "value": float(x.mean()), "se": se, "diff": float(d.mean()),
                         "diff_se": d_se if paired else unpaired,
                         "unpaired_se": unpaired})
    return rows
