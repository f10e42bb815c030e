"""Experiments: run one scenario; compare policies, sweep, sensitivity and solve.

Thin layers over :func:`simkit.montecarlo.simulate`, :mod:`simkit.policies` (policies on
one world with common random numbers) and :func:`simkit.des.run_des`, returning tables
and report objects people can print, save or plot. Command-line edits (``--set``,
``--grid``, ``--link``, ``--vary``, ``--target``) are parsed here, so the CLI and Python
share one reading of them.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
import tomllib
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from simkit._validate import suggest
from simkit.results import RunReport
from simkit.scenario import Scenario, ScenarioError

__all__ = ["Comparison", "Solution", "apply_links", "compare", "design", "format_des",
           "get_path", "parse_grid", "parse_link", "parse_range", "parse_set",
           "parse_target", "parse_value", "run_des_summary", "run_summary", "sensitivity",
           "solve", "solve_all", "sweep", "sweep_table", "wide_rows"]


def run_summary(scenario: Scenario, *, executor: Executor | None = None,
                progress: bool = False, keep_segments: bool = True) -> RunReport:
    """Simulate ``scenario`` and wrap the result in a :class:`RunReport`.

    Raises :class:`~simkit.scenario.ScenarioError` before any work when the run's
    estimated memory exceeds what the machine has (:func:`simkit.resources.check_memory`).
    """
    from simkit.montecarlo import simulate
    from simkit.resources import check_memory

    check_memory(scenario, "montecarlo", workers=_workers(executor), keep_cells=keep_segments)

    result = simulate(scenario, executor=executor, progress=progress,
                      keep_cells=keep_segments)
    return RunReport(scenario, result)


# --------------------------------------------------------------------------------------
# edits: --set, grids, links
# --------------------------------------------------------------------------------------
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def parse_value(text: str, where: str = "--set") -> Any:
    """A value given on the command line, read as a TOML literal (``0.3``, ``1_000``,
    ``"x"``, ``true``, ``[1, 2]``); a bare word such as ``bank`` is taken as a string."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if _BARE.fullmatch(text):
            return text
        raise ScenarioError(where, repr(text), "is not a TOML value (numbers like 0.3 or "
                            "1_000, strings in quotes like \"x\", true/false)") from None


def _split_assignment(text: str, where: str) -> tuple[str, str]:
    path, eq, value = text.partition("=")
    path = path.strip()
    if not eq or not path:
        raise ScenarioError(where, repr(text), "must be PATH=VALUE, e.g. "
                            "agreements[0].layers[0].share=0.3")
    return path, value


def parse_set(items: Sequence[str] | None, where: str = "--set") -> dict[str, Any]:
    """``["run.n_paths=1000", 'agreements[0].name="x"']`` -> ``{path: value}``."""
    out: dict[str, Any] = {}
    for item in items or ():
        path, value = _split_assignment(item, where)
        out[path] = parse_value(value, f"{where} {path}")
    return out


def get_path(scenario: Scenario, path: str) -> Any:
    """The value at a dotted path of the scenario's file (``KeyError`` when absent)."""
    node: Any = scenario.raw
    for tok in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        node = node[int(tok[1:-1])] if tok.startswith("[") else node[tok]
    return node


def _num(v: float) -> float | int:
    """A grid value rounded to 12 significant digits (0.30000000000000004 -> 0.3)."""
    r = float(f"{v:.12g}")
    return int(r) if r.is_integer() and abs(r) < 2**53 and isinstance(v, int) else r


def parse_grid(text: str) -> tuple[str, list[Any], tuple[float, float] | None]:
    """``PATH=v1,v2,...`` or ``PATH=lo:hi:n`` -> (path, values, range or None)."""
    path, spec = _split_assignment(text, "--grid")
    spec = spec.strip()
    if re.fullmatch(r"[^,\[\]]+:[^,\[\]]+:[^,\[\]]+", spec):
        lo, hi, n = (parse_value(x, f"--grid {path}") for x in spec.split(":"))
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (lo, hi)) \
                or not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ScenarioError("--grid", path, f"range {spec!r} must be lo:hi:n with numbers "
                                "lo, hi and an integer n >= 1")
        values = [_num(float(x)) for x in np.linspace(float(lo), float(hi), n)]
        return path, values, (float(lo), float(hi))
    values = [parse_value(x, f"--grid {path}") for x in _split_list(spec)]
    if not values:
        raise ScenarioError("--grid", path, "needs at least one value")
    return path, values, None


