"""Report files and text tables: atomic JSON/CSV writers and readable fixed-width tables.

Writers go through a temporary file in the target folder and ``os.replace``, so a reader
never sees a half-written file and an interrupted run leaves earlier results intact.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_text", "fmt_money", "format_table", "write_csv", "write_json",
           "write_parquet"]


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NumPy values converted, NaN -> null)."""
    return atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, ensure_ascii=False)
                             + "\n")


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write a list of dicts as CSV atomically (columns from the first row)."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _jsonable(v) for k, v in row.items()})
    return atomic_write_text(path, buf.getvalue())


def fmt_money(value: float, unit: float = 1e6, digits: int = 2) -> str:
    """Format yuan in ``unit`` (default million yuan) with thousands separators."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value / unit:,.{digits}f}"


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    columns = {}
    for k in keys:
        vals = [_jsonable(r.get(k)) for r in rows]
        if any(isinstance(v, list | dict) for v in vals):
            vals = [None if v is None else json.dumps(v) for v in vals]
        elif {type(v) for v in vals if v is not None} - {int, float, bool} and any(
                v is not None for v in vals):
            vals = [None if v is None else str(v) for v in vals]
        columns[k] = vals
    table = pa.table(columns)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
