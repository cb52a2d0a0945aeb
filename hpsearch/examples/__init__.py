"""Example study files that ship inside the package (``hpsearch example quickstart``).
May import: core.

They let a pip-installed user start without the repository. The repository's top-level
``studies/`` folder is their source: the files here are copies of it, made by
``python scripts/sync_examples.py`` and checked identical by ``tests/test_examples.py``.
They are read through :mod:`importlib.resources`, which finds them in a wheel, an editable
install or a zip alike. Each study file's first comment line is its one-line summary; a
``.py`` file is an objective a study file imports (named with its suffix).
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

from hpsearch.core.errors import UserError

SUFFIX = ".toml"
#: Objectives that study files import: listed and printed with their suffix.
CODE = ".py"


def _files() -> dict[str, Traversable]:
    folder = files(__name__)
    return {
        f.name.removesuffix(SUFFIX): f
        for f in sorted(folder.iterdir(), key=lambda f: (f.name.endswith(CODE), f.name))
        if f.name.endswith(SUFFIX) or (f.name.endswith(CODE) and not f.name.startswith("_"))
    }


def names() -> list[str]:
    """The examples' names, for ``hpsearch example NAME``: study files, then objectives."""
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
    """The study file's first comment line, without the ``#``; an objective's docstring's."""
    first = read(name).splitlines()[0]
    return first.removeprefix("#").strip().strip('"').strip()
