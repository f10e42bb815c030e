"""The book of loans at risk, as arrays.

A :class:`Book` is built reproducibly from a scenario's segments (:func:`build_book`) or
read from a loan tape (:func:`read_tape`, CSV or Parquet). Loans are grouped into cells
(agreement x original guarantor x region x segment) for the waterfall.

Loan-tape columns (one row per loan; header required; extra columns are an error):

================  ========  =======================================================
column            required  meaning
================  ========  =======================================================
``exposure``      yes       principal in yuan, > 0
``default_prob``  yes       annual default probability, in (0, 1)
``lgd``           yes       mean loss given default, in [0, 1]
``lgd_sd``        no        sd of the Beta LGD (default 0)
``agreement``     *         agreement name (required when the scenario has several)
``segment``       no        label used for attribution (default ``"tape"``)
``region``        no        regional factor and cap pool (default ``"default"``)
``sector``        no        sector factor (default ``"general"``)
``guarantor``     no        original guarantor party (guarantor kind)
``tech_tier``     no        0 (none) or 1-3
``tenor_years``   no        default 1
``loan_id``       no        kept for reference only
================  ========  =======================================================
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simkit._rng import stream
from simkit._validate import ScenarioError, suggest
from simkit.scenario import MIN_BETA_SD, Loadings, Scenario, read_regular_file

__all__ = ["TAPE_COLUMNS", "Book", "Cells", "assemble", "book_for", "build_book", "read_tape"]

TAPE_COLUMNS = ("exposure", "default_prob", "lgd", "lgd_sd", "agreement", "segment", "region",
                "sector", "guarantor", "tech_tier", "tenor_years", "loan_id")

#: Default probabilities are kept in [PD_FLOOR, 1 - PD_FLOOR]: the synthetic book clips its
#: draws to this range and a tape cell outside it is an error (the engines invert and
#: divide by probabilities; a subnormal 1e-320 overflows).
PD_FLOOR = 1e-12
#: Plain decimal notation, ASCII only: optional sign, digits, optional fraction, optional
#: exponent. No ``1_0``, no ``inf``/``nan``, no Arabic-Indic or full-width digits.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
#: The header line must fit in this many bytes (a real one is under 200).
MAX_HEADER_BYTES = 64 * 1024
#: Longest cell accepted (characters); a real cell is under 100.
MAX_CELL = 4096
_NOT_A_TAPE = ("is not a CSV with the tape columns (a header row naming exposure, "
               "default_prob, lgd and optional " + ", ".join(TAPE_COLUMNS[3:]) + ")")


def _shown(text: str, limit: int = 40) -> str:
    """A cell value for an error message, cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else (repr(text[:limit]) + f"... ({len(text):,} "
                                                  "characters)")


@dataclass(frozen=True)
class Cells:
    """The cells of a book: loans of one agreement with one guarantor, region, segment.

    Attributes
    ----------
    agreement : ndarray of int, shape (n_cells,)
        Index into ``scenario.agreements``.
    guarantor : tuple of (str or None), length n_cells
        Original guarantor party replacing the agreement's guarantor-kind layer.
    region, segment : tuple of str, length n_cells
    guaranteed : ndarray, shape (n_cells,)
        Guaranteed principal of the cell's loans (yuan): ``sum(min(exposure, limit))``.
    annualised : ndarray, shape (n_cells,)
        ``sum(guaranteed x tenor_years)`` (yuan-years).
    """

    agreement: np.ndarray
    guarantor: tuple[str | None, ...]
    region: tuple[str, ...]
    segment: tuple[str, ...]
    guaranteed: np.ndarray
    annualised: np.ndarray

    def __len__(self) -> int:
        return len(self.agreement)


@dataclass(frozen=True)
class Book:
    """Loans as arrays, all of shape ``(n_loans,)``.

    Attributes
    ----------
    exposure : float64, yuan
    default_prob : float64, annual; with moral hazard on (``des.moral_hazard_kappa >
        0``) the true probability ``moral_hazard_pd(PD, retained, kappa, gamma)`` of the
        PD the lender sees, ``retained`` its share of the loan's loss (:func:`_assemble`)
    lgd_mean, lgd_sd : float64
    tenor_years : float64
    guaranteed : float64, yuan; ``min(exposure, agreement.single_limit)``
    agreement, segment, region, sector, guarantor : intp codes into the name tuples
        ``guarantor`` code ``-1`` means the agreement's own guarantor-kind layer party.
    tech_tier : int8
    loadings : float64, shape (n_loans, 4)
        National, regional, sector and guarantor factor loadings.
    cell : intp, index into :attr:`cells`
    cells : Cells
    """

    exposure: np.ndarray
    default_prob: np.ndarray
    lgd_mean: np.ndarray
    lgd_sd: np.ndarray
    tenor_years: np.ndarray
    guaranteed: np.ndarray
    agreement: np.ndarray
    segment: np.ndarray
    region: np.ndarray
    sector: np.ndarray
    guarantor: np.ndarray
    tech_tier: np.ndarray
    loadings: np.ndarray
    cell: np.ndarray
    cells: Cells
    segment_names: tuple[str, ...]
    region_names: tuple[str, ...]
    sector_names: tuple[str, ...]
    guarantor_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.exposure)

    @property
    def n_loans(self) -> int:
        return len(self.exposure)

    @property
    def uncovered(self) -> np.ndarray:
        """Principal above the single-guarantee limit, kept by the lender (yuan)."""
        return self.exposure - self.guaranteed

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in (self.exposure, self.default_prob, self.lgd_mean,
                                      self.lgd_sd, self.tenor_years, self.guaranteed,
                                      self.agreement, self.segment, self.region, self.sector,
                                      self.guarantor, self.tech_tier, self.loadings,
                                      self.cell))


