"""simkit: simulate credit risk-sharing between banks and government guarantee institutions.

Public API (everything else lives in submodules)::

    load(path)            read and validate a scenario TOML file -> Scenario
    from_dict(data)       the same from a mapping
    Scenario              frozen scenario; .with_changes({"run.n_paths": 1000}) for variants
    ScenarioError         invalid input: names file, field path, bad value and what is allowed

Submodules: ``scenario``, ``sharing`` (the waterfall), ``analytic`` (closed forms),
``measures`` (risk measures with standard errors), ``book``, ``factors``, ``montecarlo``,
``des`` (SimPy model), ``results``, ``experiments``, ``plots``, ``report``, ``cli``.
Importing simkit imports nothing beyond the standard library (the names above are loaded
on first use), so the ``simkit`` command can defer Ctrl-C before NumPy loads.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simkit.scenario import Scenario, ScenarioError, from_dict, load

__all__ = ["Scenario", "ScenarioError", "__version__", "from_dict", "load"]

_FROM_SCENARIO = ("Scenario", "ScenarioError", "from_dict", "load")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("simkit")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def __getattr__(name: str) -> Any:
    """Load the public names (and submodules, ``simkit.montecarlo`` ...) on first use."""
    if name in _FROM_SCENARIO:
        value = getattr(import_module("simkit.scenario"), name)
    elif name == "__version__":
        value = _version()
    elif not name.startswith("__"):
        try:
            value = import_module(f"simkit.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"simkit.{name}":
                raise
            raise AttributeError(f"module 'simkit' has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module 'simkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
