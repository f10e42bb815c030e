"""Command line of the policy questions: ``simkit compare / sweep / sensitivity / solve``.

Every command runs its policies on one world with common random numbers (the same book
and the same draws) and reports paired differences with their standard errors; see
:mod:`simkit.policies` and :mod:`simkit.experiments`. :func:`register` adds the
sub-commands to the ``simkit`` parser; :func:`handle` runs one.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from simkit.scenario import Scenario, ScenarioError

__all__ = ["COMMANDS", "add_set", "handle", "register"]

COMMANDS = ("compare", "sweep", "sensitivity", "solve")

#: Measures shown by default in the printed tables.
DEFAULT_MEASURES = "el,es_99,net_result"
DES_DEFAULT_MEASURES = ("firms_served,credit_supplied,guaranteed_supplied,refusals,"
                        "net_loss")


def add_set(p: argparse.ArgumentParser) -> None:
    """``--set PATH=VALUE`` (repeatable): edit the scenario before anything runs."""
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="edit the scenario: a dotted path of Scenario.with_changes and a "
                        "TOML value, e.g. --set run.n_paths=1000 --set "
                        "'agreements[0].layers[0].share=0.3' (repeatable)")


def _common(p: argparse.ArgumentParser, *, des: bool = True) -> None:
    from simkit.cli import out_dir_arg, positive_int, seed_arg

    p.add_argument("--paths", type=positive_int, help="Monte Carlo paths (default: file)")
    p.add_argument("--seed", type=seed_arg, help="root seed of the paths (the book keeps its "
                                              "own seed)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="processes; blocks of paths (every policy in each) spread over them")
    if des:
        p.add_argument("--engine", choices=("mc", "des"), default="mc",
                       help="mc: Monte Carlo losses (default); des: the discrete-event "
                            "model (credit supply, refusals, settled losses)")
        p.add_argument("--replications", type=positive_int, default=4,
                       help="DES replications per variant (default 4), paired by "
                            "replication")
        p.add_argument("--years", type=float, help="DES horizon in years (default: file)")
    p.add_argument("--out", type=out_dir_arg, metavar="DIR",
                   help="write the table and figures (atomically)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_set(p)


def register(sub: Any) -> None:
    """Add ``compare``, ``sweep``, ``sensitivity`` and ``solve`` to the sub-parsers."""
    _register_compare(sub)
    _register_sweep(sub)
    _register_sensitivity(sub)
    _register_solve(sub)


def _register_compare(sub: Any) -> None:
    """The ``compare`` sub-command's options."""
    c = sub.add_parser(
        "compare", help="policies on one book: each party's measures and paired differences",
        description="Compare policies on BASE's book with common random numbers: each "
                    "party's (and the guarantors' and government's) expected loss, VaR and "
                    "ES (99 %, 99.9 %), fees and net result per variant, and the paired "
                    "difference to BASE with its standard error (unpaired SE alongside). Variants: "
                    "--policy FILE (that file's parties and agreements on BASE's book), "
                    "--set PATH=VALUE (one variant of BASE), --variant 'PATH=V; PATH=V' "
                    "(repeatable), or further FILEs on the same book. Files on other "
                    "books are refused unless --different-books.")
    c.add_argument("file", metavar="BASE")
    c.add_argument("others", nargs="*", metavar="FILE",
                   help="scenarios on the same book (see --different-books)")
    c.add_argument("--policy", action="append", default=[], metavar="FILE",
                   help="another policy (parties, agreements, credit lines, regulation) "
                        "on BASE's world (repeatable)")
    c.add_argument("--variant", action="append", default=[], metavar="'PATH=V; ...'",
                   help="a variant of BASE given by ';'-separated edits (repeatable)")
    c.add_argument("--different-books", action="store_true",
                   help="allow FILEs on other books (differences then mix book and "
                        "policy, unpaired)")
    c.add_argument("--measures", default=None,
                   help=f"measures to print (default {DEFAULT_MEASURES}; DES: "
                        f"{DES_DEFAULT_MEASURES})")
    _common(c)


