"""Benchmark of simkit's discrete-event model against a minimal SimPy loan process.

Both are timed in the same run, on the same number of firms and horizon, with the
garbage collector paused during the simulation:

* **simkit**: ``simkit.des.simulate`` on the scenario (default
  ``scenarios/anhui_4321.toml``: 126,700 firms a year, 3 years, all parties): set-up
  (pre-drawn applications and factor path), the SimPy run and the result (ledger,
  series, checks). ``run`` is the SimPy part alone.
* **minimal**: a loan process written directly on SimPy: one arrival process yielding a
  timeout per firm and starting one process per loan, which waits for its default
  (probability 3 %, uniform time in the year) or its maturity (365 days).

Reported: wall time, firms per second, SimPy events (``env._eid``) and model events per
second, peak traced memory (``tracemalloc``, in a separate untimed pass) and the ratios
simkit / minimal. simkit batches arrivals per day and handles a day's firms with numpy,
so it schedules far fewer SimPy events than the minimal process: the fair rate to compare
is firms (or model events: applications, decisions, originations, maturities, defaults,
claims, payments) per second.

Usage::

    python benchmarks/des_bench.py                 # Anhui scale (~10 s)
    python benchmarks/des_bench.py --size ci       # 1/4 of the firms, < 30 s
    python benchmarks/des_bench.py --replications 4 --workers 2   # + process pool
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import simpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import simkit  # noqa: E402
from simkit.des import run_des, simulate  # noqa: E402


def minimal_simpy(n_per_year: float, years: float, seed: int = 1) -> dict[str, float]:
    """A minimal loan process on plain SimPy; returns wall time and event counts."""
    rng = np.random.default_rng(seed)
    horizon = 365.0 * years
    n = int(rng.poisson(n_per_year * years))
    arrivals = np.sort(rng.uniform(0.0, horizon, n)).tolist()
    defaults = (rng.random(n) < 0.03).tolist()
    when = (rng.random(n) * 365.0).tolist()
    done = {"arrivals": 0, "matured": 0, "defaulted": 0}

    def loan(env: simpy.Environment, default: bool, t_default: float):
        if default:
            yield env.timeout(t_default)
            done["defaulted"] += 1
        else:
            yield env.timeout(365.0)
            done["matured"] += 1

    def arrive(env: simpy.Environment):
        for t, d, w in zip(arrivals, defaults, when, strict=True):
            yield env.timeout(t - env.now)
            done["arrivals"] += 1
            env.process(loan(env, d, w))

    started = time.perf_counter()
    enabled = gc.isenabled()
    gc.disable()
    try:
        env = simpy.Environment()
        env.process(arrive(env))
        env.run(until=horizon)
    finally:
        if enabled:
            gc.enable()
    wall = time.perf_counter() - started
    model_events = done["arrivals"] + done["matured"] + done["defaulted"]
    return {"wall": wall, "firms": n, "simpy_events": next(env._eid),
            "model_events": model_events}


def simkit_des(sc: simkit.Scenario, seed: int) -> dict[str, float]:
    """One simkit replication, end to end (GC paused inside the run)."""
    started = time.perf_counter()
    r = simulate(sc, seed=seed)
    wall = time.perf_counter() - started
    r.check()
    return {"wall": wall, "run": r.wall_seconds, "firms": r.summary["applications"],
            "simpy_events": r.simpy_events, "model_events": r.model_events,
            "loans": r.summary["loans"], "defaults": r.summary["defaults"],
            "ledger_rows": len(r.ledger), "ledger_mb": r.ledger.nbytes / 2**20}


def peak_mb(fn: Any, *args: Any) -> float:
    """Peak memory traced by tracemalloc while ``fn(*args)`` runs (MiB)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def scaled(sc: simkit.Scenario, factor: float) -> simkit.Scenario:
    if factor == 1.0:
        return sc
    return sc.with_changes({f"segments[{i}].count": max(1, round(s.count * factor))
                            for i, s in enumerate(sc.segments)})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=("full", "ci"), default="full",
                    help="full: the scenario as given; ci: 1/4 of the firms (< 30 s)")
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "anhui_4321.toml"))
    ap.add_argument("--years", type=float, default=None)
    ap.add_argument("--repeat", type=int, default=2, help="timed repetitions (best kept)")
    ap.add_argument("--seed", type=int, default=20250101)
    ap.add_argument("--replications", type=int, default=0,
                    help="also time this many replications serially and on a process pool")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)

    sc = simkit.load(args.scenario)
    if args.size == "ci":
        sc = scaled(sc, 0.25)
    years = args.years if args.years is not None else sc.des.years
    if years != sc.des.years:
        sc = sc.with_changes({"des.years": years})
    per_year = sum(s.count if s.applications_per_year is None else s.applications_per_year
                   for s in sc.segments)
    print(f"scenario {sc.name}: {per_year:,.0f} firms/year x {years:g} years "
          f"(size {args.size})", flush=True)

    simulate(sc.with_changes({"des.years": 0.1}), seed=args.seed)  # warm-up imports
    best_s: dict[str, float] | None = None
    best_m: dict[str, float] | None = None
    for _ in range(max(1, args.repeat)):
        s = simkit_des(sc, args.seed)
        m = minimal_simpy(per_year, years)
        best_s = s if best_s is None or s["wall"] < best_s["wall"] else best_s
        best_m = m if best_m is None or m["wall"] < best_m["wall"] else best_m
    assert best_s is not None and best_m is not None
    out: dict[str, Any] = {"scenario": sc.name, "size": args.size, "years": years,
                           "firms_per_year": per_year, "simkit": best_s, "minimal": best_m}
    if not args.no_memory:
        best_s["peak_mb"] = peak_mb(simulate, sc)
        best_m["peak_mb"] = peak_mb(minimal_simpy, per_year, years)

    def rates(d: dict[str, float]) -> dict[str, float]:
        return {"firms_per_s": d["firms"] / d["wall"],
                "model_events_per_s": d["model_events"] / d["wall"],
                "simpy_events_per_s": d["simpy_events"] / d["wall"]}

    rs, rm = rates(best_s), rates(best_m)
    best_s.update(rs)
    best_m.update(rm)
    out["ratio"] = {k: rs[k] / rm[k] for k in rs}
    print(f"{'':24s}{'simkit':>14s}{'minimal':>14s}{'ratio':>9s}")
    rows = [("wall (s)", "wall", "{:14.3f}"), ("firms", "firms", "{:14,.0f}"),
            ("firms / s", "firms_per_s", "{:14,.0f}"),
            ("model events", "model_events", "{:14,.0f}"),
            ("model events / s", "model_events_per_s", "{:14,.0f}"),
            ("SimPy events", "simpy_events", "{:14,.0f}"),
            ("SimPy events / s", "simpy_events_per_s", "{:14,.0f}")]
    if "peak_mb" in best_s:
        rows.append(("peak memory (MiB)", "peak_mb", "{:14.1f}"))
    for label, key, fmt in rows:
        ratio = out["ratio"].get(key, best_s[key] / best_m[key] if best_m[key] else math.nan)
        print(f"{label:24s}{fmt.format(best_s[key])}{fmt.format(best_m[key])}{ratio:9.2f}")
    print(f"simkit: SimPy run {best_s['run']:.3f} s of {best_s['wall']:.3f} s; "
          f"{best_s['loans']:,} loans, {best_s['defaults']:,} defaults, "
          f"{best_s['ledger_rows']:,} ledger rows ({best_s['ledger_mb']:.1f} MiB)")
    ok = best_s["wall"] <= 5.0 and out["ratio"]["firms_per_s"] >= 0.5
    print(f"targets (<= 5 s per replication, >= 50 % of the minimal rate): "
          f"{'met' if ok else 'NOT met'}")

    if args.replications > 0:
        from concurrent.futures import ProcessPoolExecutor
        t0 = time.perf_counter()
        serial = run_des(sc, replications=args.replications, seed=args.seed)
        t_serial = time.perf_counter() - t0
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            t0 = time.perf_counter()
            parallel = run_des(sc, replications=args.replications, seed=args.seed,
                               executor=pool)
            t_pool = time.perf_counter() - t0
        same = all(np.array_equal(a.ledger.amount, b.ledger.amount)
                   for a, b in zip(serial, parallel, strict=True))
        out["replications"] = {"n": args.replications, "serial_s": t_serial,
                               "pool_s": t_pool, "workers": args.workers, "identical": same}
        print(f"{args.replications} replications: serial {t_serial:.2f} s, "
              f"{args.workers} processes {t_pool:.2f} s, identical results: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
