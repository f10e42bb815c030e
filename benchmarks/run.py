"""Benchmark runner for the Monte Carlo engine: speed, waterfall share, memory, tail error.

Usage::

    python benchmarks/run.py [--size ci|full] [--json FILE]

Everything is measured in one process (memory in a child process) and reported as ratios
against a naive NumPy baseline timed in the same run, so the figures compare across
machines. Rows:

a. ``reference``: 10,000 loans, PD 2 %, LGD 45 %, exposure 1, one factor rho 0.15,
   10,000 scenarios: loan-scenarios per second of simkit and of the naive baseline.
b. ``heterogeneous``: 100,000 loans, PD uniform 0.5-5 %, lognormal exposures.
c. ``waterfall``: 5 parties with pool caps; the waterfall's time as a share of the
   kernel's (defaults + LGDs) time.
d. ``memory``: peak resident memory (ru_maxrss) of a child process simulating a 10^6-loan
   book, minus that of a child that only imports simkit and builds the book.
e. ``anhui``: ``scenarios/anhui_4321.toml`` (126,700 loans, 6 parties, caps, multi-factor,
   8,000 paths at full size, four blocks of the scenario's 2,000)
   with automatic importance sampling: wall time and the relative standard error of every
   party's 99.9 % VaR and ES.
g. ``lgd``: Beta LGD draws (Anhui's mean 0.65, sd 0.2): NumPy's ``Generator.beta`` (the
   old sampler) against the quantile table (one uniform + interpolation in NumPy; and the
   whole per-default cost of the compiled band kernel with every loan defaulting, i.e.
   gap + LGD + cell sums), as a ratio measured in the same run.
f. ``workers``: the heterogeneous book with a ProcessPoolExecutor of 1 and of 2 workers
   (each worker's kernels compiled before timing, as the serial rows warm up), next to a
   control (pure-Python CPU work on the same pools) showing what a second
   worker can give on this machine at all.

``--size ci`` shrinks every row so the whole run takes well under a minute.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # running from a source tree without installing
    sys.path.insert(0, str(ROOT))

from simkit import from_dict, load  # noqa: E402
from simkit.book import build_book  # noqa: E402
from simkit.montecarlo import simulate  # noqa: E402
from simkit.scenario import Scenario  # noqa: E402
from simkit.sharing import Waterfall  # noqa: E402

SIZES: dict[str, dict[str, int]] = {
    "full": {"ref_loans": 10_000, "ref_paths": 10_000, "het_loans": 100_000,
             "het_paths": 10_000, "wf_loans": 100_000, "wf_paths": 10_000,
             "mem_loans": 1_000_000, "mem_paths": 10_000, "anhui_paths": 8_000,
             "naive_paths": 2_000, "lgd_draws": 5_000_000},
    "ci": {"ref_loans": 10_000, "ref_paths": 2_000, "het_loans": 20_000, "het_paths": 2_000,
           "wf_loans": 20_000, "wf_paths": 2_000, "mem_loans": 100_000, "mem_paths": 2_000,
           "anhui_paths": 2_000, "naive_paths": 500, "lgd_draws": 500_000},
}


# --------------------------------------------------------------------------------------
# workloads
# --------------------------------------------------------------------------------------
def pool_scenario(n_loans: int, default_prob: Any, exposure: Any, *, rho: float = 0.15,
                  lgd: float = 0.45, block_size: int = 5_000) -> Scenario:
    """A one-factor pool owned by the bank alone."""
    return from_dict({
        "scenario": {"name": f"pool_{n_loans}"},
        "parties": {"bank": {}},
        "agreements": [{"name": "a", "layers": [{"party": "bank", "share": 1.0}]}],
        "segments": [{"name": "s", "count": n_loans, "exposure": exposure,
                      "default_prob": default_prob, "lgd": lgd}],
        "factors": {"national": math.sqrt(rho)},
        "run": {"seed": 1, "block_size": block_size},
    })


def capped_scenario(n_loans: int, block_size: int = 5_000) -> Scenario:
    """Five parties, provincial and national-fund layers capped per region pool."""
    n = n_loans // 4
    return from_dict({
        "scenario": {"name": "five_parties"},
        "parties": {"bank": {}, "guarantor": {}, "provincial": {}, "national_fund": {},
                    "local_gov": {}},
        "agreements": [{"name": "a", "layers": [
            {"party": "bank", "share": 0.2}, {"party": "guarantor", "share": 0.3},
            {"party": "provincial", "share": 0.2,
             "cap": {"rate": 0.04, "overflow": "guarantor", "pool": "region"}},
            {"party": "national_fund", "share": 0.2,
             "cap": {"rate": 0.03, "overflow": "provincial"}},
            {"party": "local_gov", "share": 0.1}]}],
        "segments": [{"name": f"s{i}", "count": n, "region": f"r{i % 2}",
                      "exposure": {"dist": "lognormal", "median": 1e6, "sigma": 0.8},
                      "default_prob": {"dist": "uniform", "low": 0.005, "high": 0.05},
                      "lgd": 0.45} for i in range(4)],
        "factors": {"national": 0.3, "regional": 0.2},
        "run": {"seed": 1, "block_size": block_size},
    })


def naive_losses(exposure: np.ndarray, default_prob: np.ndarray, lgd: float, rho: float,
                 n_paths: int, seed: int = 0, chunk: int = 100) -> np.ndarray:
    """Naive baseline: a full matrix of normals per chunk of scenarios."""
    rng = np.random.default_rng(seed)
    thr = special.ndtri(default_prob)
    amount = exposure * lgd
    out = np.empty(n_paths)
    a, b = math.sqrt(rho), math.sqrt(1 - rho)
    for lo in range(0, n_paths, chunk):
        hi = min(lo + chunk, n_paths)
        z = rng.standard_normal(hi - lo)
        x = a * z[:, None] + b * rng.standard_normal((hi - lo, len(thr)))
        out[lo:hi] = (x < thr[None, :]) @ amount
    return out


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


# --------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------
def speed_row(name: str, scenario: Scenario, n_paths: int, naive_paths: int,
              rho: float = 0.15) -> dict[str, Any]:
    n_loans = scenario.segments[0].count
    book = build_book(scenario)
    simulate(scenario, n_paths=min(n_paths, 500), book=book)  # warm up
    t_sim, res = _timed(simulate, scenario, n_paths=n_paths, book=book)
    t_naive, _ = _timed(naive_losses, book.exposure, book.default_prob, 0.45, rho,
                        naive_paths)
    sim_rate = n_loans * n_paths / t_sim
    naive_rate = n_loans * naive_paths / t_naive
    return {"row": name, "loans": n_loans, "paths": n_paths, "seconds": t_sim,
            "loan_scenarios_per_s": sim_rate, "naive_loan_scenarios_per_s": naive_rate,
            "speedup_vs_naive": sim_rate / naive_rate,
            "mean_defaults": float(res.defaults.mean())}


def waterfall_row(n_loans: int, n_paths: int) -> dict[str, Any]:
    scenario = capped_scenario(n_loans)
    book = build_book(scenario)
    simulate(scenario, n_paths=500, book=book)
    t_total, _ = _timed(simulate, scenario, n_paths=n_paths, book=book)
    wf = Waterfall.from_scenario(scenario, book.cells)
    bs = scenario.run.block_size
    rng = np.random.default_rng(0)
    n_cells = len(book.cells)
    cov = rng.random((bs, n_cells)) * book.cells.guaranteed * 0.05
    t0 = time.perf_counter()
    for lo in range(0, n_paths, bs):
        n = min(bs, n_paths - lo)
        wf.apply(cov[:n], 0.55 * cov[:n], np.zeros((n, n_cells)), np.zeros((n, n_cells)))
    t_wf = time.perf_counter() - t0
    kernel = max(t_total - t_wf, 1e-9)
    return {"row": "waterfall", "loans": n_loans, "paths": n_paths, "cells": n_cells,
            "caps": len(wf.caps), "seconds": t_total, "waterfall_seconds": t_wf,
            "waterfall_share_of_kernel": t_wf / kernel}


_MEM_CHILD = """
import resource, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from run import capped_scenario
from simkit.book import build_book
from simkit.montecarlo import simulate
s = capped_scenario({n_loans})
book = build_book(s)
if {simulate_it}:
    simulate(s, n_paths={n_paths}, book=book)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def memory_row(n_loans: int, n_paths: int) -> dict[str, Any]:
    def child(simulate_it: bool) -> tuple[float, int]:
        code = _MEM_CHILD.format(root=str(ROOT), bench=str(Path(__file__).parent),
                                 n_loans=n_loans, n_paths=n_paths, simulate_it=simulate_it)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        return time.perf_counter() - t0, int(out.stdout.strip().splitlines()[-1]) * 1024

    _, base = child(False)
    secs, peak = child(True)
    return {"row": "memory", "loans": n_loans, "paths": n_paths, "seconds": secs,
            "peak_rss_bytes": peak, "book_only_rss_bytes": base,
            "peak_rss_gib": peak / 2**30, "simulation_extra_gib": (peak - base) / 2**30}