def _register_sweep(sub: Any) -> None:
    """The ``sweep`` sub-command's options."""
    s = sub.add_parser(
        "sweep", help="grid of policy variants on common random numbers, tidy table + figures",
        description="Run BASE and a grid of variants on common random numbers. --grid "
                    "PATH=v1,v2,... or PATH=lo:hi:n (repeatable): full factorial, or "
                    "--zip (i-th values together) or --lhs N (Latin hypercube). --link "
                    "'PATH=EXPR' sets a linked value per variant, EXPR arithmetic over "
                    "{other.path} references, e.g. --link "
                    "'agreements[0].layers[1].share=0.6-{agreements[0].layers[0].share}'. "
                    "Writes sweep.csv (and sweep.parquet with pyarrow) and one figure per "
                    "swept path.")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--grid", action="append", default=[], required=True,
                   metavar="PATH=VALUES", help="values v1,v2,... or a range lo:hi:n")
    s.add_argument("--zip", action="store_true", help="zip the axes instead of crossing")
    from simkit.cli import int_at_least

    s.add_argument("--lhs", type=int_at_least(2), metavar="N",
                   help="a Latin-hypercube sample of N variants")
    s.add_argument("--link", action="append", default=[], metavar="PATH=EXPR",
                   help="linked edit, e.g. 'agreements[0].layers[1].share=0.6-"
                        "{agreements[0].layers[0].share}'")
    s.add_argument("--measures", default=None, help="measures to print")
    s.add_argument("--party", action="append", default=None,
                   help="parties or groups to print and draw (default: all)")
    _common(s)


def _register_sensitivity(sub: Any) -> None:
    """The ``sensitivity`` sub-command's options."""
    t = sub.add_parser(
        "sensitivity", help="tornado chart of one-at-a-time paired differences",
        description="Move each --vary PATH=lo:hi to its low and high value, one at a "
                    "time, on common random numbers, and report the paired difference "
                    "of --measure for --party (tornado chart tornado.png in --out).")
    t.add_argument("file", metavar="FILE")
    t.add_argument("--vary", action="append", default=[], required=True,
                   metavar="PATH=LO:HI")
    t.add_argument("--measure", default="el", help="el, es_99, net_result, ... (default el)")
    t.add_argument("--party", default=None, help="party or group (default: all, chart of "
                                                  "the first)")
    _common(t, des=False)


def _register_solve(sub: Any) -> None:
    """The ``solve`` sub-command's options."""
    v = sub.add_parser(
        "solve", help="the parameter value meeting a target, with a Monte Carlo interval",
        description="Find the value of --vary at which --target holds, e.g. --target "
                    "'net_result(hefei_guarantor)=0' --vary 'agreements[0].fees[0].rate' "
                    "(the break-even guarantee fee), on common random numbers, by "
                    "refining a grid bracket; the interval is root ± 2 SE / |slope|.")
    v.add_argument("file", metavar="FILE")
    v.add_argument("--target", action="append", required=True,
                   metavar="MEASURE(PARTY)=VALUE",
                   help="e.g. net_result(guarantor)=0, p_binding(4321:provincial)=0.05 "
                        "(repeatable: solved one after the other)")
    v.add_argument("--vary", required=True, metavar="PATH")
    v.add_argument("--bracket", default=None, metavar="LO:HI",
                   help="search interval (default 0 to twice the current value)")
    v.add_argument("--link", action="append", default=[], metavar="PATH=EXPR",
                   help="linked edit applied at every value")
    _common(v)


def handle(args: argparse.Namespace) -> int:
    """Run one of :data:`COMMANDS`; ScenarioError propagates to :func:`simkit.cli.main`."""
    return {"compare": _compare, "sweep": _sweep, "sensitivity": _sensitivity,
            "solve": _solve}[args.command](args)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def _base(args: argparse.Namespace, file: str | None = None) -> Scenario:
    """The scenario with --paths/--seed/--years and --set applied (validated)."""
    from simkit.cli import load_with

    ns = argparse.Namespace(**vars(args))
    if file is not None:
        ns.file = file
    return load_with(ns)


def worker_pool(args: argparse.Namespace) -> Any:
    from simkit.cli import worker_pool as ex

    return ex(args.workers)


def _prepare_out(args: argparse.Namespace) -> None:
    from simkit.cli import check_out

    check_out(args.out)


def _measures(args: argparse.Namespace, engine: str) -> list[str]:
    text = args.measures or (DES_DEFAULT_MEASURES if engine == "des" else DEFAULT_MEASURES)
    return [m.strip() for m in text.split(",") if m.strip()]


