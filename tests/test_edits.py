"""Which edits of a launched study file a relaunch applies, as pure functions: the
classification table, the refusal's text, a planned search's raised budget, and a stage's
own ranges ([stage.space.NAME]) parsed and planned."""

from __future__ import annotations

import tomllib

import pytest
from stubs import toy_study

from hpsearch.core import plan
from hpsearch.core.edits import classify, refusal, resolve_plan
from hpsearch.core.points import make_points
from hpsearch.core.records import TrialRecord
from hpsearch.core.space import FloatParam, IntParam
from hpsearch.core.spec import SpecError
from hpsearch.engine.stages import plan_stage
from hpsearch.objectives.catalog import parse_spec, spec_from_dict

COARSE, BOTH = {"coarse"}, {"coarse", "fine"}


def toy(**kw):
    """The toy study (coarse: 20 x 1 epoch, fine: 8 x 2) as a parsed TOML document."""
    return tomllib.loads(toy_study(**kw))


def stage(doc, i):
    return doc["stage"][i]


def edit(change, **kw):
    """(stored, edited) to_dict forms of the toy study, ``change`` applied to the copy."""
    stored = parse_spec(toy(**kw))
    doc = toy(**kw)
    change(doc)
    return stored.to_dict(), parse_spec(doc).to_dict()


def setter(path, value):
    """An edit setting ``doc[path...] = value`` (ints in the path index [[stage]])."""

    def change(doc):
        *where, last = path
        for key in where:
            doc = doc[key]
        doc[last] = value

    return change


def appended(doc):
    doc["stage"].append({"name": "extra", "trials": 4, "epochs": 2})


def removed(doc):
    doc["stage"].pop()


def renamed_first(doc):
    doc["stage"][0]["name"] = "wide"


def fine_lr(doc):
    doc["stage"][1]["space"] = {"lr": {"low": 1e-6, "high": 1e-3}}


def new_param(doc):
    doc["space"]["mom"] = {"low": 0.5, "high": 0.99}


