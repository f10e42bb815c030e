"""Command line: ``simkit validate / run / des`` (plus ``compare / sweep / sensitivity /
solve`` from :mod:`simkit.cli_policy` and ``report / calibrate / scenarios`` from
:mod:`simkit.cli_tools`).

Every user error (bad scenario, bad tape, bad option) prints one line naming the file,
the field and what is allowed, and exits with status 2; no traceback.

Exit status: 0 success; 1 a worker process died (killed, or out of memory); 2 invalid
input or an unusable ``--out``; 130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM. An
interrupt takes effect at the next safe point (between simulation blocks, DES months or
replications), prints one line and leaves every ``--out`` folder as it was, or complete
when the interrupt came after its result set had been swapped in.

The top of this module imports the standard library only: NumPy, SciPy and the rest are
imported by :func:`main` after it has deferred SIGINT and SIGTERM, so an interrupt during
start-up ends cleanly too.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simkit.scenario import Scenario, ScenarioError, load
else:  # bound by _import_scenario_layer() once signals are deferred (see the docstring)
    Scenario = ScenarioError = load = None

#: ``main`` and the argument helpers the command modules (``cli_policy``, ``cli_tools``)
#: share: argparse types (``positive_int``, ``int_at_least``, ``seed_arg``,
#: ``out_dir_arg``), the scenario loader with the common overrides (``load_with``), the
#: ``--workers`` pool (``worker_pool``) and the ``--out`` check (``check_out``).
__all__ = ["check_out", "int_at_least", "load_with", "main", "out_dir_arg", "positive_int",
           "seed_arg", "worker_pool"]

EXIT_INVALID = 2
EXIT_WORKER_DIED = 1


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (``_`` separators allowed), or a clear error."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low`` (seeds, counts), or a clear error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value

    return parse


#: An argparse type for ``--seed``: an integer >= 0.
seed_arg = int_at_least(0)


def _discount_rate(text: str) -> float:
    """``--discount-rate``: a per-year rate in [-0.5, 1] (e.g. 0.025)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not -0.5 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a rate per year in [-0.5, 1] (e.g. 0.025), "
                                         f"got {text!r}")
    return value


def _levels(text: str) -> tuple[float, ...]:
    """``--levels``: comma-separated confidence levels, each in (0, 1), at most 6; returned
    sorted and without repeats (e.g. ``0.95,0.99,0.999``)."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or not all(0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"must be comma-separated levels in (0, 1), e.g. "
                                         f"0.95,0.99,0.999, got {text!r}")
    levels = tuple(sorted(set(values)))
    if len(levels) > 6:
        raise argparse.ArgumentTypeError(f"at most 6 levels, got {len(levels)} in {text!r}")
    return levels


def out_dir_arg(text: str) -> Path:
    """An argparse type for ``--out``: a non-blank folder name."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name a folder, got {text!r}")
    return Path(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simkit",
        description="Simulate credit risk-sharing between banks and government guarantee "
                    "institutions.",
    )
    from simkit import __version__

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
                                   "ES (at --levels, default 99 %, 99.9 %) with Monte "
                                   "Carlo standard errors.")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--paths", type=positive_int, help="number of scenarios (default: file)")
    r.add_argument("--seed", type=seed_arg, help="root seed (default: file)")
    r.add_argument("--block-size", type=positive_int, help="scenarios per block")
    r.add_argument("--workers", type=positive_int, default=1,
                   help="processes (default 1: in-process)")
    r.add_argument("--out", type=out_dir_arg, metavar="DIR",
                   help="write summary.json, parties.csv and figures to DIR (atomically)")
    r.add_argument("--json", action="store_true", help="print the JSON summary to stdout")
    r.add_argument("--save-paths", action="store_true",
                   help="also write each path's losses and weight to DIR/paths.parquet "
                        "(needs --out and pyarrow)")
    r.add_argument("--analytic", action="store_true",
                   help="closed-form expected loss / fees / net result only (no simulation; "
                        "an approximation when the scenario has caps)")
    r.add_argument("--levels", type=_levels, metavar="A,B,..", default=(0.99, 0.999),
                   help="confidence levels of VaR and ES, each in (0, 1), at most 6 "
                        "(default 0.99,0.999)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--strict", action="store_true",
                   help="treat policy-rule warnings (DOMAIN.md rules) as errors")

    r.add_argument("--discount-rate", type=_discount_rate, metavar="R",
                   help="discount rate per year of the fiscal present value (default 0.025)")

    from simkit import cli_policy, cli_tools

    cli_policy.add_set(r)
    cli_policy.register(sub)  # compare, sweep, sensitivity, solve

    d = sub.add_parser("des", help="discrete-event model: credit supply, claims, capital",
                       description="Run the SimPy model of applications, decisions, loans, "
                                   "defaults, claims up the chain, recoveries and capital.")
    d.add_argument("file", metavar="FILE")
    d.add_argument("--years", type=float, help="horizon in years (default: file)")
    d.add_argument("--replications", type=positive_int, default=1)
    d.add_argument("--seed", type=seed_arg)
    d.add_argument("--workers", type=positive_int, default=1)
    d.add_argument("--out", type=out_dir_arg, metavar="DIR",
                   help="write summary, series, figures (atomically)")
    d.add_argument("--json", action="store_true", help="print the JSON summary to stdout")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    cli_policy.add_set(d)

    cli_tools.add_parsers(sub)  # report, calibrate, scenarios
    _add_uncertainty(sub)
    return p


