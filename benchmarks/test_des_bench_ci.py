"""The DES benchmark at CI size: figures present and sane (no wall-clock bounds)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import des_bench


def test_des_bench_ci_size() -> None:
    out = des_bench.main(["--size", "ci", "--repeat", "1", "--years", "1", "--no-memory"])
    assert out["size"] == "ci"
    simkit, minimal = out["simkit"], out["minimal"]
    # both sides processed the same number of firms (same Poisson arrival rate, ~10 % noise)
    assert abs(simkit["firms"] - minimal["firms"]) < 0.1 * minimal["firms"]
    assert simkit["defaults"] > 0
    assert simkit["ledger_rows"] > simkit["loans"]
    for key in ("firms_per_s", "model_events_per_s", "simpy_events_per_s"):
        assert out["ratio"][key] > 0
