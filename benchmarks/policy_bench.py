"""Benchmark of policy comparisons on common random numbers (issue 9's performance rows).

Usage::

    python benchmarks/policy_bench.py [--size ci|full] [--json FILE]

Rows (ratios measured in one run, so they compare across machines):

a. ``two_policies``: ``scenarios/anhui_4321.toml`` against the national 20/40/20/20 policy
   (``scenarios/policies/national_2422_policy.toml`` on Anhui's book) with
   :func:`simkit.policies.simulate_policies`: wall time of the pair over the wall time of
   one run of the base (target <= 1.3: the book, factor, default and LGD draws are shared,
   only the waterfall and fees run per policy). Also a variant that only moves shares.
b. ``paired_se``: from the same run, the unpaired over the paired standard error of each
   party's EL difference (target >= 10 for the county guarantors).
c. ``sweep_workers``: a sweep of the bank's share (20 variants at full size) with 1 and
   with 2 worker processes (best of ``repeats`` alternating runs): the rate ratio
   (target >= 1.6 on a machine with two free cores; on a shared machine the ratio shows
   what it gives there). CPU seconds as well: all of the 1-worker run and the parent's
   share of the 2-worker run (the serial part), whose Amdahl ratio
   ``amdahl_2_free_cores`` is what two free cores would give, whatever the load.

``--size ci`` shrinks every row (a few hundred paths) so the run takes well under a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # running from a source tree without installing
    sys.path.insert(0, str(ROOT))

from simkit import load, measures  # noqa: E402
from simkit.experiments import sweep_table  # noqa: E402
from simkit.montecarlo import simulate  # noqa: E402
from simkit.policies import simulate_policies, with_policy  # noqa: E402

SIZES: dict[str, dict[str, int]] = {
    "ci": {"paths": 400, "block": 200, "repeats": 1, "variants": 4, "sweep_paths": 400},
    "full": {"paths": 8000, "block": 2000, "repeats": 2, "variants": 20,
             "sweep_paths": 4000},
}


def _best(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def two_policies(size: dict[str, int]) -> dict[str, Any]:
    base = load(ROOT / "scenarios" / "anhui_4321.toml").with_changes(
        {"run.n_paths": size["paths"], "run.block_size": size["block"]})
    other = with_policy(base, ROOT / "scenarios" / "policies" / "national_2422_policy.toml")
    shares = base.with_changes({"agreements[0].layers[0].share": 0.3,
                                "agreements[0].layers[1].share": 0.3})
    simulate(base, n_paths=size["block"])  # compile the kernels before timing
    t_one, _ = _best(lambda: simulate(base), size["repeats"])
    t_pair, res = _best(lambda: simulate_policies(base, [other]), size["repeats"])
    t_shares, _ = _best(lambda: simulate_policies(base, [shares]), size["repeats"])
    identical = bool(np.array_equal(res[0].total_loss, res[1].total_loss))
    ratio_se = {}
    for p in base.party_names:
        a = res[0].losses[:, res[0].parties.index(p)]
        b = res[1].losses[:, res[1].parties.index(p)]
        d = measures.paired_difference(a, b, res[0].weights)
        if d["diff_se"] > 0:
            ratio_se[p] = float(d["unpaired_se"] / d["diff_se"])
    return {"row": "two_policies", "paths": size["paths"], "one_run_s": t_one,
            "two_policies_s": t_pair, "ratio_two_over_one": t_pair / t_one,
            "shares_only_ratio": t_shares / t_one, "total_loss_identical": identical,
            "paired_se_gain": ratio_se}


def sweep_workers(size: dict[str, int]) -> dict[str, Any]:
    base = load(ROOT / "scenarios" / "anhui_4321.toml").with_changes(
        {"run.n_paths": size["sweep_paths"], "run.block_size": size["block"]})
    n = size["variants"]
    changes = [{"agreements[0].layers[0].share": round(b, 6),
                "agreements[0].layers[1].share": round(0.6 - b, 6)}
               for b in np.linspace(0.1, 0.5, n)]
    t1 = t2 = c1 = c2 = float("inf")
    with ProcessPoolExecutor(max_workers=2) as ex:
        list(ex.map(abs, range(2)))  # start the workers
        sweep_table(base.with_changes({"run.n_paths": 2 * size["block"]}), changes[:2],
                    executor=ex)  # two blocks: the kernels load in each worker
        for _ in range(size["repeats"]):  # alternate, so both see the same machine load
            c = time.process_time()
            t, r1 = _best(lambda: sweep_table(base, changes), 1)
            t1, c1 = min(t1, t), min(c1, time.process_time() - c)
            c = time.process_time()
            t, r2 = _best(lambda: sweep_table(base, changes, executor=ex), 1)
            t2, c2 = min(t2, t), min(c2, time.process_time() - c)
    same = all(a["value"] == b["value"] for a, b in zip(r1.rows, r2.rows, strict=True))
    # CPU seconds do not count the time other jobs take the cores: the 1-worker run's
    # CPU time is all the work, the parent's CPU time in the 2-worker run its serial part
    # (Amdahl: the speed-up two free cores give, before the workers' own overhead)
    bound = c1 / (c2 + max(c1 - c2, 0.0) / 2)
    return {"row": "sweep_workers", "variants": n, "paths": size["sweep_paths"],
            "one_worker_s": t1, "two_workers_s": t2, "speedup_2_workers": t1 / t2,
            "one_worker_cpu_s": c1, "two_workers_parent_cpu_s": c2,
            "amdahl_2_free_cores": bound, "identical_results": same}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="ci")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    size = SIZES[args.size]
    rows = [two_policies(size), sweep_workers(size)]
    for r in rows:
        print(json.dumps(r))
    pair = rows[0]
    print(f"two policies / one run: {pair['ratio_two_over_one']:.2f}x (shares only "
          f"{pair['shares_only_ratio']:.2f}x); unpaired / paired SE of the EL difference: "
          + ", ".join(f"{p} {v:.0f}x" for p, v in pair["paired_se_gain"].items())
          + f"; sweep on 2 workers: {rows[1]['speedup_2_workers']:.2f}x (serial part "
          f"{rows[1]['two_workers_parent_cpu_s']:.2f} of {rows[1]['one_worker_cpu_s']:.2f} "
          f"CPU s: {rows[1]['amdahl_2_free_cores']:.2f}x on two free cores)")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
