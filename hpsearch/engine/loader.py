"""Import an objective named ``module:function`` (or a built-in name).

The study file's folder and the current folder go on ``sys.path`` first, so a user's
``train.py`` beside the study file just works, on any machine that has it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from hpsearch.core.errors import UserError
from hpsearch.core.spec import SpecError, StudySpec
from hpsearch.objectives.catalog import BUILTIN, BUILTINS

Objective = Callable[[dict[str, Any], int, Any], float]


def load_objective(ref: str, base_dir: str = ".", source: str = "<spec>") -> Objective:
    """The objective function; a :class:`SpecError` on ``objective`` says what is missing."""
    target = BUILTIN.get(ref, ref)
    module_name, _, attr = target.partition(":")
    check_extra(ref, module_name, source)
    for folder in (".", base_dir):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            msg = (
                f"module {module_name!r} not found (looked in {base_dir}, the current folder "
                "and installed packages); put it beside the study file or install it"
            )
        else:
            msg = f"module {module_name!r} imports {missing!r}, which is not installed"
        raise SpecError(source, [("objective", msg)]) from exc
    except Exception as exc:  # a user's module that fails at import time
        msg = f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        raise SpecError(source, [("objective", msg)]) from exc
    fn = getattr(module, attr, None)
    if fn is None:
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        msg = f"module {module_name!r} has no attribute {attr!r}"
        if public:
            msg += f" (callables there: {', '.join(sorted(public)[:8])})"
        raise SpecError(source, [("objective", msg)])
    if not callable(fn):
        raise SpecError(source, [("objective", f"{target!r} is not callable")])
    check_signature(fn, target, source)
    return fn


#: How every trial calls the objective.
CONTRACT = "fn(params, epochs, report)"


def check_signature(fn: Callable[..., Any], name: str, source: str = "<spec>") -> None:
    """A :class:`SpecError` on ``objective`` when ``fn`` cannot be called as
    ``fn(params, epochs, report)``: caught before anything is stored or run, with the
    function, its file and line, and the signature it has."""
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or an extension type: nothing to check
        return
    try:
        signature.bind(None, None, None)
    except TypeError:
        pass
    else:
        return
    code = getattr(inspect.unwrap(fn), "__code__", None)
    at = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else "an unknown file"
    label = getattr(fn, "__name__", None) or name
    msg = (
        f"{name} is {label}({', '.join(signature.parameters)}) (in {at}), which cannot be called as {CONTRACT}: "
        "every trial passes its params (a dict), its epoch budget (an int) and a report "
        "handle (report(epoch, value) after each epoch); take all three, even one unused"
    )
    raise SpecError(source, [("objective", msg)])


def check_extra(ref: str, module_name: str, source: str) -> None:
    """A :class:`SpecError` naming the pip extra when a built-in objective's packages are
    missing (its module declares them, and imports without them: ``REQUIRES``, ``EXTRA``;
    the base install is light, so a missing one is the user's to add, not a bug).
    ``find_spec`` only locates them: importing torch here would cost seconds."""
    if module_name not in {t.partition(":")[0] for t in BUILTIN.values()}:
        return
    module = importlib.import_module(module_name)
    modules: dict[str, str] = getattr(module, "REQUIRES", {})
    missing = [dist for mod, dist in modules.items() if importlib.util.find_spec(mod) is None]
    if missing:
        msg = (
            f"{ref!r} needs {' and '.join(modules.values())}, and this install lacks "
            f'{" and ".join(missing)}; install them with pip install "{module.EXTRA}"'
        )
        raise SpecError(source, [("objective", msg)])


def prepare_params(spec: StudySpec, params: dict[str, Any]) -> dict[str, Any]:
    """The params the objective is called with: ``params`` (``[fixed]`` and the slot's),
    plus what a built-in objective takes from the search (its ``prepare_params``; the
    CNN's metric, data split seed and data folder). One function for every trial and
    retrain, so that a retrained winner gets what its trial got."""
    prepare = getattr(BUILTINS.declaration(spec.objective), "prepare_params", None)
    return params if prepare is None else prepare(spec, params)


def seeded_params(spec: StudySpec) -> tuple[str, ...]:
    """The params the objective derives from the search's seed (a built-in's ``SEEDED``;
    none for a ``module:function`` objective)."""
    return tuple(getattr(BUILTINS.declaration(spec.objective), "SEEDED", ()))


def preflight(spec: StudySpec, device: str, source: str = "<spec>") -> None:
    """What ``launch --dry-run`` checks beyond the file: the objective imports and, for a
    built-in that offers ``check_data``, the data a trial would load loads and the device
    is there, for ``[fixed]`` and for each categorical choice (a searched ``dataset``
    loads each; the data is cached, so other choices cost nothing).

    Raises:
        SpecError: naming the field of the file.
        UserError: for ``--device`` alone.
    """
    load_objective(spec.objective, spec.base_dir, source)
    module = BUILTINS.declaration(spec.objective)
    check_data = getattr(module, "check_data", None)
    if check_data is None:
        return
    variants: list[tuple[dict[str, Any], str | None]] = [({}, None)]
    variants += [({p.name: choice}, p.name) for p in spec.space for choice in p.listed()]
    # dicts as ordered sets: each variant may find the same problem again
    in_file: dict[tuple[str, str], None] = {}
    on_command_line: dict[str, None] = {}
    for extra, searched in variants:
        for key, message in check_data(prepare_params(spec, {**spec.fixed, **extra}), device):
            if key == searched:
                in_file[f"space.{key}", message] = None
            elif key != "device" or key in spec.fixed:
                in_file[f"fixed.{key}", message] = None
            else:
                on_command_line[message] = None
    if in_file:
        raise SpecError(source, list(in_file))
    if on_command_line:
        raise UserError(f"--device: {next(iter(on_command_line))}")
