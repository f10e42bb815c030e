"""Shared fixtures: small scenario dictionaries and the shipped scenario paths."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))

# Hypothesis profiles. "ci" (the default) is derandomized and keeps no example database:
# every run tries the same examples, so a green suite stays green (``--hypothesis-seed``
# has no effect under it). "dev" explores at random (a new seed each run unless
# ``--hypothesis-seed=N`` is given) with more examples: ``HYPOTHESIS_PROFILE=dev pytest``.
settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=200, deadline=None, derandomize=False,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


MINIMAL: dict[str, Any] = {
    "scenario": {"name": "minimal"},
    "parties": {
        "bank": {},
        "guarantor": {"net_assets": 1e9, "leverage_limit": 10},
        "provincial": {},
        "national_fund": {},
    },
    "agreements": [
        {
            "name": "std",
            "layers": [
                {"party": "bank", "share": 0.2},
                {"party": "guarantor", "share": 0.4},
                {"party": "provincial", "share": 0.2},
                {
                    "party": "national_fund",
                    "share": 0.2,
                    "cap": {"rate": 0.04, "overflow": "guarantor"},
                },
            ],
            "fees": [{"from": "borrower", "to": "guarantor", "rate": 0.01}],
        }
    ],
    "segments": [
        {
            "name": "smes",
            "count": 1000,
            "exposure": 1_000_000,
            "default_prob": 0.02,
            "lgd": 0.45,
        }
    ],
    "run": {"n_paths": 2000, "seed": 7, "block_size": 500},
}


@pytest.fixture
def minimal() -> dict[str, Any]:
    """A fresh copy of a small valid scenario mapping."""
    return copy.deepcopy(MINIMAL)