# (what, edit, prepared stages, applied?, words in the line or the refusal)
CASES = [
    ("more trials", setter(["stage", 0, "trials"], 30), COARSE, True,
     "coarse trials 20 -> 30 (10 slots appended)"),
    ("fewer trials", setter(["stage", 0, "trials"], 10), COARSE, False,
     "stage coarse has 20 slots queued or run already"),
    ("more trials, not prepared", setter(["stage", 1, "trials"], 6), COARSE, True,
     "fine trials 8 -> 6"),
    ("epochs of a prepared stage", setter(["stage", 0, "epochs"], 2), COARSE, False,
     "stage coarse is prepared with it"),
    ("sampler of a prepared stage", setter(["stage", 0, "sampler"], "sobol"), COARSE, False,
     "stage[0].sampler: stored 'random', file 'sobol'"),
    ("epochs of a stage not prepared", setter(["stage", 1, "epochs"], 5), COARSE, True,
     "fine epochs 2 -> 5"),
    ("epochs of a prepared second stage", setter(["stage", 1, "epochs"], 5), BOTH, False,
     "stage fine is prepared with it"),
    ("sampler not prepared", setter(["stage", 1, "sampler"], "tpe"), COARSE, True,
     "fine sampler 'random' -> 'tpe'"),
    ("keep not prepared", setter(["stage", 1, "keep"], 0.5), COARSE, True,
     "fine keep 0.25 -> 0.5"),
    ("margin not prepared", setter(["stage", 1, "margin"], 1.0), COARSE, True,
     "fine margin 0.25 -> 1.0"),
    ("promote not prepared", setter(["stage", 1, "promote"], 2), COARSE, True,
     "fine promote 0 -> 2"),
    ("promote of a prepared stage", setter(["stage", 1, "promote"], 2), BOTH, False,
     "stage[1].promote: stored 0, file 2"),
    ("a stage's own range, not prepared", fine_lr, COARSE, True,
     "fine space.lr added: low 1e-06, high 0.001"),
    ("a prepared stage's own range", fine_lr, BOTH, False, "stage[1].space.lr: stored"),
    ("a stage appended", appended, BOTH, True,
     "stage extra appended: 4 trials x 2 epoch(s), random"),
    ("a stage removed, not prepared", removed, COARSE, True, "stage fine removed"),
    ("a prepared stage removed", removed, BOTH, False, "stage fine is prepared"),
    ("the first stage renamed", renamed_first, set(), False,
     "stored under its first stage's name (coarse)"),
    ("a wider range before anything ran", setter(["space", "lr", "low"], 1e-6), set(), True,
     "space.lr low 1e-05 -> 1e-06"),
    ("a wider range of a prepared first stage", setter(["space", "lr", "low"], 1e-6), COARSE,
     False, "give that stage its own [stage.space.NAME] table"),
    ("a new choice before anything ran", setter(["space", "act", "choices"],
     ["relu", "tanh", "gelu"]), set(), True, "space.act choices"),
    ("a new parameter before anything ran", new_param, set(), True,
     "space.mom added: low 0.5, high 0.99"),
    ("a new parameter of a prepared first stage", new_param, COARSE, False, "space.mom"),
    ("[fixed] before anything ran", setter(["fixed"], {"width": 8}), set(), True,
     "fixed.width added: 8"),
    ("[fixed] once a stage ran", setter(["fixed"], {"width": 8}), COARSE, False,
     "ran with the stored [fixed] values"),
    ("the seed", setter(["seed"], 1), set(), False, "seed: stored 0, file 1"),
    ("the objective", setter(["objective"], "stubs:sleepy"), set(), False,
     "every stored trial ran this objective"),
    ("the metric", setter(["metric"], "acc"), set(), False, "every stored value is this metric"),
    ("the direction", setter(["direction"], "maximize"), set(), False,
     "ranked and narrowed this way"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "prepared", "applied", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_edit_is_applied_or_refused(change, prepared, applied, words):
    stored, edited = edit(change)
    changes = classify(stored, edited, prepared)
    assert changes, "the edit must show as a difference"
    assert all(c.compatible for c in changes) is applied
    shown = [c.line if applied else c.diff() for c in changes]
    assert any(words in line for line in shown), shown


def test_a_grid_stage_cannot_grow_once_prepared_but_may_before():
    stored, edited = edit(setter(["stage", 0, "trials"], 24), sampler="grid", coarse=16)
    (change,) = classify(stored, edited, COARSE)
    assert "is a grid of exactly 16 points, which cannot grow; append a stage" in change.refused
    assert classify(stored, edited, set())[0].compatible


def test_max_failures_and_a_raised_budget_are_applied_once_stages_ran():
    stored, edited = edit(setter(["seed"], 0))
    changes = classify(stored, {**edited, "max_failures": 5}, BOTH)
    assert [(c.line, c.compatible) for c in changes] == [("max_failures 3 -> 5", True)]
    budget = {**stored, "budget": 270, "max_epochs": 9}
    raised, lowered = {**budget, "budget": 300}, {**budget, "budget": 200}
    assert classify(budget, raised, BOTH)[0].compatible
    assert classify(budget, raised, BOTH)[0].line == "budget 270 -> 300"
    assert not classify(budget, lowered, BOTH)[0].compatible
    assert classify(budget, lowered, set())[0].compatible


def test_a_refusal_lists_the_diff_what_could_be_applied_and_both_ways_out():
    stored, edited = edit(
        lambda d: (setter(["seed"], 3)(d), setter(["stage", 0, "trials"], 30)(d))
    )
    text = refusal("toy", classify(stored, edited, COARSE))
    assert "seed: stored 0, file 3 (the seed fixes every stage's points" in text
    assert "these ones could be applied on their own:\n  coarse trials 20 -> 30" in text
    assert 'give it a new name: name = "toy-2" in the study file' in text
    assert "delete the stored search first: hpsearch delete toy" in text


def test_a_raised_budget_appends_to_the_stages_that_ran():
    coarse, fine = plan.default_plan(270, 9)
    # the fine stage was prepared: it keeps its shape and gets the new budget's runs
    grown = plan.extend_plan((coarse, fine), 2, 360, 9)
    assert grown[0] == coarse and grown[1].epochs == 9 and grown[1].keep == fine.keep
    assert grown[1].trials == (360 - coarse.trials * coarse.epochs) // 9 > fine.trials
    assert grown[1].promote == fine.promote
    # only coarse was prepared: coarse stays, fine is planned for what is left
    assert plan.extend_plan((coarse, fine), 1, 360, 9)[0] == coarse
    # nothing prepared: planned afresh
    assert plan.extend_plan((coarse, fine), 0, 360, 9) == plan.default_plan(360, 9)


def planned(budget):
    doc = toy()
    del doc["stage"]
    return parse_spec({**doc, "budget": budget, "max_epochs": 9})


def test_a_planned_search_keeps_its_stored_stages_and_grows_with_its_budget():
    stored = planned(270)
    assert resolve_plan(stored, planned(270), 2).stages == stored.stages
    raised = resolve_plan(stored, planned(360), 2)
    assert raised.stages == plan.extend_plan(stored.stages, 2, 360, 9)
    assert resolve_plan(stored, planned(360), 0).stages == plan.default_plan(360, 9)
    changes = classify(stored.to_dict(), raised.to_dict(), BOTH)
    assert all(c.compatible for c in changes)
    assert {c.field for c in changes} == {"budget", "stage[1].trials"}


def fine_with(ranges):
    doc = toy()
    doc["stage"][1]["space"] = ranges
    return doc


@pytest.mark.parametrize(
    ("ranges", "field", "match"),
    [
        ({"momentum": {"low": 0.1, "high": 0.9}}, "stage[1].space.momentum",
         "'momentum' is not a parameter of [space] (lr, wd, act); a stage sets ranges only"),
        ({"act": {"choices": ["relu"]}}, "stage[1].space.act",
         "a categorical parameter's choices are set in [space] only"),
        ({"lr": {"low": 1e-6}}, "stage[1].space.lr.high", "is required"),
        ({"lr": {"low": 1e-2, "high": 1e-3}}, "stage[1].space.lr", "`low < high` must hold"),
        ({"lr": {"low": 0.0, "high": 1e-3}}, "stage[1].space.lr.low", "`low > 0` must hold"),
        ({"lr": {"low": 1e-6, "high": 1e-3, "log": False}}, "stage[1].space.lr.log",
         "is [space.lr]'s to set; a stage sets low and high"),
        ({"lr": {"lo": 1e-6, "high": 1e-3}}, "stage[1].space.lr.lo",
         "unknown key; did you mean `low`?"),
        ({"lr": 1e-3}, "stage[1].space.lr", "must be a table like [stage.space.lr]"),
    ],
)  # fmt: skip
def test_a_stage_range_is_checked_as_space_params_are(ranges, field, match):
    with pytest.raises(SpecError) as err:
        parse_spec(fine_with(ranges))
    assert any(f == field and match in m for f, m in err.value.problems), err.value.problems


def test_a_stage_range_takes_its_kind_and_limits_from_space_and_round_trips():
    doc = fine_with({"lr": {"low": 1e-6, "high": 1e-3}, "width": {"low": 16, "high": 48}})
    doc["space"]["width"] = {"low": 8, "high": 64, "step": 8, "max": 128}
    doc["space"]["drop"] = {"low": 0.0, "high": 0.5, "min": 0.0}
    doc["stage"][1]["space"]["drop"] = {"low": 0, "high": 1}  # ints: still a float param
    spec = parse_spec(doc)
    own = spec.stages[1].space
    assert own["lr"] == FloatParam("lr", 1e-6, 1e-3, log=True)
    assert own["width"] == IntParam("width", 16, 48, step=8, max=128)
    assert own["drop"] == FloatParam("drop", 0.0, 1.0, min=0.0)
    stored = spec.to_dict()["stage"][1]["space"]
    assert stored["width"] == {"low": 16, "high": 48}
    assert spec_from_dict(spec.to_dict()) == spec
    assert "space" not in spec.to_dict()["stage"][0]


def records(space_points):
    return [
        TrialRecord(i, "coarse", "COMPLETE", p, (p["lr"] - 1e-2) ** 2 + p["wd"], epochs=1)
        for i, p in enumerate(space_points)
    ]


def test_a_stage_range_replaces_what_narrowing_gives_in_its_space_and_region():
    spec = parse_spec(fine_with({"lr": {"low": 1e-6, "high": 1e-3}}))
    coarse = plan_stage(spec, 0)
    fine = plan_stage(spec, 1, coarse.space, records(coarse.points))
    assert fine.space["lr"] == FloatParam("lr", 1e-6, 1e-3, log=True)
    assert fine.space["wd"] == fine.region.space["wd"] != spec.space["wd"]  # still narrowed
    assert fine.region.space == fine.space
    assert {p.name: p.after for p in fine.region.params}["lr"] == fine.space["lr"]
    assert all(1e-6 <= p["lr"] <= 1e-3 for p in fine.points)


def test_the_first_stage_may_set_its_own_range_too():
    doc = toy()
    doc["stage"][0]["space"] = {"lr": {"low": 1e-3, "high": 1e-1}}
    spec = parse_spec(doc)
    points = plan_stage(spec, 0).points
    assert points == make_points("random", spec.space.replace(spec.stages[0].space), 20,
                                 plan_stage(spec, 0).seed)  # fmt: skip
    assert all(1e-3 <= p["lr"] <= 1e-1 for p in points)
