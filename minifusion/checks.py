"""Argument checks shared by the package: integers, numbers and choices.

Public functions and configs check their arguments up front, so a bad value fails at the call with one
kind of message that names the argument, repeats the value given and says what is allowed, e.g.
``num_frames 0 is not allowed; it must be an integer >= 1``. Each check returns the value, so it can be
used inline: ``self.size = check_int("size", size, minimum=8)``. ``bool`` is never taken for a number,
although Python makes it an ``int`` (``steps=True`` is a mistake, not 1 step).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def _fail(name: str, value: Any, allowed: str, note: str) -> ValueError:
    note = f" {note}" if note else ""
    return ValueError(f"{name} {value!r} is not allowed; it must be {allowed}{note}")


def _allowed(kind: str, minimum: Any, maximum: Any, interval: str, above: str = ">=", below: str = "<=") -> str:
    """What is allowed, in words: ``interval`` when both bounds are given, else one bound or just the kind."""
    if minimum is not None and maximum is not None:
        return interval
    if minimum is not None:
        return f"{kind} {above} {minimum}"
    return f"{kind} {below} {maximum}" if maximum is not None else kind


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
              numpy: bool = False, note: str = "") -> int:
    """Return ``value`` as an int if it is one in [minimum, maximum] (either bound may be None).

    ``numpy=True`` also takes numpy integers (returned as Python ints). ``note`` is appended to what is
    allowed, e.g. ``"(pixels)"`` or ``"or None (all frames)"``.
    """
    kinds = numbers.Integral if numpy else int  # numpy registers its integers as numbers.Integral
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok and ((minimum is not None and value < minimum) or (maximum is not None and value > maximum)):
        ok = False
    if not ok:
        raise _fail(name, value, _allowed("an integer", minimum, maximum, f"an integer in {minimum}..{maximum}"), note)
    return int(value)


def positive_int(name: str, value: Any, *, note: str = "") -> int:
    """``check_int`` with minimum 1: counts, sizes and widths."""
    return check_int(name, value, minimum=1, note=note)


def check_number(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
                 exclusive_minimum: bool = False, exclusive_maximum: bool = False, finite: bool = True,
                 note: str = "") -> float:
    """Return ``value`` (an int or a float, unchanged) if it lies between the bounds.

    Bounds are inclusive unless ``exclusive_minimum``/``exclusive_maximum``; NaN never passes a bound, and
    ``finite=True`` also rejects NaN and +-inf without one. ``note`` is appended to what is allowed.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and finite and not math.isfinite(value):
        ok = False
    # Written as "not inside" so that NaN, which fails every comparison, fails here too.
    if ok and minimum is not None and not (value > minimum if exclusive_minimum else value >= minimum):
        ok = False
    if ok and maximum is not None and not (value < maximum if exclusive_maximum else value <= maximum):
        ok = False
    if not ok:
        low, high = ("(" if exclusive_minimum else "["), (")" if exclusive_maximum else "]")
        interval = f"a number in {low}{minimum}, {maximum}{high}"
        allowed = _allowed("a finite number" if finite else "a number", minimum, maximum, interval,
                           ">" if exclusive_minimum else ">=", "<" if exclusive_maximum else "<=")
        raise _fail(name, value, allowed, note)
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):  # an array or a tensor has no single truth value
        return False


def check_one_of(name: str, value: T, choices: Iterable[Any]) -> T:
    """Return ``value`` if it is one of ``choices`` (a bool matches only a bool choice, not 0 or 1)."""
    choices = tuple(choices)
    if not any(_same(value, c) for c in choices):
        raise ValueError(f"{name} {value!r} is not one of {', '.join(repr(c) for c in choices)}")
    return value
