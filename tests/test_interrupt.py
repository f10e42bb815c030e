"""Interrupting ``simkit run --out`` and ``simkit des --out`` (issue 7, items 10, 11, 13).

Each case starts the command in a subprocess, waits until it has installed its signal
handlers, sends SIGINT or SIGTERM after a fraction of a reference run's duration and
checks the outcome, whatever moment the signal landed: exit status 130 / 143 with one line
on stderr and no traceback (or 0 when the command had already finished), ``DIR`` either
exactly as it was or holding the complete new set (never a mixture), and no temporary
files or folders left beside it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="needs Linux /proc to see when handlers are ready")

RUN_TOML = """
[scenario]
name = "tiny_run"

[parties.bank]
[parties.guarantor]
net_assets = 1e9
leverage_limit = 10
[parties.provincial]
[parties.national_fund]

[[agreements]]
name = "std"
layers = [
  { party = "bank", share = 0.2 },
  { party = "guarantor", share = 0.4 },
  { party = "provincial", share = 0.2 },
  { party = "national_fund", share = 0.2, cap = { rate = 0.04, overflow = "guarantor" } },
]
fees = [{ from = "borrower", to = "guarantor", rate = 0.01 }]

[[segments]]
name = "smes"
count = 1000
exposure = 1_000_000
default_prob = 0.02
lgd = 0.45

[run]
n_paths = 4000
seed = 7
block_size = 250
"""

DES_TOML = """
[scenario]
name = "tiny_des"

[parties.bank]
[parties.guarantor]
net_assets = 5e9
leverage_limit = 15
[parties.provincial]
net_assets = 2e10
leverage_limit = 10
[parties.local_gov]

[[agreements]]
name = "a4321"
recovery_lag_years = 0.5
layers = [
  { party = "bank", share = 0.2 },
  { party = "guarantor", share = 0.4 },
  { party = "provincial", share = 0.3, lag_days = 30 },
  { party = "local_gov", share = 0.1, lag_days = 10 },
]
fees = [{ from = "borrower", to = "guarantor", rate = 0.01, kind = "guarantee" }]

[[segments]]
name = "smes"
count = 3000
exposure = { dist = "lognormal", median = 800_000, sigma = 0.5 }
default_prob = { dist = "uniform", low = 0.02, high = 0.06 }
lgd = { mean = 0.6, sd = 0.2 }
interest_margin = 0.05

[run]
seed = 11

[des]
years = 2
mode = "batch"
"""

COMMANDS = {"run": ("run", RUN_TOML, ["--quiet"]), "des": ("des", DES_TOML, ["--quiet"])}
FRACTIONS = (0.0, 0.35, 0.7, 1.0)
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _handlers_ready(pid: int) -> bool:
    """True once the process catches SIGTERM (simkit's deferring handler is installed)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # gone already
    for line in text.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & SIGTERM_BIT)
    return False


def _start(command: str, scenario: Path, out: Path) -> subprocess.Popen[str]:
    name, _, extra = COMMANDS[command]
    proc = subprocess.Popen(
        [sys.executable, "-m", "simkit.cli", name, str(scenario), *extra, "--out", str(out)],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _handlers_ready(proc.pid) and proc.poll() is None:
        if time.monotonic() > deadline:  # pragma: no cover - a broken start
            proc.kill()
            pytest.fail("simkit did not install its signal handlers")
        time.sleep(0.002)
    return proc


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_ino, p.read_bytes()) for p in folder.iterdir()}


def _valid(path: Path) -> bool:
    data = path.read_bytes()
    if path.suffix == ".png":
        return data[:4] == b"\x89PNG" and len(data) > 1000
    if path.suffix == ".json":
        return isinstance(json.loads(data), dict)
    return data.count(b"\n") > 1  # CSV: header and rows