def _codes(values: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    names = tuple(dict.fromkeys(values))
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[v] for v in values], dtype=np.intp), names


def assemble(
    scenario: Scenario,
    *,
    exposure: np.ndarray,
    default_prob: np.ndarray,
    lgd_mean: np.ndarray,
    lgd_sd: np.ndarray,
    tenor_years: np.ndarray,
    agreement: np.ndarray,
    segment: np.ndarray,
    segment_names: tuple[str, ...],
    region: np.ndarray,
    region_names: tuple[str, ...],
    sector: np.ndarray,
    sector_names: tuple[str, ...],
    guarantor: np.ndarray,
    guarantor_names: tuple[str, ...],
    tech_tier: np.ndarray,
    loadings: np.ndarray,
) -> Book:
    """A :class:`Book` from per-loan arrays (each shape ``(n_loans,)``, ``loadings``
    ``(n_loans, 4)``): the guaranteed amounts (exposure capped at the agreement's single
    limit, yuan) and the cells (unique agreement, guarantor, region, segment) are derived
    here. The one assembler of the synthetic book, the loan tape and the DES's booked
    loans (:func:`simkit.des.result.book_from_loans`).

    Parameters
    ----------
    scenario : Scenario
    exposure, default_prob, lgd_mean, lgd_sd, tenor_years : ndarray
        Yuan, annual probability, fractions, years.
    agreement, segment, region, sector, guarantor, tech_tier : int ndarray
        Indices (``guarantor`` -1 for none) into the ``*_names`` tuples (agreements: the
        scenario's order).
    segment_names, region_names, sector_names, guarantor_names : tuple of str
    loadings : ndarray, shape (n_loans, 4)

    Returns
    -------
    Book
    """
    limits = np.array([a.single_limit for a in scenario.agreements])
    guaranteed = np.minimum(exposure, limits[agreement])
    # cells: unique (agreement, guarantor, region, segment), in lexicographic order
    uniq, cell = _cell_keys(agreement, guarantor, region, segment)
    n_cells = len(uniq)
    cells = Cells(
        agreement=uniq[:, 0].astype(np.intp),
        guarantor=tuple(None if g < 0 else guarantor_names[g] for g in uniq[:, 1]),
        region=tuple(region_names[r] for r in uniq[:, 2]),
        segment=tuple(segment_names[s] for s in uniq[:, 3]),
        guaranteed=np.bincount(cell, weights=guaranteed, minlength=n_cells),
        annualised=np.bincount(cell, weights=guaranteed * tenor_years, minlength=n_cells),
    )
    default_prob = _true_default_prob(scenario, exposure, guaranteed, default_prob, cell,
                                      cells)
    return Book(
        exposure=exposure, default_prob=default_prob, lgd_mean=lgd_mean, lgd_sd=lgd_sd,
        tenor_years=tenor_years, guaranteed=guaranteed, agreement=agreement,
        segment=segment, region=region, sector=sector, guarantor=guarantor,
        tech_tier=tech_tier.astype(np.int8), loadings=loadings, cell=cell, cells=cells,
        segment_names=segment_names, region_names=region_names, sector_names=sector_names,
        guarantor_names=guarantor_names,
    )


def _true_default_prob(scenario: Scenario, exposure: np.ndarray, guaranteed: np.ndarray,
                       default_prob: np.ndarray, cell: np.ndarray, cells: Cells,
                       ) -> np.ndarray:
    """The book's annual default probabilities under moral hazard, as the DES draws them:
    ``moral_hazard_pd(PD, retained, des.moral_hazard_kappa, des.moral_hazard_gamma)``
    with ``retained`` the lender's share of each loan's loss under its cell's compiled
    plan (:func:`simkit.factors.retained_share`, :func:`simkit.sharing.compile_cells`);
    ``PD`` itself when ``moral_hazard_kappa = 0`` (the default).

    Shapes: every array ``(n_loans,)``; returns ``(n_loans,)``.
    """
    des = scenario.des
    if des.moral_hazard_kappa <= 0 or len(exposure) == 0:
        return default_prob
    from simkit.factors import moral_hazard_pd, retained_share
    from simkit.sharing import compile_cells  # sharing imports Cells from here

    plans = compile_cells(scenario, cells)
    lender_share = np.array([p.lender_share for p in plans])[cell]
    covered = np.array([p.front != p.lender for p in plans])[cell]
    retained = retained_share(exposure, guaranteed, lender_share, covered)
    return moral_hazard_pd(default_prob, retained, des.moral_hazard_kappa,
                           des.moral_hazard_gamma)


