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

import numpy as np

from simkit._rng import stream
from simkit._validate import ScenarioError, suggest
from simkit.scenario import MIN_BETA_SD, Loadings, Scenario, read_regular_file

__all__ = ["TAPE_COLUMNS", "Book", "Cells", "book_for", "build_book", "read_tape"]

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
    default_prob : float64, annual
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


def _assemble(
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
    limits = np.array([a.single_limit for a in scenario.agreements])
    guaranteed = np.minimum(exposure, limits[agreement])
    # cells: unique (agreement, guarantor, region, segment)
    key = np.stack([agreement, guarantor, region, segment], axis=1)
    uniq, cell = np.unique(key, axis=0, return_inverse=True)
    cell = cell.reshape(-1).astype(np.intp)
    n_cells = len(uniq)
    cells = Cells(
        agreement=uniq[:, 0].astype(np.intp),
        guarantor=tuple(None if g < 0 else guarantor_names[g] for g in uniq[:, 1]),
        region=tuple(region_names[r] for r in uniq[:, 2]),
        segment=tuple(segment_names[s] for s in uniq[:, 3]),
        guaranteed=np.bincount(cell, weights=guaranteed, minlength=n_cells),
        annualised=np.bincount(cell, weights=guaranteed * tenor_years, minlength=n_cells),
    )
    return Book(
        exposure=exposure, default_prob=default_prob, lgd_mean=lgd_mean, lgd_sd=lgd_sd,
        tenor_years=tenor_years, guaranteed=guaranteed, agreement=agreement,
        segment=segment, region=region, sector=sector, guarantor=guarantor,
        tech_tier=tech_tier.astype(np.int8), loadings=loadings, cell=cell, cells=cells,
        segment_names=segment_names, region_names=region_names, sector_names=sector_names,
        guarantor_names=guarantor_names,
    )


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

    return _assemble(
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
def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover - depends on the environment
            raise ScenarioError(str(path), "", "is Parquet, which needs pyarrow "
                                "(pip install 'simkit[parquet]')") from None
        data = read_regular_file(path, "a loan tape (CSV or Parquet)")
        try:
            table = pq.read_table(io.BytesIO(data))
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ScenarioError(str(path), "", f"cannot be read as Parquet: {exc}") from None
        header = list(table.column_names)
        columns = [table.column(c).to_pylist() for c in header]
        rows = [["" if v is None else str(v) for v in row] for row in zip(*columns,
                                                                           strict=True)]
        return header, rows
    file = str(path)
    data = read_regular_file(path, "a loan tape (CSV or Parquet)")
    first = data[:MAX_HEADER_BYTES]
    if not data.strip():
        raise ScenarioError(file, "", "is empty (a header row is required)")
    if b"\n" not in first and b"\r" not in first and len(data) > MAX_HEADER_BYTES:
        raise ScenarioError(file, "", _NOT_A_TAPE + f"; no header line in the first "
                            f"{MAX_HEADER_BYTES:,} bytes")
    try:
        text = data.decode("utf-8-sig")  # tolerate Excel's BOM
    except UnicodeDecodeError as exc:
        raise ScenarioError(file, "", f"is not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start:,})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise ScenarioError(file, "", "is empty (a header row is required)")
        header = [h.strip() for h in header]
        if not any(h in TAPE_COLUMNS for h in header):
            raise ScenarioError(file, "", _NOT_A_TAPE)  # never quote a foreign file
        rows = []
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
    return header, rows


def read_tape(path: str | Path, scenario: Scenario) -> Book:
    """Read and validate a loan tape (CSV, or Parquet with pyarrow).

    Every row is checked; the first bad cell raises :class:`ScenarioError` naming the file,
    the row (1-based data row, header excluded), the column, the value and what is allowed.
    No row is dropped and no value coerced silently.
    """
    path = Path(path)
    file = str(path)
    header, rows = _read_rows(path)
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
    if not rows:
        raise ScenarioError(file, "", "has no loans")
    idx = {c: i for i, c in enumerate(header)}
    n = len(rows)
    for r, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise ScenarioError(file, f"row {r}", f"has {len(row)} fields, the header "
                                f"{len(header)}")

    def where(r: int, col: str) -> str:
        return f"row {r}, column {col}"

    def numbers(col: str, low: float, high: float, low_open: bool, high_open: bool,
                default: float | None) -> np.ndarray:
        if col not in idx:
            assert default is not None
            return np.full(n, default)
        out = np.empty(n)
        j = idx[col]
        for r, row in enumerate(rows, start=1):
            text = row[j].strip()
            if text == "" and default is not None:
                out[r - 1] = default
                continue
            v = float(text) if _NUMBER.fullmatch(text) else math.nan
            ok = math.isfinite(v) and (v > low if low_open else v >= low) and (
                v < high if high_open else v <= high)
            if not ok:
                allowed = (f"a number in {'(' if low_open else '['}{low:g}, "
                           f"{high:g}{')' if high_open else ']'}")
                note = ("" if _NUMBER.fullmatch(text) else
                        " (plain decimal notation only, e.g. 0.02 or 1.5e6)")
                raise ScenarioError(file, where(r, col), f"must be {allowed}, got "
                                    f"{_shown(text)}{note}")
            out[r - 1] = v
        return out

    def labels(col: str, default: str, allowed: list[str] | None = None) -> list[str]:
        if col not in idx:
            return [default] * n
        j = idx[col]
        out = []
        for r, row in enumerate(rows, start=1):
            v = row[j].strip() or default
            if allowed is not None and v not in allowed:
                shown = ", ".join(a for a in allowed if a) + (" or empty" if "" in allowed
                                                               else "")
                raise ScenarioError(file, where(r, col), f"names unknown value {_shown(v)}"
                                    f"{suggest(v, allowed)} (allowed: {shown})")
            out.append(v)
        return out

    exposure = numbers("exposure", 0, 1e12, True, False, None)
    default_prob = numbers("default_prob", 0, 1, True, True, None)
    for r in np.flatnonzero((default_prob < PD_FLOOR) | (default_prob > 1 - PD_FLOOR)):
        raise ScenarioError(file, where(int(r) + 1, "default_prob"),
                            f"must be in [{PD_FLOOR:g}, 1 - {PD_FLOOR:g}] (the engines' "
                            f"probability floor), got {default_prob[r]:.6g}")
    lgd_mean = numbers("lgd", 0, 1, False, False, None)
    lgd_sd = numbers("lgd_sd", 0, 0.5, False, False, 0.0)
    for r in np.flatnonzero((lgd_sd > 0) & (lgd_sd < MIN_BETA_SD)):
        raise ScenarioError(file, where(int(r) + 1, "lgd_sd"), f"must be 0 (a fixed LGD) or >= "
                            f"{MIN_BETA_SD:g}, got {lgd_sd[r]:g}")
    for r in np.flatnonzero((lgd_sd > 0) & (lgd_sd**2 >= lgd_mean * (1 - lgd_mean))):
        raise ScenarioError(file, where(int(r) + 1, "lgd_sd"),
                            f"must be < sqrt(lgd*(1-lgd)) for a Beta LGD, got {lgd_sd[r]:g}")
    tenor = numbers("tenor_years", 0, 30, True, False, 1.0)
    tiers = numbers("tech_tier", 0, 3, False, False, 0.0)
    for r in np.flatnonzero(tiers != np.round(tiers)):
        raise ScenarioError(file, where(int(r) + 1, "tech_tier"),
                            f"must be an integer 0-3, got {tiers[r]:g}")
    ag_names = [a.name for a in scenario.agreements]
    agreement = labels("agreement", ag_names[0], ag_names)
    g_allowed = [p.name for p in scenario.parties if p.kind == "guarantor"]
    guarantor = labels("guarantor", "", [*g_allowed, ""])
    ag_code = np.array([ag_names.index(a) for a in agreement], dtype=np.intp)
    kinds = {p.name: p.kind for p in scenario.parties}
    no_layer = [not any(kinds[layer.party] == "guarantor" for layer in a.layers)
                for a in scenario.agreements]
    for r, (a, g) in enumerate(zip(ag_code, guarantor, strict=True), start=1):
        if g and no_layer[a]:
            raise ScenarioError(file, where(r, "guarantor"), f"is {g!r}, but agreement "
                                f"{ag_names[a]!r} has no guarantor-kind layer to assign it to")
    if "loan_id" in idx:
        first: dict[str, int] = {}
        for r, row in enumerate(rows, start=1):
            key = row[idx["loan_id"]].strip()
            if key and key in first:
                raise ScenarioError(file, where(r, "loan_id"), f"repeats {_shown(key)} of row "
                                    f"{first[key]} (loan ids must be unique)")
            first.setdefault(key, r)
    seg_code, seg_names = _codes(labels("segment", "tape"))
    reg_code, reg_names = _codes(labels("region", "default"))
    sec_code, sec_names = _codes(labels("sector", "general"))
    g_names = tuple(dict.fromkeys(g for g in guarantor if g))
    g_code = np.array([g_names.index(g) if g else -1 for g in guarantor], dtype=np.intp)
    load: Loadings = scenario.factors.loadings
    return _assemble(
        scenario, exposure=exposure, default_prob=default_prob, lgd_mean=lgd_mean,
        lgd_sd=lgd_sd, tenor_years=tenor, agreement=ag_code, segment=seg_code,
        segment_names=seg_names, region=reg_code, region_names=reg_names, sector=sec_code,
        sector_names=sec_names, guarantor=g_code, guarantor_names=g_names,
        tech_tier=tiers.astype(np.int8), loadings=np.tile(np.array(load.as_tuple()), (n, 1)),
    )
