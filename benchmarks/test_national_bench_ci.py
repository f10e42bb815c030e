"""The national-book benchmark at CI size: figures present and sane (no wall-clock bounds)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import national_bench


def test_national_bench_ci_size() -> None:
    out = national_bench.main(["--size", "ci"])
    assert out["size"] == "ci"
    mc = out["mc"]
    assert mc["parties"] == 64  # bank, the fund, 31 guarantors, 31 re-guarantors
    assert 1000 < mc["loans"] < 3000  # 1/500 of 1,054,500
    assert mc["paths"] >= mc["pilot_paths"] > 0
    assert mc["seconds"] > 0 and mc["rss_peak_mib"] > 0 and mc["pilot_traced_peak_mib"] > 0
    assert 0 < mc["ess"] <= mc["paths"]
    assert len(mc["rel_se"]) == 64
    assert 0 < mc["worst_rel_se"] < 1 and not math.isnan(mc["worst_rel_se"])
    des = out["des"]
    for name in ("national", "anhui"):
        assert des[name]["firms"] > 0 and des[name]["firms_per_s"] > 0
        assert des[name]["defaults"] > 0
    # the scaled national book has ~2,100 applications a year (Poisson, ~10 % noise)
    assert abs(des["national"]["firms"] - mc["loans"]) < 0.15 * mc["loans"]
    assert des["firms_per_s_ratio"] > 0
