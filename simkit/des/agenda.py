"""A light queue of timed callbacks beside SimPy's, for the many per-loan claim steps.

A defaulting loan goes through a fixed chain of steps (default, claim, payment, each
layer's reimbursement, recovery; :mod:`simkit.des.claims`). Run as one SimPy process per
loan, each step costs a generator resumption and a ``Timeout`` object; the national book
has about a million such steps. :class:`Agenda` holds them instead as plain
``(time, sequence, callback, arguments)`` entries on a heap and :meth:`Agenda.run`
interleaves them with SimPy's own events in time order:

* entries are kept per day and only those of the days reached on a heap (small: a
  day's steps), ordered by ``(time, sequence)``;
* an agenda entry due strictly before SimPy's next event runs first, with its own time
  passed to the callback (SimPy's clock, ``env.now``, stays at its last event: agenda
  callbacks take the time as their first argument and never read ``env.now``);
* entries due at the same time run in the order they were scheduled (as SimPy orders
  its events by creation), and SimPy's event runs first when both are due at the same
  time (claim times are continuous, so such ties have probability zero);
* a SimPy event that an agenda callback creates (a cap's settlement,
  :meth:`simkit.des.caps.CapSettlement.accrue`) is placed at the time it would have had
  when created by a process at the callback's time (:func:`timeout_at`: exactly, unless
  no delay reaches that time from SimPy's clock, then one ulp of it away).

The order of every payment, and so every float of the run, is the one the per-loan
processes gave (checked bit for bit on every shipped scenario and the mechanisms), but
for a tie at the same time between a claim step and a SimPy event (claim times are
continuous: probability zero) and a settlement time one ulp off (above).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

import simpy
from simpy.core import StopSimulation

from simkit import _interrupt

__all__ = ["Agenda", "timeout_at"]


def timeout_at(env: simpy.Environment, t: float) -> simpy.Timeout:
    """A SimPy timeout due at exactly ``t`` (days, ``t >= env.now``).

    ``env.timeout(t - env.now)`` is due at ``env.now + (t - env.now)``, which may differ
    from ``t`` by an ulp; the delay is nudged until the sum is ``t`` (a few steps at
    most). Some times cannot be reached from ``env.now`` at all (``now < t / 2`` and the
    sums fall half-way between floats): the timeout is then due one ulp from ``t``.
    """
    now = env.now
    delay = t - now
    for _ in range(64):
        got = now + delay
        if got == t:
            break
        delay = math.nextafter(delay, math.inf if got < t else -math.inf)
    else:
        delay = t - now
    return env.timeout(max(delay, 0.0))


class Agenda:
    """Timed callbacks run in time order, interleaved with a SimPy environment's events.

    Parameters
    ----------
    env : simpy.Environment

    Attributes
    ----------
    now : float
        Time (days) of the last agenda entry run (0 before any).
    scheduled : int
        Entries scheduled so far.
    """

    __slots__ = ("_buckets", "_day", "_days", "_heap", "env", "now", "scheduled")

    def __init__(self, env: simpy.Environment):
        self.env = env
        #: the entries of the days up to ``_day`` (a heap); later ones wait in
        #: ``_buckets`` per day (``_days``: a heap of those days), so the heap stays small
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._buckets: dict[int, list[tuple[float, int, Callable[..., None],
                                            tuple[Any, ...]]]] = {}
        self._days: list[int] = []
        self._day = -1
        self.now = 0.0
        self.scheduled = 0

    def at(self, t: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(t, *args)`` at time ``t`` (days, finite, >= 0)."""
        self.scheduled += 1
        entry = (t, self.scheduled, fn, args)
        day = int(t)
        if day <= self._day:
            heapq.heappush(self._heap, entry)
            return
        bucket = self._buckets.get(day)
        if bucket is None:
            self._buckets[day] = [entry]
            heapq.heappush(self._days, day)
        else:
            bucket.append(entry)

    def run(self, until: float | None = None, check_every: int = 4096) -> None:
        """Run the agenda and the environment together until time ``until`` (days; as
        ``env.run(until)``: events at ``until`` are left, ``env.now`` ends at it), or
        until neither has anything left (``None``). A deferred interrupt is checked
        every ``check_every`` events."""
        env = self.env
        heap = self._heap
        days = self._days
        pop = heapq.heappop
        peek = env.peek
        step = env.step
        if until is not None:
            # as env.run(until): created first, it runs before every other event due at
            # `until` (none due then exists yet when the run starts at 0)
            stop = env.timeout(until - env.now)
            stop.callbacks.append(StopSimulation.callback)
        n = 0
        try:
            while True:
                if not heap and days:  # the next day with entries
                    self._day = day = pop(days)
                    heap.extend(self._buckets.pop(day))
                    heapq.heapify(heap)
                t_sim = peek()
                if heap and heap[0][0] < t_sim:
                    t, _seq, fn, args = pop(heap)
                    self.now = t
                    fn(t, *args)
                elif t_sim == math.inf:
                    return
                else:
                    step()
                n += 1
                if n >= check_every:
                    n = 0
                    _interrupt.check()
        except StopSimulation:
            return
