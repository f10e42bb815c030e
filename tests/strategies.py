"""Hypothesis strategies for the fuzz battery: broken scenario files, ``with_changes`` calls
and loan tapes of every class issue 7 found (types, magnitudes, nesting, encodings,
references, engine limits), plus :func:`to_toml`, a small TOML writer for test data.

Every generated input starts from :data:`BASE`, a small valid scenario, and applies one to
three mutations, so a good share of the inputs stay valid (and then must run in both
engines) while the rest probe one defect class at a time.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

__all__ = [
    "BASE",
    "BASE_TAPE",
    "Raw",
    "changes_calls",
    "leaf_paths",
    "scenario_dicts",
    "scenario_files",
    "tape_files",
    "to_toml",
    "valid_tweaks",
]


@dataclass(frozen=True)
class Raw:
    """A TOML value written verbatim (e.g. a 5,000-digit integer literal)."""

    text: str


#: A small valid scenario that runs in both engines in well under a second.
BASE: dict[str, Any] = {
    "scenario": {"name": "fuzz"},
    "parties": {
        "bank": {"kind": "bank"},
        "county": {"kind": "guarantor", "net_assets": 5e7, "leverage_limit": 10},
        "other_county": {"kind": "guarantor", "net_assets": 3e7},
        "provincial": {"kind": "provincial", "net_assets": 1e9, "leverage_limit": 10},
        "national_fund": {"kind": "national_fund"},
    },
    "credit_lines": [{"from": "national_fund", "to": "provincial", "amount": 1e9}],
    "agreements": [{
        "name": "std",
        "lender": "bank",
        "single_limit": 10_000_000,
        "recovery_lag_years": 1.0,
        "layers": [
            {"party": "bank", "share": 0.2},
            {"party": "county", "share": 0.4},
            {"party": "provincial", "share": 0.2, "lag_days": 30},
            {"party": "national_fund", "share": 0.2,
             "cap": {"rate": 0.04, "overflow": "county", "pool": "agreement"}},
        ],
        "fees": [
            {"from": "borrower", "to": "county", "rate": 0.01, "threshold": 5e6,
             "rate_above": 0.015, "kind": "guarantee"},
            {"from": "provincial", "to": "national_fund", "rate": 0.003,
             "on_share_of": "national_fund", "kind": "reguarantee"},
        ],
    }],
    "factors": {"national": 0.3, "regional": 0.1, "sector": 0.1},
    "segments": [
        {"name": "smes", "count": 30, "region": "north", "sector": "services",
         "exposure": {"dist": "lognormal", "median": 1e6, "sigma": 0.5},
         "default_prob": {"dist": "uniform", "low": 0.01, "high": 0.05},
         "lgd": {"mean": 0.6, "sd": 0.2}},
        {"name": "farms", "count": 20, "guarantor": "other_county", "region": "south",
         "exposure": 500_000, "default_prob": 0.03, "lgd": 0.5, "tenor_years": 2.0},
    ],
    "run": {"n_paths": 64, "seed": 11, "block_size": 32},
    "des": {"years": 0.5},
}

#: A small valid loan tape (header and rows) for :data:`BASE` without segments.
BASE_TAPE: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]] = (
    ("loan_id", "exposure", "default_prob", "lgd", "lgd_sd", "region", "guarantor",
     "tenor_years", "tech_tier"),
    (("a1", "1000000", "0.02", "0.5", "0.1", "north", "", "1", "0"),
     ("a2", "2.5e6", "0.05", "0.6", "0", "south", "other_county", "2", "1"),
     ("a3", "300000.50", "0.01", "0.4", "", "", "county", "0.5", ""),
     ("a4", "7e5", ".03", "0.7", "0.2", "north", "", "", "3")),
)


# --------------------------------------------------------------------------------------
# TOML writer
# --------------------------------------------------------------------------------------
_BARE = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(k: str) -> str:
    return k if _BARE.fullmatch(k) else _string(k)


def _value(v: Any) -> str:
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def to_toml(data: dict[str, Any]) -> str:
    """Write a mapping as TOML: one ``key = value`` line per top-level key (inline tables)."""
    return "".join(f"{_key(k)} = {_value(v)}\n" for k, v in data.items())


# --------------------------------------------------------------------------------------
# scenario mutations
# --------------------------------------------------------------------------------------
def leaf_paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) to a value in ``data``, tables included."""
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append((*prefix, k))
            out += leaf_paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.append((*prefix, i))
            out += leaf_paths(v, (*prefix, i))
    return out


