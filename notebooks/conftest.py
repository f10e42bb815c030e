"""Notebooks run in CI at a small size unless SIMKIT_N_PATHS is already set."""

import os

os.environ.setdefault("SIMKIT_N_PATHS", "2000")
os.environ.setdefault("SIMKIT_DES_SCALE", "0.1")