def _add_uncertainty(sub: Any) -> None:
    """``simkit uncertainty``: parameter uncertainty (:mod:`simkit.uncertainty`)."""
    up = sub.add_parser(
        "uncertainty", help="parameter uncertainty: second-order Monte Carlo",
        description="Draw the scenario's uncertain parameters ([[uncertainty.parameters]] "
                    "or `uncertain = true`) --draws times, run the Monte Carlo of each "
                    "draw on common paths, and show every party's EL, VaR and ES of the "
                    "mixture, the band of the per-draw values and the share of the loss "
                    "variance and of the tail due to the parameters.")
    up.add_argument("file", metavar="FILE")
    up.add_argument("--draws", type=int_at_least(2), required=True, metavar="N",
                    help="outer parameter draws (>= 2)")
    up.add_argument("--paths", type=positive_int, metavar="M",
                    help="inner paths per draw (default: file)")
    up.add_argument("--seed", type=seed_arg, help="root seed of draws and paths (default: file)")
    up.add_argument("--levels", type=_levels, metavar="A,B,..", default=(0.99, 0.999),
                    help="confidence levels of VaR and ES (default 0.99,0.999)")
    up.add_argument("--independent-paths", action="store_true",
                    help="new paths for every draw instead of common random numbers")
    up.add_argument("--workers", type=positive_int, default=1,
                    help="processes for each inner run (default 1)")
    up.add_argument("--out", type=out_dir_arg, metavar="DIR",
                    help="write uncertainty.json, uncertainty.csv, draws.csv and "
                         "uncertainty.png to DIR (atomically)")
    up.add_argument("--json", action="store_true", help="print the JSON summary to stdout")
    up.add_argument("--quiet", action="store_true", help="no progress bar")
    from simkit import cli_policy

    cli_policy.add_set(up)


def _uncertainty(args: argparse.Namespace) -> int:
    from simkit import report
    from simkit.uncertainty import run_uncertainty

    scenario = load_with(args)  # --paths, --seed and --set edit the file's run
    check_out(args.out)
    with worker_pool(args.workers) as executor:
        result = run_uncertainty(scenario, args.draws, levels=args.levels,
                                 common_random_numbers=not args.independent_paths,
                                 executor=executor, progress=not (args.quiet or args.json))
    if args.json:
        print(json.dumps(report.jsonable(result.summary()), indent=2))
    else:
        print(result.format_text())
    if args.out is not None:
        files = result.save(args.out)
        if not args.json:
            print(f"wrote {args.out}/: " + ", ".join(f.name for f in files), file=sys.stderr)
    return 0


