"""Study-file validation: one table of (file text, field, message) cases, one template."""

from __future__ import annotations

import datetime
import subprocess
import sys

import pytest

from hpsearch.core.edits import classify
from hpsearch.core.spec import SpecError
from hpsearch.engine.loader import load_objective
from hpsearch.objectives.catalog import load_spec, parse_spec, spec_from_dict

BASE = {
    "name": "s",
    "space": {"lr": {"low": 1e-5, "high": 1.0, "log": True}},
    "stage": [{"name": "coarse", "trials": 8}],
}


def with_(path: str, value, base=BASE):
    """A copy of ``base`` with the dotted ``path`` set (``stage.0.keep``) or removed."""
    import copy

    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


#: A user's objective: it declares no parameters, so [fixed] and [space] keys are free.
STUB = with_("objective", "stubs:quadratic")
#: The longest name whose longest study, NAME/random-baseline, fits in 512 characters.
LONGEST_NAME = 512 - len("/random-baseline")

CASES = [
    # (data, field, message fragment)
    (with_("nme", "x"), "nme", "did you mean `name`"),
    (with_("name", ...), "name", "is required"),
    (with_("name", "a/b"), "name", "no '/'"),
    (with_("direction", "min"), "direction", "'minimize', 'maximize'"),
    (with_("seed", 1.5), "seed", "must be an integer"),
    (with_("seed", True), "seed", "must be an integer"),
    (with_("space", {}), "space", "at least one parameter"),
    (with_("space.lr.hgh", 2), "space.lr.hgh", "did you mean `high`"),
    (with_("space.lr.low", 0), "space.lr.low", "`low > 0` must hold for `log = true`"),
    (with_("space.lr.low", -1e-3), "space.lr.low", "but got low = -0.001"),
    (with_("space.lr.low", 2.0), "space.lr", "`low < high` must hold"),
    (with_("space.lr.low", "1e-5"), "space.lr.low", "must be a number"),
    (with_("space.lr.log", "yes"), "space.lr.log", "must be true/false"),
    (with_("space.lr", 3), "space.lr", "must be a table"),
    (with_("space.lr", {"choices": []}), "space.lr.choices", "must not be empty"),
    (with_("space.lr", {"choices": [1, 1]}), "space.lr.choices", "duplicates"),
    (with_("space.lr", {"choices": [1], "low": 0}), "space.lr.low", "categorical"),
    (with_("space.lr", {"low": 1, "high": 9, "step": 3}), "space.lr.step", "multiple of step"),
    (
        with_("space.lr", {"low": 1, "high": 9, "log": True, "step": 2}),
        "space.lr.step",
        "must be 1",
    ),
    (
        with_("space.lr", {"low": 1.0, "high": 9.0, "step": 2}),
        "space.lr.step",
        "integer low and high",
    ),
    (with_("space.lr.min", 0.5), "space.lr.min", "`min <= low`"),
    (with_("fixed", {"lr": 0.1}), "fixed.lr", "also searched"),
    (with_("stage", []), "stage", "at least one"),
    (with_("stage.0.trials", 0), "stage[0].trials", ">= 1, but got 0"),
    (with_("stage.0.trials", ...), "stage[0].trials", "is required"),
    (with_("stage.0.epochs", 0), "stage[0].epochs", ">= 1, but got 0"),
    (with_("stage.0.sampler", "sobel"), "stage[0].sampler", "did you mean 'sobol'"),
    (with_("stage.0.trails", 3), "stage[0].trails", "did you mean `trials`"),
    (with_("stage.0.keep", 0.5), "stage[0].keep", "no previous stage"),
    (with_("stage.0.promote", 2), "stage[0].promote", "no previous stage to promote from"),
    (
        with_("stage", [{"name": "a", "trials": 8}, {"name": "b", "trials": 2, "promote": 3}]),
        "stage[1].promote",
        "`promote <= trials` must hold",
    ),
    (
        with_("stage", [{"name": "a", "trials": 8}, {"name": "b", "trials": 2, "promote": -1}]),
        "stage[1].promote",
        "must be an integer >= 0, but got -1",
    ),
    (
        with_("stage", [{"name": "a", "trials": 8}, {"name": "b", "trials": 2, "promote": 1.0}]),
        "stage[1].promote",
        "must be an integer",
    ),
    (
        with_("stage", [{"name": "a", "trials": 8}, {"name": "b", "trials": 2, "promot": 1}]),
        "stage[1].promot",
        "did you mean `promote`",
    ),
    (
        with_("stage", [{"name": "a", "trials": 2}, {"name": "a", "trials": 2}]),
        "stage[1].name",
        "duplicate stage name",
    ),
    (
        with_("stage", [{"name": "a", "trials": 2}, {"name": "b", "trials": 2, "keep": 0}]),
        "stage[1].keep",
        "must be in (0, 1]",
    ),
    (
        with_("stage", [{"name": "a", "trials": 2}, {"name": "b", "trials": 2, "keep": 1.5}]),
        "stage[1].keep",
        "must be in (0, 1]",
    ),
    (
        with_(
            "space.activation",
            {"choices": ["relu", "tanh", "elu"]},
            with_("stage.0.sampler", "grid"),
        ),
        "stage[0].trials",
        "cannot have exactly 8 points",
    ),
    (
        with_(
            "space.weight_decay",
            {"low": 1e-6, "high": 1e-2, "log": True},
            with_("stage.0.sampler", "grid", with_("stage.0.trials", 7)),
        ),
        "stage[0].trials",
        "use trials = 6 or 8",
    ),
    (with_("objective", "not an objective"), "objective", "module:function"),
    (with_("metric", "accuracy"), "metric", "must be one of 'val_loss', 'val_accuracy'"),
    (with_("metric", "val_accuracy"), "direction", "must be 'maximize', but got 'minimize'"),
    (with_("stage", ...), "stage", "or give `budget`"),
    (with_("budget", 90, with_("max_epochs", 9)), "budget", "not both"),
    (with_("budget", 8, with_("max_epochs", 9, with_("stage", ...))), "budget", "one full run"),
    (with_("budget", 90.5, with_("max_epochs", 9, with_("stage", ...))), "budget", "an integer"),
    (with_("budget", 90, with_("max_epochs", 2.5, with_("stage", ...))), "max_epochs", "integer"),
    (with_("budget", 90, with_("max_epochs", 0, with_("stage", ...))), "max_epochs", ">= 1"),
    (with_("budget", 90, with_("stage", ...)), "max_epochs", "required with `budget`"),
    (with_("max_epochs", 9), "max_epochs", "only applies with `budget"),
    (with_("budgt", 90), "budgt", "did you mean `budget`"),
    # Values the spec cannot store as JSON, or that never compare equal on resume.
    (
        with_("fixed.when", datetime.datetime(2024, 1, 1, 12, 0), STUB),
        "fixed.when",
        'a TOML date/time cannot be stored; write it as a string: "2024-01-01 12:00:00"',
    ),
    (with_("fixed.day", datetime.date(2024, 1, 1), STUB), "fixed.day", "TOML date/time"),
    (with_("fixed.at", datetime.time(7, 30), STUB), "fixed.at", "TOML date/time"),
    (with_("fixed.opt", {"lr": 1}, STUB), "fixed.opt", "must be a value, not a table"),
    (
        with_("fixed.days", [1, "a", datetime.date(2024, 1, 1)], STUB),
        "fixed.days[2]",
        "TOML date/time",
    ),
    (with_("fixed.rows", [[1], [{"a": 1}]], STUB), "fixed.rows[1][0]", "not a table"),
    (with_("fixed.x", float("nan"), STUB), "fixed.x", "must be finite, but got nan"),
    (with_("space.lr", {"choices": [0.1, float("inf")]}), "space.lr.choices[1]", "finite"),
    (with_("space.lr.max", float("nan")), "space.lr.max", "leave it out for no limit"),
    # Names Optuna's 512-character study and parameter names cannot hold.
    (with_("name", "n" * 600), "name", "is 600 characters, too long to store"),
    (
        with_("name", "n" * (LONGEST_NAME + 1)),
        "name",
        f"longest is NAME/random-baseline; use at most {LONGEST_NAME} characters",
    ),
    (
        with_("stage.0.name", "s" * 500, with_("name", "n" * 20)),
        "stage[0].name",
        "is 500 characters, too long to store",
    ),
    (
        with_("budget", 90, with_("max_epochs", 9, with_("stage", ..., with_("name", "n" * 600)))),
        "name",
        "too long to store",
    ),
    (
        with_("space." + "p" * 600, {"low": 0, "high": 1}, STUB),
        "space." + "p" * 40 + "...",
        "is 600 characters; Optuna stores at most 512",
    ),
    # The built-in CNN's parameters and their values (it declares them).
    (with_("fixed.optimiser", "sgd"), "fixed.optimiser", "did you mean `optimizer`?"),
    (with_("space.learning_rate", {"low": 1e-3, "high": 1.0}), "space.learning_rate", "unknown"),
    (
        with_("fixed.dataset", "digitz"),
        "fixed.dataset",
        "must be one of 'digits', 'cifar10', but got 'digitz'; did you mean 'digits'?",
    ),
    (with_("fixed.init", "kaiming"), "fixed.init", "must be one of 'small', 'xavier', 'he'"),
    (with_("fixed.preprocess", "center"), "fixed.preprocess", "'per_channel_mean'"),
    (with_("fixed.optimizer", "rmsprop"), "fixed.optimizer", "'sgd', 'adam'"),
    (with_("fixed.device", "gpu"), "fixed.device", "'auto', 'cpu', 'cuda', 'cuda:N', 'mps'"),
    (
        with_("space.activation", {"choices": ["relu", "swish"]}),
        "space.activation.choices[1]",
        "but got 'swish'",
    ),
    (with_("space.optimizer", {"low": 0, "high": 1}), "space.optimizer", "choices = [...]"),
    (with_("fixed.metric", "val_accuracy"), "fixed.metric", "at the top of the study file"),
    (with_("fixed.depth", 9), "fixed.depth", "must be an integer in [1, 8], but got 9"),
    (with_("fixed.batchnorm", "false"), "fixed.batchnorm", "must be true/false"),
    (with_("fixed.dataset", "cifar10"), "fixed.dataset", "needs `data_dir`"),
]


