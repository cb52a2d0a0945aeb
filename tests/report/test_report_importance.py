"""Parameter importance: Optuna's evaluators on records, and the cases they cannot rank."""

from __future__ import annotations

import math
import sys

import pytest
from report_helpers import rec

from hpsearch.core.errors import UserError
from hpsearch.core.space import CategoricalParam, FloatParam, SearchSpace
from hpsearch.report.importance import param_importance

SPACE = SearchSpace(
    (
        FloatParam("lr", 1e-5, 1.0, log=True),
        FloatParam("wd", 1e-6, 1e-2, log=True),
        CategoricalParam("act", ("relu", "tanh")),
    )
)


def lr_matters(n=60):
    """The value depends on lr only; wd and act vary without effect."""
    out = []
    for i in range(n):
        x = -5 + 5 * ((i * 37) % n) / n
        wd = 10 ** (-6 + 4 * ((i * 11) % n) / n)
        out.append(rec(i, (x + 2.5) ** 2, lr=10**x, wd=wd, act=("relu", "tanh")[i % 2]))
    return out


@pytest.mark.parametrize("evaluator", ["fanova", "ped-anova"])
def test_the_parameter_that_matters_ranks_first(evaluator):
    imp = param_importance(lr_matters(), SPACE, "minimize", evaluator)
    assert imp.top(1) == ["lr"]
    assert imp.values["lr"] > 0.6
    assert math.isclose(sum(imp.values.values()), 1.0)
    assert imp.note is None


def test_without_scikit_learn_auto_ranks_with_ped_anova(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as on an install without the extra
    imp = param_importance(lr_matters(), SPACE, "minimize")
    assert imp.evaluator == "ped-anova" and imp.top(1) == ["lr"]


def test_without_scikit_learn_fanova_by_name_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(UserError, match=r"--importance fanova: .*pip install scikit-learn"):
        param_importance(lr_matters(), SPACE, "minimize", "fanova")


def test_too_few_trials_give_a_reason_not_a_ranking():
    imp = param_importance(lr_matters(4), SPACE, "minimize")
    assert imp.values == {} and "too few usable trials (4; 5 needed)" in imp.note


def test_failed_trials_do_not_count_as_usable():
    records = lr_matters(4) + [rec(10 + i, None, state="FAIL") for i in range(5)]
    assert param_importance(records, SPACE, "minimize").values == {}


def test_a_parameter_with_one_value_is_left_out_and_said_so():
    records = [rec(r.number, r.value, lr=r.params["lr"], wd=r.params["wd"]) for r in lr_matters()]
    imp = param_importance(records, SPACE, "minimize")  # act is "relu" everywhere
    assert "act" not in imp.values and imp.top(1) == ["lr"]
    assert imp.note == "act took one value only"


def test_only_one_varying_parameter_gets_all_the_importance():
    records = [rec(i, float(i), lr=10 ** (-i / 10)) for i in range(8)]
    imp = param_importance(records, SPACE, "minimize")
    assert imp.values == {"lr": 1.0} and imp.note.startswith("only lr varied")


def test_equal_values_and_an_unstarted_stage_are_explained():
    same = [rec(i, 1.0, lr=10 ** (-i / 10), wd=10 ** (-3 - i / 10)) for i in range(8)]
    assert param_importance(same, SPACE, "minimize").note == "every trial scored the same"
    assert param_importance([], None, "minimize").note == "the stage has not started"
