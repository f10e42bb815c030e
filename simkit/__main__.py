"""``python -m simkit``: the ``simkit`` command (see :mod:`simkit.cli`)."""

from __future__ import annotations

import sys


def run() -> int:
    """Run the command line with this process's arguments; returns the exit status."""
    from simkit.cli import main

    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
