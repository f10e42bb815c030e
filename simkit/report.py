"""Report files and text tables: atomic writers, atomic result sets, readable tables.

Single files go through a temporary file in the target folder and ``os.replace``
(:func:`atomic_write`), so a reader never sees a half-written file, and a symbolic link at
the target is replaced, never followed. A command's whole set of files goes through
:func:`result_set`: the files are written into a temporary folder beside ``DIR`` and the
folder is swapped in whole at the end, so ``DIR`` holds either the earlier set or the new
one, never a mixture, and an interrupted command leaves ``DIR`` as it was and no temporary
folder behind.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["PANDAS_MISSING", "PYARROW_MISSING", "OutError", "atomic_write",
           "atomic_write_text", "check_out_dir", "closed_form_rows", "fmt_money",
           "format_table", "injection_lines", "jsonable", "long_rows", "require_pandas",
           "require_pyarrow", "result_set", "save_des", "write_columns_parquet",
           "write_csv", "write_json", "write_parquet"]

#: The message of the ImportError raised where pandas is needed and missing.
PANDAS_MISSING = "pandas is needed: pip install 'simkit[pandas]'"
#: The message of the ImportError raised where pyarrow is needed and missing.
PYARROW_MISSING = "pyarrow is needed to write Parquet: pip install 'simkit[parquet]'"

#: Result folders committed by this process (absolute paths), in order.
COMMITTED: list[Path] = []


class OutError(ValueError):
    """An output folder that cannot be used (names the folder and the reason)."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write a file atomically: ``write(fh)`` fills a temporary file beside ``path``,
    which then replaces ``path`` (a symbolic link at ``path`` is replaced, not followed).

    Parameters
    ----------
    path : str or Path
        The file to create or replace; its folder is created if needed.
    write : callable
        Called with a binary file object open for writing.

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (temporary file + rename)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))


