"""The national book (``scenarios/nfgf_national_2024.toml``) in both engines (issue 11).

Monte Carlo: a pilot run gives every party's relative standard error of its 99.9 % VaR
and ES; the paths needed for the worst of them to reach ``--target`` (1 %) follow from
``SE ~ 1 / sqrt(paths)`` (capped by ``--max-paths``, default 8,000 at full size), and
that run is timed end to end (book, bands, importance-sampling mixture, blocks, on
``--workers`` processes) and reports the SE it reached, its wall time and measures time,
the traced (``tracemalloc``) peak of the pilot and this process's peak resident set size
(workers are separate processes). DES: one replication of the national book (1.05
million applications a year, ``des.years`` years, run-off) and one of
``scenarios/anhui_4321.toml`` in the same run: firms per second of each and their ratio.

Run from the repository root::

    python benchmarks/national_bench.py --size ci     # 1/500 of the loans, seconds
    python benchmarks/national_bench.py --size full   # the whole book: minutes

Targets (issue 11, on 2 cores): MC <= 15 s to 1 % with peak memory <= 1 GiB; DES <= 20 s
per replication and >= 50 % of the Anhui firms/s. No target is asserted here (figures on
a shared machine are noisy): the script prints them with the load average.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import sys
import time
import tracemalloc
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import simkit  # noqa: E402
from simkit.des import simulate as des_simulate  # noqa: E402
from simkit.montecarlo import ImportanceSamplingWarning, simulate  # noqa: E402

NATIONAL = ROOT / "scenarios" / "nfgf_national_2024.toml"
ANHUI = ROOT / "scenarios" / "anhui_4321.toml"
LEVEL = 0.999


def scaled(sc: simkit.Scenario, factor: float) -> simkit.Scenario:
    """The scenario with every segment's count scaled by ``factor`` (at least 1 loan)."""
    if factor == 1.0:
        return sc
    return sc.with_changes({f"segments[{i}].count": max(1, round(s.count * factor))
                            for i, s in enumerate(sc.segments)})


def rel_se(res: Any) -> dict[str, dict[str, float]]:
    """Per party, the relative SE of its 99.9 % VaR and ES (NaN where the measure is 0)."""
    out = {}
    with warnings.catch_warnings():  # a small pilot warns about its few tail paths
        warnings.simplefilter("ignore", ImportanceSamplingWarning)
        summary = res.summary(levels=(LEVEL,))["parties"]
    for party, st in summary.items():
        var, es = st["var_99.9"], st["es_99.9"]
        out[party] = {"var": st["var_99.9_se"] / var if var > 0 else math.nan,
                      "es": st["es_99.9_se"] / es if es > 0 else math.nan}
    return out


def worst(rel: dict[str, dict[str, float]]) -> float:
    vals = [v for d in rel.values() for v in d.values() if not math.isnan(v)]
    return max(vals) if vals else math.nan