def _import_scenario_layer() -> None:
    """Bind ``Scenario``, ``ScenarioError`` and ``load`` (imports NumPy and SciPy)."""
    global Scenario, ScenarioError, load
    from simkit.scenario import Scenario, ScenarioError, load


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
    """Print a warning raised during a command as one ``warning: ...`` line on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simkit`` command; returns the exit status.

    SIGINT and SIGTERM are deferred for the whole command (:mod:`simkit._interrupt`) and
    end it at the next safe point with one line on stderr and status 130 / 143. Called
    without ``argv`` (as the console command) the deferring handlers stay installed until
    the process exits, so a late signal never prints a traceback either; with ``argv``
    (from Python) the previous handlers are restored on return.
    """
    from simkit import _interrupt

    _interrupt.clear()
    with _interrupt.deferred(restore=argv is not None), warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        from simkit import report

        committed = len(report.COMMITTED)
        args: argparse.Namespace | None = None
        try:
            _interrupt.check()
            _import_scenario_layer()
            args = _parser().parse_args(argv)
            status = _dispatch(args)
            _interrupt.check()
            return status
        except KeyboardInterrupt as exc:  # _interrupt.Interrupted, or not deferred
            signum = getattr(exc, "signum", signal.SIGINT)
            written = report.COMMITTED[committed:]
            if written:
                what = "after writing " + ", ".join(f"{p}/" for p in written) + " completely"
            else:
                what = "nothing was written"
                outs = getattr(args, "out", None)
                if outs:
                    what += f" ({outs} left as it was)"
            print(f"interrupted by {signal.Signals(signum).name}; {what}", file=sys.stderr)
            return _interrupt.exit_status(signum)
        finally:
            _interrupt.clear()


