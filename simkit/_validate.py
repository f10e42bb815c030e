"""Input checking shared by scenario files, loan tapes and run settings.

Every check raises :class:`ScenarioError`, whose message names the file, the dotted
field path, the bad value and what is allowed, e.g.::

    scenarios/x.toml: agreements[0].layers[2].share must be in [0, 1], got 1.2
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, overload

__all__ = ["Reader", "ScenarioError"]


class ScenarioError(ValueError):
    """A scenario, loan tape or setting is invalid.

    Attributes
    ----------
    file : str
        The file (or ``"<dict>"`` for in-memory input; ``""`` for a value object checking
        itself on construction, whose path then starts with its class name).
    path : str
        Dotted field path, e.g. ``"agreements[0].layers[2].share"``.
    """

    def __init__(self, file: str, path: str, message: str):
        self.file = file
        self.path = path
        where = f"{_short_path(path)} " if path else ""
        # a value object checking itself names no file: "Layer.share must be ..."
        super().__init__(f"{file}: {where}{message}" if file else f"{where}{message}")


#: Longest excerpt of a bad value quoted in an error message (characters).
MAX_SHOWN = 60


def _short_path(path: str) -> str:
    """``path`` for a message: a key longer than :data:`MAX_SHOWN` characters (a party
    named by 5,000 letters) is cut like a long value, so one line stays one line."""
    if len(path) <= 2 * MAX_SHOWN:
        return path
    parts = path.split(".")
    return ".".join(p if len(p) <= MAX_SHOWN else f"{p[:MAX_SHOWN]}...({len(p):,} characters)"
                    for p in parts)


def _fmt(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message.

    Integers too long to print usefully are described by their digit count (a 5,000-digit
    integer cannot even be converted to a string); long strings and containers are cut.
    """
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        if abs(value) >= 10**30:
            digits = int(value.bit_length() * math.log10(2)) + 1
            return f"an integer of about {digits:,} digits"
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    if len(text) > MAX_SHOWN:
        text = text[:MAX_SHOWN] + f"... ({len(text):,} characters)"
    return text


