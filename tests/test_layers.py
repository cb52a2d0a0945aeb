"""The floors of the package point down: an import-graph check over the source.

Each subpackage's ``__init__`` says on its second docstring line which floors it may
import (``May import: core, store.``); this test reads those lines, not a list of files,
and checks every import in every module against them (imports inside functions and under
``TYPE_CHECKING`` included), that no module imports a face (``api``, ``cli``), that the
module graph has no circle, and that the core stays pure.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import hpsearch

PACKAGE = Path(hpsearch.__file__).parent
#: What the pure core may not import: each costs seconds, and the core must stay instant.
HEAVY = {"torch", "sqlalchemy", "optuna", "plotly", "pandas", "sklearn", "psycopg"}
#: The faces sit above every floor; ``cli`` also uses ``api``, the package exports ``api``.
FACES = {
    "hpsearch.api": {"hpsearch.api"},
    "hpsearch.cli": {"hpsearch.api"},
    "hpsearch": {"hpsearch.api"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def sources() -> dict[str, ast.Module]:
    return {
        module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in PACKAGE.rglob("*.py")
    }


def imported(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Every hpsearch module and top-level package this module imports, anywhere in it."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            # `from hpsearch.store import slots` imports the module hpsearch.store.slots
            modules = {f"{base}.{a.name}" for a in node.names} & set(sources())
            out.update(modules or {base})
    return out


def floor(module: str) -> str:
    """``hpsearch.store.slots`` -> ``hpsearch.store``; a face is its own floor."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or module not in FACES else module


@cache
def allowed() -> dict[str, set[str]]:
    """Each floor's ``May import:`` line, as the floors it names (itself included)."""
    out: dict[str, set[str]] = {}
    for module, tree in sources().items():
        if (
            module.count(".") != 1
            or module in FACES
            or not (PACKAGE / module.split(".")[1]).is_dir()
        ):
            continue
        doc = ast.get_docstring(tree) or ""
        lines = doc.splitlines()
        assert len(lines) >= 2 and lines[1].startswith("May import:"), (
            f"{module}/__init__.py: the docstring's second line must say `May import: ...`"
        )
        named = re.findall(r"\b[a-z_]+\b", lines[1].split(":", 1)[1].split(",  ")[0])
        floors = {f"hpsearch.{n}" for n in named if (PACKAGE / n).is_dir()}
        out[module] = floors | {module}
    return out


def edges() -> set[tuple[str, str]]:
    return {
        (m, t)
        for m, tree in sources().items()
        for t in imported(tree, m, (PACKAGE / Path(*m.split(".")[1:]) / "__init__.py").exists())
        if t.split(".")[0] == "hpsearch" and t in sources() and t != m
    }


def test_every_floor_declares_what_it_may_import() -> None:
    floors = {floor(m) for m in sources()} - set(FACES)
    assert floors == set(allowed()), "a subpackage without its `May import:` line"
    assert len(floors) >= 6


@pytest.mark.parametrize("face", sorted(FACES))
def test_no_floor_imports_a_face(face: str) -> None:
    up = sorted(m for m, t in edges() if t == face and m not in FACES[face] and m not in FACES)
    assert not up, f"{up} import the face {face}"


def test_imports_point_down() -> None:
    wrong = sorted(
        f"{m} imports {t}"
        for m, t in edges()
        if floor(m) not in FACES and floor(t) not in allowed()[floor(m)]
    )
    assert not wrong, "\n".join(wrong)


def test_no_import_circle() -> None:
    graph: dict[str, set[str]] = {}
    for m, t in edges():
        # a package's own __init__ re-exporting its modules is not a circle of the design
        if not t.startswith(m + "."):
            graph.setdefault(m, set()).add(t)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(t) :] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_core_is_pure() -> None:
    """Importing every core module loads none of the heavy libraries (a core class may
    import Optuna inside the one method that converts to it), and no core module imports
    by name at run time, which is how a floor would reach up unseen."""
    core = sorted(m for m in sources() if floor(m) == "hpsearch.core")
    code = f"import sys; {'; '.join(f'import {m}' for m in core)}; print(' '.join(sys.modules))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert not {m.split(".")[0] for m in loaded} & HEAVY
    for module in core:
        names = {
            n.split(".")[0] for n in imported(sources()[module], module, module == "hpsearch.core")
        }
        assert "importlib" not in names, f"{module} imports by name"


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    """The graph check is not vacuous: an upward import in a core module is caught."""
    tree = ast.parse("from hpsearch.store import SearchStore\n")
    targets = imported(tree, "hpsearch.core.spec", False)
    assert "hpsearch.store" in targets
    assert floor("hpsearch.store") not in allowed()["hpsearch.core"]
    assert importlib.util.find_spec("hpsearch.core") is not None
