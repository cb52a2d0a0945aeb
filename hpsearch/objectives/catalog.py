"""The built-in objectives by name, and the study-file readers that know them.

A study file names ``objective = "cnn"`` or ``"module:function"``. The core checks a file
against a built-in's declaration but never imports an objective (it is the floor below);
this module is the one place that maps names to modules, and its readers pass it in.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from pathlib import Path
from types import ModuleType
from typing import Any

from hpsearch.core import spec as core

#: Built-in name -> ``module:function``; each module imports without torch.
BUILTIN = {"cnn": "hpsearch.objectives.cnn:objective"}


class _Builtins:
    """:class:`hpsearch.core.spec.Catalog` of :data:`BUILTIN`."""

    def names(self) -> Collection[str]:
        return BUILTIN

    def declaration(self, objective: str) -> ModuleType | None:
        ref = BUILTIN.get(objective)
        return importlib.import_module(ref.partition(":")[0]) if ref else None


BUILTINS = _Builtins()


def load_spec(path: str | Path) -> core.StudySpec:
    """Read and validate a study file (:func:`hpsearch.core.spec.load_spec`)."""
    return core.load_spec(path, catalog=BUILTINS)


def parse_spec(
    data: dict[str, Any], source: str = "<spec>", base_dir: str = "."
) -> core.StudySpec:
    """Validate a parsed TOML document (:func:`hpsearch.core.spec.parse_spec`)."""
    return core.parse_spec(data, source, base_dir, catalog=BUILTINS)


def spec_from_dict(data: dict[str, Any], base_dir: str = ".") -> core.StudySpec:
    """Rebuild a stored spec (:meth:`hpsearch.core.spec.StudySpec.from_dict`)."""
    return core.StudySpec.from_dict(data, catalog=BUILTINS, base_dir=base_dir)
