"""Monthly snapshots of the discrete-event model: the one owner of the stock series.

:class:`Monthly` records, at each month end, every party's capital, guarantee liability
balance (plain and risk-weighted) and leverage, and each credit line's peak use within
the month; a deferred interrupt (Ctrl-C, SIGTERM) ends the run at a month end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simkit import _interrupt
from simkit.des.codes import DAYS_PER_MONTH, Process

if TYPE_CHECKING:
    import simpy

    from simkit.des.parties import CreditLineState, Institution

__all__ = ["STOCK_SERIES", "Monthly"]

#: Monthly stock series (per party column).
STOCK_SERIES = ("capital", "outstanding", "weighted_outstanding", "leverage")


class Monthly:
    """Month-end stocks per party and credit-line use per line.

    Attributes
    ----------
    stocks : dict of str to ndarray, shape (n_months + 1, n_parties)
        :data:`STOCK_SERIES` (the last row unused: the run-off has no month ends).
    line_use : ndarray, shape (n_months, n_lines)
        Yuan used in the line's current period at month end (peak within the month).
    """

    def __init__(self, env: simpy.Environment, horizon: float, n_months: int,
                 institutions: list[Institution], lines: list[CreditLineState]):
        self.env = env
        self.horizon = horizon
        self.n_months = n_months
        self.institutions = institutions
        self.lines = lines
        shape = (n_months + 1, len(institutions))
        self.stocks = {k: np.zeros(shape) for k in STOCK_SERIES}
        self.line_use = np.zeros((n_months, len(lines)))

    def record_months(self) -> Process:
        """Process: snapshot the stocks at each month end (the last one after the run to
        the horizon, by the model)."""
        env = self.env
        for m in range(self.n_months - 1):
            yield env.timeout((m + 1) * DAYS_PER_MONTH - env.now)
            self.snapshot(m)
            _interrupt.check()  # a deferred Ctrl-C / SIGTERM ends the run at a month end

    def snapshot(self, m: int) -> None:
        """Record capital, balances, leverage and credit-line use for month ``m``."""
        for a in self.institutions:
            j = a.index
            self.stocks["capital"][m, j] = a.capital
            self.stocks["outstanding"][m, j] = a.outstanding
            self.stocks["weighted_outstanding"][m, j] = a.weighted
            self.stocks["leverage"][m, j] = a.leverage()
        now = min(self.env.now, self.horizon - 1e-9)
        for k, line in enumerate(self.lines):
            line.roll(now)
            # peak use within the month: a period that ended during it (the annual reset
            # falls on a month end) counts with its full use, so exhaustion shows
            peak = line.used
            start = line.period * line.period_days
            if start > now - DAYS_PER_MONTH and line.period - 1 in line.history:
                peak = max(peak, line.history[line.period - 1])
            self.line_use[m, k] = peak
