"""Study files (TOML) -> a validated, frozen :class:`StudySpec`.

Every rule is checked up front, before anything touches storage, and every error names the
file, the field and the rule with the bad value, in one template (``SpecError``). All
problems in a file are reported at once, so a user fixes them in one pass.
"""

from __future__ import annotations

import dataclasses
import datetime
import tomllib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hpsearch.core.checks import (
    Checker,
    Finite,
    InstanceOf,
    Interval,
    Options,
    Pattern,
    shown,
)
from hpsearch.core.errors import UserError
from hpsearch.core.plan import default_plan
from hpsearch.core.space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    SearchSpace,
)
from hpsearch.core.stage_spec import (
    DEFAULT_KEEP,
    DEFAULT_MARGIN,
    DEFAULT_MIN_EPOCHS,
    DEFAULT_REDUCTION_FACTOR,
    STOP_RULES,
    StageSpec,
)

SAMPLERS = ("random", "sobol", "grid", "tpe")
DIRECTIONS = ("minimize", "maximize")


class Catalog(Protocol):
    """The built-in objectives a study file may name, and each one's declaration (its
    module: ``PARAMS``, ``METRICS``...; see :mod:`hpsearch.objectives`). The objectives floor
    passes it in (:data:`hpsearch.objectives.catalog.BUILTINS`): the core never imports one."""

    def names(self) -> Collection[str]: ...

    def declaration(self, objective: str) -> Any | None:
        """The declaration of a built-in objective; None for a ``module:function`` one."""


#: The keys of a [space.NAME] table: the fields of the parameter kinds (but the name).
PARAM_KEYS = tuple(
    dict.fromkeys(
        f.name
        for cls in (FloatParam, IntParam, CategoricalParam)
        for f in dataclasses.fields(cls)
        if f.name != "name"
    )
)
#: A search's and a stage's name: it is part of the stored study names ``NAME/STAGE``.
NAME = Pattern(
    r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    words="letters, digits, '_', '.', '-' (no '/'), starting with a letter or digit",
)
#: A ``module:function`` objective; the built-in ones are named by their key.
OBJECTIVE_REF = Pattern(r"[\w.]+:\w+", words="'module:function'")

#: Optuna stores study and parameter names as VARCHAR(512)
#: (``optuna.storages._rdb.models.MAX_INDEXED_STRING_LENGTH``): PostgreSQL and MySQL refuse
#: a longer name while SQLite stores it, so the limit is checked here, for every backend.
MAX_STORED_NAME = 512
#: Stage studies ``hpsearch compare`` stores beside a search's own (``compare.stage_name``).
BASELINE_STAGES = ("grid-baseline", "random-baseline")

#: Failed trials with no success in a stage after which the search stops (0: never stops).
DEFAULT_MAX_FAILURES = 3