@pytest.mark.parametrize(("data", "field", "match"), CASES)
def test_spec_errors_name_the_field_and_the_rule(data, field, match):
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="study.toml")
    text = str(info.value)
    assert f"study.toml: {field}: " in text, text
    assert match in text, text


def test_every_bad_cnn_value_is_reported_at_once():
    """The CNN's configs collect their problems as the study file's checker does, across
    all three configs, so a user fixes them in one pass."""
    fixed = {
        "depth": 9,
        "weight_decay": -1.0,
        "val_fraction": 1.0,
        "nesterov": True,
        "momentum": 0.0,
    }
    with pytest.raises(SpecError) as info:
        parse_spec(with_("fixed", fixed), source="study.toml")
    assert info.value.problems == [
        ("fixed.val_fraction", "must be a number in (0.0, 1.0), but got 1.0"),
        ("fixed.depth", "must be an integer in [1, 8], but got 9"),
        ("fixed.weight_decay", "must be a number in [0.0, inf), but got -1.0"),
        (
            "fixed.momentum",
            "`momentum > 0` must hold for `nesterov = true`, but got momentum = 0.0",
        ),
    ]


@pytest.mark.parametrize(
    "data",
    [
        with_("name", "n" * LONGEST_NAME),
        with_("fixed", {"anything": [1, 2.5, "x", True], "nested": [[1], []]}, STUB),
        with_("space.anything", {"choices": ["a", 1]}, STUB),
        with_(
            "fixed",
            {"dataset": "cifar10", "data_dir": "data", "device": "cuda:1", "optimizer": "adam"},
        ),
        with_("space.dataset", {"choices": ["digits", "cifar10"]}, with_("fixed.data_dir", "d")),
        with_("space.batchnorm", {"choices": [True, False]}),
    ],
)
def test_valid_edge_cases_pass(data):
    parse_spec(data)


