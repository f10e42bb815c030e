"""Memory a run needs, estimated before it starts, and a check against the machine.

The estimates are deliberately simple upper bounds built from per-item constants that
were measured with :mod:`tracemalloc` on the shipped scenarios and then rounded up (about
1.5-4x the measured figures), so that a run refused here would really not fit and a run
accepted here does not die of ``MemoryError`` half-way:

Monte Carlo (:func:`monte_carlo_bytes`), ``N`` loans per cohort, ``H`` cohorts (horizon),
``B`` block size, ``n`` paths, ``P`` parties, ``K`` caps, ``C`` cells (about one per
segment), ``S`` segments, ``W`` worker processes:

* the book and its compiled plan: :data:`MC_BYTES_PER_LOAN` bytes per loan and cohort
  (measured about 360: 14 per-loan arrays of the book plus the band plan);
* one block: ``8 B (4 C + 2 P)`` bytes of cell sums and waterfall accumulators plus the
  block's per-path outputs, and ``B C P x 12`` bytes more when segment attribution is
  kept (see README "Memory per block");
* the results: ``16 n (3 P + K + H + 3 + H P [H > 1])`` bytes (the per-block parts and
  their concatenation, both alive for a moment).

With ``W > 1`` each worker holds its own copy of the plans and a block.

Discrete-event model (:func:`des_bytes`): :data:`DES_BYTES_PER_APPLICATION` bytes per
application drawn over the horizon (measured about 520 on ``nfgf_2422``: arrival,
decision, fate and loan arrays plus the ledger entries), one replication per process.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from simkit._validate import ScenarioError

if TYPE_CHECKING:
    from simkit.scenario import Scenario

__all__ = [
    "DES_BYTES_PER_APPLICATION",
    "MC_BYTES_PER_LOAN",
    "available_bytes",
    "check_memory",
    "des_applications",
    "des_bytes",
    "monte_carlo_bytes",
]

#: Book plus compiled plan per loan and cohort (bytes; measured about 360).
MC_BYTES_PER_LOAN = 512
#: A loan-tape row takes at least this many bytes of text (to count the rows of a tape
#: without reading it: ``rows <= size / TAPE_MIN_ROW_BYTES``).
TAPE_MIN_ROW_BYTES = 16
#: Discrete-event arrays per application (bytes; measured about 520).
DES_BYTES_PER_APPLICATION = 2048
#: Fixed overhead of a run beyond the per-item terms (bytes).
BASE_BYTES = 64 * 2**20


def available_bytes() -> int | None:
    """Memory the machine can give a new allocation now (bytes), or None when unknown.

    Reads ``MemAvailable`` from ``/proc/meminfo`` (Linux); falls back to
    ``os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")``.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def _loans_per_cohort(scenario: Scenario) -> int:
    if scenario.tape is not None:
        try:
            size = os.stat(scenario.tape).st_size
        except OSError:
            return 0  # reading the tape reports the problem
        return size // TAPE_MIN_ROW_BYTES
    return sum(seg.count for seg in scenario.segments)


def monte_carlo_bytes(scenario: Scenario, *, n_paths: int | None = None,
                      block_size: int | None = None, workers: int = 1,
                      keep_cells: bool = False) -> int:
    """Estimated peak memory of :func:`simkit.montecarlo.simulate` (bytes).

    Parameters
    ----------
    scenario : Scenario
    n_paths, block_size : int, optional
        Override ``scenario.run``.
    workers : int
        Worker processes holding a copy of the plans and one block each.
    keep_cells : bool
        Segment attribution kept (``(B, C, P)`` per-cell results).

    Returns
    -------
    int
        Bytes (an upper-bound estimate; see the module docstring).
    """
    run = scenario.run
    n = int(run.n_paths if n_paths is None else n_paths)
    b = min(int(run.block_size if block_size is None else block_size), n)
    h = int(run.horizon_years)
    p = len(scenario.parties)
    k = sum(layer.cap is not None for a in scenario.agreements for layer in a.layers)
    s = max(1, len(scenario.segments))
    c = s if scenario.tape is None else 64
    per_path = 8 * (3 * p + k + h + 3 + (h * p if h > 1 else 0))
    book = MC_BYTES_PER_LOAN * _loans_per_cohort(scenario) * h
    block = 8 * b * (4 * c + 2 * p) + b * per_path + (12 * b * c * p if keep_cells else 0)
    results = 2 * n * per_path + (8 * n * s * p if keep_cells else 0)
    workers = max(1, int(workers))
    per_worker = book + block
    return BASE_BYTES + results + (per_worker * workers + (book if workers > 1 else 0))


def des_applications(scenario: Scenario, years: float | None = None) -> float:
    """Expected number of DES applications over the horizon (renewals included)."""
    years = scenario.des.years if years is None else float(years)
    rate = sum(seg.count if seg.applications_per_year is None else seg.applications_per_year
               for seg in scenario.segments)
    return rate * years * (1 + scenario.des.renewal_prob * years)


def des_bytes(scenario: Scenario, *, years: float | None = None, workers: int = 1) -> int:
    """Estimated peak memory of the DES replications running at once (bytes)."""
    per_rep = DES_BYTES_PER_APPLICATION * des_applications(scenario, years)
    return int(BASE_BYTES + per_rep * max(1, int(workers)))


def _gib(x: float) -> str:
    return f"{x / 2**30:,.1f} GiB" if x >= 2**30 else f"{x / 2**20:,.0f} MiB"


def check_memory(scenario: Scenario, engine: str, *, workers: int = 1,
                 keep_cells: bool = False, years: float | None = None,
                 available: int | None = None) -> int:
    """Refuse a run whose estimated memory exceeds what the machine has available.

    Parameters
    ----------
    scenario : Scenario
    engine : {"montecarlo", "des"}
    workers : int
        Processes working at once.
    keep_cells : bool
        Monte Carlo segment attribution kept.
    years : float, optional
        DES horizon (default ``scenario.des.years``).
    available : int, optional
        Bytes available (default :func:`available_bytes`; no check when unknown).

    Returns
    -------
    int
        The estimate (bytes).

    Raises
    ------
    ScenarioError
        Naming the estimate, what is available and the settings that drive it.
    """
    if engine == "montecarlo":
        need = monte_carlo_bytes(scenario, workers=workers, keep_cells=keep_cells)
        drivers = ("run.n_paths, run.block_size, run.horizon_years or the segment counts "
                   "(the book)")
    elif engine == "des":
        need = des_bytes(scenario, years=years, workers=workers)
        drivers = ("des.years or the segments' applications_per_year / count "
                   f"(about {des_applications(scenario, years):,.0f} applications)")
    else:
        raise ValueError(f"engine must be 'montecarlo' or 'des', got {engine!r}")
    have = available_bytes() if available is None else available
    if have is not None and need > have:
        raise ScenarioError(scenario.source, "", f"needs about {_gib(need)} of memory for the "
                            f"{'Monte Carlo' if engine == 'montecarlo' else 'discrete-event'} "
                            f"run, more than the {_gib(have)} available; reduce {drivers}")
    return need