def dotted(path: tuple) -> str:
    """``("agreements", 0, "layers")`` -> ``"agreements[0].layers"``."""
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else p)
    return text


PATHS = leaf_paths(BASE)
NAMES = ["bank", "county", "other_county", "provincial", "national_fund", "std", "smes",
         "borrower", "nobody", "Bank", "std ", "county\n"]

_magnitudes = st.sampled_from([
    0, -0, 1, -1, 2, 0.5, 1.0, 1e-300, 5e-324, 1e-12, 0.999999, 1 - 1e-16, 1.5, 3, 10, 30,
    50, 100, 1e7, 1e8, 10**8 + 1, 1e10, 10**10, 2**31, 2**63 - 1, 2**63, 2**64, 1e12,
    1e12 + 1, 1e15, 1e200, 1e308, -1e308, 10**309, 10**400, -(10**400),
    float("inf"), float("-inf"), float("nan")])

#: Values a field may be set to (no raw TOML): every type, edge magnitudes, odd strings.
plain_values = st.one_of(
    _magnitudes,
    st.integers(),
    st.floats(),
    st.booleans(),
    st.sampled_from(NAMES),
    st.text(max_size=12),
    st.sampled_from(["", " ", "\t", "x" * 100_000, "٣", "１", "1_0", "\n", "\u200b"]),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.sampled_from(["dist", "mean", "sd", "value", "low", "high", "x"]),
                    st.one_of(_magnitudes, st.sampled_from(["beta", "fixed", "lognormal"])),
                    max_size=4),
)
#: Values a field may be set to in a file: also deep nesting and over-long literals.
values = st.one_of(
    plain_values,
    st.integers(1, 3000).map(lambda d: Raw("[" * d + "]" * d)),
    st.integers(1, 3000).map(lambda d: Raw("{a = " * d + "1" + "}" * d)),
    st.integers(300, 6000).map(lambda d: Raw("1" + "0" * d)),
)


def _set(data: dict[str, Any], dotted_path: str, value: Any) -> None:
    node: Any = data
    tokens = [int(t[1:-1]) if t.startswith("[") else t
              for t in re.findall(r"[^.\[\]]+|\[\d+\]", dotted_path)]
    for t in tokens[:-1]:
        node = node.setdefault(t, {}) if isinstance(node, dict) else node[t]
    node[tokens[-1]] = value


