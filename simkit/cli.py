"""Command line: ``simkit validate / run / des``.

Every user error (bad scenario, bad tape, bad option) prints one line naming the file,
the field and what is allowed, and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simkit import __version__
from simkit.scenario import Scenario, ScenarioError, load

__all__ = ["main"]

EXIT_INVALID = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simkit",
        description="Simulate credit risk-sharing between banks and government guarantee "
                    "institutions.",
    )
    p.add_argument("--version", action="version", version=f"simkit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check scenario files; exit 0 when all are valid",
                       description="Check scenario TOML files (and their loan tapes) without "
                                   "running anything. Exits 0 when all are valid, 2 otherwise.")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--strict", action="store_true",
                   help="treat policy-rule warnings (DOMAIN.md rules) as errors")

    r = sub.add_parser("run", help="Monte Carlo loss distribution of every party",
                       description="Simulate correlated defaults, apply the risk-share "
                                   "waterfall and print each party's expected loss, VaR and "
                                   "ES (99 %%, 99.9 %%) with Monte Carlo standard errors.")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--paths", type=_positive_int, help="number of scenarios (default: file)")
    r.add_argument("--seed", type=_seed, help="root seed (default: file)")
    r.add_argument("--block-size", type=_positive_int, help="scenarios per block")
    r.add_argument("--workers", type=_positive_int, default=1,
                   help="processes (default 1: in-process)")
    r.add_argument("--out", type=Path, metavar="DIR",
                   help="write summary.json, parties.csv and figures to DIR (atomically)")
    r.add_argument("--json", action="store_true", help="print the JSON summary to stdout")
    r.add_argument("--analytic", action="store_true",
                   help="closed-form expected loss / fees / net result only (no simulation)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--strict", action="store_true",
                   help="treat policy-rule warnings (DOMAIN.md rules) as errors")

    c = sub.add_parser("compare", help="compare several scenarios party by party",
                       description="Run the Monte Carlo on several scenarios (e.g. different "
                                   "risk-share ratios) and print each party's expected loss, "
                                   "ES 99.9 %%, fee income and net result side by side.")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--paths", type=_positive_int, help="scenarios per file (default: file)")
    c.add_argument("--seed", type=_seed, help="root seed for every file (default: file)")
    c.add_argument("--workers", type=_positive_int, default=1)
    c.add_argument("--out", type=Path, metavar="DIR", help="write compare.csv and compare.png")
    c.add_argument("--json", action="store_true", help="print the rows as JSON")
    c.add_argument("--quiet", action="store_true", help="no progress bar")

    d = sub.add_parser("des", help="discrete-event model: credit supply, claims, capital",
                       description="Run the SimPy model of applications, decisions, loans, "
                                   "defaults, claims up the chain, recoveries and capital.")
    d.add_argument("file", metavar="FILE")
    d.add_argument("--years", type=float, help="horizon in years (default: file)")
    d.add_argument("--replications", type=_positive_int, default=1)
    d.add_argument("--seed", type=_seed)
    d.add_argument("--workers", type=_positive_int, default=1)
    d.add_argument("--out", type=Path, metavar="DIR", help="write summary, series, figures")
    d.add_argument("--json", action="store_true", help="print the JSON summary to stdout")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simkit`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.files, strict=args.strict)
        if args.command == "run":
            return _run(args)
        if args.command == "des":
            return _des(args)
        if args.command == "compare":
            return _compare(args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:  # e.g. `simkit run ... | head`
        sys.stderr.close()
        return 0
    except OSError as exc:
        print(f"error: cannot write {exc.filename or ''}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:  # pragma: no cover - interactive
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    return 1  # pragma: no cover - argparse enforces a command


def _validate(files: Sequence[str], strict: bool = False) -> int:
    """Check every file (one failing file does not stop the others); 2 if any failed."""
    from simkit.policy_rules import policy_warnings

    bad = 0
    for f in files:
        try:
            s = load(f)
            if s.tape is not None:
                from simkit.book import read_tape

                n = len(read_tape(s.tape, s))
            else:
                n = sum(seg.count for seg in s.segments)
            warnings = policy_warnings(s) + _memory_warnings(s)
        except ScenarioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            bad += 1
            continue
        except (KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as exc:
            print(f"error: {f}: internal error while validating ({type(exc).__name__}: "
                  f"{str(exc)[:200]}); please report it", file=sys.stderr)
            bad += 1
            continue
        for w in warnings:
            print(f"{'error' if strict else 'warning'}: {f}: {w}", file=sys.stderr)
        if strict and warnings:
            bad += 1
            continue
        print(f"ok: {f} ({s.name}: {len(s.parties)} parties, {len(s.agreements)} "
              f"agreement(s), {n:,} loans)" + (f", {len(warnings)} policy warning(s)"
                                               if warnings else ""))
    return EXIT_INVALID if bad else 0


def _memory_warnings(s: Scenario) -> list[str]:
    """Runs this machine could not hold (machine-dependent, so a warning in validate)."""
    from simkit.resources import check_memory

    out = []
    for engine in ("montecarlo", "des") if s.segments else ("montecarlo",):
        try:
            check_memory(s, engine)
        except ScenarioError as exc:
            out.append(str(exc).removeprefix(f"{s.source}: "))
    return out


def _policy_check(s: Scenario, strict: bool) -> None:
    """Print policy-rule warnings on stderr; under ``--strict`` raise the first."""
    from simkit.policy_rules import policy_warnings

    warnings = policy_warnings(s)
    if strict and warnings:
        more = f"; {len(warnings) - 1} more" if len(warnings) > 1 else ""
        raise ScenarioError(s.source, "", f"{warnings[0]} (--strict{more})")
    for w in warnings:
        print(f"warning: {s.source}: {w}", file=sys.stderr)


def _load_with(args: argparse.Namespace) -> Scenario:
    s = load(args.file)
    changes: dict[str, Any] = {}
    if getattr(args, "paths", None):
        changes["run.n_paths"] = args.paths
    if getattr(args, "seed", None) is not None:
        changes["run.seed"] = args.seed
    if getattr(args, "block_size", None):
        changes["run.block_size"] = args.block_size
    if getattr(args, "years", None) is not None:
        changes["des.years"] = args.years
    s = s.with_changes(changes) if changes else s
    _policy_check(s, getattr(args, "strict", False))
    return s


def _executor(workers: int):
    if workers <= 1:
        return None
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers)


def _check_out(out: Path | None) -> None:
    """Make sure ``--out`` is a writable folder before any work starts."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise ScenarioError(str(out), "--out", "exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError(str(out), "--out", f"cannot be created: {exc.strerror or exc}"
                            ) from None