def _fmt(measure: str, v: float) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    if measure.startswith("p_"):
        text = f"{100 * v:.2f}%"
    elif measure in ("applications", "approvals", "firms_served", "defaults",
                     "direct_loans") or measure.startswith("refusals"):
        text = f"{v:,.0f}"
    else:
        text = f"{v / 1e6:,.2f}"
    if text.startswith("-") and not any(ch in "123456789" for ch in text):
        text = text[1:]  # no "-0.00"
    return text


def format_comparison(comp: Any, measures: list[str], parties: list[str] | None = None,
                      ) -> str:
    """The printed comparison: one block per variant (money in million yuan)."""
    from simkit import report

    unit = ("million yuan per year" if comp.engine == "mc"
            else "million yuan over the horizon, counts")
    head = [f"simkit compare ({'Monte Carlo' if comp.engine == 'mc' else 'DES'}): base "
            f"{comp.labels[0]}, {comp.n_paths:,} "
            f"{'paths' if comp.engine == 'mc' else 'replications'} per variant",
            comp.note,
            f"amounts in {unit}; diff = variant - base ± its "
            f"{'paired' if comp.paired else 'unpaired'} SE; 'unpaired SE' is what two "
            "independent runs would give", ""]
    if not comp.paired:  # different books: say so on the first line
        head = [comp.note, head[0], *head[2:]]
    wanted = list(measures)

    def keep(r: dict[str, Any]) -> bool:
        m = r["measure"]
        ok = m in wanted or any(m.startswith(f"{w}:") for w in wanted)
        return ok and (parties is None or r["party"] in parties or r["party"] == "-")
    lines = list(head)
    base_rows = {(r["party"], r["measure"]): r for r in comp.rows
                 if r["variant"] == comp.labels[0]}
    for label in comp.labels[1:]:
        sel = [r for r in comp.rows if r["variant"] == label and keep(r)]
        if not sel:
            continue
        lines.append(f"variant: {label}")
        table = []
        for r in sel:
            b = base_rows.get((r["party"], r["measure"]))
            bv = _fmt(r["measure"], b["value"]) if b else "-"
            table.append([r["party"], r["measure"], bv,
                          _fmt(r["measure"], r["value"]),
                          f"{_fmt(r['measure'], r['diff'])} ± {_fmt(r['measure'], r['diff_se'])}",
                          _fmt(r["measure"], r["unpaired_se"])])
        lines.append(report.format_table(table, ["party", "measure", "base", "variant",
                                                 "diff ± SE", "unpaired SE"],
                                         align="<<>>>>"))
        lines.append("")
    return "\n".join(lines).rstrip()


def _write_table(out: Path, stem: str, rows: list[dict[str, Any]]) -> list[str]:
    from simkit import report

    written = [report.write_csv(out / f"{stem}.csv", rows).name]
    pq = report.write_parquet(out / f"{stem}.parquet", rows)
    if pq is not None:
        written.append(pq.name)
    report.write_json(out / f"{stem}.json", rows)
    written.append(f"{stem}.json")
    return written


# --------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------
def _compare(args: argparse.Namespace) -> int:
    from simkit import policies
    from simkit.experiments import compare, parse_set

    # validate everything before any work
    set_changes = parse_set(args.set)
    plain = argparse.Namespace(**{**vars(args), "set": []})
    base = _base(plain)
    variants: list[tuple[str, Scenario]] = []
    run_edits = {k: v for k, v in set_changes.items() if k.startswith("run.")}
    if run_edits:  # run settings are the world: they apply to every variant
        base = base.with_changes(run_edits)
    policy_edits = {k: v for k, v in set_changes.items() if k not in run_edits}
    if policy_edits:
        variants.append((_edit_label(policy_edits), base.with_changes(policy_edits)))
    for text in args.variant:
        edits = parse_set([x for x in text.split(";") if x.strip()], "--variant")
        variants.append((_edit_label(edits), base.with_changes(edits)))
    for f in args.policy:
        v = policies.with_policy(base, f)
        variants.append((v.name, v))
    for f in args.others:
        other = _base(plain, f)
        if run_edits:
            other = other.with_changes(run_edits)
        variants.append((other.name, other))
    if not variants:
        raise ScenarioError(args.file, "compare", "has nothing to compare with: give "
                            "--policy FILE, --set PATH=VALUE, --variant 'PATH=V; ...' or "
                            "another FILE")
    _prepare_out(args)
    with worker_pool(args) as executor:
        comp = compare(base, variants, executor=executor,
                       progress=not (args.quiet or args.json),
                       different_books=args.different_books, engine=args.engine,
                       replications=args.replications)
    if args.json:
        print(json.dumps({"note": comp.note, "paired": comp.paired, "engine": comp.engine,
                          "rows": _clean(comp.rows)}, indent=2))
    else:
        print(format_comparison(comp, _measures(args, comp.engine)))
    if args.out:
        from simkit import plots, report

        with report.result_set(args.out) as tmp:
            written = _write_table(tmp, "compare", comp.rows)
            measure = "el" if comp.engine == "mc" else "net_loss"
            ax = plots.paired_bars(comp.rows, measure)
            ax.set_title(f"{comp.labels[0]}: paired difference in {measure} per variant "
                         "(±2 SE)" if comp.paired else "DIFFERENT BOOKS: unpaired differences")
            plots.save_figure(ax, tmp / "compare.png")
        if not args.json:
            print(f"wrote {args.out}/: {', '.join(written)}, compare.png")
    return 0


