"""Notebooks run as tests through nbmake when it is installed, at a small size.

``pytest`` collects ``notebooks/*.ipynb`` with nbmake's notebook item whenever the nbmake
plugin is importable and active (no ``--nbmake`` flag needed); without it (not installed,
or ``-p no:nbmake``) each notebook is reported as skipped with the reason, and the rest of
the suite runs as usual. Sizes are small unless ``SIMKIT_N_PATHS`` / ``SIMKIT_DES_SCALE``
are already set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("SIMKIT_N_PATHS", "2000")
os.environ.setdefault("SIMKIT_DES_SCALE", "0.1")

SKIP_REASON = "nbmake is not installed (pip install nbmake): notebook not run"


class _SkippedNotebook(pytest.Item):
    """A notebook that cannot run here: reported as skipped, with the reason."""

    def runtest(self) -> None:
        pytest.skip(SKIP_REASON)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"notebook {self.path.name}"


class _NotebookPlaceholder(pytest.File):
    def collect(self) -> list[pytest.Item]:
        return [_SkippedNotebook.from_parent(self, name=self.path.name)]


def pytest_collect_file(file_path: Path, parent: Any) -> pytest.Collector | None:
    """Collect a notebook with nbmake (when active) or as a visible skip."""
    if file_path.suffix != ".ipynb" or "_build" in file_path.parts:
        return None
    config = parent.config
    if getattr(config.option, "nbmake", False):
        return None  # ``--nbmake`` given: nbmake's own hook collects it
    if config.pluginmanager.hasplugin("nbmake"):
        from nbmake.pytest_items import NotebookFile

        return NotebookFile.from_parent(parent, path=file_path)
    return _NotebookPlaceholder.from_parent(parent, path=file_path)