def _dispatch(args: argparse.Namespace) -> int:
    """Run one command; user errors become one line and status 2."""
    from concurrent.futures.process import BrokenProcessPool

    from simkit.report import OutError

    try:
        if args.command == "validate":
            return _validate(args.files, strict=args.strict)
        if args.command == "run":
            return _run(args)
        if args.command == "des":
            return _des(args)
        if args.command == "uncertainty":
            return _uncertainty(args)
        from simkit import cli_policy, cli_tools

        if args.command in cli_policy.COMMANDS:
            return cli_policy.handle(args)
        if args.command in cli_tools.COMMANDS:
            return cli_tools.run(args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OutError as exc:
        print(f"error: {exc.path}: --out {exc.reason}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenProcessPool:
        print("error: a worker process died (killed by a signal, or out of memory); "
              "nothing was written", file=sys.stderr)
        return EXIT_WORKER_DIED
    except BrokenPipeError:  # e.g. `simkit run ... | head`
        sys.stderr.close()
        return 0
    except OSError as exc:
        print(f"error: cannot write {exc.filename or ''}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_INVALID
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


def load_with(args: argparse.Namespace) -> Scenario:
    """Load ``args.file`` (a path or a catalog name) with the command line's overrides
    (``--paths``, ``--seed``, ``--block-size``, ``--years``, ``--set``) and the policy
    check (``--strict``)."""
    from simkit import catalog

    s = load(catalog.resolve(args.file))
    changes: dict[str, Any] = {}
    if getattr(args, "paths", None):
        changes["run.n_paths"] = args.paths
    if getattr(args, "seed", None) is not None:
        changes["run.seed"] = args.seed
    if getattr(args, "block_size", None):
        changes["run.block_size"] = args.block_size
    if getattr(args, "years", None) is not None:
        changes["des.years"] = args.years
    if getattr(args, "set", None):
        from simkit.experiments import parse_set

        changes.update(parse_set(args.set))
    s = s.with_changes(changes) if changes else s
    _policy_check(s, getattr(args, "strict", False))
    return s


@contextmanager
def worker_pool(workers: int) -> Iterator[Any]:
    """A process pool for ``--workers`` > 1 (None otherwise), stopped on the way out.

    Workers ignore SIGINT (Ctrl-C reaches the whole process group; this process handles
    it) and die on SIGTERM. On an interrupt or error the workers are terminated at once
    instead of finishing their current tasks.
    """
    if workers <= 1:
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor

    from simkit import _interrupt

    pool = ProcessPoolExecutor(max_workers=workers, initializer=_interrupt.ignore_in_worker)
    try:
        yield pool
    except BaseException:
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
        raise
    else:
        pool.shutdown()


def check_out(out: Path | None) -> None:
    """Make sure ``--out`` can receive a result set before any work starts (creates
    nothing; :func:`simkit.report.check_out_dir`)."""
    if out is not None:
        from simkit.report import check_out_dir

        check_out_dir(out)


#: Printed (and in the JSON) when ``run --analytic`` meets a scenario with caps.
ANALYTIC_CAP_NOTE = ("the scenario has portfolio caps; the closed form treats each capped "
                     "pool as one large homogeneous portfolio (Vasicek), so expected losses "
                     "of capped layers and their overflow are approximate; run the Monte "
                     "Carlo for exact figures")


def _run(args: argparse.Namespace) -> int:
    from simkit import _interrupt, report

    scenario = load_with(args)
    check_out(args.out)
    if args.save_paths:  # refused before any work
        _check_save_paths(args, scenario)
    if args.analytic:
        from simkit.estimate import expected_results

        est = expected_results(scenario)
        capped = any(layer.cap is not None for a in scenario.agreements for layer in a.layers)
        notes = [ANALYTIC_CAP_NOTE] * capped + list(est.notes)
        payload = {"scenario": scenario.name, "source": scenario.source, "method": "closed-form",
                   "unit": "yuan per year", "n_loans": est.n_loans,
                   "guaranteed": est.guaranteed, "approximation": bool(notes),
                   "parties": {r["party"]: r for r in est.rows()}}
        if notes:
            payload["note"] = "; ".join(notes)
        if args.json:
            print(json.dumps(report.jsonable(payload), indent=2))
        else:
            from simkit.results import NET_RESULT_NOTE
            from simkit.results import UNIT_LABEL as u

            print(f"simkit {scenario.name}: closed-form estimate, {est.n_loans:,} loans, "
                  f"{report.fmt_money(est.guaranteed, digits=1)} {u} guaranteed "
                  f"(amounts in {u} per year)")
            for note in notes:
                print(f"approximation: {note}")
            print(NET_RESULT_NOTE)
            rows = [(r["party"], report.fmt_money(r["el"]),
                     report.fmt_money(r["fee_income"]), report.fmt_money(r["net_result"]))
                    for r in est.rows()]
            print(report.format_table(rows, ["party", f"expected loss ({u})",
                                             f"fee income ({u})", f"net result ({u})"]))
        if args.out:
            with report.result_set(args.out) as tmp:
                report.write_json(tmp / "summary.json", payload)
                report.write_csv(tmp / "parties.csv",
                                 report.closed_form_rows(scenario.name, est))
        return 0

    from simkit.experiments import run_summary

    t0 = time.perf_counter()
    with worker_pool(args.workers) as executor:
        result = run_summary(scenario, executor=executor,
                             progress=not (args.quiet or args.json))
    if args.discount_rate is not None:  # before the summary is built
        result.discount_rate = args.discount_rate
    result.levels = tuple(args.levels)  # before the summary is built
    _interrupt.check()
    wall = time.perf_counter() - t0
    summary = result.summary
    summary["wall_seconds"] = wall
    _interrupt.check()
    if args.json:
        print(json.dumps(report.jsonable(summary), indent=2))
    else:
        print(result.format_text(wall))
    if args.out:
        files = result.save(args.out, paths=args.save_paths)
        if not args.json:
            print(f"wrote {args.out}/: " + ", ".join(f.name for f in files))
    return 0


def _check_save_paths(args: argparse.Namespace, scenario: Scenario) -> None:
    """``--save-paths`` needs ``--out``, a simulation, pyarrow and party names that are
    not the fixed columns of ``paths.parquet``."""
    from simkit.montecarlo import LossResult
    from simkit.report import require_pyarrow

    why = ("needs --out DIR" if args.out is None else
           "has no paths to save with --analytic" if args.analytic else None)
    if why is None:
        try:
            require_pyarrow()
        except ImportError as exc:
            why = str(exc)
    clash = [p for p in scenario.party_names if p in LossResult.PATH_COLUMNS]
    if why is None and clash:
        why = (f"cannot name a column after party {clash[0]!r} (path, weight and total "
               "are the fixed columns of paths.parquet)")
    if why is not None:
        raise ScenarioError("--save-paths", "", why)


def _des(args: argparse.Namespace) -> int:
    scenario = load_with(args)
    check_out(args.out)
    from simkit.experiments import run_des_summary

    with worker_pool(args.workers) as executor:
        out = run_des_summary(scenario, replications=args.replications, seed=args.seed,
                              executor=executor, progress=not (args.quiet or args.json),
                              out=args.out)
    if args.json:
        from simkit import report

        print(json.dumps(report.jsonable(out["summary"]), indent=2))
    else:
        print(out["text"])
    return 0


if __name__ == "__main__":  # pragma: no cover
    # `python -m simkit.cli`: run the canonical module, not this `__main__` copy, so the
    # helpers other modules import from simkit.cli share its state
    from simkit.cli import main as _main

    sys.exit(_main())