def monte_carlo(sc: simkit.Scenario, pilot: int, target: float, max_paths: int,
                block_size: int, workers: int = 1) -> dict[str, Any]:
    """Pilot (in this process), then the run sized for ``target`` on ``workers``
    processes (bit-identical to one; see the module doc)."""
    simulate(sc, n_paths=min(block_size, 200), block_size=min(block_size, 200))  # warm-up
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    res = simulate(sc, n_paths=pilot, block_size=block_size)
    pilot_wall = time.perf_counter() - t0
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rel = rel_se(res)
    w = worst(rel)
    need = pilot if not w > target else math.ceil(pilot * (w / target) ** 2)
    paths = int(min(max(need, pilot), max_paths))
    # whole blocks, as many for every worker (a 5-block run on 2 workers waits for the 3rd)
    step = block_size * max(workers, 1)
    paths = -(-paths // step) * step
    del res
    gc.collect()
    t0 = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            res = simulate(sc, n_paths=paths, block_size=block_size, executor=pool)
    else:
        res = simulate(sc, n_paths=paths, block_size=block_size)
    wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    rel = rel_se(res)
    measures = time.perf_counter() - t0
    prov = res.provenance
    return {"loans": int(prov["n_loans"][0]), "parties": len(res.parties),
            "mixture_components": (None if prov["importance_mixture"] is None
                                   else len(prov["importance_mixture"])),
            "pilot_paths": pilot, "pilot_seconds": pilot_wall,
            "pilot_worst_rel_se": w, "pilot_traced_peak_mib": traced / 2**20,
            "paths": paths, "workers": workers, "seconds": wall, "measures_seconds": measures,
            "worst_rel_se": worst(rel),
            "ess": float(prov["effective_sample_size"]),
            "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rel_se": rel}


#: The DES mechanisms switched on for the national book (the Anhui rate it is compared
#: with is today's model, mechanisms off): noisy screening with effort, moral hazard,
#: the mid-year 26 % increase of every credit line and waiting for credit-line room.
MECHANISMS: dict[str, Any] = {
    "des.screening_noise": 0.3, "des.screening_effort": 1.0,
    "des.moral_hazard_kappa": 0.5, "des.refusal": "queue_credit_line",
}


def _line_changes(sc: simkit.Scenario) -> dict[str, Any]:
    return {f"credit_lines[{k}].changes": [{"at_years": 0.5, "factor": 1.26}]
            for k in range(len(sc.credit_lines))}


def des_one(sc: simkit.Scenario, seed: int = 1) -> dict[str, float]:
    """One DES replication, end to end: wall time and firms per second."""
    t0 = time.perf_counter()
    r = des_simulate(sc, seed=seed)
    wall = time.perf_counter() - t0
    firms = float(r.summary["applications"])
    return {"seconds": wall, "firms": firms, "firms_per_s": firms / wall,
            "loans": float(r.summary["loans"]), "defaults": float(r.summary["defaults"])}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("ci", "full"), default="ci")
    ap.add_argument("--target", type=float, default=0.01, help="relative SE (default 1 %%)")
    ap.add_argument("--max-paths", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None,
                    help="processes of the sized Monte Carlo run (default 2 full, 1 ci)")
    ap.add_argument("--no-des", action="store_true", help="Monte Carlo only")
    ap.add_argument("--no-mc", action="store_true", help="DES only")
    ap.add_argument("--no-mechanisms", action="store_true",
                    help="the national DES without the mechanisms of MECHANISMS")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    full = args.size == "full"
    factor = 1.0 if full else 1 / 500
    national = scaled(simkit.load(NATIONAL), factor)
    out: dict[str, Any] = {"size": args.size, "scale": factor,
                           "load_average": os.getloadavg(), "cpus": os.cpu_count()}
    if not args.no_mc:
        pilot, block = (2000, 500) if full else (1000, 500)
        max_paths = args.max_paths or (8_000 if full else 1000)
        workers = args.workers or (2 if full else 1)
        out["mc"] = monte_carlo(national, pilot, args.target, max_paths, block, workers)
    if not args.no_des:
        years = None if full else 1
        nat_des = national if years is None else national.with_changes({"des.years": years})
        if not args.no_mechanisms:  # issue 11's target: the national DES with them on
            nat_des = nat_des.with_changes({**MECHANISMS, **_line_changes(nat_des)})
        anhui = scaled(simkit.load(ANHUI), 1.0 if full else 1 / 200)
        if years is not None:
            anhui = anhui.with_changes({"des.years": years})
        a = des_one(anhui)
        n = des_one(nat_des)
        out["des"] = {"national": n, "anhui": a, "mechanisms": not args.no_mechanisms,
                      "firms_per_s_ratio": n["firms_per_s"] / a["firms_per_s"]}
    out["load_average_end"] = os.getloadavg()
    report(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))
    return out


def report(out: dict[str, Any]) -> None:
    print(f"national bench, size {out['size']} (scale {out['scale']:g}), "
          f"load average {tuple(round(x, 2) for x in out['load_average'])}")
    mc = out.get("mc")
    if mc:
        print(f"MC: {mc['loans']:,} loans, {mc['parties']} parties, IS mixture of "
              f"{mc['mixture_components']} components")
        print(f"  pilot {mc['pilot_paths']:,} paths {mc['pilot_seconds']:.1f} s, worst rel SE "
              f"{mc['pilot_worst_rel_se']:.2%}, traced peak {mc['pilot_traced_peak_mib']:.0f} MiB")
        print(f"  run {mc['paths']:,} paths on {mc['workers']} process(es) "
              f"{mc['seconds']:.1f} s (+ measures "
              f"{mc['measures_seconds']:.1f} s), worst rel SE of any party's "
              f"99.9 % VaR/ES {mc['worst_rel_se']:.2%}, Kish ESS {mc['ess']:.0f}, "
              f"process RSS peak {mc['rss_peak_mib']:.0f} MiB")
        ranked = sorted(mc["rel_se"].items(), key=lambda kv: -max(
            v for v in kv[1].values() if not math.isnan(v)) if any(
            not math.isnan(v) for v in kv[1].values()) else 0.0)
        for party, v in ranked[:5]:
            print(f"    {party:<26} VaR {v['var']:.2%}  ES {v['es']:.2%}")
    des = out.get("des")
    if des:
        for name in ("national", "anhui"):
            d = des[name]
            print(f"DES {name}: {d['firms']:,.0f} firms in {d['seconds']:.1f} s = "
                  f"{d['firms_per_s']:,.0f} firms/s ({d['loans']:,.0f} loans, "
                  f"{d['defaults']:,.0f} defaults)")
        print(f"  national / Anhui firms/s: {des['firms_per_s_ratio']:.2f}")
    print(f"load average at the end {tuple(round(x, 2) for x in out['load_average_end'])}")


if __name__ == "__main__":
    main()