def _edit_label(edits: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in edits.items())


def _clean(rows: list[dict[str, Any]]) -> Any:
    from simkit import report

    return report.jsonable(rows)


def _sweep(args: argparse.Namespace) -> int:
    from simkit.experiments import design, parse_grid, parse_link, sweep_table

    base = _base(args)
    grids = [parse_grid(g) for g in args.grid]
    links = [parse_link(x) for x in args.link]
    if args.lhs is not None and args.zip:
        raise ScenarioError("--lhs", str(args.lhs), "cannot be combined with --zip")
    changes = design(grids, zipped=args.zip, lhs=args.lhs, seed=base.run.seed)
    for c in changes[:1]:  # fail on a bad path or value before any work
        from simkit.experiments import apply_links

        base.with_changes(apply_links(base, c, links))
    _prepare_out(args)
    with worker_pool(args) as executor:
        comp = sweep_table(base, changes, links=links, executor=executor,
                           progress=not (args.quiet or args.json), engine=args.engine,
                           replications=args.replications)
    paths = [g[0] for g in grids]
    if args.json:
        print(json.dumps({"note": comp.note, "rows": _clean(comp.rows)}, indent=2))
    else:
        print(_format_sweep(comp, paths, _measures(args, comp.engine), args.party))
    if args.out:
        from simkit import report

        with report.result_set(args.out) as tmp:
            written = _write_table(tmp, "sweep", comp.rows)
            figs = _sweep_figures(comp, paths, tmp, args.party)
        if not args.json:
            print(f"wrote {args.out}/: {', '.join(written + figs)}")
    return 0


def _format_sweep(comp: Any, paths: list[str], measures: list[str],
                  parties: list[str] | None) -> str:
    from simkit import report

    lines = [f"simkit sweep ({'Monte Carlo' if comp.engine == 'mc' else 'DES'}): base "
             f"{comp.labels[0]}, {len(comp.labels) - 1} variants, {comp.n_paths:,} "
             f"{'paths' if comp.engine == 'mc' else 'replications'} each", comp.note,
             "value ± SE; diff = variant - base ± paired SE (money in million yuan)", ""]
    table = []
    for r in comp.rows:
        m = r["measure"]
        if not (m in measures or any(m.startswith(f"{w}:") for w in measures)):
            continue
        if parties is not None and r["party"] not in parties and r["party"] != "-":
            continue
        if r["variant"] == comp.labels[0]:
            continue
        table.append([*(_short(r.get(p)) for p in paths), r["party"], m,
                      f"{_fmt(m, r['value'])} ± {_fmt(m, r['se'])}",
                      f"{_fmt(m, r['diff'])} ± {_fmt(m, r['diff_se'])}"])
    lines.append(report.format_table(table, [*paths, "party", "measure", "value ± SE",
                                             "diff ± SE"],
                                     align="<" * (len(paths) + 2) + ">>"))
    return "\n".join(lines)


