"""Example study files that ship inside the package (``hpsearch example quickstart``).
May import: core.

They let a pip-installed user start without the repository.
The ``*.toml`` files beside this module are the only copies; they are read through
:mod:`importlib.resources`, which finds them in a wheel, an editable install or a zip
alike. Each file's first comment line is its one-line summary.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

from hpsearch.core.errors import UserError

SUFFIX = ".toml"


def _files() -> dict[str, Traversable]:
    folder = files(__name__)
    return {
        f.name.removesuffix(SUFFIX): f
        for f in sorted(folder.iterdir(), key=lambda f: f.name)
        if f.name.endswith(SUFFIX)
    }


def names() -> list[str]:
    """The examples' names, for ``hpsearch example NAME``."""
    return list(_files())


def read(name: str) -> str:
    """The TOML text of example ``name``; a :class:`UserError` naming the examples if none."""
    found = _files().get(name)
    if found is None:
        raise UserError(
            f"example {name!r}: no such example; the examples are {', '.join(names())} "
            "(`hpsearch example` lists them)"
        )
    return found.read_text(encoding="utf-8")


def summary(name: str) -> str:
    """The example's first comment line, without the ``#``."""
    first = read(name).splitlines()[0]
    return first.removeprefix("#").strip()
