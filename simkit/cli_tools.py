"""Command-line tools around the engines: ``simkit report``, ``calibrate``, ``scenarios``.

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

COMMANDS = ("report", "calibrate", "scenarios")


def add_parsers(sub: Any) -> None:
    """Add the ``report``, ``calibrate`` and ``scenarios`` sub-commands."""
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
    from simkit.cli import out_dir_arg

    cp.add_argument("--out", type=out_dir_arg, metavar="DIR",
                    help="write calibration.json and effect.csv to DIR")

    sp = sub.add_parser("scenarios", help="list the shipped scenarios",
                        description="List the scenarios that ship with simkit; run one by "
                                    "name, e.g. `simkit run anhui_4321`.")
    sp.add_argument("--paths", action="store_true", help="print the file paths too")


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
    return _calibrate(args)


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
        print(json.dumps(report.jsonable(cal.summary()), indent=2))
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