def _short(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _sweep_figures(comp: Any, paths: list[str], out: Path,
                   parties: list[str] | None) -> list[str]:
    import matplotlib.pyplot as plt

    from simkit import plots

    measures = (["el", "es_99", "net_result"] if comp.engine == "mc"
                else ["credit_supplied", "firms_served", "net_loss"])
    written = []
    for path in paths:
        fig, axes = plt.subplots(1, len(measures), figsize=(5.2 * len(measures), 4.3))
        for ax, m in zip(axes, measures, strict=True):
            plots.sweep_lines(comp.rows, path, m, parties=parties, ax=ax)
            ax.set_title(m)
        fig.suptitle(f"{comp.labels[0]}: {', '.join(measures)} against {path} (±2 SE, "
                     "common random numbers)", fontsize="medium")
        name = "sweep_" + "".join(ch if ch.isalnum() else "_" for ch in path).strip("_") \
            + ".png"
        plots.save_figure(axes[0], out / name)
        written.append(name)
    return written


def _sensitivity(args: argparse.Namespace) -> int:
    from simkit.experiments import parse_range, sensitivity

    base = _base(args)
    ranges = [parse_range(x) for x in args.vary]
    for path, lo, hi in ranges:  # bad paths or values fail before any work
        base.with_changes({path: lo})
        base.with_changes({path: hi})
    _prepare_out(args)
    with worker_pool(args) as executor:
        rows = sensitivity(base, ranges, measure=args.measure, party=args.party,
                           executor=executor, progress=not (args.quiet or args.json))
    if args.json:
        print(json.dumps(_clean(rows), indent=2))
    else:
        from simkit import report

        m = args.measure
        print(f"simkit sensitivity {base.name}: {m}, one at a time, paired differences to "
              "the base ± SE (money in million yuan)")
        print(report.format_table(
            [[r["path"], r["party"], f"{r['low']:g}", f"{r['high']:g}", _fmt(m, r["base"]),
              f"{_fmt(m, r['diff_low'])} ± {_fmt(m, r['diff_low_se'])}",
              f"{_fmt(m, r['diff_high'])} ± {_fmt(m, r['diff_high_se'])}"] for r in rows],
            ["path", "party", "low", "high", "base", "diff at low", "diff at high"],
            align="<<>>>>>"))
    if args.out:
        from simkit import plots, report

        with report.result_set(args.out) as tmp:
            report.write_csv(tmp / "sensitivity.csv", rows)
            party = args.party or rows[0]["party"]
            ax = plots.tornado([r for r in rows if r["party"] == party])
            plots.save_figure(ax, tmp / "tornado.png")
        if not args.json:
            print(f"wrote {args.out}/: sensitivity.csv, tornado.png")
    return 0


def _solve(args: argparse.Namespace) -> int:
    from simkit.experiments import parse_link, parse_target, solve_all

    base = _base(args)
    for t in args.target:
        parse_target(t)
    links = [parse_link(x) for x in args.link]
    bracket = None
    if args.bracket is not None:
        parts = args.bracket.split(":")
        try:
            bracket = (float(parts[0]), float(parts[1]))
            if len(parts) != 2:
                raise ValueError
        except (ValueError, IndexError):
            raise ScenarioError("--bracket", repr(args.bracket), "must be LO:HI with two "
                                "numbers") from None
    from simkit.experiments import apply_links

    first = {args.vary: bracket[0] if bracket else 0.0}
    base.with_changes(apply_links(base, first, links))  # a bad path fails now
    _prepare_out(args)
    with worker_pool(args) as executor:
        sols = solve_all(base, args.target, args.vary, bracket=bracket, links=links,
                         executor=executor, progress=not (args.quiet or args.json),
                         engine=args.engine, replications=args.replications)
    payload = [s.as_dict() for s in sols]
    if args.json:
        print(json.dumps(_clean(payload), indent=2))
    else:
        size = (f"{base.run.n_paths:,} paths" if args.engine == "mc"
                else f"DES, {args.replications} replications")
        print(f"simkit solve {base.name}: {args.vary}, {size}, common random numbers; "
              "interval = root ± 2 SE / |slope|")
        for s in sols:
            print(f"  {s.target}: {s.value:.6g}  [{s.low:.6g}, {s.high:.6g}]  "
                  f"(SE of the objective {s.objective_se:.4g}, slope {s.slope:.4g})")
    if args.out:
        from simkit import report

        with report.result_set(args.out) as tmp:
            report.write_json(tmp / "solve.json", payload)
        if not args.json:
            print(f"wrote {args.out}/solve.json")
    return 0