class SpecError(UserError, ValueError):
    """A study file breaks a rule; ``problems`` holds ``(field, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {fld}: {msg}" if fld else f"{source}: {msg}" for fld, msg in problems]
        super().__init__("\n".join(lines))


#: The keys of a [[stage]] table: StageSpec's fields, so that a new one cannot be missed.
STAGE_KEYS = tuple(f.name for f in dataclasses.fields(StageSpec))
#: A StudySpec field's key in a study file, where they differ.
_FILE_KEYS = {"stages": "stage"}
#: What ``[stage.space.NAME]`` may set; the rest (log, step, min, max) is [space]'s.
STAGE_RANGE_KEYS = ("low", "high")


@dataclass(frozen=True)
class StudySpec:
    """A validated study file. ``base_dir`` is where a ``module:function`` objective is
    looked for; it is not part of the search's identity (it differs between machines)."""

    name: str
    objective: str
    metric: str
    direction: str
    seed: int
    space: SearchSpace
    stages: tuple[StageSpec, ...]
    fixed: dict[str, Any] = field(default_factory=dict)
    base_dir: str = "."
    #: Set when the file gave ``budget``/``max_epochs`` and ``stages`` were planned from them.
    budget: int | None = None
    max_epochs: int | None = None
    #: How the search fails fast (``hpsearch.engine.failfast``); not part of its identity: a
    #: relaunch may change it.
    max_failures: int = DEFAULT_MAX_FAILURES
    #: Seconds a trial may run before it is ended and failed (None: no limit); a stage's
    #: own ``trial_timeout`` overrides it. How the search runs, not its identity.
    trial_timeout: float | None = None

    def timeout_of(self, index: int) -> float | None:
        """The time limit of a trial of stage ``index``: its own, else the study's."""
        own = self.stages[index].trial_timeout
        return own if own is not None else self.trial_timeout

    @property
    def total_epochs(self) -> int:
        return sum(s.trials * s.epochs for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-ready form: stored in the storage and compared on resume."""
        return {
            "name": self.name,
            "objective": self.objective,
            "metric": self.metric,
            "direction": self.direction,
            "seed": self.seed,
            "fixed": dict(self.fixed),
            "space": self.space.to_dict(),
            "stage": [
                {
                    "name": s.name,
                    "trials": s.trials,
                    "epochs": s.epochs,
                    "sampler": s.sampler,
                    # keep/margin shape the region a stage gets from the one before it
                    **({"keep": s.keep, "margin": s.margin} if i else {}),
                    # only when set, so that a search stored before `promote` existed
                    # compares equal to the same file on resume
                    **({"promote": s.promote} if s.promote else {}),
                    **({"space": _stage_ranges(s.space)} if s.space else {}),
                    **(_stop_early_dict(s) if s.stop_early else {}),
                    **({"trial_timeout": s.trial_timeout} if s.trial_timeout else {}),
                }
                for i, s in enumerate(self.stages)
            ],
            # The planned stages above are what workers and resume read; the budget is kept
            # beside them so that a changed budget shows as a spec difference.
            **(
                {"budget": self.budget, "max_epochs": self.max_epochs}
                if self.budget is not None
                else {}
            ),
            # only when set, so that specs stored before it existed read back unchanged
            **(
                {"max_failures": self.max_failures}
                if self.max_failures != DEFAULT_MAX_FAILURES
                else {}
            ),
            **({"trial_timeout": self.trial_timeout} if self.trial_timeout else {}),
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, catalog: Catalog, base_dir: str = "."
    ) -> StudySpec:
        """Rebuild a spec stored by :meth:`to_dict` (validated again: storage is input too).

        A planned spec is stored with both its budget and its stages; the stored stages are
        the ones to run (a later hpsearch may plan differently), so they are parsed as if
        the file had listed them and the budget is checked and attached on its own.
        """
        data = dict(data)
        planned: dict[str, Any] = {k: data.pop(k) for k in ("budget", "max_epochs") if k in data}
        spec = parse_spec(data, source="stored spec", base_dir=base_dir, catalog=catalog)
        if not planned:
            return spec
        c = Checker()
        budget = c.typed(planned, "budget", (int,), "", required=True)
        max_epochs = c.typed(planned, "max_epochs", (int,), "", required=True)
        if c.problems:
            raise SpecError("stored spec", c.problems)
        return dataclasses.replace(spec, budget=budget, max_epochs=max_epochs)


#: The top-level keys of a study file: StudySpec's fields, but where the file was found.
TOP_KEYS = tuple(
    _FILE_KEYS.get(f.name, f.name) for f in dataclasses.fields(StudySpec) if f.name != "base_dir"
)


def _stage_ranges(space: SearchSpace) -> dict[str, dict[str, Any]]:
    """A stage's own ranges as its [stage.space] tables hold them: only what it may set."""
    return {p.name: {k: p.to_dict()[k] for k in STAGE_RANGE_KEYS} for p in space}


def _stop_early_dict(s: StageSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"stop_early": s.stop_early, "min_epochs": s.min_epochs}
    if s.stop_early == "asha":
        out["reduction_factor"] = s.reduction_factor
    return out


def load_spec(path: str | Path, *, catalog: Catalog) -> StudySpec:
    """Read and validate a study file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(str(path), [("", f"cannot read the file ({exc.strerror})")]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), [("", f"not valid TOML: {exc}")]) from exc
    return parse_spec(data, source=str(path), base_dir=str(path.resolve().parent), catalog=catalog)


def parse_spec(
    data: dict[str, Any], source: str = "<spec>", base_dir: str = ".", *, catalog: Catalog
) -> StudySpec:
    """Validate a parsed TOML document. Raises :class:`SpecError` listing every problem."""
    c = Checker()
    c.unknown_keys(data, TOP_KEYS, "")
    name = c.typed(data, "name", (str,), "", required=True)
    if isinstance(name, str):
        c.check("name", name, NAME)
    objective = c.typed(data, "objective", (str,), "", default="cnn")
    if isinstance(objective, str):
        c.check("objective", objective, Options(catalog.names()), OBJECTIVE_REF)
    metric = c.typed(data, "metric", (str,), "", default="val_loss")
    direction = c.typed(data, "direction", (str,), "", default="minimize")
    if isinstance(direction, str):
        c.check("direction", direction, Options(DIRECTIONS))
    # A built-in objective declares what it returns, and which way is better.
    declared = catalog.declaration(objective) if isinstance(objective, str) else None
    metrics = getattr(declared, "METRICS", None)
    if metrics and metric in metrics and direction in DIRECTIONS:
        better = "lower" if metrics[metric] == "minimize" else "higher"
        c.check(
            "direction", direction, Options([metrics[metric]]), fix=f"{metric}: {better} is better"
        )
    elif metrics and isinstance(metric, str):
        c.check("metric", metric, Options(metrics), fix=f"what the {objective} objective returns")
    seed = c.typed(data, "seed", (int,), "", default=0)
    max_failures = c.typed(data, "max_failures", (int,), "", default=DEFAULT_MAX_FAILURES)
    trial_timeout = _parse_timeout(c, data, "")
    if isinstance(max_failures, int):
        c.check("max_failures", max_failures, Interval(int, 0, None), fix="0: never stop")
    fixed = c.typed(data, "fixed", (dict,), "", default={})
    for key, value in (fixed or {}).items():
        _check_value(c, f"fixed.{key}", value)

    space_table = c.typed(data, "space", (dict,), "", required=True) or {}
    if "space" in data and isinstance(space_table, dict) and not space_table:
        c.error("space", "must define at least one parameter, e.g. [space.lr]")
    params = [_parse_param(c, pname, ptable) for pname, ptable in space_table.items()]
    space = SearchSpace(tuple(p for p in params if p is not None))
    for pname in space.names:
        if isinstance(fixed, dict) and pname in fixed:
            c.error(f"fixed.{pname}", "is also searched in [space]; keep it in one of the two")
    if isinstance(objective, str) and isinstance(fixed, dict) and isinstance(space_table, dict):
        _check_objective_params(c, declared, fixed, space_table)

    budget, max_epochs = _parse_budget(c, data)
    if "stage" not in data and "budget" not in data:
        c.error(
            "stage",
            "is required: list [[stage]] tables, or give `budget` (epochs in all) and "
            "`max_epochs` (epochs of one full run) and let hpsearch plan the stages",
        )
    stage_list = c.typed(data, "stage", (list,), "") or []
    if "stage" in data and isinstance(stage_list, list) and not stage_list:
        c.error("stage", "must list at least one [[stage]]")
    declared = list(space_table) if isinstance(space_table, dict) else []
    stages = [_parse_stage(c, i, t, space, declared) for i, t in enumerate(stage_list)]
    seen: set[str] = set()
    for i, st in enumerate(stages):
        if st is None:
            continue
        if st.name in seen:
            c.error(f"stage[{i}].name", f"duplicate stage name {st.name!r}; names must differ")
        seen.add(st.name)
        for key, what in (("keep", "narrow"), ("margin", "narrow"), ("promote", "promote")):
            if i == 0 and isinstance(stage_list[0], dict) and key in stage_list[0]:
                c.error(
                    f"stage[0].{key}",
                    f"the first stage has no previous stage to {what} from; drop {key} here",
                )
        if i == 0 and st.sampler == "grid" and all(p is not None for p in params):
            _check_grid(c, st, space.replace(st.space or ()))

    if budget is not None and max_epochs is not None:  # (_parse_budget gives both or neither)
        stages = list(default_plan(budget, max_epochs))
    if isinstance(name, str):
        _check_stored_names(c, name, stages, listed=budget is None)
    if c.problems:
        raise SpecError(source, c.problems)
    return StudySpec(
        name=name,
        objective=objective,
        metric=metric,
        direction=direction,
        seed=seed,
        space=space,
        stages=tuple(s for s in stages if s is not None),
        fixed=dict(fixed),
        base_dir=base_dir,
        budget=budget,
        max_epochs=max_epochs if budget is not None else None,
        max_failures=max_failures,
        trial_timeout=trial_timeout,
    )


#: The longest ``trial_timeout``: 30 days.
MAX_TRIAL_TIMEOUT_S = 30 * 86400


def _parse_timeout(c: Checker, table: dict[str, Any], where: str) -> float | None:
    """``trial_timeout = SECONDS``: a positive number (at most 30 days), or absent."""
    value = c.typed(table, "trial_timeout", (int, float), where)
    fld = f"{where}.trial_timeout" if where else "trial_timeout"
    if value is None or not c.check(fld, value, Finite()):
        return None
    if not c.check(
        fld,
        value,
        Interval(None, 0, MAX_TRIAL_TIMEOUT_S, closed="right"),
        fix="seconds a trial may run; leave it out for no limit",
    ):
        return None
    return float(value)


def _parse_budget(c: Checker, data: dict[str, Any]) -> tuple[int | None, int | None]:
    """``budget``/``max_epochs``: the alternative to [[stage]] tables (hpsearch plans)."""
    if "budget" not in data:
        if "max_epochs" in data:
            c.error(
                "max_epochs",
                "only applies with `budget = ...`; add a total budget in epochs, "
                "or drop max_epochs and set each [[stage]]'s epochs",
            )
        return None, None
    before = len(c.problems)
    budget = c.typed(data, "budget", (int,), "")
    max_epochs = c.typed(data, "max_epochs", (int,), "")
    if "max_epochs" not in data:
        c.error(
            "max_epochs",
            "is required with `budget`: the epochs of one full run (the final stage's), "
            "e.g. max_epochs = 9",
        )
    if "stage" in data:
        c.error(
            "budget",
            "give either `budget` (hpsearch plans the stages) or [[stage]] tables, not both; "
            "drop one (`hpsearch launch --dry-run FILE` prints the planned stages to copy)",
        )
    positive = isinstance(max_epochs, int) and c.check(
        "max_epochs", max_epochs, Interval(int, 1, None)
    )
    if positive and isinstance(budget, int):
        c.holds(
            "budget",
            budget >= max_epochs,
            "budget >= max_epochs",
            fix="a budget pays for one full run at least: raise budget or lower max_epochs",
            budget=budget,
            max_epochs=max_epochs,
        )
    if len(c.problems) != before:
        return None, None
    return budget, max_epochs


def _parse_param(c: Checker, name: str, table: Any, where: str = "") -> Param | None:
    where = where or f"space.{name}"
    if len(name) > MAX_STORED_NAME:
        where = f"space.{name[:40]}..."
        c.error(where, f"is {len(name)} characters; Optuna stores at most {MAX_STORED_NAME}")
        return None
    shape = f"a table like [space.{name}] with low/high or choices"
    if not c.check(where, table, InstanceOf(dict, words=shape)):
        return None
    c.unknown_keys(table, PARAM_KEYS, where)
    before = len(c.problems)
    if "choices" in table:
        for key in ("low", "high", "log", "step", "min", "max"):
            if key in table:
                c.error(f"{where}.{key}", "a categorical parameter (choices) takes no " + key)
        choices = c.typed(table, "choices", (list,), where)
        if choices is None:
            return None
        if not choices:
            c.error(f"{where}.choices", "must not be empty; list at least one value")
            return None
        for i, ch in enumerate(choices):
            if c.check(f"{where}.choices[{i}]", ch, InstanceOf(int, float, str, bool)):
                _check_value(c, f"{where}.choices[{i}]", ch)
        if len(set(map(repr, choices))) != len(choices):
            c.error(f"{where}.choices", f"has duplicates: {choices!r}")
        return CategoricalParam(name, tuple(choices)) if len(c.problems) == before else None

    low = c.typed(table, "low", (int, float), where, required=True)
    high = c.typed(table, "high", (int, float), where, required=True)
    log = c.typed(table, "log", (bool,), where, default=False)
    step = c.typed(table, "step", (int,), where)
    lim_lo = c.typed(table, "min", (int, float), where)
    lim_hi = c.typed(table, "max", (int, float), where)
    if low is None or high is None or len(c.problems) != before:
        return None
    for key, v in (("low", low), ("high", high), ("min", lim_lo), ("max", lim_hi)):
        fix = "leave it out for no limit" if key in ("min", "max") else ""
        if v is not None and not c.check(f"{where}.{key}", v, Finite(), fix=fix):
            return None
    c.holds(where, low < high, "low < high", low=low, high=high)
    if log:
        c.holds(f"{where}.low", low > 0, "low > 0", "for `log = true`", low=low)
    if len(c.problems) == before:
        _check_extent(c, where, low, high, lim_lo, lim_hi, log=log)
    if lim_lo is not None:
        c.holds(f"{where}.min", lim_lo <= low, "min <= low", min=lim_lo, low=low)
    if lim_hi is not None:
        c.holds(f"{where}.max", lim_hi >= high, "max >= high", max=lim_hi, high=high)
    # TOML integers (1, not 1.0) make an int parameter; `typed` already refused bools.
    is_int = isinstance(low, int) and isinstance(high, int)
    if step is not None:
        c.check(f"{where}.step", step, Interval(int, 1, None))
        if not is_int:
            c.error(f"{where}.step", "needs integer low and high (write 1, not 1.0)")
        if log:
            c.check(f"{where}.step", step, Options([1]), fix="`log = true` takes no other step")
        elif is_int and step > 0:
            c.holds(
                f"{where}.step",
                (high - low) % step == 0,
                "(high - low) % step == 0",
                fix="`high - low` must be a multiple of step",
                low=low,
                high=high,
                step=step,
            )
    if len(c.problems) != before:
        return None
    if is_int:
        return IntParam(name, low, high, log=log, step=step or 1, min=lim_lo, max=lim_hi)
    return FloatParam(name, float(low), float(high), log=log, min=lim_lo, max=lim_hi)


#: The widest ranges a search can sample, narrow, widen past a pressed bound and draw
#: without leaving floating point (a width past 1.8e308 is infinite; 10.0 ** -400 is 0):
#: a linear bound within +-1e100, a log range within 1e-100 .. 1e100 (its region is
#: widened in decades), an integer within +-2**53 (every one of them is a float).
MAX_LINEAR = 1e100
LOG_RANGE = (1e-100, 1e100)
MAX_INT = 2**53


def _check_extent(
    c: Checker,
    where: str,
    low: float,
    high: float,
    lim_lo: float | None,
    lim_hi: float | None,
    *,
    log: bool,
) -> None:
    """Refuse a range that floating point cannot sample and narrow safely, naming the
    bound and the limit."""
    is_int = isinstance(low, int) and isinstance(high, int)
    for key, v in (("low", low), ("high", high), ("min", lim_lo), ("max", lim_hi)):
        if v is None:
            continue
        fld = f"{where}.{key}"
        if is_int and abs(v) > MAX_INT:
            c.error(fld, f"{shown(v)} is past +-2**53, the integers a float holds exactly")
        elif log and not is_int and v > 0 and not LOG_RANGE[0] <= v <= LOG_RANGE[1]:
            c.error(
                fld,
                f"{v:g} is outside {LOG_RANGE[0]:g} .. {LOG_RANGE[1]:g}, the widest log range "
                "hpsearch samples and narrows safely",
            )
        elif not log and not is_int and abs(v) > MAX_LINEAR:
            c.error(
                fld,
                f"{v:g} is past +-{MAX_LINEAR:g}, the widest linear range hpsearch samples "
                "and narrows safely (a range this wide wants `log = true`)",
            )


def _parse_stage(
    c: Checker, i: int, table: Any, space: SearchSpace, declared: Iterable[str]
) -> StageSpec | None:
    where = f"stage[{i}]"
    if not c.check(where, table, InstanceOf(dict, words="a [[stage]] table")):
        return None
    before = len(c.problems)
    c.unknown_keys(table, STAGE_KEYS, where)
    name = c.typed(table, "name", (str,), where, required=True)
    if isinstance(name, str):
        c.check(f"{where}.name", name, NAME)
    trials = c.typed(table, "trials", (int,), where, required=True)
    if isinstance(trials, int):
        c.check(f"{where}.trials", trials, Interval(int, 1, None))
    epochs = c.typed(table, "epochs", (int,), where, default=1)
    if isinstance(epochs, int):
        c.check(f"{where}.epochs", epochs, Interval(int, 1, None))
    sampler = c.typed(table, "sampler", (str,), where, default="random")
    if isinstance(sampler, str):
        c.check(f"{where}.sampler", sampler, Options(SAMPLERS))
    keep = c.typed(table, "keep", (int, float), where, default=DEFAULT_KEEP)
    if isinstance(keep, int | float):
        c.check(f"{where}.keep", keep, Interval(None, 0, 1, closed="right"))
    margin = c.typed(table, "margin", (int, float), where, default=DEFAULT_MARGIN)
    if isinstance(margin, int | float):
        c.check(f"{where}.margin", margin, Interval(None, 0, 10))
    promote = c.typed(table, "promote", (int,), where, default=0)
    some = isinstance(promote, int) and c.check(
        f"{where}.promote", promote, Interval(int, 0, None)
    )
    if some and isinstance(trials, int):
        c.holds(
            f"{where}.promote",
            promote <= trials,
            "promote <= trials",
            fix="promoted runs fill this stage's slots: lower promote or raise trials",
            promote=promote,
            trials=trials,
        )
    ranges = _parse_stage_ranges(c, where, table, space, declared)
    stop, factor, least = _parse_stop_early(c, table, where, epochs, sampler)
    timeout = _parse_timeout(c, table, where)
    if len(c.problems) != before:
        return None
    return StageSpec(
        name,
        trials,
        epochs,
        sampler,
        float(keep),
        float(margin),
        promote,
        ranges,
        stop_early=stop,
        reduction_factor=factor,
        min_epochs=least,
        trial_timeout=timeout,
    )


def _parse_stage_ranges(
    c: Checker, where: str, table: dict[str, Any], space: SearchSpace, declared: Iterable[str]
) -> SearchSpace | None:
    """``[stage.space.NAME]``: the range of a numeric parameter of [space] in this stage,
    checked as [space]'s are, with its kind, scale, step and limits taken from [space]."""
    ranges = c.typed(table, "space", (dict,), where, default={})
    params = []
    for pname, ptable in (ranges or {}).items():
        fld = f"{where}.space.{pname}"
        if pname not in space.names:
            if pname not in declared:  # (a broken [space] entry is reported on its own)
                c.error(
                    fld,
                    f"{pname!r} is not a parameter of [space] ({', '.join(declared)}); a "
                    f"stage sets ranges only for parameters in [space]: add [space.{pname}]",
                )
            continue
        base = space[pname]
        if not base.numeric:
            c.error(fld, "a categorical parameter's choices are set in [space] only")
            continue
        shape = f"a table like [stage.space.{pname}] with low and high"
        if not c.check(fld, ptable, InstanceOf(dict, words=shape)):
            continue
        for key in ptable:
            if key in PARAM_KEYS and key not in STAGE_RANGE_KEYS:
                c.error(f"{fld}.{key}", f"is [space.{pname}]'s to set; a stage sets low and high")
        others = {k: v for k, v in ptable.items() if k not in PARAM_KEYS}
        c.unknown_keys(others, STAGE_RANGE_KEYS, fld)
        ptable = {k: v for k, v in ptable.items() if k in STAGE_RANGE_KEYS}
        ptable = {k: base.stage_bound(v) for k, v in ptable.items()}  # the kind is [space]'s
        inherited = {k: v for k, v in base.to_dict().items() if k not in STAGE_RANGE_KEYS}
        param = _parse_param(c, pname, {**inherited, **ptable}, where=fld)
        if param is not None:
            params.append(param)
    return SearchSpace(tuple(params)) if params else None


def _parse_stop_early(
    c: Checker, table: dict[str, Any], where: str, epochs: Any, sampler: Any
) -> tuple[str | None, int, int]:
    """``stop_early`` with its ``reduction_factor`` (asha) and ``min_epochs``."""
    rule = c.typed(table, "stop_early", (str,), where)
    factor = c.typed(table, "reduction_factor", (int,), where, default=DEFAULT_REDUCTION_FACTOR)
    least = c.typed(table, "min_epochs", (int,), where, default=DEFAULT_MIN_EPOCHS)
    if rule is None:
        for key, rules in (("reduction_factor", '"asha"'), ("min_epochs", '"asha" or "median"')):
            if key in table:
                c.error(
                    f"{where}.{key}", f"applies with stop_early = {rules}; set it or drop {key}"
                )
        return None, DEFAULT_REDUCTION_FACTOR, DEFAULT_MIN_EPOCHS
    known = c.check(f"{where}.stop_early", rule, Options(STOP_RULES))
    if known and rule != "asha" and "reduction_factor" in table:
        c.error(f"{where}.reduction_factor", 'applies with stop_early = "asha" only; drop it')
    if isinstance(factor, int):
        c.check(f"{where}.reduction_factor", factor, Interval(int, 2, None))
    if isinstance(epochs, int) and epochs < 2:
        c.error(
            f"{where}.stop_early",
            f"a stage of {epochs} epoch has nothing to stop early; raise epochs or drop it",
        )
    elif isinstance(least, int) and isinstance(epochs, int):
        c.holds(
            f"{where}.min_epochs",
            1 <= least < epochs,
            "1 <= min_epochs < epochs",
            min_epochs=least,
            epochs=epochs,
        )
    if sampler == "grid":
        # a grid has exactly `trials` points: the epochs stopped runs leave cannot buy more
        c.error(f"{where}.stop_early", 'a grid cannot grow; use sampler = "sobol" or "random"')
    return rule, factor, least


def _check_grid(c: Checker, stage: StageSpec, space: SearchSpace) -> None:
    """The first stage's space is known now, so its grid must come out at exactly
    ``trials`` points. Later grid stages run on a narrowed space that is only known at run
    time; there, a grid that cannot be exact is topped up with random points."""
    from hpsearch.core.points import GridError, grid_shape

    try:
        grid_shape(space, stage.trials)
    except GridError as exc:
        c.error("stage[0].trials", str(exc))


def _check_value(c: Checker, fld: str, value: Any) -> None:
    """A value the spec stores (as JSON, compared on resume) and passes to the objective:
    a string, a finite number, true/false or a list of them. A TOML date or time has no
    JSON form, a table in ``[fixed]`` is no parameter value, and NaN never equals itself,
    so a resume would always see a changed spec."""
    if isinstance(value, datetime.date | datetime.time):
        c.error(fld, f'a TOML date/time cannot be stored; write it as a string: "{value}"')
    elif isinstance(value, dict):
        c.error(fld, "must be a value, not a table; give each key its own line in [fixed]")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(c, f"{fld}[{i}]", item)
    elif isinstance(value, float):
        c.check(fld, value, Finite())
    elif isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        c.error(
            fld,
            f"{shown(value)} is past 64-bit integers (what TOML, the storage's readers and "
            "the exports hold); write it as a string, or as a float if it is a quantity",
        )
    else:
        c.check(fld, value, InstanceOf(str, int, float, bool, list))


def _check_objective_params(
    c: Checker, module: Any | None, fixed: dict[str, Any], space: dict[str, Any]
) -> None:
    """Keys and values a built-in objective would refuse on its first trial, refused now:
    unknown keys (with did-you-mean), categorical values in ``[fixed]`` and in choices, and
    then ``[fixed]`` as the objective's own configs check it."""
    if module is None:
        return
    declared = module.PARAMS
    # The objective takes `metric` from the top of the file, where its direction is checked.
    settable = tuple(k for k in declared if k != "metric")
    before = len(c.problems)
    for where, table in (("fixed", fixed), ("space", space)):
        if "metric" in table:
            c.error(f"{where}.metric", "set `metric` at the top of the study file instead")
        c.unknown_keys({k: v for k, v in table.items() if k != "metric"}, settable, where)
    for key, value in fixed.items():
        option = declared.get(key)
        if option is not None and option.constraint is not None:
            c.check(f"fixed.{key}", value, option.constraint)
    first_choices: dict[str, Any] = {}
    for key, table in space.items():
        option = declared.get(key)
        if option is None or option.constraint is None or not isinstance(table, dict):
            continue
        choices = table.get("choices")
        if choices is None:
            shown = ", ".join(repr(ch) for ch in option.choices)
            c.error(f"space.{key}", f"takes one of {shown}; search it with choices = [...]")
        elif isinstance(choices, list) and choices:
            for i, ch in enumerate(choices):
                c.check(f"space.{key}.choices[{i}]", ch, option.constraint)
            first_choices[key] = choices[0]
    if len(c.problems) != before:
        return
    # The same configs a trial builds, on [fixed] and a first choice of each categorical
    # parameter (so that a searched data_dir or dataset counts as given).
    for key, message in module.check_params({**fixed, **first_choices}):
        c.error(f"space.{key}" if key in first_choices else f"fixed.{key}", message)


def _check_stored_names(
    c: Checker, name: str, stages: Sequence[StageSpec | None], listed: bool
) -> None:
    """Every study hpsearch stores for this search, ``NAME/STAGE`` (the baselines of
    ``hpsearch compare`` included), must fit Optuna's name column. ``listed``: the stages
    come from the file's [[stage]] tables, so one too long is the stage's to fix; planned
    stages (and the baselines) are the name's."""
    names = [s.name for s in stages if s is not None]
    unlisted = [*BASELINE_STAGES, *([] if listed else names)]
    longest = max([*unlisted, *names], key=len)
    if len(name) + 1 + max(map(len, unlisted)) > MAX_STORED_NAME:
        c.error(
            "name",
            f"is {len(name)} characters, too long to store: Optuna keeps study names of at "
            f"most {MAX_STORED_NAME} characters, and this search's longest is "
            f"NAME/{longest}; use at most {MAX_STORED_NAME - 1 - len(longest)} characters",
        )
        return
    for i, stage in enumerate(stages):
        if listed and stage is not None and len(name) + 1 + len(stage.name) > MAX_STORED_NAME:
            c.error(
                f"stage[{i}].name",
                f"is {len(stage.name)} characters, too long to store: NAME/STAGE must fit "
                f"Optuna's {MAX_STORED_NAME}-character study names; use at most "
                f"{MAX_STORED_NAME - 1 - len(name)} characters",
            )
