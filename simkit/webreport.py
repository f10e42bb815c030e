"""One-page HTML report of a run: ``simkit report DIR``.

The report is built from the files a command wrote into ``DIR`` (``summary.json`` of
``simkit run``, ``des_summary.json`` of ``simkit des``, ``compare.csv`` / ``sweep.csv``
tables, every ``*.png`` figure) and from the scenario file the summary names. It is
self-contained: CSS inline, figures inline as base64 PNG, no script and nothing fetched
from the network, so it can be mailed or archived as one file. It states the scenario in
one sentence, the key messages (who bears what in expectation and in a bad year, the
public purse's share, caps that bind), the per-party table with standard errors, the
figures, the assumptions the scenario file marks as uncertain, and the provenance.

Numbers in the per-party table carry ``data-key`` (e.g. ``parties.bank.el``) and
``data-value`` (the exact value in yuan) attributes, so a browser test can check the page
against ``summary.json``.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from pathlib import Path
from typing import Any

from simkit import report
from simkit.scenario import Scenario, ScenarioError, load

__all__ = ["PUBLIC_KINDS", "build_report", "describe_scenario", "write_report"]

#: Party kinds whose losses fall on the public purse.
PUBLIC_KINDS = ("provincial", "national_fund", "local_gov")
#: Names of parties of kind "other" that are public payers (central budget).
PUBLIC_NAMES = ("central_fiscal",)
UNIT = 1e6
UNIT_LABEL = "million yuan"
_TAGS = re.compile(r"\[(MEM|UNCERTAIN|CONFLICT|DER|assumption)[^\]]*\]", re.IGNORECASE)


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %" if abs(100 * x - round(100 * x)) < 1e-9 else f"{100 * x:.1f} %"


def _money(v: float | None, digits: int = 1) -> str:
    if v is None or not isinstance(v, int | float) or not math.isfinite(v):
        return "-"
    return f"{v / UNIT:,.{digits}f}"


def _amount(yuan: float) -> str:
    """``20 million yuan``, ``1.5 billion yuan`` (plain words, no CJK units)."""
    if yuan >= 1e9:
        return f"{yuan / 1e9:,.3g} billion yuan"
    return f"{yuan / 1e6:,.3g} million yuan"


def describe_scenario(scenario: Scenario, n_loans: int | None = None,
                      guaranteed: float | None = None, horizon: int = 1) -> str:
    """The scenario in one sentence: the split, caps, fees, book size and time basis."""
    parts = []
    for a in scenario.agreements:
        layers = []
        for layer in a.layers:
            text = f"{layer.party} {_pct(layer.share)}"
            if layer.cap is not None:
                c = layer.cap
                period = "" if c.period_years == 1 else f" per {c.period_years:g} years"
                text += (f" (capped at {_pct(c.rate)} of the {c.base} principal per "
                         f"{c.pool}{period}, overflow to {c.overflow})")
            layers.append(text)
        fees = []
        for f in a.fees:
            fee = f"{f.from_party} → {f.to_party} {100 * f.rate:.2g} %"
            if f.rate_above is not None and math.isfinite(f.threshold):
                fee += f" ({100 * f.rate_above:.2g} % above {_amount(f.threshold)})"
            fees.append(fee)
        limit = ("" if not math.isfinite(a.single_limit)
                 else f", single limit {_amount(a.single_limit)}")
        parts.append(f"agreement “{a.name}” splits each covered default "
                     + ", ".join(layers) + limit
                     + (("; fees " + ", ".join(fees)) if fees else ""))
    book = ""
    if n_loans is not None:
        book = f" The book holds {n_loans:,} loans"
        if guaranteed is not None:
            book += f" with {guaranteed / 1e9:,.1f} billion yuan guaranteed"
        book += "."
    basis = ("Amounts are million yuan per year (one-year horizon)." if horizon <= 1 else
             f"Amounts are million yuan per year, averaged over a {horizon}-year horizon.")
    return (f"{scenario.name}: " + "; ".join(parts) + "." + book + " " + basis)


def _uncertain(source: str) -> list[dict[str, str]]:
    """Lines of the scenario file whose comment marks an assumption as uncertain."""
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        code, sep, comment = line.partition("#")
        if sep and _TAGS.search(comment):
            out.append({"setting": code.strip() or "(note)", "note": comment.strip()})
    return out


def _images(run_dir: Path) -> list[dict[str, str]]:
    out = []
    for png in sorted(run_dir.glob("*.png")):
        if png.is_symlink() or not png.is_file():
            continue
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        out.append({"name": png.stem.replace("_", " "), "src": f"data:image/png;base64,{data}"})
    return out


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScenarioError(str(path), "", f"is not a readable JSON summary ({exc})") from None


def _read_csv(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return None
    return {"name": path.name, "header": rows[0], "rows": rows[1:201],
            "truncated": max(len(rows) - 201, 0)}


def _public(scenario: Scenario | None, party: str) -> bool:
    if scenario is None:
        return party in PUBLIC_KINDS or party in PUBLIC_NAMES
    try:
        kind = scenario.party(party).kind
    except KeyError:
        return False
    return kind in PUBLIC_KINDS or party in PUBLIC_NAMES


def _messages(summary: dict[str, Any], scenario: Scenario | None) -> list[str]:
    parties = summary.get("parties", {})
    total = summary.get("total_loss", {})
    msgs: list[str] = []
    el_total = total.get("el")
    if el_total and el_total > 0:
        biggest = sorted(parties.items(), key=lambda kv: -kv[1].get("el", 0))[:3]
        msgs.append(
            f"In an average year the book loses {_money(el_total)} {UNIT_LABEL} "
            f"(± {_money(total.get('el_se'))}); "
            + ", ".join(f"{p} bears {100 * s['el'] / el_total:.0f} %" for p, s in biggest)
            + ".")
    tail = [(p, s.get("es_99.9")) for p, s in parties.items()
            if isinstance(s.get("es_99.9"), int | float)]
    if tail:
        p, v = max(tail, key=lambda kv: kv[1])
        msgs.append(f"In a bad year (the worst 1 in 1,000, ES 99.9 %) the heaviest burden "
                    f"falls on {p}: {_money(v)} {UNIT_LABEL}.")
    losers = [p for p, s in parties.items()
              if s.get("net_result") is not None and s["net_result"] < 0
              and s.get("fee_income", 0) > 0]
    if losers:
        msgs.append("Fees do not cover the expected loss of " + ", ".join(losers) + ".")
    public = [(p, s) for p, s in parties.items() if _public(scenario, p)]
    if public:
        el_pub = sum(s.get("el", 0.0) for _, s in public)
        net_pub = sum(s.get("net_result", 0.0) for _, s in public)
        msgs.append(f"The public purse ({', '.join(p for p, _ in public)}) expects to pay "
                    f"{_money(el_pub)} {UNIT_LABEL} a year; net of the fees it receives, "
                    f"{_money(-net_pub)}.")
    for name, c in summary.get("caps", {}).items():
        pb = c.get("p_binding")
        if pb is None:
            continue
        msgs.append(f"The cap {name} binds with probability {100 * pb:.1f} % "
                    f"(± {100 * c.get('p_binding_se', float('nan')):.1f} %), refusing "
                    f"{_money(c.get('expected_overflow'))} {UNIT_LABEL} a year on average.")
    return msgs


_COLUMNS = [("el", "expected loss"), ("var_99", "VaR 99 %"), ("es_99", "ES 99 %"),
            ("var_99.9", "VaR 99.9 %"), ("es_99.9", "ES 99.9 %"), ("fee_income", "fee income"),
            ("net_result", "net result")]


def _cell(key: str, stats: dict[str, Any], col: str) -> dict[str, Any]:
    v = stats.get(col)
    se = stats.get(f"{col}_se")
    ok = isinstance(v, int | float) and math.isfinite(v)
    return {"key": f"{key}.{col}", "value": repr(float(v)) if ok and v is not None else "",
            "text": _money(v), "se": _money(se) if isinstance(se, int | float) and
            math.isfinite(se) else ""}


def _table(summary: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for party, stats in summary.get("parties", {}).items():
        rows.append({"name": party,
                     "cells": [_cell(f"parties.{party}", stats, c) for c, _ in _COLUMNS]})
    total = summary.get("total_loss")
    if total:
        rows.append({"name": "TOTAL", "total": True,
                     "cells": [_cell("total_loss", total, c) for c, _ in _COLUMNS[:5]]
                     + [{"key": "", "value": "", "text": "", "se": ""}] * 2})
    return {"header": [label for _, label in _COLUMNS], "rows": rows}


def _provenance(summary: dict[str, Any]) -> list[tuple[str, str]]:
    prov = summary.get("provenance", {})
    keep = ["seed", "n_paths", "block_size", "horizon_years", "engine", "copula",
            "importance_auto", "simkit", "numpy", "scipy", "python"]
    out = [(k, str(prov[k])) for k in keep if k in prov]
    if "wall_seconds" in summary:
        out.append(("wall time", f"{summary['wall_seconds']:.1f} s"))
    return out


def build_report(run_dir: str | Path, scenario: Scenario | None = None) -> str:
    """The HTML text of the report of the results in ``run_dir``.

    Parameters
    ----------
    run_dir : path
        A folder written by ``simkit run --out``, ``simkit des --out`` or ``compare``.
    scenario : Scenario, optional
        Defaults to the file named by the summary's ``source`` (when it can be read).

    Raises
    ------
    ScenarioError
        When ``run_dir`` holds no simkit result.
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ScenarioError(str(run_dir), "", "is not a folder of simkit results")
    summary = _read_json(run_dir / "summary.json")
    des = _read_json(run_dir / "des_summary.json")
    tables = [t for t in (_read_csv(run_dir / n) for n in ("compare.csv", "sweep.csv")) if t]
    if summary is None and des is None and not tables:
        raise ScenarioError(str(run_dir), "", "holds no summary.json, des_summary.json, "
                            "compare.csv or sweep.csv (write one with `simkit run FILE "
                            "--out DIR`)")
    source = (summary or des or {}).get("source")
    if scenario is None and source:
        try:
            scenario = load(source)
        except ScenarioError:
            scenario = None
    summ = summary or {}
    horizon = int(summ.get("provenance", {}).get("horizon_years", 1) or 1)
    sentence = (describe_scenario(scenario, summ.get("n_loans"), summ.get("guaranteed"),
                                  horizon) if scenario is not None else
                f"{summ.get('scenario', run_dir.name)} (scenario file not found).")
    des_lines = []
    if des is not None:
        for key, label in (("approvals", "loans approved"), ("credit_supplied",
                                                             "credit supplied (yuan)"),
                           ("firms_served", "firms served"), ("refusals", "refusals")):
            if isinstance(des.get(key), int | float):
                des_lines.append(f"{label}: {des[key]:,.0f}")
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    template = env.get_template("report.html.j2")
    name = summ.get("scenario") or (des or {}).get("scenario") or run_dir.name
    return template.render(
        title=f"simkit report: {name}",
        sentence=sentence,
        messages=_messages(summ, scenario) if summary else [],
        net_definition=("Net result = fee income − expected loss, per year. It leaves out "
                        "the bank's interest margin, operating costs and the cost of "
                        "capital."),
        unit=UNIT_LABEL,
        table=_table(summ) if summary else None,
        n_paths=summ.get("n_paths"),
        des_lines=des_lines,
        tables=tables,
        images=_images(run_dir),
        uncertain=_uncertain(source) if source else [],
        provenance=_provenance(summ),
    )


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report (default ``run_dir/report.html``) atomically and return its path."""
    html = build_report(run_dir)
    target = Path(out) if out is not None else Path(run_dir) / "report.html"
    return report.atomic_write_text(target, html)
