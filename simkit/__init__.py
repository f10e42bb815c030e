"""simkit: simulate credit risk-sharing between banks and government guarantee institutions.

Public API (everything else lives in submodules)::

    load(path)            read and validate a scenario TOML file -> Scenario
    from_dict(data)       the same from a mapping
    Scenario              frozen scenario; .with_changes({"run.n_paths": 1000}) for variants
    ScenarioError         invalid input: names file, field path, bad value and what is allowed

Submodules: ``scenario``, ``sharing`` (the waterfall), ``analytic`` (closed forms),
``measures`` (risk measures with standard errors), ``book``, ``factors``, ``montecarlo``,
``des`` (SimPy model), ``results``, ``experiments``, ``plots``, ``report``, ``cli``.
Importing simkit does not import matplotlib, SimPy or Dask.
"""

from importlib.metadata import PackageNotFoundError, version

from simkit.scenario import Scenario, ScenarioError, from_dict, load

try:
    __version__ = version("simkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["Scenario", "ScenarioError", "__version__", "from_dict", "load"]
