"""The benchmark runner at CI size: every row present and sane (no wall-clock bounds)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import run as bench

ROWS = {"reference", "heterogeneous", "waterfall", "memory", "anhui", "lgd", "workers"}


def test_runner_ci_size(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert bench.main(["--size", "ci", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = {r["row"]: r for r in data["rows"]}
    assert set(rows) == ROWS
    for name in ("reference", "heterogeneous"):
        assert rows[name]["loan_scenarios_per_s"] > 0
        assert rows[name]["speedup_vs_naive"] > 0
        assert rows[name]["mean_defaults"] > 0
    assert rows["waterfall"]["waterfall_share_of_kernel"] >= 0
    assert rows["memory"]["peak_rss_bytes"] >= rows["memory"]["book_only_rss_bytes"] > 0
    assert rows["anhui"]["loans"] == 126_700
    assert set(rows["anhui"]["rel_se"]) >= {"bank", "provincial"}
    assert 0 < rows["anhui"]["worst_rel_se"] < 1
    assert rows["lgd"]["speedup_table_numpy"] > 0
    assert rows["workers"]["identical_results"] is True
    assert rows["workers"]["speedup_2_workers"] > 0