def plain(value: Any) -> Any:
    """NumPy scalars as their Python values (``np.int64(3)`` -> ``3``), anything else as is.

    Lists, tuples and dicts are converted element by element, so a sweep over
    ``np.arange`` or ``np.linspace`` values passes through :meth:`Scenario.with_changes`.
    """
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def join(path: str, key: str | int) -> str:
    """Extend a dotted field path with a key or list index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Reader:
    """Read one TOML table, checking types, ranges and unknown keys.

    Parameters
    ----------
    data : Mapping
        The table.
    path : str
        Its dotted field path ("" for the top level).
    file : str
        The file name used in error messages.
    """

    def __init__(self, data: Any, path: str, file: str):
        if not isinstance(data, Mapping):
            raise ScenarioError(file, path, f"must be a table, got {_fmt(data)}")
        self.data = data
        self.path = path
        self.file = file
        self._seen: set[str] = set()

    # -- errors -------------------------------------------------------------------------
    def error(self, key: str | int | None, message: str) -> ScenarioError:
        """Build an error for ``key`` of this table (or the table itself)."""
        path = self.path if key is None else join(self.path, key)
        return ScenarioError(self.file, path, message)

    def bad(self, key: str, value: Any, allowed: str) -> ScenarioError:
        """Build a "must be <allowed>, got <value>" error."""
        return self.error(key, f"must be {allowed}, got {_fmt(value)}")

    # -- access -------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        self._seen.add(key)
        return self.data.get(key, default)

    def sub(self, key: str, required: bool = False) -> Reader | None:
        """A nested table as a Reader, or None when absent and not required."""
        self._seen.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "is required")
            return None
        return Reader(self.data[key], join(self.path, key), self.file)

    def table_list(self, key: str, required: bool = False) -> list[Reader]:
        """An array of tables as Readers (empty when absent and not required)."""
        self._seen.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "is required (an array of tables)")
            return []
        value = self.data[key]
        if not isinstance(value, list):
            raise self.bad(key, value, "an array of tables")
        path = join(self.path, key)
        return [Reader(item, join(path, i), self.file) for i, item in enumerate(value)]

    @overload
    def string(self, key: str, default: str, *, required: bool = ...,
               choices: Iterable[str] | None = ...) -> str: ...
    @overload
    def string(self, key: str, default: None = ..., *, required: Literal[True],
               choices: Iterable[str] | None = ...) -> str: ...
    @overload
    def string(self, key: str, default: None = ..., *, required: bool = ...,
               choices: Iterable[str] | None = ...) -> str | None: ...

    def string(
        self,
        key: str,
        default: str | None = None,
        *,
        required: bool = False,
        choices: Iterable[str] | None = None,
    ) -> str | None:
        self._seen.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "is required")
            return default
        value = self.data[key]
        if not isinstance(value, str):
            raise self.bad(key, value, "a string")
        if choices is not None:
            choices = list(choices)
            if value not in choices:
                raise self.error(key, "must be one of " + ", ".join(repr(c) for c in choices)
                                 + f", got {_fmt(value)}" + suggest(value, choices))
        return value

    def boolean(self, key: str, default: bool) -> bool:
        self._seen.add(key)
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.bad(key, value, "true or false")
        return value

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        required: bool = False,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        integer: bool = False,
    ) -> Any:
        """A number in an interval; ``low_open``/``high_open`` exclude the ends."""
        self._seen.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "is required")
            return default
        return check_number(
            self.data[key], self.file, join(self.path, key), low=low, high=high,
            low_open=low_open, high_open=high_open, integer=integer,
        )

    def finish(self) -> None:
        """Raise for the first key that no accessor asked for."""
        for key in self.data:
            if key not in self._seen:
                hint = suggest(key, sorted(self._seen))
                where = f" in {self.path}" if self.path else ""
                raise ScenarioError(
                    self.file, "", f"unknown key {_fmt(key)}{where}{hint}"
                    + (f" (allowed: {', '.join(sorted(self._seen))})" if not hint else "")
                )


def suggest(value: str, choices: Iterable[str]) -> str:
    """A "; did you mean 'x'?" suffix, or an empty string."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _num(x: float) -> str:
    """Bounds for messages: integers exactly (2**63 - 1), round powers of ten short."""
    if isinstance(x, int) and x >= 10**6 and str(x).rstrip("0") != "1":
        return str(x)
    return f"{x:g}"


def interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_num(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_num(high)}"
    return "a finite number"


def check_number(
    value: Any,
    file: str,
    path: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> Any:
    """Check one number against an interval and return it (int or float)."""
    allowed = interval(low, high, low_open, high_open)
    kind = "an integer" if integer else "a number"
    value = plain(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(file, path, f"must be {kind} {allowed}, got {_fmt(value)}")
    if integer and not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ScenarioError(file, path, f"must be {kind} {allowed}, got {_fmt(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ScenarioError(file, path, f"must be a finite number {allowed}, got {_fmt(value)}")
    if not integer and isinstance(value, int):
        try:
            value = float(value)  # an integer literal beyond float range overflows here
        except OverflowError:
            raise ScenarioError(file, path, f"must be a finite number {allowed}, got "
                                f"{_fmt(value)} (beyond the float range, about 1.8e308)"
                                ) from None
    ok = True
    if low is not None:
        ok &= value > low if low_open else value >= low
    if high is not None:
        ok &= value < high if high_open else value <= high
    if not ok:
        prefix = "an integer " if integer else ""
        raise ScenarioError(file, path, f"must be {prefix}{allowed}, got {_fmt(value)}")
    return value if integer else float(value)


def check_name(
    value: str, known: Iterable[str], file: str, path: str, what: str
) -> str:
    """Check that ``value`` names one of ``known`` (a party, an agreement...)."""
    known = list(known)
    if value not in known:
        raise ScenarioError(
            file, path,
            f"names unknown {what} {_fmt(value)}{suggest(value, known)} "
            f"(known: {', '.join(known) if known else 'none'})",
        )
    return value


def each(values: Iterable[Any], fn: Callable[[int, Any], Any]) -> list[Any]:
    return [fn(i, v) for i, v in enumerate(values)]
