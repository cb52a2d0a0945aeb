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

from hpsearch.spec import BUILTIN_OBJECTIVES, SpecError

Objective = Callable[[dict[str, Any], int, Any], float]

#: Modules a built-in objective needs beyond the base install, and the extra that brings
#: them: the base install is light, so a missing one is the user's to add, not a bug.
NEEDS = {
    "hpsearch.objectives.cnn": ("hpsearch[cnn]", {"torch": "torch", "sklearn": "scikit-learn"}),
}


def load_objective(ref: str, base_dir: str = ".", source: str = "<spec>") -> Objective:
    """The objective function; a :class:`SpecError` on ``objective`` says what is missing."""
    target = BUILTIN_OBJECTIVES.get(ref, ref)
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
    return fn


def check_extra(ref: str, module_name: str, source: str) -> None:
    """A :class:`SpecError` naming the pip extra when a built-in objective's packages are
    missing. ``find_spec`` only locates them: importing torch here would cost seconds."""
    if module_name not in NEEDS:
        return
    extra, modules = NEEDS[module_name]
    missing = [dist for mod, dist in modules.items() if importlib.util.find_spec(mod) is None]
    if missing:
        msg = (
            f"{ref!r} needs {' and '.join(modules.values())}, and this install lacks "
            f'{" and ".join(missing)}; install them with pip install "{extra}"'
        )
        raise SpecError(source, [("objective", msg)])
