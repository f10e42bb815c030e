"""The shipped scenarios: find them by name (``simkit run anhui_4321``) and list them.

Scenario files ship inside the wheel as ``simkit/scenarios/*.toml`` (mapped from the
repository's top-level ``scenarios/`` folder at build time); in a source checkout or an
editable install they are read from that folder directly.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

__all__ = ["resolve", "shipped"]


def _folders() -> list[Path]:
    here = Path(__file__).resolve().parent
    return [p for p in (here / "scenarios", here.parent / "scenarios") if p.is_dir()]


def shipped() -> dict[str, Path]:
    """Shipped scenario files by name (file stem), sorted by name."""
    out: dict[str, Path] = {}
    for folder in _folders():
        for path in sorted(folder.glob("*.toml")):
            out.setdefault(path.stem, path)
    return dict(sorted(out.items()))


def resolve(name_or_path: str | Path) -> Path:
    """A scenario path: an existing file as given, else a shipped scenario's name.

    ``"anhui_4321"`` and ``"anhui_4321.toml"`` both name the shipped file; anything that
    is neither an existing path nor a shipped name is returned unchanged, so the loader
    reports it as a file that cannot be read.
    """
    path = Path(name_or_path)
    if path.exists() or path.parent != Path("."):
        return path
    return shipped().get(path.stem if path.suffix == ".toml" else path.name, path)


def describe(path: Path) -> str:
    """The ``[scenario] description`` of a file ("" when it has none or cannot be read)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    meta = data.get("scenario", {})
    return str(meta.get("description", "")) if isinstance(meta, dict) else ""
