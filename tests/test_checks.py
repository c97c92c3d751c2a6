"""minifusion.checks: the shared argument checks (types, bounds, messages, returned values)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from minifusion.checks import check_int, check_number, check_one_of, positive_int


# -- check_int -------------------------------------------------------------------------------------
def test_int_returns_the_value_and_bounds_are_inclusive():
    assert check_int("n", 5) == 5
    assert check_int("n", 1, minimum=1) == 1
    assert check_int("n", 4, minimum=1, maximum=4) == 4
    assert check_int("n", -3) == -3  # no bounds: any integer
    assert positive_int("n", 1) == 1


@pytest.mark.parametrize("bad", [True, False, 2.0, 2.5, "3", None, float("nan"), np.float64(2.0)])
def test_int_rejects_what_is_not_an_integer(bad):
    with pytest.raises(ValueError, match=f"^n {re.escape(repr(bad))} is not allowed; it must be an integer$"):
        check_int("n", bad)


def test_int_message_names_the_argument_the_value_and_the_range():
    with pytest.raises(ValueError, match=r"^num_frames 0 is not allowed; it must be an integer >= 1$"):
        check_int("num_frames", 0, minimum=1)
    with pytest.raises(ValueError, match=r"^rank 5 is not allowed; it must be an integer in 1\.\.4$"):
        check_int("rank", 5, minimum=1, maximum=4)
    with pytest.raises(ValueError, match=r"^k 7 is not allowed; it must be an integer <= 6$"):
        check_int("k", 7, maximum=6)
    with pytest.raises(ValueError, match=r"^size 4 is not allowed; it must be an integer >= 8 \(pixels\)$"):
        check_int("size", 4, minimum=8, note="(pixels)")
    with pytest.raises(ValueError, match=r"^steps True is not allowed; it must be an integer >= 1$"):
        positive_int("steps", True)


def test_numpy_integers_only_where_asked_and_come_back_as_python_ints():
    with pytest.raises(ValueError, match=r"size (np\.int64\()?16\)? is not allowed; it must be an integer$"):
        check_int("size", np.int64(16))
    value = check_int("size", np.int64(16), minimum=8, numpy=True)
    assert value == 16 and type(value) is int
    assert type(check_int("size", np.uint8(9), numpy=True)) is int
    with pytest.raises(ValueError, match="it must be an integer >= 8"):
        check_int("size", np.int32(4), minimum=8, numpy=True)
    for bad in (np.bool_(True), True, np.float32(16.0)):
        with pytest.raises(ValueError, match="is not allowed"):
            check_int("size", bad, numpy=True)


# -- check_number ----------------------------------------------------------------------------------
def test_number_returns_the_value_unchanged():
    assert check_number("x", 3) == 3 and type(check_number("x", 3)) is int
    assert check_number("x", 0.5, minimum=0, maximum=1) == 0.5


def test_number_bounds_inclusive_by_default_exclusive_when_asked():
    assert check_number("x", 0, minimum=0) == 0
    assert check_number("x", 1, maximum=1) == 1
    with pytest.raises(ValueError, match=r"^x 0 is not allowed; it must be a finite number > 0$"):
        check_number("x", 0, minimum=0, exclusive_minimum=True)
    with pytest.raises(ValueError, match=r"^x 1 is not allowed; it must be a number in \[0, 1\)$"):
        check_number("x", 1, minimum=0, maximum=1, exclusive_maximum=True)
    with pytest.raises(ValueError, match=r"^x 0 is not allowed; it must be a number in \(0, 1\]$"):
        check_number("x", 0, minimum=0, maximum=1, exclusive_minimum=True)
    with pytest.raises(ValueError, match=r"^x 1.5 is not allowed; it must be a number in \[0, 1\]$"):
        check_number("x", 1.5, minimum=0, maximum=1)
    with pytest.raises(ValueError, match=r"^x 2 is not allowed; it must be a finite number < 2$"):
        check_number("x", 2, maximum=2, exclusive_maximum=True)


@pytest.mark.parametrize("bad", [True, False, "1", None, [1.0], np.float32(0.5)])
def test_number_rejects_bool_and_non_numbers(bad):
    with pytest.raises(ValueError, match=f"^x {re.escape(repr(bad))} is not allowed; it must be a finite number$"):
        check_number("x", bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_number_rejects_nan_and_inf_when_finite(bad):
    with pytest.raises(ValueError, match=f"^x {bad!r} is not allowed; it must be a finite number >= 0"):
        check_number("x", bad, minimum=0)
    with pytest.raises(ValueError, match="it must be a finite number$"):
        check_number("x", bad)


def test_number_finite_false_takes_inf_but_nan_never_passes_a_bound():
    assert check_number("x", math.inf, minimum=0, finite=False) == math.inf
    assert math.isnan(check_number("x", math.nan, finite=False))  # no bound, nothing to fail
    for kwargs in (dict(minimum=0), dict(maximum=1), dict(minimum=0, exclusive_minimum=True)):
        with pytest.raises(ValueError, match=r"^lr nan is not allowed; it must be a number"):
            check_number("lr", math.nan, finite=False, **kwargs)
    with pytest.raises(ValueError, match=r"^lr -1 is not allowed; it must be a number > 0$"):
        check_number("lr", -1, minimum=0, exclusive_minimum=True, finite=False)


def test_number_note_follows_what_is_allowed():
    with pytest.raises(ValueError, match=r"^guidance_scale -1 is not allowed; it must be a finite number >= 0 "
                                         r"\(1 = no guidance\)$"):
        check_number("guidance_scale", -1, minimum=0, note="(1 = no guidance)")


# -- check_one_of ----------------------------------------------------------------------------------
def test_one_of_returns_the_value_and_names_every_choice():
    assert check_one_of("split", "val", ("train", "val")) == "val"
    assert check_one_of("passes", 2, range(3)) == 2
    with pytest.raises(ValueError, match=r"^split 'test' is not one of 'train', 'val', 'heldout'$"):
        check_one_of("split", "test", ("train", "val", "heldout"))


def test_one_of_does_not_take_a_bool_for_0_or_1():
    with pytest.raises(ValueError, match=r"^passes True is not one of 0, 1, 2$"):
        check_one_of("passes", True, (0, 1, 2))
    with pytest.raises(ValueError, match=r"^order 1 is not one of True, False$"):
        check_one_of("order", 1, (True, False))
    assert check_one_of("flag", False, (True, False)) is False


def test_one_of_is_not_fooled_by_an_array():
    with pytest.raises(ValueError, match="is not one of 0, 1"):
        check_one_of("x", np.array([0, 1]), (0, 1))
