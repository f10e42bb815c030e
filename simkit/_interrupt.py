"""Deferred interrupts: SIGINT / SIGTERM take effect between blocks, never inside a kernel.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the interpreter
happens to be, including inside a call into a Numba-compiled kernel, where it surfaces as
``SystemError: CPUDispatcher(...) returned a result with an exception set`` (or worse).
While :func:`deferred` is active the handlers only record the signal; the simulation loops
call :func:`check` at safe points (between Monte Carlo blocks, between DES months and
replications, before a result set is committed), which raises :class:`Interrupted`.

Nothing here is imported by ``import simkit``; the module uses the standard library only.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["Interrupted", "as_completed", "check", "clear", "deferred", "exit_status",
           "ignore_in_worker", "pending", "result"]

T = TypeVar("T")

#: Signals that are deferred.
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_pending: int | None = None  # the first signal received while deferred


class Interrupted(KeyboardInterrupt):
    """Raised at a safe point after SIGINT or SIGTERM arrived.

    Attributes
    ----------
    signum : int
        The signal received (``signal.SIGINT`` or ``signal.SIGTERM``).
    """

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``"SIGINT"``."""
        return signal.Signals(self.signum).name


def exit_status(signum: int) -> int:
    """The shell's exit status for a command ended by ``signum``: ``128 + signum``
    (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(signum)


def _record(signum: int, frame: Any) -> None:
    global _pending
    if _pending is None:
        _pending = signum


def pending() -> int | None:
    """The signal received and not yet acted on, or None."""
    return _pending


def check() -> None:
    """Raise :class:`Interrupted` if a deferred signal arrived (cheap; call often)."""
    if _pending is not None:
        raise Interrupted(_pending)


def clear() -> None:
    """Forget a pending signal (after it has been reported)."""
    global _pending
    _pending = None


@contextmanager
def deferred(restore: bool = True) -> Iterator[None]:
    """Record SIGINT / SIGTERM instead of acting on them while the block runs.

    Parameters
    ----------
    restore : bool
        Put the previous handlers back on exit (default). The console entry point passes
        ``False`` so that a signal arriving while the interpreter shuts down is recorded
        too, instead of printing a traceback.

    Only the main thread can install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _record) for s in SIGNALS}
    try:
        yield
    finally:
        if restore:
            for s, handler in previous.items():
                signal.signal(s, handler)


def result(future: Future[T], poll_seconds: float = 0.2) -> T:
    """``future.result()``, calling :func:`check` while waiting.

    Waiting on a future is not interrupted by a handler that only records the signal, so
    the wait polls: a deferred signal ends it within ``poll_seconds``.
    """
    while True:
        check()
        try:
            return future.result(timeout=poll_seconds)
        except FutureTimeout:
            continue


def as_completed(futures: Iterable[Future[Any]], poll_seconds: float = 0.2
                 ) -> Iterator[Future[Any]]:
    """Like :func:`concurrent.futures.as_completed`, calling :func:`check` while waiting."""
    waiting = set(futures)
    while waiting:
        check()
        finished, waiting = wait(waiting, timeout=poll_seconds, return_when=FIRST_COMPLETED)
        yield from finished


def ignore_in_worker() -> None:
    """Initializer of worker processes: ignore SIGINT (the parent handles Ctrl-C and stops
    the pool) and die on SIGTERM as usual (a forked worker inherits the parent's
    recording handler, which would make it ignore SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