#: Legal but unusual settings (magnitudes, engine options) that must run in both engines.
VALID_TWEAKS: dict[str, Any] = {
    "parties.county.net_assets": st.sampled_from([0.0, 1.0, 1e3, 1e15, 1e300]),
    "parties.provincial.net_assets": st.sampled_from([1.0, 1e15]),
    "parties.national_fund.net_assets": st.sampled_from([1e6, 1e12]),
    "parties.county.leverage_limit": st.sampled_from([1e-6, 0.5, 15, 1e6]),
    "parties.county.single_client_limit": st.sampled_from([1e-9, 0.1, 1.0]),
    "segments[0].exposure": st.sampled_from([2.0, 1.0, 1e-3, 1e12,
                                             {"dist": "uniform", "low": 1, "high": 3},
                                             {"dist": "loguniform", "low": 1, "high": 1e12},
                                             {"dist": "lognormal", "median": 1e12,
                                              "sigma": 5}]),
    "segments[1].exposure": st.floats(1e-6, 1e12),
    "segments[0].default_prob": st.sampled_from([1e-12, 0.5, 0.999999,
                                                 {"dist": "beta", "mean": 0.02, "sd": 0.1},
                                                 {"dist": "beta", "mean": 0.5,
                                                  "sd": 0.4999}]),
    "segments[1].default_prob": st.floats(1e-9, 0.99),
    "segments[0].lgd": st.sampled_from([0.0, 1.0, {"mean": 0.5, "sd": 0.49},
                                        {"mean": 1e-9, "sd": 0}]),
    "segments[0].count": st.integers(0, 40),
    "segments[1].count": st.integers(1, 40),
    "segments[0].tenor_years": st.sampled_from([1e-3, 0.25, 30]),
    "segments[0].tech_tier": st.integers(0, 3),
    "segments[0].applications_per_year": st.sampled_from([0, 0.5, 10, 1e7]),
    "segments[0].interest_margin": st.sampled_from([0.0, 1.0]),
    "agreements[0].single_limit": st.sampled_from([1.0, 1e3, 1e12]),
    "agreements[0].recovery_lag_years": st.sampled_from([0.0, 30.0]),
    "agreements[0].layers[3].cap.rate": st.sampled_from([1e-9, 0.03, 1.0]),
    "agreements[0].layers[3].cap.base": st.sampled_from(["guaranteed", "annualised"]),
    "agreements[0].layers[3].cap.pool": st.sampled_from(["agreement", "guarantor", "region",
                                                         "segment"]),
    "agreements[0].layers[3].cap.period_years": st.sampled_from([1, 2, 3.0]),
    "agreements[0].layers[2].lag_days": st.sampled_from([0, 3650]),
    "agreements[0].fees[0].rate": st.sampled_from([0.0, 0.2]),
    "factors.national": st.sampled_from([0.0, 0.9]),
    "factors.regional": st.sampled_from([0.0, 0.4]),
    "factors.copula": st.just("student_t"),
    "factors.dof": st.sampled_from([2.01, 6, 1000]),
    "factors.national_persistence": st.sampled_from([0.0, 0.99]),
    "factors.downturn_lgd": st.sampled_from([0.0, 2.0]),
    "run.horizon_years": st.integers(1, 3),
    "run.importance_sampling": st.sampled_from([True, -3.0, -0.5]),
    "run.seed": st.sampled_from([0, 2**63 - 1]),
    "des.mode": st.sampled_from(["individual", "batch"]),
    "des.refusal": st.sampled_from(["refuse", "queue"]),
    "des.seasonality": st.sampled_from([0.0, 0.99]),
    "des.renewal_prob": st.sampled_from([0.0, 1.0]),
    "des.moral_hazard_kappa": st.sampled_from([0.0, 10.0]),
    "des.injection_trigger": st.sampled_from([0.0, 1.0]),
    "des.direct_lending": st.booleans(),
    "des.claim_trigger_days": st.sampled_from([0, 3650]),
    "des.recovery_lag_sigma": st.sampled_from([0.0, 5.0]),
    "credit_lines[0].amount": st.sampled_from([1e-3, 1e6, 1e15]),
}


@st.composite
def valid_tweaks(draw: st.DrawFn) -> dict[str, Any]:
    """:data:`BASE` with one to four legal-but-unusual settings from :data:`VALID_TWEAKS`."""
    data = copy.deepcopy(BASE)
    keys = draw(st.lists(st.sampled_from(sorted(VALID_TWEAKS)), min_size=1, max_size=4,
                         unique=True))
    for k in keys:
        _set(data, k, draw(VALID_TWEAKS[k]))
    if data["agreements"][0]["layers"][3]["cap"].get("period_years", 1) != 1 and draw(
            st.booleans()):
        # a second cap with the same period (legal) or another one (refused)
        data["agreements"][0]["layers"][2]["cap"] = {
            "rate": 0.05, "overflow": "county",
            "period_years": draw(st.sampled_from(
                [data["agreements"][0]["layers"][3]["cap"]["period_years"], 1]))}
    return data


