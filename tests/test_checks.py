"""The constraint objects: what each says after "must be", and what satisfies it."""

from __future__ import annotations

import math

import pytest

from hpsearch.core.checks import (
    Checker,
    CheckError,
    Finite,
    InstanceOf,
    Interval,
    Options,
    Pattern,
)

CASES = [
    # (constraint, good value, bad value, message)
    (Interval(int, 1, None), 16.0, 0, "must be an integer >= 1, but got 0"),
    (Interval(int, 1, 8), 8, 2.5, "must be an integer in [1, 8], but got 2.5"),
    (Interval(float, 0.0, math.inf, "neither"), 1e9, math.inf, "must be a number in (0.0, inf)"),
    (Interval(None, 0, 1, "right"), 1, 0, "must be in (0, 1], but got 0"),
    (InstanceOf(int), 3, True, "must be an integer, but got True"),
    (InstanceOf(int, float), 3, "3", "must be a number, but got '3'"),
    (Options(["sgd", "adam"]), "adam", "adan", "but got 'adan'; did you mean 'adam'?"),
    (Options([True, False]), True, 1, "must be one of True, False, but got 1"),
    (Options(["maximize"]), "maximize", "minimize", "must be 'maximize', but got 'minimize'"),
    (Pattern(r"cuda(:\d+)?", shown=["cuda", "cuda:N"]), "cuda:3", "cuda:x", "'cuda:N', but got"),
    (Finite(), 1.0, math.nan, "must be finite, but got nan"),
]


@pytest.mark.parametrize(("constraint", "good", "bad", "message"), CASES)
def test_a_constraint_words_its_own_problem(constraint, good, bad, message):
    c = Checker()
    assert c.check("x", good, constraint)
    assert not c.check("x", bad, constraint, fix="")
    assert c.problems[0][0] == "x"
    assert message in c.problems[0][1], c.problems


def test_every_problem_is_collected_and_raised_in_one_error():
    c = Checker()
    c.check("depth", 9, Interval(int, 1, 8))
    c.holds("momentum", False, "momentum > 0", "for `nesterov = true`", momentum=0.0)
    with pytest.raises(CheckError) as info:
        c.raise_errors()
    assert str(info.value) == (
        "`depth` must be an integer in [1, 8], but got 9; "
        "`momentum > 0` must hold for `nesterov = true`, but got momentum = 0.0"
    )