@pytest.fixture(scope="module", params=sorted(COMMANDS))
def reference(request: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A complete, uninterrupted run: its duration (from handlers ready to exit) and set."""
    command = request.param
    base = tmp_path_factory.mktemp(f"ref_{command}")
    scenario = base / "s.toml"
    scenario.write_text(COMMANDS[command][1])
    for attempt in ("warm-up", "timed"):  # the first run fills Numba's and matplotlib's caches
        out = base / attempt
        proc = _start(command, scenario, out)
        t_ready = time.monotonic()
        _, err = proc.communicate(timeout=300)
        seconds = time.monotonic() - t_ready
        assert proc.returncode == 0, err
        assert err == ""
    names = sorted(p.name for p in out.iterdir())
    assert all(_valid(out / n) for n in names)
    return {"command": command, "toml": COMMANDS[command][1], "names": names,
            "seconds": seconds,
            "files": {n: (out / n).read_bytes() for n in names}}


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_interrupted_command_leaves_out_as_it_was_or_complete(
        reference: dict[str, Any], fraction: float, tmp_path: Path) -> None:
    # alternate the signals over the moments so both meet early and late moments
    signum = (signal.SIGINT, signal.SIGTERM)[
        (FRACTIONS.index(fraction) + (reference["command"] == "des")) % 2]
    scenario = tmp_path / "s.toml"
    scenario.write_text(reference["toml"])
    out = tmp_path / "out"
    out.mkdir()
    for name, data in reference["files"].items():  # an earlier complete result set
        (out / name).write_bytes(data)
    before = _snapshot(out)

    proc = _start(reference["command"], scenario, out)
    time.sleep(fraction * reference["seconds"])
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)

    assert "Traceback" not in err and "Error" not in err, err
    after = _snapshot(out)
    unchanged = after == before
    replaced = (sorted(after) == reference["names"]
                and all(after[n][0] != before[n][0] for n in after)
                and all(_valid(out / n) for n in after))
    assert unchanged or replaced, f"mixed result set: {sorted(after)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.toml"], "debris left"
    if proc.returncode in (0, -signum):
        # the signal came after the command had finished: 0 when it was recorded, -signum
        # (the shell shows 128 + signum) when it landed while the interpreter was exiting
        assert replaced and err == ""
        return
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"interrupted by {signal.Signals(signum).name}; ")
    if "nothing was written" in lines[0]:
        assert unchanged
    else:
        assert "completely" in lines[0] and replaced


def _workers(pid: int) -> list[int]:
    """Child processes of ``pid`` running the same command line (pool workers)."""
    me = Path(f"/proc/{pid}/cmdline").read_bytes()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid and (d / "cmdline").read_bytes() == me:
                found.append(int(d.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_worker_is_one_line_not_a_traceback(signum: int, tmp_path: Path) -> None:
    """A worker of ``--workers 2`` killed mid-run: one line, status 1 (item 11)."""
    scenario = tmp_path / "s.toml"
    scenario.write_text(RUN_TOML.replace("n_paths = 4000", "n_paths = 2_000_000"))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simkit.cli", "run", str(scenario), "--quiet", "--workers", "2",
         "--out", str(out)], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 120
        while not (workers := _workers(proc.pid)):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no worker process started"
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(workers[0], signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # pragma: no cover - a hang
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines == ["error: a worker process died (killed by a signal, or out of memory); "
                     "nothing was written"]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


# --------------------------------------------------------------------------------------
# in-process: deferred signals stop the engines at their safe points
# --------------------------------------------------------------------------------------
def test_deferred_signal_is_recorded_then_raised_at_check() -> None:
    from simkit import _interrupt

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with _interrupt.deferred():
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt right here
        time.sleep(0.01)
        assert _interrupt.pending() == signal.SIGINT
        with pytest.raises(_interrupt.Interrupted) as info:
            _interrupt.check()
        _interrupt.clear()
        _interrupt.check()  # nothing pending any more
    assert info.value.signum == signal.SIGINT and info.value.name == "SIGINT"
    assert isinstance(info.value, KeyboardInterrupt)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert _interrupt.exit_status(signal.SIGINT) == 130
    assert _interrupt.exit_status(signal.SIGTERM) == 143


@pytest.mark.parametrize("engine", ["monte_carlo", "des"])
def test_engines_stop_at_a_safe_point_when_a_signal_is_pending(engine: str,
                                                               minimal: dict[str, Any]
                                                               ) -> None:
    from simkit import _interrupt, from_dict

    if engine == "monte_carlo":
        from simkit.montecarlo import simulate

        def job() -> Any:
            return simulate(from_dict(minimal))
    else:
        from simkit.des import run_des
        from tests.test_des import scenario as des_scenario

        def job() -> Any:
            return run_des(des_scenario(**{"des.years": 1}), replications=2)

    with _interrupt.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        try:
            with pytest.raises(_interrupt.Interrupted) as info:
                job()
        finally:
            _interrupt.clear()
    assert info.value.signum == signal.SIGTERM