@st.composite
def scenario_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """:data:`BASE` with legal tweaks (a third) or one to three breaking mutations."""
    if draw(st.integers(0, 2)) == 0:
        return draw(valid_tweaks())
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        paths = leaf_paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = data
        for p in path[:-1]:
            parent = parent[p]
        key = path[-1]
        action = draw(st.sampled_from(["set", "set", "set", "delete", "add", "valid"]))
        if action == "set":
            parent[key] = draw(values)
        elif action == "delete":
            del parent[key]
        elif action == "add":
            target = parent[key] if isinstance(parent[key], dict) else parent
            if isinstance(target, dict):
                target[draw(st.sampled_from(["extra", "shares", "count", "tape", "x y",
                                                 "k" * 5000, "ü"]))] = (
                    draw(values))
        else:  # an in-range perturbation that usually stays valid
            old = parent[key]
            if isinstance(old, float | int) and not isinstance(old, bool):
                parent[key] = type(old)(old * draw(st.sampled_from([0, 0.5, 0.9, 1.1, 2, 10])))
    return data


_encodings = st.sampled_from(["plain", "plain", "plain", "bom", "bad_utf8", "nul", "truncate",
                              "utf16", "latin1", "flip"])


@st.composite
def scenario_files(draw: st.DrawFn) -> bytes:
    """The bytes of a scenario file: a mutated :data:`BASE` with an encoding mutation."""
    data = draw(scenario_dicts())
    try:
        text = to_toml(data)
    except TypeError:
        text = to_toml(BASE)
    raw = text.encode("utf-8")
    how = draw(_encodings)
    if how == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif how == "bad_utf8":
        i = draw(st.integers(0, len(raw)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]))
        raw = raw[:i] + bad + raw[i:]
    elif how == "nul":
        i = draw(st.integers(0, len(raw)))
        raw = raw[:i] + b"\x00" + raw[i:]
    elif how == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif how == "utf16":
        raw = text.encode("utf-16")
    elif how == "latin1":
        raw = text.replace("fuzz", "fuzzé").encode("latin-1", errors="replace")
    elif how == "flip" and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1:]
    return raw


# --------------------------------------------------------------------------------------
# with_changes calls
# --------------------------------------------------------------------------------------
class _Odd:
    """An object of no TOML type."""

    def __repr__(self) -> str:
        return "<odd>"


_numpy_values = st.one_of(
    st.integers(-(2**62), 2**62).map(np.int64),
    st.integers(0, 2**31 - 1).map(np.int32),
    st.floats(width=64).map(np.float64),
    st.floats(width=32).map(np.float32),
    st.booleans().map(np.bool_),
    st.just(np.arange(3)),
)

change_values = st.one_of(plain_values, _numpy_values,
                          st.sampled_from([None, _Odd(), {1, 2}, (0.2, 0.8), b"bytes",
                                           10**400, 10**5000, -(10**5000)]))

change_paths = st.one_of(
    st.sampled_from([dotted(p) for p in PATHS]),
    st.sampled_from(["run.n_paths", "run.block_size", "segments[0].count",
                     "segments[5].count", "des.applications_per_year",
                     "segments[0].applications_per_year", "agreements[0].layers[3].cap."
                     "period_years", "run.horizon_years", "des.years", "parties.new.kind",
                     "", ".", "run..seed", "run.seed[0]", "segments.count", "a" * 1000,
                     "x." * 500 + "y", "scenario.name"]),
    st.text(max_size=20),
    st.integers(),
)


@st.composite
def _sweep_step(draw: st.DrawFn) -> dict[str, Any]:
    """A legal change of the kind a sweep over ``np.arange`` / ``np.linspace`` makes."""
    bank = draw(st.sampled_from(np.linspace(0.0, 0.6, 7)))
    return draw(st.sampled_from([
        {"run.n_paths": draw(st.sampled_from(np.arange(1, 200, 37)))},
        {"agreements[0].layers[0].share": bank,
         "agreements[0].layers[1].share": np.float64(0.6) - bank},
        {"segments[0].count": np.int32(draw(st.integers(0, 40))),
         "des.direct_lending": np.bool_(draw(st.booleans()))},
        {"agreements[0].layers[3].cap.rate": np.float32(draw(st.sampled_from([0.03, 0.05])))},
    ]))