def anhui_row(n_paths: int) -> dict[str, Any]:
    scenario = load(ROOT / "scenarios" / "anhui_4321.toml")
    scenario = scenario.with_changes({"run.importance_sampling": True})
    simulate(scenario, n_paths=200, block_size=200)  # warm up imports and caches
    t, res = _timed(simulate, scenario, n_paths=n_paths)
    summary = res.summary(levels=(0.999,))["parties"]
    rel = {}
    for party, st in summary.items():
        rel[party] = {"var_99.9_rel_se": st["var_99.9_se"] / st["var_99.9"],
                      "es_99.9_rel_se": st["es_99.9_se"] / st["es_99.9"]}
    worst = max(max(v.values()) for v in rel.values())
    return {"row": "anhui", "loans": int(res.provenance["n_loans"][0]), "paths": n_paths,
            "seconds": t, "worst_rel_se": worst, "rel_se": rel}


def lgd_row(n_draws: int) -> dict[str, Any]:
    """Beta LGD draws per second: old ``Generator.beta`` vs the quantile table."""
    from simkit.factors import BetaQuantiles, beta_from_table

    mean, sd = 0.65, 0.2
    nu = mean * (1 - mean) / sd**2 - 1
    a, b = mean * nu, (1 - mean) * nu
    rng = np.random.default_rng(0)
    table = BetaQuantiles(mean, nu).table()
    rng.beta(a, b, 1000)
    beta_from_table(table, rng.random(1000))
    t_old, _ = _timed(rng.beta, np.full(n_draws, a), np.full(n_draws, b))
    t_new, _ = _timed(lambda: beta_from_table(table, rng.random(n_draws)))
    row = {"row": "lgd", "draws": n_draws, "numpy_beta_ns": 1e9 * t_old / n_draws,
           "table_numpy_ns": 1e9 * t_new / n_draws,
           "speedup_table_numpy": t_old / t_new}
    try:
        from simkit.montecarlo import _LGD_TABLE, _numba_band
        band = _numba_band()
    except ImportError:  # pragma: no cover
        band = None
    if band is not None:
        # the fused kernel on one band where every loan defaults (p = 1): per default one
        # exponential gap, one LGD uniform, the table interpolation and the cell sums
        def compiled(n_loans: int) -> None:
            one = np.ones(1)
            zf, zi = np.zeros(1), np.zeros(1, dtype=np.int64)
            sums = [np.zeros((1, 1)) for _ in range(4)]
            band(rng, one, one, zf, one, one, one, one, np.zeros(n_loans), 1.0, True,
                 _LGD_TABLE, zf, table, zi, one, np.ones(n_loans), np.zeros(n_loans),
                 False, 0, zi.copy(), *sums)

        compiled(10)
        t_c, _ = _timed(compiled, n_draws)
        row["table_compiled_ns"] = 1e9 * t_c / n_draws
        row["speedup_table_compiled"] = t_old / t_c
    return row