def parse_range(text: str, where: str = "--vary") -> tuple[str, float, float]:
    """``PATH=lo:hi`` -> (path, lo, hi)."""
    path, spec = _split_assignment(text, where)
    parts = spec.split(":")
    try:
        lo, hi = (float(parse_value(x, f"{where} {path}")) for x in parts)
    except (TypeError, ValueError):
        raise ScenarioError(where, path, f"{spec!r} must be lo:hi with two numbers"
                            ) from None
    return path, lo, hi


def _split_list(spec: str) -> list[str]:
    """Split on commas outside brackets and quotes."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in spec:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    if cur.strip():
        out.append(cur)
    return [x for x in out if x.strip()]


_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load,
            ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd)


def parse_link(text: str) -> tuple[str, str]:
    """``PATH=EXPR`` with ``{other.path}`` references; checked now, evaluated per variant.

    EXPR is arithmetic only: numbers, ``+ - * /``, parentheses and references
    ``{dotted.path}`` to other parameters (swept, linked before it, or the base file's
    value). Nothing else is evaluated.
    """
    path, expr = _split_assignment(text, "--link")
    _compile_expr(expr, path)
    return path, expr


def _compile_expr(expr: str, where: str) -> tuple[ast.Expression, list[str]]:
    refs: list[str] = []

    def sub(m: re.Match[str]) -> str:
        refs.append(m.group(1).strip())
        return f"_r{len(refs) - 1}"
    body = re.sub(r"\{([^{}]+)\}", sub, expr)
    try:
        tree = ast.parse(body.strip(), mode="eval")
    except SyntaxError:
        raise ScenarioError("--link", where, f"{expr!r} is not an arithmetic expression"
                            ) from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED) or (
                isinstance(node, ast.Constant) and (
                    isinstance(node.value, bool) or not isinstance(node.value, int | float))) \
                or (isinstance(node, ast.Name) and not re.fullmatch(r"_r\d+", node.id)):
            raise ScenarioError("--link", where, f"{expr!r}: only numbers, + - * /, "
                                "parentheses and {path} references are allowed")
    return tree, refs


def evaluate_link(expr: str, where: str, lookup: Any) -> float:
    """Evaluate a :func:`parse_link` expression; ``lookup(path)`` gives a reference."""
    tree, refs = _compile_expr(expr, where)
    values = {f"_r{i}": float(lookup(r)) for i, r in enumerate(refs)}

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return float(cast(float, node.value))  # numbers only, checked by _compile_expr
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        assert isinstance(node, ast.BinOp)
        a, b = ev(node.left), ev(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if b == 0:
            raise ScenarioError("--link", where, f"{expr!r} divides by zero")
        return a / b
    return _num(ev(tree))


def apply_links(scenario: Scenario, change: dict[str, Any],
                links: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``change`` plus each linked path's value (in order; references resolve to the
    change's values first, then the scenario file's)."""
    out = dict(change)

    def lookup(path: str) -> Any:
        if path in out:
            return out[path]
        try:
            return get_path(scenario, path)
        except (KeyError, IndexError, TypeError):
            raise ScenarioError("--link", path, "is referenced but is neither swept nor in "
                                f"{scenario.source}") from None
    for path, expr in links:
        out[path] = evaluate_link(expr, path, lookup)
    return out


def design(grids: Sequence[tuple[str, list[Any], tuple[float, float] | None]], *,
           zipped: bool = False, lhs: int | None = None, seed: int = 0,
           ) -> list[dict[str, Any]]:
    """The variants of a sweep as change dicts.

    Full factorial by default; ``zipped``: the i-th values of every axis together (all of
    equal length); ``lhs=N``: a Latin-hypercube sample of N points (range axes sampled
    continuously in ``[lo, hi]``, value lists stratified over their values), from the
    stream ``("lhs", 0)`` of ``seed``.
    """
    if not grids:
        return []
    paths = [g[0] for g in grids]
    if len(set(paths)) != len(paths):
        raise ScenarioError("--grid", ", ".join(paths), "names a path twice")
    if lhs is not None:
        from simkit._rng import stream

        rng = stream(seed, "lhs", 0)
        cols = []
        for _path, values, rng_lohi in grids:
            u = (rng.permutation(lhs) + rng.random(lhs)) / lhs
            if rng_lohi is not None:
                lo, hi = rng_lohi
                cols.append([_num(lo + (hi - lo) * x) for x in u])
            else:
                cols.append([values[min(int(x * len(values)), len(values) - 1)] for x in u])
        return [dict(zip(paths, row, strict=True)) for row in zip(*cols, strict=True)]
    if zipped:
        lengths = {len(g[1]) for g in grids}
        if len(lengths) != 1:
            raise ScenarioError("--zip", ", ".join(paths), "needs axes of equal length, got "
                                + ", ".join(str(len(g[1])) for g in grids))
        return [dict(zip(paths, row, strict=True))
                for row in zip(*(g[1] for g in grids), strict=True)]
    return [dict(zip(paths, row, strict=True))
            for row in itertools.product(*(g[1] for g in grids))]