def _cell_keys(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of the code columns (sorted lexicographically) and each loan's
    row index: ``np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)``,
    computed on one mixed-radix integer key (linear time when the key space is small).

    Parameters
    ----------
    *codes : ndarray of int, each shape (n,)
        Code columns, each >= -1.

    Returns
    -------
    uniq : ndarray of intp, shape (n_cells, len(codes))
    cell : ndarray of intp, shape (n,)
    """
    n = len(codes[0])
    if n == 0:
        return np.zeros((0, len(codes)), dtype=np.intp), np.zeros(0, dtype=np.intp)
    low = [int(c.min()) for c in codes]
    radix = [int(c.max()) - lo + 1 for c, lo in zip(codes, low, strict=True)]
    key = np.zeros(n, dtype=np.int64)
    for c, lo, k in zip(codes, low, radix, strict=True):
        key *= k
        key += np.asarray(c, dtype=np.int64) - lo
    space = math.prod(radix)
    if space <= max(4 * n, 1 << 16):
        present = np.flatnonzero(np.bincount(key, minlength=space))
        lookup = np.empty(space, dtype=np.intp)
        lookup[present] = np.arange(len(present))
        cell = lookup[key]
    else:
        present, cell = np.unique(key, return_inverse=True)
        cell = cell.reshape(-1).astype(np.intp)
    uniq = np.empty((len(present), len(codes)), dtype=np.intp)
    rest = present.astype(np.int64)
    for j in range(len(codes) - 1, -1, -1):
        rest, digit = np.divmod(rest, radix[j])
        uniq[:, j] = digit + low[j]
    return uniq, cell


def build_book(scenario: Scenario, seed: int | None = None, cohort: int = 0) -> Book:
    """Draw the synthetic book of a scenario's segments.

    Parameters
    ----------
    scenario : Scenario
    seed : int, optional
        Root seed (default: :attr:`Scenario.book_seed`, i.e. ``[book] seed``, else the
        ``[run] seed`` written in the file; never the path seed of a run). The stream is keyed by
        ``("book", cohort, segment index)``, so adding a segment does not change the
        loans of the others.
    cohort : int
        Annual cohort number (multi-year runs draw one book per cohort).

    Returns
    -------
    Book
    """
    if seed is None:
        seed = scenario.run.seed if scenario.book_seed is None else scenario.book_seed
    agreements = [a.name for a in scenario.agreements]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (
        "exposure", "default_prob", "lgd_mean", "lgd_sd", "tenor", "agreement", "segment",
        "tier", "loadings")}
    regions: list[str] = []
    sectors: list[str] = []
    guarantors: list[str] = []
    for s_idx, seg in enumerate(scenario.segments):
        n = seg.count
        rng = stream(seed, "book", cohort, s_idx)
        parts["exposure"].append(seg.exposure.sample(rng, n))
        parts["default_prob"].append(np.clip(seg.default_prob.sample(rng, n), PD_FLOOR,
                                             1 - PD_FLOOR))
        parts["lgd_mean"].append(np.full(n, seg.lgd.mean))
        parts["lgd_sd"].append(np.full(n, seg.lgd.sd))
        parts["tenor"].append(np.full(n, seg.tenor_years))
        parts["agreement"].append(np.full(n, agreements.index(seg.agreement), dtype=np.intp))
        parts["segment"].append(np.full(n, s_idx, dtype=np.intp))
        parts["tier"].append(np.full(n, seg.tech_tier, dtype=np.int8))
        load = seg.loadings or scenario.factors.loadings
        parts["loadings"].append(np.tile(np.array(load.as_tuple()), (n, 1)))
        regions += [seg.region]
        sectors += [seg.sector]
        guarantors += [seg.guarantor or ""]
    region_code, region_names = _codes(regions)
    sector_code, sector_names = _codes(sectors)
    g_names = tuple(dict.fromkeys(g for g in guarantors if g))
    g_code = np.array([g_names.index(g) if g else -1 for g in guarantors], dtype=np.intp)
    counts = np.array([seg.count for seg in scenario.segments])

    def cat(key: str) -> np.ndarray:
        return np.concatenate(parts[key]) if parts[key] else np.zeros(0)

    return assemble(
        scenario,
        exposure=cat("exposure"), default_prob=cat("default_prob"),
        lgd_mean=cat("lgd_mean"), lgd_sd=cat("lgd_sd"), tenor_years=cat("tenor"),
        agreement=cat("agreement").astype(np.intp),
        segment=cat("segment").astype(np.intp),
        segment_names=tuple(s.name for s in scenario.segments),
        region=np.repeat(region_code, counts), region_names=region_names,
        sector=np.repeat(sector_code, counts), sector_names=sector_names,
        guarantor=np.repeat(g_code, counts), guarantor_names=g_names,
        tech_tier=cat("tier").astype(np.int8),
        loadings=(np.concatenate(parts["loadings"]) if parts["loadings"]
                  else np.zeros((0, 4))),
    )


def book_for(scenario: Scenario, seed: int | None = None, cohort: int = 0) -> Book:
    """The scenario's book: its loan tape when ``[book] tape`` is set, else synthetic."""
    if scenario.tape is not None:
        return read_tape(scenario.tape, scenario)
    return build_book(scenario, seed=seed, cohort=cohort)