def check_out_dir(out: str | Path) -> Path:
    """Check, before any work, that ``out`` can receive a result set; create nothing.

    ``out`` must be a non-empty path; when it exists it must be a real folder (not a
    symbolic link, not a file) holding files only (the set replaces the folder, so a
    folder with sub-folders, such as a project directory, is refused); when it does not
    exist, its nearest existing parent must be a writable folder.

    Raises
    ------
    OutError
        With the reason.
    """
    if str(out).strip() == "":
        raise OutError(repr(str(out)), "must name a folder (got an empty path)")
    p = Path(out)
    if p.is_symlink():
        raise OutError(p, "is a symbolic link; give the folder itself")
    if p.exists():
        if not p.is_dir():
            raise OutError(p, "exists and is not a directory")
        try:
            entries = list(os.scandir(p))
        except OSError as exc:
            raise OutError(p, f"cannot be read: {exc.strerror or exc}") from None
        sub = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        if sub:
            raise OutError(p, f"holds folders ({', '.join(sorted(sub)[:3])}); a result set "
                              "replaces the whole folder, so give a new or a results-only "
                              "folder")
        parent = p.absolute().parent
    else:
        parent = p.absolute().parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise OutError(p, "cannot be created: a parent is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutError(p, f"cannot be created: {parent} is not writable")
    return p


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False when the
    system cannot."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):  # not Linux / no such call
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _carry_over(old: Path, new: Path) -> None:
    """Link (or copy) the files of ``old`` that the new set does not replace into ``new``;
    symbolic links are copied as links, never followed."""
    for entry in os.scandir(old):
        target = new / entry.name
        if target.exists() or target.is_symlink():
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_file(follow_symlinks=False):
            try:
                os.link(entry.path, target)
            except OSError:
                shutil.copy2(entry.path, target, follow_symlinks=False)


@contextlib.contextmanager
def result_set(out: str | Path) -> Iterator[Path]:
    """Write a whole result set atomically: yield a temporary folder beside ``out``; on
    normal exit it replaces ``out`` in one step.

    Files of an existing ``out`` that the new set does not contain are kept (linked into
    the new folder). Any exception in the block, including ``KeyboardInterrupt``, removes
    the temporary folder and leaves ``out`` untouched. A deferred SIGINT / SIGTERM (see
    :mod:`simkit._interrupt`) pending at the end cancels the commit the same way.

    Examples
    --------
    >>> with result_set("results") as tmp:
    ...     write_json(tmp / "summary.json", {"ok": True})
    """
    from simkit import _interrupt

    _interrupt.check()
    dest = check_out_dir(out).absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield staging
        _interrupt.check()  # the last moment an interrupt can cancel the set
        mode = (stat.S_IMODE(dest.stat().st_mode) if dest.is_dir()
                else 0o777 & ~_umask())
        os.chmod(staging, mode)
        if dest.is_dir():
            _carry_over(dest, staging)
            if not _exchange(staging, dest):
                old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old",
                                            dir=dest.parent))
                os.rename(dest, old / dest.name)
                os.rename(staging, dest)
                staging = old
        else:
            os.rename(staging, dest)
        COMMITTED.append(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def require_pandas() -> Any:
    """The pandas module, or ``ImportError(PANDAS_MISSING)`` when it is not installed."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(PANDAS_MISSING) from None
    return pd


def require_pyarrow() -> Any:
    """The pyarrow module, or ``ImportError(PYARROW_MISSING)`` when it is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(PYARROW_MISSING) from None
    del pq  # checked here, imported again by the caller
    return pa


def long_rows(stats: Mapping[str, Mapping[str, Any]], units: Mapping[str, str],
              basis: Mapping[str, str] | None = None, **fixed: Any) -> list[dict[str, Any]]:
    """Tidy rows, one per party x measure, for CSVs and data frames.

    Parameters
    ----------
    stats : mapping of party to mapping of measure to value
        E.g. ``summary["parties"]`` plus ``{"TOTAL": ...}``; a measure's standard error is
        the value of ``"<measure>_se"`` when present (empty otherwise).
    units : mapping of measure to unit
        The measures to write, in order, and their units (``"yuan"``, ``"probability"``,
        ``"percent"``...); measures a party lacks are skipped.
    basis : mapping of measure to str, optional
        Time basis per measure (``"per_year"`` or ``"horizon"``); adds a ``basis`` column.
    **fixed
        Leading columns with the same value in every row (``scenario``, ``seed``...).

    Returns
    -------
    list of dict
        Keys: the ``fixed`` ones, ``unit``, ``party``, ``measure``, ``value``, ``se``
        (``None`` when none), then ``basis`` when given.
    """
    rows = []
    for party, st in stats.items():
        for measure, unit in units.items():
            if measure not in st or isinstance(st[measure], Mapping):
                continue
            row = {**fixed, "unit": unit, "party": party, "measure": measure,
                   "value": st[measure], "se": st.get(f"{measure}_se")}
            if basis is not None:
                row["basis"] = basis.get(measure, "")
            rows.append(row)
    return rows


def closed_form_rows(scenario: str, estimate: Any) -> list[dict[str, Any]]:
    """The long-format ``parties.csv`` of ``simkit run --analytic`` (the columns of
    :meth:`simkit.results.RunReport.long_rows`; ``seed`` empty, no standard errors).

    Parameters
    ----------
    scenario : str
        The scenario's name.
    estimate : simkit.estimate.ClosedForm
    """
    stats: dict[str, Any] = {r["party"]: r for r in estimate.rows()}
    stats["TOTAL"] = {"el": float(sum(r["el"] for r in estimate.rows())),
                      "fee_income": float(sum(r["fee_income"] for r in estimate.rows()))}
    units = {"el": "yuan", "fee_income": "yuan", "net_result": "yuan",
             "el_pct_guaranteed": "percent"}
    return long_rows(stats, units, dict.fromkeys(units, "per_year"), scenario=scenario,
                     seed=None, horizon_years=1)


def write_columns_parquet(path: str | Path, columns: Mapping[str, Any],
                          metadata: Mapping[str, Any] | None = None) -> Path:
    """Write equal-length arrays as one Parquet table atomically.

    Parameters
    ----------
    path : str or Path
    columns : mapping of column name to array, each shape (n,)
    metadata : mapping, optional
        Written as JSON strings in the file's key-value metadata.

    Raises
    ------
    ImportError
        :data:`PYARROW_MISSING` when pyarrow is not installed.
    """
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    table = pa.table(dict(columns))
    if metadata:
        table = table.replace_schema_metadata({k: json.dumps(jsonable(v))
                                               for k, v in metadata.items()})
    return atomic_write(path, lambda fh: pq.write_table(table, fh))


def save_des(out: str | Path, summary: Mapping[str, Any], result: Any) -> list[Path]:
    """Write the result set of ``simkit des --out`` atomically (see :func:`result_set`).

    Parameters
    ----------
    out : str or Path
        The result folder.
    summary : mapping
        :meth:`simkit.des.DesRuns.summary` (written as ``des_summary.json``).
    result : simkit.des.DesResult
        Replication 0: ``des_series.csv`` (monthly, long format:
        :meth:`simkit.des.DesResult.to_table`) and its figures.

    Returns
    -------
    list of Path
        The files of the set, as they are in ``out``.
    """
    from simkit.des import plot_des

    with result_set(out) as tmp:
        names = [write_json(tmp / "des_summary.json", summary).name]
        table = result.to_table()
        keys = list(table)
        names.append(write_csv(tmp / "des_series.csv",
                               [{k: table[k][i] for k in keys}
                                for i in range(len(table[keys[0]]))]).name)
        names += [p.name for p in plot_des(result, tmp)]
    return [Path(out) / n for n in names]


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values: mappings (keys as strings), lists, NumPy arrays and
    scalars converted (``tolist``), non-finite floats as ``None``; the one encoder of
    every result set and of the commands' ``--json`` output."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NumPy values converted, NaN -> null)."""
    return atomic_write_text(path, json.dumps(jsonable(obj), indent=2, ensure_ascii=False)
                             + "\n")


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write a list of dicts as CSV atomically (columns from the first row)."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: jsonable(v) for k, v in row.items()})
    return atomic_write_text(path, buf.getvalue())


def fmt_money(value: float, unit: float = 1e6, digits: int = 2) -> str:
    """Format yuan in ``unit`` (default million yuan) with thousands separators."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value / unit:,.{digits}f}"


def injection_lines(injections: Mapping[str, Any], horizon: int, unit_label: str,
                    ) -> list[str]:
    """Text-report lines of the capital injections of a Monte Carlo summary
    (:meth:`simkit.lossresult.LossResult.injection_summary`): per party the expected
    amount received or paid over the horizon (million yuan) and its probability; ``[]``
    when the rule is off."""
    if not injections:
        return []
    lines = ["", f"capital injections within {horizon} year" + ("s" if horizon > 1 else "")
             + f": expected amount ({unit_label}) and probability"]
    for p, c in injections["parties"].items():
        if c["received"] > 0:
            lines.append(f"  {p} receives {fmt_money(c['received'])} "
                         f"(P {c['p_received']:.2%})")
        if c["paid"] > 0:
            lines.append(f"  {p} pays {fmt_money(c['paid'])} (P {c['p_paid']:.2%})")
    ext = injections["external"]
    if ext["paid"] > 0:
        lines.append(f"  the budget outside the scenario pays {fmt_money(ext['paid'])} "
                     f"(P {ext['p_paid']:.2%})")
    if len(lines) == 2:
        lines.append("  none on any path")
    return lines


def format_table(rows: Iterable[Sequence[str]], header: Sequence[str],
                 align: str | None = None) -> str:
    """A fixed-width text table; ``align`` has one of ``<``/``>`` per column."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    align = align or "<" + ">" * (len(header) - 1)
    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths, strict=True))
    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def write_parquet(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path | None:
    """Write a list of dicts as Parquet atomically; ``None`` (nothing written) without
    pyarrow. Columns are the union of the rows' keys, in first-seen order."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    keys = list(dict.fromkeys(k for r in rows for k in r))
    columns = {}
    for k in keys:
        vals = [jsonable(r.get(k)) for r in rows]
        if any(isinstance(v, list | dict) for v in vals):
            vals = [None if v is None else json.dumps(v) for v in vals]
        elif {type(v) for v in vals if v is not None} - {int, float, bool} and any(
                v is not None for v in vals):
            vals = [None if v is None else str(v) for v in vals]
        columns[k] = vals
    table = pa.table(columns)
    return atomic_write(path, lambda fh: pq.write_table(table, fh))
