"""The policy benchmark at CI size: every row present and sane (no wall-clock bounds)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import policy_bench as bench


def test_policy_bench_ci_size(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert bench.main(["--size", "ci", "--json", str(out)]) == 0
    rows = {r["row"]: r for r in json.loads(out.read_text())["rows"]}
    pair = rows["two_policies"]
    assert pair["ratio_two_over_one"] > 0 and pair["shares_only_ratio"] > 0
    assert pair["total_loss_identical"] is True
    assert set(pair["paired_se_gain"]) >= {"hefei_guarantor", "north_guarantor"}
    # pairing never loses (a party with no layer in one policy gains nothing) and the
    # county guarantors' EL differences are far more precise paired
    assert all(v >= 1 - 1e-9 for v in pair["paired_se_gain"].values())
    assert pair["paired_se_gain"]["hefei_guarantor"] > 10
    assert rows["sweep_workers"]["identical_results"] is True
    assert rows["sweep_workers"]["speedup_2_workers"] > 0