# --------------------------------------------------------------------------------------
# loan tapes
# --------------------------------------------------------------------------------------
# A tape is read into columns and checked column by column with array operations. The
# Parquet reader and the CSV reader (for plain, unquoted CSV) go through pyarrow; a CSV
# with quotes, NUL bytes, blank lines inside, overlong cells or anything pyarrow refuses is
# parsed by the :mod:`csv` module, which gives the line-level messages. The checks are the
# same for every backend: the first bad cell of the first bad column (in the order below)
# is reported, with the 1-based data row, the column, the value and what is allowed.

#: Use pyarrow when it is installed (tests set this to False to check that the pure-Python
#: path gives the same books and the same errors).
USE_ARROW = True
#: The characters :meth:`str.strip` removes (Unicode whitespace; the last is U+3000).
_SPACES = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
_NUMBER_RE2 = "^" + _NUMBER.pattern + "$"


def _arrow() -> Any:
    """``(pyarrow, pyarrow.compute)``, or ``None`` without pyarrow (or with USE_ARROW off)."""
    if not USE_ARROW:
        return None
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return pa, pc


class _Column:
    """One tape column of ``n`` cells, checked with array operations.

    Subclasses give the cells' stripped text (:meth:`text`), their numeric reading
    (:meth:`numbers`) and their dictionary codes (:meth:`codes`).
    """

    n: int

    def numbers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(values, blank, plain)``, each shape ``(n,)``: the cells as float64 (NaN where
        not a plain decimal number), whether a cell is empty after stripping, and whether
        it is a plain decimal number (:data:`_NUMBER`)."""
        raise NotImplementedError

    def text(self, r: int) -> str:
        """The stripped text of cell ``r`` (0-based), as messages show it."""
        raise NotImplementedError

    def distinct(self) -> bool:
        """A quick test that no two cells are equal (False: look at the codes)."""
        return False

    def codes(self) -> tuple[np.ndarray, int | None, Any]:
        """``(codes, blank, name)``: an intp code per cell (equal codes for equal stripped
        text), the code of the empty cell (``None`` when no cell is empty), and
        ``name(code) -> str``."""
        raise NotImplementedError

    def labels(self) -> tuple[np.ndarray, list[str]]:
        """``(codes, names)``: codes into the distinct stripped values, in the order they
        first appear."""
        codes, _, name = self.codes()
        if len(codes) == 0:
            return codes, []
        first = _first_rows(codes)
        present = np.flatnonzero(first < len(codes))
        order = present[np.argsort(first[present], kind="stable")]
        remap = np.full(int(codes.max()) + 1, -1, dtype=np.intp)
        names: dict[str, int] = {}
        for c in order.tolist():
            remap[c] = names.setdefault(name(c), len(names))
        return remap[codes], list(names)


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """The first row of each code (``len(codes)`` for absent codes), shape
    ``(codes.max() + 1,)``; linear time when the codes are numbered in order of first
    appearance (as dictionary encoding numbers them), a sort otherwise."""
    n = len(codes)
    prev = np.maximum.accumulate(codes)
    is_first = np.empty(n, dtype=bool)
    is_first[0] = True
    is_first[1:] = codes[1:] > prev[:-1]
    rows = np.flatnonzero(is_first)
    k = int(prev[-1]) + 1
    if len(rows) == k and codes[0] == 0:  # numbered 0, 1, 2... as they first appear
        return rows
    first = np.full(k, n, dtype=np.intp)
    present, at = np.unique(codes, return_index=True)
    first[present] = at
    return first


class _ListColumn(_Column):
    """Cells as Python strings (the pure-Python path)."""

    def __init__(self, cells: list[str]):
        self.cells = [c.strip() for c in cells]
        self.n = len(cells)

    def numbers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        values = np.full(self.n, np.nan)
        blank = np.zeros(self.n, dtype=bool)
        plain = np.zeros(self.n, dtype=bool)
        for r, text in enumerate(self.cells):
            if _NUMBER.fullmatch(text):
                plain[r] = True
                values[r] = float(text)
            elif text == "":
                blank[r] = True
        return values, blank, plain

    def text(self, r: int) -> str:
        return self.cells[r]

    def codes(self) -> tuple[np.ndarray, int | None, Any]:
        index: dict[str, int] = {}
        codes = np.fromiter((index.setdefault(c, len(index)) for c in self.cells),
                            dtype=np.intp, count=self.n)
        names = list(index)
        return codes, index.get(""), names.__getitem__


class _ArrowText(_Column):
    """Cells as a pyarrow string array (nulls read as empty cells)."""

    def __init__(self, array: Any):
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
        self.cells = pc.utf8_trim(pc.fill_null(array, ""), characters=_SPACES)
        self.n = len(array)

    def numbers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import pyarrow as pa
        import pyarrow.compute as pc

        plain = pc.match_substring_regex(self.cells, _NUMBER_RE2)
        kept = pc.if_else(plain, self.cells, pa.scalar(None, self.cells.type))
        values = pc.fill_null(pc.cast(kept, pa.float64()), math.nan)
        return (values.to_numpy(zero_copy_only=False),
                pc.equal(self.cells, "").to_numpy(zero_copy_only=False),
                plain.to_numpy(zero_copy_only=False))

    def text(self, r: int) -> str:
        return str(self.cells[r].as_py())

    def codes(self) -> tuple[np.ndarray, int | None, Any]:
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(self.cells)
        dictionary = encoded.dictionary
        blank = pc.index(dictionary, "").as_py()
        return (encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp),
                None if blank < 0 else blank, lambda c: str(dictionary[c].as_py()))


class _ArrowDictText(_Column):
    """A dictionary-encoded string column (Parquet strings are read so): the text checks
    run once per distinct value, the rows are the dictionary's indices."""

    def __init__(self, array: Any):
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(array, pa.ChunkedArray):
            array = (array.unify_dictionaries().combine_chunks() if array.num_chunks != 1
                     else array.chunk(0))
        values = array.dictionary
        self.values = _ArrowText(pa.concat_arrays([values, pa.array([""], values.type)]))
        self.rows = pc.fill_null(array.indices, len(values)).to_numpy(
            zero_copy_only=False).astype(np.intp)
        self.n = len(array)

    def numbers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        values, blank, plain = self.values.numbers()
        return values[self.rows], blank[self.rows], plain[self.rows]

    def text(self, r: int) -> str:
        return self.values.text(int(self.rows[r]))

    def codes(self) -> tuple[np.ndarray, int | None, Any]:
        codes, blank, name = self.values.codes()
        return codes[self.rows], blank, name