def _run(args: argparse.Namespace) -> int:
    from simkit import report

    scenario = _load_with(args)
    _check_out(args.out)
    if args.analytic:
        from simkit.estimate import expected_results

        est = expected_results(scenario)
        payload = {"scenario": scenario.name, "source": scenario.source, "method": "closed-form",
                   "n_loans": est.n_loans, "guaranteed": est.guaranteed,
                   "parties": {r["party"]: r for r in est.rows()}}
        if args.json:
            print(json.dumps(payload, indent=2))
        else:
            print(f"simkit {scenario.name}: closed-form estimate, {est.n_loans:,} loans, "
                  f"{est.guaranteed / 1e8:,.2f} 亿 yuan guaranteed (amounts in million yuan/yr)")
            rows = [(r["party"], report.fmt_money(r["expected_loss"]),
                     report.fmt_money(r["fee_income"]), report.fmt_money(r["net_result"]))
                    for r in est.rows()]
            print(report.format_table(rows, ["party", "expected loss", "fee income",
                                             "net result"]))
        if args.out:
            report.write_json(args.out / "summary.json", payload)
            report.write_csv(args.out / "parties.csv", est.rows())
        return 0

    from simkit.experiments import run_summary

    t0 = time.perf_counter()
    executor = _executor(args.workers)
    try:
        result = run_summary(scenario, executor=executor,
                             progress=not (args.quiet or args.json))
    finally:
        if executor is not None:
            executor.shutdown()
    wall = time.perf_counter() - t0
    summary = result.summary
    summary["wall_seconds"] = wall
    if args.json:
        print(json.dumps(report._jsonable(summary), indent=2))
    else:
        print(result.format_text(wall))
    if args.out:
        result.save(args.out)
        if not args.json:
            print(f"wrote {args.out}/: summary.json, parties.csv, loss_distribution.png, "
                  "parties.png")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from simkit import report
    from simkit.experiments import compare

    scenarios = []
    for f in args.files:  # validate every file before any work
        args.file = f
        scenarios.append(_load_with(args))
    _check_out(args.out)
    executor = _executor(args.workers)
    try:
        rows = compare(scenarios, executor=executor, progress=not (args.quiet or args.json))
    finally:
        if executor is not None:
            executor.shutdown()
    if args.json:
        print(json.dumps(report._jsonable(rows), indent=2))
    else:
        table = [(r["scenario"], r["party"], report.fmt_money(r["el"]),
                  report.fmt_money(r["es_99.9"]), report.fmt_money(r["fee_income"]),
                  report.fmt_money(r["net_result"]),
                  "-" if r["el_pct_guaranteed"] is None else f"{r['el_pct_guaranteed']:.3f}")
                 for r in rows]
        print("amounts in million yuan per year")
        print(report.format_table(table, ["scenario", "party", "expected loss", "ES 99.9%",
                                          "fee income", "net result", "EL % guaranteed"],
                                  align="<<>>>>>"))
    if args.out:
        report.write_csv(args.out / "compare.csv", rows)
        from simkit import plots

        ax = plots.compare_bars(rows)
        plots.save_figure(ax, args.out / "compare.png")
    return 0


def _des(args: argparse.Namespace) -> int:
    scenario = _load_with(args)
    _check_out(args.out)
    from simkit.experiments import run_des_summary

    executor = _executor(args.workers)
    try:
        out = run_des_summary(scenario, replications=args.replications, seed=args.seed,
                              executor=executor, progress=not (args.quiet or args.json),
                              out=args.out)
    finally:
        if executor is not None:
            executor.shutdown()
    if args.json:
        from simkit import report

        print(json.dumps(report._jsonable(out["summary"]), indent=2))
    else:
        print(out["text"])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