def test_the_name_limit_is_optunas():
    from optuna.storages._rdb.models import MAX_INDEXED_STRING_LENGTH

    from hpsearch.core.spec import BASELINE_STAGES, MAX_STORED_NAME
    from hpsearch.tasks.compare import METHODS, stage_name

    assert MAX_STORED_NAME == MAX_INDEXED_STRING_LENGTH
    assert tuple(stage_name(m) for m in METHODS) == BASELINE_STAGES


def test_the_cnn_declares_its_parameters_without_torch():
    code = (
        "import sys\n"
        "from hpsearch.objectives.catalog import parse_spec\n"
        "from hpsearch.objectives.cnn import PARAMS\n"
        "parse_spec({'name': 's', 'fixed': {'optimizer': 'adam', 'dataset': 'digits'},\n"
        "  'space': {'lr': {'low': 1e-4, 'high': 1.0, 'log': True}},\n"
        "  'stage': [{'name': 'a', 'trials': 2}]})\n"
        "assert PARAMS['optimizer'].choices == ('sgd', 'adam')\n"
        "assert PARAMS['depth'].default == 2 and PARAMS['lr'].default is None\n"
        "print(sorted(m for m in ('torch', 'numpy', 'optuna') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_all_problems_are_reported_at_once():
    data = with_("direction", "up", with_("stage.0.trials", 0))
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert {f for f, _ in info.value.problems} == {"direction", "stage[0].trials"}


def test_a_valid_file_round_trips_through_its_stored_form(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        """
name = "digits"
seed = 7
[fixed]
dataset = "digits"
[space.lr]
low = 1e-5
high = 1.0
log = true
[space.depth]
low = 1
high = 3
[space.activation]
choices = ["relu", "tanh"]
[[stage]]
name = "coarse"
trials = 12
[[stage]]
name = "fine"
trials = 4
epochs = 3
keep = 0.2
"""
    )
    spec = load_spec(path)
    assert spec.base_dir == str(tmp_path)
    assert [p.kind for p in spec.space] == ["float", "int", "categorical"]
    assert spec.total_epochs == 12 + 4 * 3
    again = spec_from_dict(spec.to_dict())
    assert again.to_dict() == spec.to_dict()


def test_promote_is_stored_only_where_set():
    """A search stored before `promote` existed must compare equal to the same file."""
    two = [{"name": "a", "trials": 8}, {"name": "b", "trials": 4}]
    plain = parse_spec(with_("stage", two))
    assert all("promote" not in s for s in plain.to_dict()["stage"])
    promoted = parse_spec(with_("stage.1.promote", 2, with_("stage", two)))
    assert promoted.stages[1].promote == 2
    assert promoted.to_dict()["stage"][1]["promote"] == 2
    assert spec_from_dict(promoted.to_dict()) == promoted
    diff = [c.line for c in classify(plain.to_dict(), promoted.to_dict(), set())]
    assert diff == ["b promote 0 -> 2"]


def test_bad_toml_and_missing_file_are_spec_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")


def test_differences_list_each_changed_leaf():
    a = parse_spec(BASE).to_dict()
    b = parse_spec(with_("space.lr.high", 0.5)).to_dict()
    assert [c.line for c in classify(a, b, set())] == ["space.lr high 1.0 -> 0.5"]
    assert classify(a, a, set()) == []


@pytest.mark.parametrize(
    ("ref", "match"),
    [
        ("nosuchmodule_xyz:fn", "module 'nosuchmodule_xyz' not found"),
        ("stubs:no_such_fn", "module 'stubs' has no attribute 'no_such_fn'"),
        ("stubs:TOY", "is not callable"),
    ],
)
def test_objective_that_cannot_be_imported_says_what_is_missing(ref, match):
    with pytest.raises(SpecError, match=match):
        load_objective(ref)


def test_objective_beside_the_study_file_is_found(tmp_path):
    (tmp_path / "mytrain_beside.py").write_text(
        "def fit(params, epochs, report):\n    return 1.0\n"
    )
    fn = load_objective("mytrain_beside:fit", str(tmp_path))
    assert fn({}, 1, None) == 1.0


def test_objective_whose_imports_fail_names_the_missing_dependency(tmp_path):
    (tmp_path / "needs_dep.py").write_text("import not_installed_pkg_xyz\n")
    with pytest.raises(SpecError, match="imports 'not_installed_pkg_xyz', which is not installed"):
        load_objective("needs_dep:fit", str(tmp_path))
