"""Fuzz battery (issue 7): broken scenario files, ``with_changes`` calls and loan tapes.

Every generated input must end in exactly one of two ways:

* a :class:`ScenarioError` whose one-line message starts with the file it names (the
  scenario or its tape) and, for a field error, the dotted field path; or
* a valid scenario that, shrunk to a tiny size, runs in both engines with money
  conserved: per Monte Carlo path the parties' net losses sum to the book's net loss
  (tolerance scaled by the gross amounts), and the DES passes ``DesResult.check()``
  (a DES run on a scenario without applicants must be refused with a ScenarioError).

``simkit validate FILE`` must return 0 or 2 and print only ``ok:`` / ``warning:`` /
``error:`` lines; no exception escapes.

CI runs a few hundred derandomized examples in total. The slow profile draws
``SIMKIT_FUZZ_EXAMPLES`` examples in total (default 10,000), randomly::

    SIMKIT_FUZZ_EXAMPLES=10000 python -m pytest tests/test_fuzz.py -m slow \\
        -p no:cacheprovider --hypothesis-show-statistics
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings

from simkit import ScenarioError, from_dict, load
from tests.strategies import BASE, changes_calls, scenario_dicts, scenario_files, tape_files

#: Share of the examples each battery gets.
SHARES = {"files": 0.35, "dicts": 0.15, "changes": 0.25, "tapes": 0.25}
CI_TOTAL = 320
SLOW_TOTAL = int(os.environ.get("SIMKIT_FUZZ_EXAMPLES", "10000"))
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.large_base_example]


def _settings(kind: str, slow: bool) -> settings:
    total = SLOW_TOTAL if slow else CI_TOTAL
    # no explain phase: its report imports modules that warn (DeprecationWarning), which
    # filterwarnings=error turns into an INTERNALERROR hiding the falsifying example
    return settings(max_examples=max(1, round(total * SHARES[kind])), deadline=None,
                    derandomize=not slow, database=None, suppress_health_check=_HEALTH,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])


# --------------------------------------------------------------------------------------
# outcome checks
# --------------------------------------------------------------------------------------
def _check_error(exc: ScenarioError, files: set[str]) -> None:
    msg = str(exc)
    assert exc.file in files, (exc.file, files, msg)
    assert msg.startswith(f"{exc.file}: "), msg
    if exc.path:  # the field path leads the message (long keys cut, see _short_path)
        from simkit._validate import _short_path

        assert msg[len(exc.file) + 2:].startswith(_short_path(exc.path)), msg
    assert "\n" not in msg and "\r" not in msg, msg
    assert len(msg) < 2000, msg[:200]


def _tiny(s: Any) -> Any:
    """The scenario shrunk to a few dozen loans, paths and applications."""
    changes: dict[str, Any] = {"run.n_paths": 48, "run.block_size": 16,
                               "run.horizon_years": min(s.run.horizon_years, 2),
                               "des.years": min(s.des.years, 0.5)}
    for i, seg in enumerate(s.segments):
        if seg.count > 12:
            changes[f"segments[{i}].count"] = 12
        if seg.applications_per_year is not None and seg.applications_per_year > 24:
            changes[f"segments[{i}].applications_per_year"] = 24
    return s.with_changes(changes)


def _run_both(s: Any) -> None:
    from simkit.des import run_des
    from simkit.montecarlo import simulate

    tiny = _tiny(s)
    res = simulate(tiny)
    assert np.isfinite(res.losses).all() and np.isfinite(res.total_loss).all()
    gross = (np.abs(res.paid).sum(axis=1) + np.abs(res.recovered).sum(axis=1)
             + np.abs(res.total_loss))
    err = np.abs(res.losses.sum(axis=1) - res.total_loss)
    assert np.all(err <= 1e-9 * gross + 1e-6), (err.max(), gross.max())
    rate = sum(seg.count if seg.applications_per_year is None else seg.applications_per_year
               for seg in tiny.segments)
    if rate > 0:
        runs = run_des(tiny)
        _des_check(runs[0])
    else:
        with pytest.raises(ScenarioError, match="segments"):
            run_des(tiny)


def _des_check(result: Any) -> None:
    """``DesResult.check()``: conservation, state versus ledger, each loss borne once."""
    result.check()


def _outcome(build: Callable[[], Any], files: set[str]) -> None:
    try:
        s = build()
    except ScenarioError as exc:
        _check_error(exc, files)
        event("refused")
        return
    if s.tape is not None:
        from simkit.book import read_tape

        try:
            read_tape(s.tape, s)
        except ScenarioError as exc:
            _check_error(exc, {s.tape})
            event("refused (tape)")
            return
    _run_both(s)
    event("valid: ran both engines")


def _cli_validate(path: Path) -> None:
    from simkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["validate", str(path)])
    assert rc in (0, 2), rc
    lines = out.getvalue().splitlines() + err.getvalue().splitlines()
    assert lines and all(x.startswith(("ok: ", "warning: ", "error: ")) for x in lines), lines
    assert (rc == 0) == out.getvalue().startswith("ok: ")
    assert "internal error" not in err.getvalue(), err.getvalue()


# --------------------------------------------------------------------------------------
# bodies
# --------------------------------------------------------------------------------------
def _scenario_file(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "s.toml"
        f.write_bytes(raw)
        (Path(d) / "loans.csv").write_text("exposure,default_prob,lgd\n1e6,0.02,0.4\n")
        tapes = {str(Path(d) / t) for t in ("loans.csv", "tape")}

        def build() -> Any:
            return load(f)

        try:
            s = load(f)
            if s.tape is not None:
                tapes.add(s.tape)
        except ScenarioError:
            pass
        _outcome(build, {str(f), *tapes})
        _cli_validate(f)


def _scenario_dict(data: dict[str, Any]) -> None:
    _outcome(lambda: from_dict(data, source="fuzz.toml"), {"fuzz.toml"})


_BASE_SCENARIO = from_dict(BASE, source="fuzz.toml")


def _changes(changes: dict[Any, Any]) -> None:
    _outcome(lambda: _BASE_SCENARIO.with_changes(changes), {"fuzz.toml"})


def _tape(raw: bytes) -> None:
    data = {k: v for k, v in BASE.items() if k != "segments"}
    data["book"] = {"tape": "loans.csv"}
    with tempfile.TemporaryDirectory() as d:
        tape = Path(d) / "loans.csv"
        tape.write_bytes(raw)
        f = Path(d) / "s.toml"
        from tests.strategies import to_toml

        f.write_text(to_toml(data), encoding="utf-8")
        s = load(f)
        _outcome(lambda: s, {str(tape)})
        _cli_validate(f)


# --------------------------------------------------------------------------------------
# tests: a derandomized CI version and a slow random version of each battery
# --------------------------------------------------------------------------------------
#: Hypothesis warns when it builds the repr of a 100,000-character example; not a defect.
_LARGE_REPR = pytest.mark.filterwarnings("ignore:Generating overly large repr")


def _pair(kind: str, strategy: Any, body: Callable[..., None]) -> tuple[Any, Any]:
    @_LARGE_REPR
    @_settings(kind, slow=False)
    @given(strategy)
    def ci(x: Any) -> None:
        body(x)

    @pytest.mark.slow
    @_LARGE_REPR
    @_settings(kind, slow=True)
    @given(strategy)
    def slow(x: Any) -> None:
        body(x)

    ci.__doc__ = slow.__doc__ = body.__doc__
    return ci, slow


test_fuzz_scenario_files, test_fuzz_scenario_files_slow = _pair(
    "files", scenario_files(), _scenario_file)
test_fuzz_scenario_dicts, test_fuzz_scenario_dicts_slow = _pair(
    "dicts", scenario_dicts(), _scenario_dict)
test_fuzz_with_changes, test_fuzz_with_changes_slow = _pair(
    "changes", changes_calls(), _changes)
test_fuzz_tapes, test_fuzz_tapes_slow = _pair(
    "tapes", tape_files(), _tape)


def test_base_scenario_runs_in_both_engines() -> None:
    """The battery's starting point is valid and runs (so valid mutants are exercised)."""
    _run_both(_BASE_SCENARIO)
