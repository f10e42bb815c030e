"""Benchmark of loading a loan tape: ``simkit.book.read_tape`` against pyarrow alone.

A synthetic Parquet tape (and, with ``--csv``, the same tape as CSV) is written to a
temporary folder; then, in the same process:

* **pyarrow**: ``pyarrow.parquet.read_table`` of the file (the floor: reading the
  columns, no checks);
* **simkit**: :func:`simkit.book.read_tape` of the same file: the read, every cell
  checked (plain decimal numbers in range, known labels, unique loan ids, the
  probability floor, Beta LGD limits) and the :class:`~simkit.book.Book` built (codes,
  cells, guaranteed amounts, factor loadings).

Reported: the best of ``--repeat`` wall times of each and their ratio, and the peak
memory traced by ``tracemalloc`` during one untimed ``read_tape`` (NumPy arrays and
Python objects; pyarrow's own buffers live outside it) against the bytes of the Book's
arrays (``Book.nbytes``). The tape has the columns ``loan_id`` (int64), ``exposure``,
``default_prob``, ``lgd``, ``lgd_sd``, ``tenor_years`` (float64), ``region`` (8
values) and ``sector`` (6 values, strings).

Usage::

    python benchmarks/tape_bench.py                # --size ci: 50,000 loans
    python benchmarks/tape_bench.py --size full    # 1,000,000 loans
    python benchmarks/tape_bench.py --rows 200000 --csv --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simkit import from_dict  # noqa: E402
from simkit.book import read_tape  # noqa: E402

SIZES = {"ci": 50_000, "full": 1_000_000}
SCENARIO = {
    "scenario": {"name": "tape_bench"},
    "parties": {"bank": {}, "guarantor": {}},
    "agreements": [{"name": "std", "layers": [{"party": "bank", "share": 0.2},
                                              {"party": "guarantor", "share": 0.8}]}],
    "book": {"tape": "tape.parquet"},  # read_tape takes the path; the file is not opened
}


def write_tape(folder: Path, n: int, seed: int = 7, csv: bool = False) -> dict[str, Path]:
    """Write the synthetic tape of ``n`` loans; returns ``{"parquet": path[, "csv": path]}``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    regions = np.array([f"region_{i}" for i in range(8)])
    sectors = np.array(["manufacturing", "agriculture", "services", "tech", "trade",
                        "construction"])
    table = pa.table({
        "loan_id": np.arange(n, dtype=np.int64) + 10_000_000,
        "exposure": np.round(rng.lognormal(np.log(1e6), 0.8, n), 2),
        "default_prob": np.round(rng.uniform(0.005, 0.05, n), 6),
        "lgd": np.round(rng.uniform(0.3, 0.6, n), 4),
        "lgd_sd": np.full(n, 0.1),
        "tenor_years": rng.choice([1.0, 2.0, 3.0], n),
        "region": regions[rng.integers(0, len(regions), n)],
        "sector": sectors[rng.integers(0, len(sectors), n)],
    })
    out = {"parquet": folder / "tape.parquet"}
    pq.write_table(table, out["parquet"])
    if csv:
        import pyarrow.csv as pacsv

        out["csv"] = folder / "tape.csv"
        pacsv.write_csv(table, out["csv"],
                        pacsv.WriteOptions(quoting_style="none"))
    return out


def _best(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(path: Path, repeat: int, memory: bool = True) -> dict[str, Any]:
    """Time pyarrow alone and ``read_tape`` on ``path``; trace ``read_tape``'s memory."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    scenario = from_dict(SCENARIO)
    if path.suffix == ".parquet":
        def arrow() -> Any:
            return pq.read_table(path)
    else:
        def arrow() -> Any:
            return pacsv.read_csv(path)
    t_arrow = _best(arrow, repeat)
    t_simkit = _best(lambda: read_tape(path, scenario), repeat)
    book = read_tape(path, scenario)
    table = arrow()
    out: dict[str, Any] = {
        "file": path.name, "rows": len(book), "file_bytes": path.stat().st_size,
        "pyarrow_s": t_arrow, "simkit_s": t_simkit, "ratio": t_simkit / t_arrow,
        "book_bytes": book.nbytes, "table_bytes": table.nbytes,
    }
    del table
    if memory:
        gc.collect()
        tracemalloc.start()
        read_tape(path, scenario)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["peak_traced_bytes"] = peak
        out["peak_over_book"] = peak / book.nbytes
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="ci")
    p.add_argument("--rows", type=int, help="loans (overrides --size)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--csv", action="store_true", help="also time the tape as CSV")
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    args = p.parse_args(argv)
    n = args.rows or SIZES[args.size]
    out: dict[str, Any] = {"size": args.size, "rows": n}
    with tempfile.TemporaryDirectory() as d:
        files = write_tape(Path(d), n, csv=args.csv)
        for kind, path in files.items():
            out[kind] = measure(path, args.repeat, memory=not args.no_memory)
    for kind in files:
        m = out[kind]
        line = (f"{kind:8s} {m['rows']:>10,} loans: simkit {m['simkit_s']:.3f} s, pyarrow "
                f"alone {m['pyarrow_s']:.3f} s, ratio {m['ratio']:.2f}x")
        if "peak_traced_bytes" in m:
            line += (f"; peak traced {m['peak_traced_bytes'] / 2**20:,.1f} MiB = "
                     f"{m['peak_over_book']:.2f}x the Book's arrays "
                     f"({m['book_bytes'] / 2**20:,.1f} MiB)")
        print(line)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