@st.composite
def changes_calls(draw: st.DrawFn) -> dict[Any, Any]:
    """A ``changes`` mapping for :meth:`Scenario.with_changes`: a legal sweep step (a
    quarter) or one to three arbitrary entries."""
    if draw(st.integers(0, 3)) == 0:
        return draw(_sweep_step())
    return draw(st.dictionaries(change_paths, change_values, min_size=1, max_size=3))


# --------------------------------------------------------------------------------------
# loan tapes
# --------------------------------------------------------------------------------------
_cells = st.one_of(
    st.sampled_from(["", " ", "1_0", "１０", "٣", "1e400", "nan", "inf", "-1", "0", "1",
                     "0.5", "1e-320", "0x10", "1,5", "+.5", "5.", "e5", "--1", "1e", "  2 ",
                     "a1", "county", "other_county", "nobody", "std", "x" * 5000,
                     "x" * 140_000, "\x00", "\"", "\"unterminated", "a\nb"]),
    st.text(max_size=10),
    st.floats().map(repr),
    st.integers().map(str),
)
_tape_encodings = st.sampled_from(["plain", "plain", "plain", "bom", "bad_utf8", "utf16",
                                   "crlf", "no_newline", "empty", "secret", "nul"])


@st.composite
def tape_files(draw: st.DrawFn) -> bytes:
    """The bytes of a loan tape: :data:`BASE_TAPE` with cell, header and encoding mutations."""
    header = list(BASE_TAPE[0])
    rows = [list(r) for r in BASE_TAPE[1]]
    short = False
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["cell", "cell", "cell", "dup_id", "header", "drop_col",
                                     "short_row", "extra_row"]))
        if what == "cell":
            rows[draw(st.integers(0, len(rows) - 1))][draw(st.integers(0, len(header) - 1))] = (
                draw(_cells))
        elif what == "dup_id":
            rows[1][0] = rows[0][0]
        elif what == "header":
            header[draw(st.integers(0, len(header) - 1))] = draw(st.sampled_from(
                ["exposure", "expsoure", "agreement", "API_TOKEN=s3cr3t", "", "segment",
                 "x" * 300]))
        elif what == "drop_col" and len(header) > 1:
            j = draw(st.integers(0, len(header) - 1))
            header.pop(j)
            for r in rows:
                r.pop(j)
        elif what == "short_row":
            short = True
        elif what == "extra_row":
            rows.append(list(rows[0]))
            rows[-1][0] = f"{rows[-1][0]}b"

    def quote(c: str) -> str:
        return '"' + c.replace('"', '""') + '"' if any(x in c for x in ',"\n') else c

    if short:
        rows[0] = rows[0][:-1]
    text = "\n".join(",".join(quote(c) for c in line) for line in [header, *rows]) + "\n"
    how = draw(_tape_encodings)
    raw = text.encode("utf-8")
    if how == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif how == "bad_utf8":
        i = draw(st.integers(0, len(raw)))
        raw = raw[:i] + b"\xff\xfe" + raw[i:]
    elif how == "utf16":
        raw = text.encode("utf-16")
    elif how == "crlf":
        raw = text.replace("\n", "\r\n").encode("utf-8")
    elif how == "no_newline":
        raw = raw.rstrip(b"\n")
    elif how == "empty":
        raw = draw(st.sampled_from([b"", b"\n", b"  \n\n"]))
    elif how == "secret":
        raw = b"API_TOKEN=s3cr3t-value,other\nline2\n"
    elif how == "nul":
        raw = raw.replace(b"0.02", b"0.0\x002", 1)
    return raw
