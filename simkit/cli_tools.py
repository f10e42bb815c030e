"""Command-line tools around the engines: ``simkit report``, ``calibrate``, ``scenarios``,
``uncertainty``.

:func:`add_parsers` registers the sub-commands on the main parser and :func:`run` executes
one; errors are :class:`~simkit.scenario.ScenarioError` like everywhere else, so the main
entry point prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS", "add_parsers", "run"]

COMMANDS = ("report", "calibrate", "scenarios", "uncertainty")


def add_parsers(sub: Any) -> None:
    """Add the ``report``, ``calibrate``, ``scenarios`` and ``uncertainty`` sub-commands."""
    rp = sub.add_parser(
        "report", help="one-page HTML report of a result folder",
        description="Build a self-contained one-page HTML report (figures inline, no "
                    "network needed) from a folder written by `simkit run --out`, `des "
                    "--out`, `compare --out` or `sweep --out`.")
    rp.add_argument("dir", metavar="DIR", type=Path)
    rp.add_argument("--output", "-o", type=Path, metavar="FILE",
                    help="where to write the page (default DIR/report.html)")

    cp = sub.add_parser(
        "calibrate", help="fit default level and correlation to observed default rates",
        description="Fit the Vasicek default-rate distribution (maximum likelihood and "
                    "method of moments) to a series of annual default or compensation "
                    "rates, map the fit onto the scenario's segments and loadings, and "
                    "show how far every party's EL and ES 99.9% move across the fit's "
                    "interval.")
    cp.add_argument("file", metavar="FILE")
    cp.add_argument("--rates", required=True,
                    help="annual rates, comma-separated, e.g. 3.69%%,3.98%%,3.42%%,2.69%%")
    cp.add_argument("--method", choices=("mle", "moments"), default="mle",
                    help="the fit that defines the calibrated scenario (default mle)")
    cp.add_argument("--confidence", type=float, default=0.95)
    cp.add_argument("--paths", type=int, default=4000,
                    help="paths per case for the effect on each party (0: skip)")
    cp.add_argument("--seed", type=int, default=None)
    cp.add_argument("--json", action="store_true", help="print the result as JSON")
    from simkit.cli import _out_dir

    cp.add_argument("--out", type=_out_dir, metavar="DIR",
                    help="write calibration.json and effect.csv to DIR")

    sp = sub.add_parser("scenarios", help="list the shipped scenarios",
                        description="List the scenarios that ship with simkit; run one by "
                                    "name, e.g. `simkit run anhui_4321`.")
    sp.add_argument("--paths", action="store_true", help="print the file paths too")
    _add_uncertainty(sub)


def _add_uncertainty(sub: Any) -> None:
    from simkit import cli_policy
    from simkit.cli import _int_at_least, _levels, _out_dir, _positive_int, _seed

    up = sub.add_parser(
        "uncertainty", help="parameter uncertainty: second-order Monte Carlo",
        description="Draw the scenario's uncertain parameters ([[uncertainty.parameters]] "
                    "or `uncertain = true`) --draws times, run the Monte Carlo of each "
                    "draw on common paths, and show every party's EL, VaR and ES of the "
                    "mixture, the band of the per-draw values and the share of the loss "
                    "variance and of the tail due to the parameters.")
    up.add_argument("file", metavar="FILE")
    up.add_argument("--draws", type=_int_at_least(2), required=True, metavar="N",
                    help="outer parameter draws (>= 2)")
    up.add_argument("--paths", type=_positive_int, metavar="M",
                    help="inner paths per draw (default: file)")
    up.add_argument("--seed", type=_seed, help="root seed of draws and paths (default: file)")
    up.add_argument("--levels", type=_levels, metavar="A,B,..", default=(0.99, 0.999),
                    help="confidence levels of VaR and ES (default 0.99,0.999)")
    up.add_argument("--independent-paths", action="store_true",
                    help="new paths for every draw instead of common random numbers")
    up.add_argument("--workers", type=_positive_int, default=1,
                    help="processes for each inner run (default 1)")
    up.add_argument("--out", type=_out_dir, metavar="DIR",
                    help="write uncertainty.json, uncertainty.csv, draws.csv and "
                         "uncertainty.png to DIR (atomically)")
    up.add_argument("--json", action="store_true", help="print the JSON summary to stdout")
    up.add_argument("--quiet", action="store_true", help="no progress bar")
    cli_policy.add_set(up)


def run(args: argparse.Namespace) -> int:
    """Execute one of :data:`COMMANDS`; returns the exit status."""
    if args.command == "report":
        from simkit.webreport import write_report

        path = write_report(args.dir, args.output)
        print(f"wrote {path}")
        return 0
    if args.command == "scenarios":
        from simkit import catalog

        for name, path in catalog.shipped().items():
            line = f"{name:28s} {catalog.describe(path)}"
            print(line + (f"\n{'':28s} {path}" if args.paths else ""))
        return 0
    if args.command == "uncertainty":
        return _uncertainty(args)
    return _calibrate(args)


def _uncertainty(args: argparse.Namespace) -> int:
    from simkit import report
    from simkit.cli import _check_out, _executor, _load_with
    from simkit.uncertainty import run_uncertainty

    scenario = _load_with(args)  # --paths, --seed and --set edit the file's run
    _check_out(args.out)
    with _executor(args.workers) as executor:
        result = run_uncertainty(scenario, args.draws, levels=args.levels,
                                 common_random_numbers=not args.independent_paths,
                                 executor=executor, progress=not (args.quiet or args.json))
    if args.json:
        print(json.dumps(report._jsonable(result.summary()), indent=2))
    else:
        print(result.format_text())
    if args.out is not None:
        files = result.save(args.out)
        if not args.json:
            print(f"wrote {args.out}/: " + ", ".join(f.name for f in files), file=sys.stderr)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from simkit import catalog, report
    from simkit.calibrate import calibrate, parse_rates
    from simkit.scenario import ScenarioError, load

    rates = parse_rates(args.rates)
    if not 0.5 <= args.confidence < 1:
        raise ScenarioError("--confidence", "", f"must be in [0.5, 1), got {args.confidence}")
    if args.paths < 0:
        raise ScenarioError("--paths", "", f"must be >= 0, got {args.paths}")
    scenario = load(catalog.resolve(args.file))
    if args.out is not None:
        report.check_out_dir(args.out)
    try:
        cal = calibrate(scenario, rates, method=args.method, confidence=args.confidence,
                        n_paths=args.paths, seed=args.seed)
    except ValueError as exc:
        if isinstance(exc, ScenarioError):
            raise
        raise ScenarioError("--rates", "", str(exc)) from None
    if args.json:
        print(json.dumps(report._jsonable(cal.summary()), indent=2))
    else:
        print(cal.format_text())
    if args.out is not None:
        with report.result_set(args.out) as tmp:
            report.write_json(tmp / "calibration.json", cal.summary())
            if cal.effect:
                report.write_csv(tmp / "effect.csv", cal.effect)
        if not args.json:
            print(f"wrote {args.out}/: calibration.json" + (", effect.csv" if cal.effect
                                                           else ""), file=sys.stderr)
    return 0