class _ArrowNumbers(_Column):
    """A Parquet column of integers or floats: no text to parse (nulls are empty cells;
    a value reads as ``str(value)`` in messages, as a text cell would)."""

    def __init__(self, array: Any):
        import pyarrow as pa

        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
        self.array = array
        self.n = len(array)

    def numbers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import pyarrow as pa
        import pyarrow.compute as pc

        blank = self.array.is_null().to_numpy(zero_copy_only=False)
        # not the "safe" cast, which refuses integers above 2**53 (rounded, as float())
        values = pc.fill_null(self.array.cast(pa.float64(), safe=False), math.nan).to_numpy(
            zero_copy_only=False)
        return values, blank, np.isfinite(values)

    def text(self, r: int) -> str:
        v = self.array[r].as_py()
        return "" if v is None else str(v).strip()

    def distinct(self) -> bool:
        """Whether every cell holds a value and no two are equal (a sort, no hashing)."""
        import pyarrow as pa

        if self.array.null_count or not pa.types.is_integer(self.array.type):
            return False
        values = np.sort(self.array.to_numpy(zero_copy_only=False))
        return not bool(np.any(values[1:] == values[:-1]))

    def codes(self) -> tuple[np.ndarray, int | None, Any]:
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(self.array, null_encoding="encode")
        dictionary = encoded.dictionary
        nulls = np.flatnonzero(dictionary.is_null().to_numpy(zero_copy_only=False))

        def name(c: int) -> str:
            v = dictionary[c].as_py()
            return "" if v is None else str(v).strip()

        return (encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp),
                int(nulls[0]) if nulls.size else None, name)