def _label(change: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in change.items()) or "base"


# --------------------------------------------------------------------------------------
# compare, sweep, sensitivity, solve
# --------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """Policies compared on one world: the tidy table and how it was made.

    Attributes
    ----------
    rows : list of dict
        :func:`simkit.policies.comparison_rows` (Monte Carlo) or
        :func:`simkit.policies.des_rows` (``engine="des"``).
    labels : list of str
        Variant labels, the base first.
    paired : bool
        Common random numbers (``False``: different books, unpaired differences).
    engine : str
        ``"mc"`` or ``"des"``.
    n_paths : int
        Paths per variant (Monte Carlo) or replications (DES).
    runs : list
        The :class:`simkit.policies.PolicyRun` objects (Monte Carlo).
    """

    rows: list[dict[str, Any]]
    labels: list[str]
    paired: bool
    engine: str
    n_paths: int
    runs: list[Any] = field(default_factory=list)
    note: str = ""

    def value(self, variant: str, party: str, measure: str, key: str = "value") -> float:
        """One number of the table (``key`` in value, se, diff, diff_se, unpaired_se)."""
        for r in self.rows:
            if r["variant"] == variant and r["party"] == party and r["measure"] == measure:
                return float(r[key])
        raise KeyError((variant, party, measure))


def compare(base: Scenario, variants: Sequence[Scenario | tuple[str, Scenario]] = (), *,
            executor: Executor | None = None, progress: bool = False,
            different_books: bool = False, engine: str = "mc", replications: int = 4,
            params: Sequence[dict[str, Any]] | None = None,
            ) -> Comparison:
    """Compare policies against ``base`` on common random numbers.

    Parameters
    ----------
    base : Scenario
    variants : sequence of Scenario or (label, Scenario)
        Other policies. Each must live on ``base``'s world (build them with
        :func:`simkit.policies.with_policy` or ``base.with_changes``), unless
        ``different_books``.
    different_books : bool
        Allow variants on other books; their differences are then unpaired (and the
        comparison says so).
    engine : {"mc", "des"}
        Monte Carlo (each party's loss measures) or the discrete-event model (credit
        supply, refusals, settled losses; ``replications`` per variant, paired by
        replication).
    params : sequence of dict, optional
        Parameters of each variant (for the table's columns), base first.

    Raises
    ------
    ScenarioError
        When a variant's book differs from the base's and ``different_books`` is False.
    """
    from simkit import policies

    labelled = [(base.name, base)] + [v if isinstance(v, tuple) else (v.name, v)
                                     for v in variants]
    params = list(params) if params is not None else [{} for _ in labelled]
    foreign = [label for label, v in labelled[1:] if not policies.same_world(base, v)]
    if engine not in ("mc", "des"):
        raise ScenarioError("--engine", "", f"must be 'mc' or 'des', got {engine!r}")
    if foreign and not different_books:
        raise ScenarioError(base.source, "compare", "the books differ ("
                            + ", ".join(foreign) + " is not on the world of "
                            f"{base.name}: other loans, factors or run settings), so the "
                            "comparison would mix the book with the policy. Put the other "
                            "policy on this book with --policy FILE, or pass "
                            "--different-books to compare them anyway (unpaired)")
    if engine == "des":
        rows = policies.des_rows(base, [(lab, v, p) for (lab, v), p in
                                        zip(labelled, params, strict=True)],
                                 replications=replications, executor=executor,
                                 progress=progress, paired=not foreign)
        note = ("DES: paired by replication (same firms and fates)" if not foreign else
                "DIFFERENT BOOKS: the scenarios do not share their firms; differences mix "
                "the book with the policy and their standard errors are unpaired")
        return Comparison(rows, [lab for lab, _ in labelled], not foreign, "des",
                          replications, note=note)
    paired = not foreign
    if paired:
        results = policies.simulate_policies(base, [v for _, v in labelled[1:]],
                                             executor=executor, progress=progress)
    else:
        from simkit.montecarlo import simulate

        results = [simulate(v, executor=executor, progress=progress) for _, v in labelled]
    runs = [policies.PolicyRun(lab, v, r, p)
            for (lab, v), r, p in zip(labelled, results, params, strict=True)]
    rows = policies.comparison_rows(runs, paired=paired, executor=executor)
    note = ("common random numbers: the same book and draws for every policy "
            "(paired differences)" if paired else
            "DIFFERENT BOOKS: the scenarios do not share their loans or draws; differences "
            "mix the book with the policy and their standard errors are unpaired")
    return Comparison(rows, [lab for lab, _ in labelled], paired, "mc",
                      int(results[0].n_paths), runs, note)


def sweep_table(scenario: Scenario, changes: Sequence[dict[str, Any]], *,
                links: Sequence[tuple[str, str]] = (), executor: Executor | None = None,
                progress: bool = False, engine: str = "mc",
                replications: int = 4) -> Comparison:
    """Run ``scenario`` (the base) and one variant per change set on common random
    numbers; the tidy table of :func:`compare` with each variant's parameters.

    ``links`` (``(path, expression)`` from :func:`parse_link`) add linked edits to every
    change set (e.g. the guarantor's share = ``0.6 - {bank share}``).
    """
    full = [apply_links(scenario, c, links) for c in changes]
    variants = [(_label(c), scenario.with_changes(c)) for c in full]
    keys = list(dict.fromkeys(k for c in full for k in c))

    def base_value(k: str) -> Any:
        try:
            return get_path(scenario, k)
        except (KeyError, IndexError, TypeError):
            return None
    params = [{k: base_value(k) for k in keys}] + [{k: c.get(k) for k in keys} for c in full]
    return compare(scenario, variants, executor=executor, progress=progress,
                   engine=engine, replications=replications, params=params)


def sweep(scenario: Scenario, changes: Iterable[dict[str, Any]], *,
          executor: Executor | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Run ``scenario`` once per change set on common random numbers and tabulate wide.

    One row per (variant, party): ``variant`` (label), the changed values, and for each
    measure of :func:`simkit.policies.comparison_rows` its value (``el``, ``es_99``, ...)
    with ``_se``, ``_diff`` and ``_diff_se`` (paired, against the unchanged scenario).
    The tidy form is :func:`sweep_table`.

    Examples
    --------
    >>> rows = sweep(s, [{"agreements[0].layers[0].share": b,
    ...                   "agreements[0].layers[1].share": 0.6 - b} for b in (0.1, 0.2, 0.3)])
    """
    changes = list(changes)
    table = sweep_table(scenario, changes, executor=executor, progress=progress)
    return wide_rows(table.rows, skip=scenario.name)


def wide_rows(rows: Sequence[dict[str, Any]], skip: str | None = None
              ) -> list[dict[str, Any]]:
    """The tidy table pivoted to one row per (variant, party)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    fixed = ("party", "kind", "measure", "value", "se", "diff", "diff_se", "unpaired_se")
    for r in rows:
        if r["variant"] == skip:
            continue
        key = (r["variant"], r["party"])
        row = out.setdefault(key, {k: v for k, v in r.items() if k not in fixed[1:]})
        m = r["measure"]
        row[m], row[f"{m}_se"] = r["value"], r["se"]
        row[f"{m}_diff"], row[f"{m}_diff_se"] = r["diff"], r["diff_se"]
    return list(out.values())


def sensitivity(scenario: Scenario, ranges: Sequence[tuple[str, float, float]], *,
                measure: str = "el", party: str | None = None,
                executor: Executor | None = None, progress: bool = False,
                ) -> list[dict[str, Any]]:
    """One-at-a-time sensitivity: each path at its low and high value, the rest at the
    base, all on common random numbers.

    Returns
    -------
    list of dict
        One per (path, party): ``path``, ``party``, ``low``, ``high``, ``base`` (the
        measure at the base), ``diff_low``, ``diff_low_se``, ``diff_high``,
        ``diff_high_se`` (paired differences to the base). ``party=None`` keeps every
        party and group.
    """
    changes = []
    for path, lo, hi in ranges:
        changes += [{path: _num(lo)}, {path: _num(hi)}]
    table = sweep_table(scenario, changes, executor=executor, progress=progress)
    parties = list(dict.fromkeys(r["party"] for r in table.rows if r["measure"] == measure))
    if party is not None and party not in parties:
        raise ScenarioError(scenario.source, "--party", f"{party!r} is not a party or group"
                            f"{suggest(party, parties)} (choose from {', '.join(parties)})")
    out = []
    for i, (path, lo, hi) in enumerate(ranges):
        low_label, high_label = table.labels[1 + 2 * i], table.labels[2 + 2 * i]
        for p in parties if party is None else [party]:
            out.append({
                "path": path, "party": p, "measure": measure, "low": lo, "high": hi,
                "base": table.value(scenario.name, p, measure),
                "diff_low": table.value(low_label, p, measure, "diff"),
                "diff_low_se": table.value(low_label, p, measure, "diff_se"),
                "diff_high": table.value(high_label, p, measure, "diff"),
                "diff_high_se": table.value(high_label, p, measure, "diff_se")})
    return out


#: Measures a solve target may name: ``measure(party)``.
TARGET_MEASURES = ("el", "net_result", "fee_income", "es_99", "es_99.9", "var_99",
                   "var_99.9", "p_binding", "p_exhausted",
                   # the DES (engine="des"): system-wide ones take the party "all"
                   "net_loss", "firms_served", "credit_supplied", "guaranteed_supplied",
                   "approvals", "applications")


def parse_target(text: str) -> tuple[str, str, float]:
    """``"net_result(guarantor)=0"`` -> ("net_result", "guarantor", 0.0)."""
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\(\s*([^()]+?)\s*\)\s*=\s*(.+)", text)
    if not m:
        raise ScenarioError("--target", repr(text), "must be MEASURE(PARTY)=VALUE, e.g. "
                            "net_result(guarantor)=0 or p_binding(4321:provincial)=0.05")
    measure, party, value = m.groups()
    party = "-" if party == "all" else party
    if measure not in TARGET_MEASURES:
        raise ScenarioError("--target", measure, "is not a measure"
                            f"{suggest(measure, TARGET_MEASURES)} (choose from "
                            f"{', '.join(TARGET_MEASURES)})")
    v = parse_value(value, "--target")
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ScenarioError("--target", repr(value), "must be a number")
    return measure, party, float(v)


@dataclass
class Solution:
    """The parameter value meeting a target, with its Monte Carlo interval.

    Attributes
    ----------
    path : str
    value : float
        The root of the objective on common random numbers (linear interpolation in the
        final bracket).
    low, high : float
        ``value -/+ 2 SE(objective) / |slope|`` (delta method: the objective's Monte Carlo
        error mapped through its slope at the root), clipped to nothing.
    objective_se : float
        Standard error of the target measure at the root.
    slope : float
        d(measure)/d(parameter) at the root, per unit of the parameter.
    bracket : tuple of float
        The final bracket ``(a, b)`` with a sign change.
    evaluations : list of (float, float, float)
        (parameter, measure, its SE) of every point evaluated.
    """

    path: str
    target: str
    value: float
    low: float
    high: float
    objective_se: float
    slope: float
    bracket: tuple[float, float]
    evaluations: list[tuple[float, float, float]]

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "target": self.target, "value": self.value,
                "low": self.low, "high": self.high, "objective_se": self.objective_se,
                "slope": self.slope, "bracket": list(self.bracket),
                "evaluations": [list(e) for e in self.evaluations]}


def solve(scenario: Scenario, target: str, vary: str, *,
          bracket: tuple[float, float] | None = None, links: Sequence[tuple[str, str]] = (),
          points: int = 17, rounds: int = 2,
          executor: Executor | None = None, progress: bool = False, engine: str = "mc",
          replications: int = 4) -> Solution:
    """Find the value of ``vary`` at which ``target`` holds, on common random numbers.

    Every round evaluates ``points`` values spread over the bracket in one run on common
    random numbers (the same book and draws, so the objective is a smooth, deterministic
    function of the parameter), keeps the sub-interval where ``measure - value`` changes
    sign, and the last round's root is interpolated linearly. The interval is the
    delta-method one, ``root -/+ 2 SE / |slope|``.

    Parameters
    ----------
    target : str
        ``"MEASURE(PARTY)=VALUE"`` (:func:`parse_target`); PARTY may be a group
        (``guarantors``, ``government``) or, for ``p_binding``, a cap name.
    vary : str
        Dotted path of the parameter.
    bracket : (float, float), optional
        Default ``(0, 2 x current value)`` (``(0, 1)`` when the current value is 0).
    links : sequence of (path, expression)
        Linked edits (:func:`parse_link`) applied at every value.
    engine : {"mc", "des"}
        ``"des"``: the discrete-event model, ``replications`` per value, paired by
        replication (targets such as ``credit_supplied(all)=...`` or
        ``net_loss(guarantor)=...``); its objective moves in steps (decisions are
        discrete), so the root is where the step crosses the target.

    Raises
    ------
    ScenarioError
        When the objective does not change sign over the bracket.
    """
    return solve_all(scenario, [target], vary, bracket=bracket, links=links, points=points,
                     rounds=rounds, executor=executor, progress=progress, engine=engine,
                     replications=replications)[0]


def solve_all(scenario: Scenario, targets: Sequence[str], vary: str, *,
              bracket: tuple[float, float] | None = None,
              links: Sequence[tuple[str, str]] = (), points: int = 17, rounds: int = 2,
              executor: Executor | None = None, progress: bool = False, engine: str = "mc",
              replications: int = 4) -> list[Solution]:
    """:func:`solve` for several targets on one parameter; the first round's run (the
    whole bracket) is shared by all of them."""
    parsed = [parse_target(t) for t in targets]
    if bracket is None:
        try:
            cur = float(get_path(scenario, vary))
        except (KeyError, IndexError, TypeError, ValueError):
            raise ScenarioError(scenario.source, vary, "has no value in the file; give "
                                "--bracket lo:hi") from None
        bracket = (0.0, 2.0 * cur) if cur > 0 else (0.0, 1.0)
    lo, hi = float(bracket[0]), float(bracket[1])
    if not lo < hi:
        raise ScenarioError("--bracket", f"{lo:g}:{hi:g}", "must have lo < hi")
    if points < 2 or rounds < 1:
        raise ValueError(f"need points >= 2 and rounds >= 1, got {points}, {rounds}")

    def evaluate(xs: list[float]) -> Comparison:
        return sweep_table(scenario, [{vary: _num(x)} for x in xs], links=links,
                           executor=executor, progress=progress, engine=engine,
                           replications=replications)

    def read(table: Comparison, measure: str, party: str) -> tuple[list[float], list[float]]:
        vals, ses = [], []
        for label in table.labels[1:]:
            try:
                vals.append(table.value(label, party, measure))
                ses.append(table.value(label, party, measure, "se"))
            except KeyError:
                names = sorted({r["party"] for r in table.rows if r["measure"] == measure})
                raise ScenarioError("--target", party, f"has no {measure}"
                                    f"{suggest(party, names)} (choose from "
                                    f"{', '.join(names) or 'nothing: no such measure'})"
                                    ) from None
        return vals, ses

    first_xs = [float(x) for x in np.linspace(lo, hi, points)]
    first = evaluate(first_xs)
    out = []
    for target, (measure, party, goal) in zip(targets, parsed, strict=True):
        evaluations: list[tuple[float, float, float]] = []
        xs, table = first_xs, first
        for rnd in range(rounds):
            if rnd:
                table = evaluate(xs)
            vals, ses = read(table, measure, party)
            evaluations += list(zip(xs, vals, ses, strict=True))
            f = np.array(vals) - goal
            sign = np.flatnonzero(np.sign(f[:-1]) * np.sign(f[1:]) <= 0)
            if sign.size == 0:
                raise ScenarioError(scenario.source, vary, f"{measure}({party}) - {goal:g} "
                                    f"does not change sign over [{xs[0]:g}, {xs[-1]:g}] "
                                    f"(from {f[0]:.6g} to {f[-1]:.6g}); widen --bracket")
            k = int(sign[0])
            a, b = xs[k], xs[k + 1]
            fa, fb, sa, sb = float(f[k]), float(f[k + 1]), ses[k], ses[k + 1]
            if fa == 0 or fb == 0:
                break
            xs = [float(x) for x in np.linspace(a, b, points)]
        if fa == 0:
            root = a
        elif fb == 0:
            root = b
        else:
            root = a - fa * (b - a) / (fb - fa)
        slope = (fb - fa) / (b - a) if b != a else math.nan
        t = 0.0 if b == a else (root - a) / (b - a)
        se = (1 - t) * sa + t * sb
        half = 2 * se / abs(slope) if slope and math.isfinite(slope) else math.inf
        out.append(Solution(vary, target, float(root), float(root - half),
                            float(root + half), float(se), float(slope),
                            (float(a), float(b)), evaluations))
    return out


def run_des_summary(scenario: Scenario, *, replications: int = 1, seed: int | None = None,
                    executor: Executor | None = None, progress: bool = False,
                    out: Path | None = None) -> dict[str, Any]:
    """Run the discrete-event model; return ``{"summary", "text", "runs"}``.

    ``summary`` is :meth:`simkit.des.DesRuns.summary` (scenario, source, means over
    replications with ``_se`` keys for their standard errors, integer counts,
    provenance); ``text`` the printed report. With ``out``, ``des_summary.json``,
    ``des_series.csv`` (replication 0, monthly, long format with scenario, replication,
    month, series, party, value and unit columns) and the figures of replication 0 are
    written there as one atomic set (:func:`simkit.report.save_des`).
    """
    from simkit.des import run_des
    from simkit.resources import check_memory

    check_memory(scenario, "des", workers=_workers(executor))
    runs = run_des(scenario, replications=replications, seed=seed, executor=executor,
                   progress=progress)
    summary = runs.summary()
    text = format_des(scenario, summary)
    if out is not None:  # one atomic result set (simkit.report.save_des)
        from simkit import report

        report.save_des(out, summary, runs[0])
    return {"summary": summary, "text": text, "runs": runs}


def _workers(executor: Executor | None) -> int:
    """Processes an executor runs at once (1 in-process; unknown executors count as 1)."""
    return 1 if executor is None else int(getattr(executor, "_max_workers", 1) or 1)


def format_des(scenario: Scenario, summary: dict[str, Any]) -> str:
    """The printed report of a discrete-event run (amounts in million yuan)."""
    from simkit import report

    n = int(summary.get("replications", 1))

    def pm(key: str, unit: float = 1.0, fmt: str = ",.0f") -> str:
        v, se = summary[key] / unit, summary.get(f"{key}_se", 0.0) / unit
        return f"{v:{fmt}}" + (f" ± {se:{fmt}}" if n > 1 else "")

    lines = [
        f"simkit des {scenario.name}: {summary['years']:g} years, {n} replication(s), "
        f"mode {scenario.des.mode}",
        f"  applications {pm('applications')}, approved {pm('approvals')}, "
        f"firms served {pm('firms_served')}",
        f"  credit supplied {pm('credit_supplied', 1e6, ',.1f')} million yuan "
        f"(guaranteed {pm('guaranteed_supplied', 1e6, ',.1f')} million yuan), "
        f"defaults {pm('defaults')}",
        *([f"  direct (unguaranteed) loans {pm('direct_loans')}, credit "
           f"{pm('direct_credit', 1e6, ',.1f')} million yuan; additionality "
           f"{summary['additionality']:.1%} of firms served needed the guarantee"]
          if summary.get("direct_loans") else []),
        "  refusals by reason: " + (", ".join(
            f"{k} {v:,.0f}" for k, v in summary["refusals"].items() if v) or "none"),
        "",
    ]
    parties = list(summary["losses"])
    rows = [(p, report.fmt_money(summary["compensation_paid"][p]),
             report.fmt_money(summary["recoveries"][p]), report.fmt_money(summary["losses"][p]),
             report.fmt_money(summary["fees_net"][p]), report.fmt_money(summary["injections"][p]),
             report.fmt_money(summary["capital_end"][p]),
             f"{summary['max_leverage'][p]:.2f}" if p in summary["max_leverage"] else "-")
            for p in parties]
    lines.append("per party, million yuan (mean over replications; loans originated in the "
                 "horizon, settled through the run-off)")
    u = "million yuan"
    lines.append(report.format_table(rows, ["party", f"compensation ({u})",
                                            f"recoveries ({u})", f"net loss ({u})",
                                            f"fees net ({u})", f"injections ({u})",
                                            f"capital end ({u})", "max leverage (x)"]))
    binding = {**summary.get("cap_binding_months", {}),
               **summary.get("limit_binding_months", {})}
    if binding:
        lines += ["", "months in which a cap or limit bound:"]
        lines += [f"  {k}: {v:g}" for k, v in binding.items()]
    return "\n".join(lines)
