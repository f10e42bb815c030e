"""The tape benchmark at CI size: figures present and sane (no wall-clock bounds)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

pytest.importorskip("pyarrow")

import tape_bench


def test_tape_bench_ci_size(capsys) -> None:
    out = tape_bench.main(["--size", "ci", "--rows", "20000", "--repeat", "1", "--csv"])
    assert out["rows"] == 20_000
    for kind in ("parquet", "csv"):
        m = out[kind]
        assert m["rows"] == 20_000  # every loan of the tape was read
        assert m["simkit_s"] > 0 and m["pyarrow_s"] > 0 and m["ratio"] > 0
        # the Book holds ~110 bytes per loan; the traced peak is positive and finite
        assert m["book_bytes"] > 100 * 20_000
        assert 0 < m["peak_traced_bytes"] < 100 * m["book_bytes"]
    assert "ratio" in capsys.readouterr().out