def _parquet_column(array: Any) -> _Column:
    """The column class for a Parquet column of any type."""
    import pyarrow as pa

    t = array.type
    if pa.types.is_dictionary(t):
        if pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type):
            return _ArrowDictText(array)
        array, t = array.cast(t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return _ArrowNumbers(array)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _ArrowText(array)
    # anything else (booleans, decimals, dates, binary...) reads as Python's str(value)
    return _ArrowText(pa.array(["" if v is None else str(v) for v in array.to_pylist()],
                               type=pa.string()))


def _read_parquet(path: Path) -> tuple[list[str], list[_Column]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the environment
        raise ScenarioError(str(path), "", "is Parquet, which needs pyarrow "
                            "(pip install 'simkit[parquet]')") from None
    data = read_regular_file(path, "a loan tape (CSV or Parquet)")
    import pyarrow as pa

    try:  # strings as dictionaries: their checks then run once per distinct value
        schema = pq.ParquetFile(pa.BufferReader(data)).schema_arrow
        table = pq.read_table(pa.BufferReader(data), read_dictionary=[
            f.name for f in schema if pa.types.is_string(f.type)
            or pa.types.is_large_string(f.type)])
    except (OSError, ValueError):
        try:
            table = pq.read_table(io.BytesIO(data))
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ScenarioError(str(path), "", f"cannot be read as Parquet: {exc}"
                                ) from None
    del data
    if _arrow() is None:  # pragma: no cover - USE_ARROW off: the Python path on strings
        header = list(table.column_names)
        return header, [_ListColumn(["" if v is None else str(v) for v in
                                     table.column(i).to_pylist()])
                        for i in range(len(header))]
    return list(table.column_names), [_parquet_column(table.column(i))
                                      for i in range(table.num_columns)]


def _read_csv_arrow(data: bytes, header: list[str]) -> list[_Column] | None:
    """The data rows of a plain CSV through pyarrow, as columns; ``None`` when the file
    needs the :mod:`csv` module (quotes, NUL bytes, blank lines inside, a row of another
    width, an overlong cell, invalid UTF-8...), which then gives the exact message.
    ``data`` is not copied."""
    arrow = _arrow()
    if arrow is None:
        return None
    pa, pc = arrow
    import pyarrow.csv as pacsv

    width = len(header)
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    end = len(data)
    while end > start and data[end - 1] in b"\r\n":
        end -= 1
    eol = min((i for i in (data.find(b"\n", start, end), data.find(b"\r", start, end))
               if i >= 0), default=end)
    # quotes in the header line are read alike by both parsers
    if data.find(b'"', eol, end) >= 0 or data.find(b"\x00", start, end) >= 0 or any(
            data.find(blank, eol, end) >= 0 for blank in (b"\n\n", b"\r\r", b"\n\r")):
        return None
    body = pa.BufferReader(pa.py_buffer(data).slice(start, end - start))
    try:
        table = pacsv.read_csv(
            body,
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False,
                                             newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{i}": pa.string() for i in range(width)},
                null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
                check_utf8=True))
    except (OSError, ValueError):  # e.g. a row of another width: the csv module says which
        return None
    if table.num_columns != width or [table.column(i)[0].as_py() for i in range(width)
                                      ] != header:
        return None
    table = table.slice(1)  # the header row (read and checked by the csv module)
    for i in range(width):  # bytes bound characters: count characters only when needed
        col = table.column(i)
        if len(col) and (pc.max(pc.binary_length(col)).as_py() > MAX_CELL
                         and pc.max(pc.utf8_length(col)).as_py() > MAX_CELL):
            return None
    columns: list[_ArrowText] = [_ArrowText(table.column(i)) for i in range(width)]
    n = table.num_rows
    while n and all(col.cells[n - 1].as_py() == "" for col in columns):
        n -= 1
    if n < table.num_rows:  # trailing blank rows, as the csv path drops them
        for col in columns:
            col.cells, col.n = col.cells.slice(0, n), n
    out: list[_Column] = list(columns)
    return out


def _read_plain_csv(data: bytes) -> tuple[list[str], list[_Column], list[list[str]]] | None:
    """A CSV whose header line has no quotes or NUL bytes, read through pyarrow without
    decoding the file in Python; ``None`` when the :mod:`csv` path must read it."""
    if _arrow() is None:
        return None
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    eol = min((i for i in (data.find(b"\n", start, MAX_HEADER_BYTES),
                           data.find(b"\r", start, MAX_HEADER_BYTES)) if i >= 0),
              default=-1)
    line = data[start:eol]
    if eol < 0 or b'"' in line or b"\x00" in line:
        return None
    try:
        raw_header = line.decode("utf-8").split(",")  # as csv reads a line without quotes
    except UnicodeDecodeError:
        return None
    header = [h.strip() for h in raw_header]
    if not any(h in TAPE_COLUMNS for h in header):
        return None  # the csv path refuses it without quoting it
    columns = _read_csv_arrow(data, raw_header)
    return None if columns is None else (header, columns, [])


def _read_csv(path: Path) -> tuple[list[str], list[_Column] | None, list[list[str]]]:
    """``(header, columns, rows)``: columns from pyarrow, or ``None`` and the rows from the
    :mod:`csv` module."""
    file = str(path)
    data = read_regular_file(path, "a loan tape (CSV or Parquet)")
    first = data[:MAX_HEADER_BYTES]
    if not data or data.isspace():
        raise ScenarioError(file, "", "is empty (a header row is required)")
    if b"\n" not in first and b"\r" not in first and len(data) > MAX_HEADER_BYTES:
        raise ScenarioError(file, "", _NOT_A_TAPE + f"; no header line in the first "
                            f"{MAX_HEADER_BYTES:,} bytes")
    plain = _read_plain_csv(data)
    if plain is not None:
        return plain
    try:
        text = data.decode("utf-8-sig")  # tolerate Excel's BOM
    except UnicodeDecodeError as exc:
        raise ScenarioError(file, "", f"is not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start:,})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        raw_header = next(reader, None)
        if raw_header is None:
            raise ScenarioError(file, "", "is empty (a header row is required)")
        header = [h.strip() for h in raw_header]
        if not any(h in TAPE_COLUMNS for h in header):
            raise ScenarioError(file, "", _NOT_A_TAPE)  # never quote a foreign file
        columns = _read_csv_arrow(data, raw_header)
        if columns is not None:
            return header, columns, []
        rows: list[list[str]] = []
        for row in reader:
            for j, cell in enumerate(row):
                if len(cell) > MAX_CELL:
                    col = header[j] if j < len(header) else f"{j + 1}"
                    raise ScenarioError(file, f"row {len(rows) + 1}, column {col}",
                                        f"has {len(cell):,} characters, more than the "
                                        f"{MAX_CELL:,} accepted in a cell")
            rows.append(row)
    except csv.Error as exc:  # e.g. a cell over csv's field limit, a NUL byte
        raise ScenarioError(file, f"line {reader.line_num}", f"is not valid CSV ({exc})"
                            ) from None
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # trailing blank lines
    return header, None, rows


def read_tape(path: str | Path, scenario: Scenario) -> Book:
    """Read and validate a loan tape (CSV, or Parquet with pyarrow).

    Every row is checked; the first bad cell raises :class:`ScenarioError` naming the file,
    the row (1-based data row, header excluded), the column, the value and what is allowed.
    No row is dropped and no value coerced silently. Columns are checked with array
    operations (pyarrow when installed), so a tape of a million loans loads in about the
    time pyarrow takes to read it (``benchmarks/tape_bench.py``).
    """
    path = Path(path)
    file = str(path)
    rows: list[list[str]] = []
    if path.suffix.lower() in (".parquet", ".pq"):
        header, columns = _read_parquet(path)
    else:
        header, found, rows = _read_csv(path)
        columns = found or []
    _check_header(file, header, scenario)
    tape = _Tape(file, dict(zip(header, columns or _row_columns(file, header, rows),
                                strict=True)))
    del rows
    exposure = tape.numbers("exposure", 0, 1e12, True, False, None)
    default_prob = tape.numbers("default_prob", 0, 1, True, True, None)
    for r in np.flatnonzero((default_prob < PD_FLOOR) | (default_prob > 1 - PD_FLOOR))[:1]:
        raise ScenarioError(file, _where(int(r) + 1, "default_prob"),
                            f"must be in [{PD_FLOOR:g}, 1 - {PD_FLOOR:g}] (the engines' "
                            f"probability floor), got {default_prob[r]:.6g}")
    lgd_mean = tape.numbers("lgd", 0, 1, False, False, None)
    lgd_sd = tape.numbers("lgd_sd", 0, 0.5, False, False, 0.0)
    for r in np.flatnonzero((lgd_sd > 0) & (lgd_sd < MIN_BETA_SD))[:1]:
        raise ScenarioError(file, _where(int(r) + 1, "lgd_sd"), f"must be 0 (a fixed LGD) or "
                            f">= {MIN_BETA_SD:g}, got {lgd_sd[r]:g}")
    for r in np.flatnonzero((lgd_sd > 0) & (lgd_sd**2 >= lgd_mean * (1 - lgd_mean)))[:1]:
        raise ScenarioError(file, _where(int(r) + 1, "lgd_sd"),
                            f"must be < sqrt(lgd*(1-lgd)) for a Beta LGD, got {lgd_sd[r]:g}")
    tenor = tape.numbers("tenor_years", 0, 30, True, False, 1.0)
    tiers = tape.numbers("tech_tier", 0, 3, False, False, 0.0)
    for r in np.flatnonzero(tiers != np.round(tiers))[:1]:
        raise ScenarioError(file, _where(int(r) + 1, "tech_tier"),
                            f"must be an integer 0-3, got {tiers[r]:g}")
    ag_code, g_code, g_names = _tape_parties(tape, scenario)
    if "loan_id" in tape.cols:
        _check_unique_ids(file, tape.cols["loan_id"])
    seg_code, seg_names = tape.labels("segment", "tape")
    reg_code, reg_names = tape.labels("region", "default")
    sec_code, sec_names = tape.labels("sector", "general")
    load: Loadings = scenario.factors.loadings
    return assemble(
        scenario, exposure=exposure, default_prob=default_prob, lgd_mean=lgd_mean,
        lgd_sd=lgd_sd, tenor_years=tenor, agreement=ag_code, segment=seg_code,
        segment_names=tuple(seg_names), region=reg_code, region_names=tuple(reg_names),
        sector=sec_code, sector_names=tuple(sec_names), guarantor=g_code,
        guarantor_names=g_names, tech_tier=tiers.astype(np.int8),
        loadings=np.tile(np.array(load.as_tuple()), (tape.n, 1)),
    )


def _check_header(file: str, header: list[str], scenario: Scenario) -> None:
    """Refuse a tape header with a repeated or unknown column or without a required one."""
    for i, col in enumerate(header):
        if col in header[:i]:
            raise ScenarioError(file, "", f"has the column {col!r} twice")
        if col not in TAPE_COLUMNS:
            if len(col) > 40 or not re.fullmatch(r"[A-Za-z0-9_ .\-]*", col, re.ASCII):
                raise ScenarioError(file, "", f"has an unknown column (column {i + 1}, not "
                                    f"shown) (allowed: {', '.join(TAPE_COLUMNS)})")
            raise ScenarioError(file, "", f"has unknown column {col!r}{suggest(col, TAPE_COLUMNS)}"
                                f" (allowed: {', '.join(TAPE_COLUMNS)})")
    for col in ("exposure", "default_prob", "lgd"):
        if col not in header:
            raise ScenarioError(file, "", f"lacks the required column {col!r}")
    if len(scenario.agreements) > 1 and "agreement" not in header:
        raise ScenarioError(file, "", "lacks the column 'agreement', required because the "
                            "scenario has several agreements")


def _row_columns(file: str, header: list[str], rows: list[list[str]]) -> list[Any]:
    """The columns of the rows read by the csv module (each row as long as the header)."""
    if not rows:
        raise ScenarioError(file, "", "has no loans")
    for r, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise ScenarioError(file, f"row {r}", f"has {len(row)} fields, the header "
                                f"{len(header)}")
    arrow = _arrow()
    return [(_ArrowText(arrow[0].array([row[j] for row in rows], type=arrow[0].string()))
             if arrow is not None else _ListColumn([row[j] for row in rows]))
            for j in range(len(header))]


def _where(r: int, col: str) -> str:
    return f"row {r}, column {col}"


class _Tape:
    """The columns of a loan tape by name, read into checked arrays (``file`` names the
    tape in errors)."""

    def __init__(self, file: str, cols: dict[str, Any]) -> None:
        self.file = file
        self.cols = cols
        self.n = next(iter(cols.values())).n
        if self.n == 0:
            raise ScenarioError(file, "", "has no loans")

    def numbers(self, col: str, low: float, high: float, low_open: bool, high_open: bool,
                default: float | None) -> np.ndarray:
        """``(n,)`` float64 values of ``col`` in the given range (empty cells, or a missing
        column, read as ``default``; ``None``: required)."""
        if col not in self.cols:
            assert default is not None
            return np.full(self.n, default)
        values, blank, plain = self.cols[col].numbers()
        with np.errstate(invalid="ignore"):
            ok = (plain & np.isfinite(values) & (values > low if low_open else values >= low)
                  & (values < high if high_open else values <= high))
        if default is not None and blank.any():
            ok |= blank
            values = np.where(blank, default, values)
        bad = np.flatnonzero(~ok)
        if bad.size:
            r = int(bad[0])
            text = self.cols[col].text(r)
            allowed = (f"a number in {'(' if low_open else '['}{low:g}, "
                       f"{high:g}{')' if high_open else ']'}")
            note = "" if plain[r] else " (plain decimal notation only, e.g. 0.02 or 1.5e6)"
            raise ScenarioError(self.file, _where(r + 1, col), f"must be {allowed}, got "
                                f"{_shown(text)}{note}")
        return np.asarray(values, dtype=np.float64)

    def labels(self, col: str, default: str, allowed: list[str] | None = None
               ) -> tuple[np.ndarray, list[str]]:
        """Codes into the distinct values (empty cells read as ``default``), in the order
        they first appear."""
        if col not in self.cols:
            return np.zeros(self.n, dtype=np.intp), [default]
        codes, names = self.cols[col].labels()
        if "" in names:  # merge the empty cells into the default
            names = [v or default for v in names]
            merged = list(dict.fromkeys(names))
            codes = np.array([merged.index(v) for v in names], dtype=np.intp)[codes]
            names = merged
        if allowed is not None:
            bad = [i for i, v in enumerate(names) if v not in allowed]
            if bad:
                r = int(np.flatnonzero(np.isin(codes, bad))[0])
                v = names[int(codes[r])]
                shown = ", ".join(a for a in allowed if a) + (" or empty" if "" in allowed
                                                               else "")
                raise ScenarioError(self.file, _where(r + 1, col), f"names unknown value "
                                    f"{_shown(v)}{suggest(v, allowed)} (allowed: {shown})")
        return codes, names


def _tape_parties(tape: _Tape, scenario: Scenario,
                  ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The agreement code ``(n,)`` of each loan, its guarantor code ``(n,)`` (-1: none)
    and the guarantor names; refuses a guarantor on an agreement without a
    guarantor-kind layer."""
    ag_names = [a.name for a in scenario.agreements]
    ag_lab, ag_seen = tape.labels("agreement", ag_names[0], ag_names)
    ag_code = np.array([ag_names.index(a) for a in ag_seen], dtype=np.intp)[ag_lab]
    g_allowed = [p.name for p in scenario.parties if p.kind == "guarantor"]
    g_lab, g_seen = tape.labels("guarantor", "", [*g_allowed, ""])
    kinds = {p.name: p.kind for p in scenario.parties}
    no_layer = np.array([not any(kinds[layer.party] == "guarantor" for layer in a.layers)
                         for a in scenario.agreements])
    has_g = np.array([bool(g) for g in g_seen])[g_lab]
    for r in np.flatnonzero(has_g & no_layer[ag_code])[:1]:
        raise ScenarioError(tape.file, _where(int(r) + 1, "guarantor"), f"is "
                            f"{g_seen[g_lab[r]]!r}, but agreement {ag_names[ag_code[r]]!r} "
                            "has no guarantor-kind layer to assign it to")
    g_names = tuple(g for g in g_seen if g)
    g_code = np.array([g_names.index(g) if g else -1 for g in g_seen], dtype=np.intp)[g_lab]
    return ag_code, g_code, g_names


def _check_unique_ids(file: str, column: _Column) -> None:
    """Refuse the first repeated non-empty ``loan_id`` (naming its row and the first's)."""
    if column.distinct():
        return
    codes, blank, name = column.codes()
    n = len(codes)
    first = _first_rows(codes)
    repeat = first[codes] != np.arange(n)
    if blank is not None:
        repeat &= codes != blank
    for r in np.flatnonzero(repeat)[:1]:
        key = name(int(codes[r]))
        raise ScenarioError(file, f"row {int(r) + 1}, column loan_id", f"repeats {_shown(key)} "
                            f"of row {int(first[codes[r]]) + 1} (loan ids must be unique)")