def _spin(n: int) -> int:
    """Pure-Python CPU work: the control for what a second worker can give here."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def _warm_worker(scenario: Scenario) -> int:
    """Compile the kernels in a pool worker (each fresh process compiles once)."""
    simulate(scenario, n_paths=64, block_size=64)
    return os.getpid()


def workers_row(n_loans: int, n_paths: int) -> dict[str, Any]:
    scenario = pool_scenario(n_loans, {"dist": "uniform", "low": 0.005, "high": 0.05},
                             {"dist": "lognormal", "median": 1e6, "sigma": 1.0},
                             block_size=max(n_paths // 8, 1))
    book = build_book(scenario)  # built once, as in the speed rows
    times, control = {}, {}
    results = {}
    spin = max(n_loans * n_paths // 400, 200_000)
    for w in (1, 2):
        with ProcessPoolExecutor(max_workers=w) as ex:
            # start the workers and compile their kernels (the serial rows warm up too)
            small = pool_scenario(200, 0.02, 1.0)
            list(ex.map(_warm_worker, [small] * (2 * w)))
            times[w], results[w] = _timed(simulate, scenario, n_paths=n_paths, executor=ex,
                                          tasks=8, book=book)
            control[w], _ = _timed(lambda ex=ex: list(ex.map(_spin, [spin // 4] * 4)))
    same = bool(np.array_equal(results[1].losses, results[2].losses))
    return {"row": "workers", "loans": n_loans, "paths": n_paths, "seconds_1": times[1],
            "seconds_2": times[2], "speedup_2_workers": times[1] / times[2],
            "control_speedup_2_workers": control[1] / control[2],
            "identical_results": same, "cpus": os.cpu_count()}


def run(size: str = "ci") -> list[dict[str, Any]]:
    """Run every benchmark row at ``size`` (``"ci"`` or ``"full"``)."""
    z = SIZES[size]
    ref = pool_scenario(z["ref_loans"], 0.02, 1.0)
    het = pool_scenario(z["het_loans"], {"dist": "uniform", "low": 0.005, "high": 0.05},
                        {"dist": "lognormal", "median": 1e6, "sigma": 1.0})
    return [
        speed_row("reference", ref, z["ref_paths"], z["naive_paths"]),
        speed_row("heterogeneous", het, z["het_paths"], max(z["naive_paths"] // 5, 100)),
        waterfall_row(z["wf_loans"], z["wf_paths"]),
        memory_row(z["mem_loans"], z["mem_paths"]),
        anhui_row(z["anhui_paths"]),
        lgd_row(z["lgd_draws"]),
        workers_row(z["het_loans"], z["het_paths"]),
    ]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dict):
        return "{...}"
    return str(v)


def print_table(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        items = [f"{k}={_fmt(v)}" for k, v in row.items() if k not in ("row", "rel_se")]
        print(f"{row['row']:<14} " + "  ".join(items))
        if "rel_se" in row:
            for party, v in row["rel_se"].items():
                print(f"{'':<14}   {party:<16} VaR99.9 rel SE {v['var_99.9_rel_se']:.2%}"
                      f"   ES99.9 rel SE {v['es_99.9_rel_se']:.2%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--json", type=Path, default=None, help="also write rows as JSON")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(args.size)
    print_table(rows)
    print(f"total wall time {time.perf_counter() - t0:.1f} s (size {args.size})")
    if args.json is not None:
        args.json.write_text(json.dumps({"size": args.size, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
