"""docs/design.md names only modules and functions that exist.

The design doc is read by the next engineer before the code: a module it names that was
moved or renamed sends them to the wrong place. Every backticked ``path.py`` or ``folder/``
and every dotted ``module.name`` whose first part is a hpsearch module is checked against
the source (by AST: no import, so the check costs milliseconds).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import hpsearch

PACKAGE = Path(hpsearch.__file__).parent
ROOT = PACKAGE.parent
DOC = ROOT / "docs" / "design.md"


@cache
def modules() -> dict[str, Path]:
    """Every module by its dotted path inside the package and by each dotted suffix of it
    (``store.slots``, ``slots``), where the suffix is unique."""
    full = {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__"): p
        for p in PACKAGE.rglob("*.py")
    }
    by_suffix: dict[str, list[Path]] = {}
    for name, path in full.items():
        parts = name.split(".")
        for i in range(len(parts)):
            by_suffix.setdefault(".".join(parts[i:]), []).append(path)
    return {k: v[0] for k, v in by_suffix.items() if len(v) == 1} | full


def defined(path: Path, names: list[str]) -> bool:
    """Whether ``names`` (``Class.method`` or ``function``) is defined in the module."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    for name in names:
        found = None
        for node in body:
            targets = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                targets = [node.name]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                nodes = node.targets if isinstance(node, ast.Assign) else [node.target]
                targets = [t.id for t in nodes if isinstance(t, ast.Name)]
                targets += [t.attr for t in nodes if isinstance(t, ast.Attribute)]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = [(a.asname or a.name).split(".")[0] for a in node.names]
            if name in targets:
                found = node
                break
        if found is None:
            return False
        body = found.body if isinstance(found, ast.ClassDef) else []
    return True


def references() -> list[str]:
    return re.findall(r"`([^`\n]+)`", DOC.read_text(encoding="utf-8"))


def test_every_path_the_doc_names_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    layout = re.findall(r"^\s+([\w/]+(?:\.py|/))\s", text, flags=re.M)
    paths = [r for r in references() if re.fullmatch(r"[\w/]+(\.py|/)", r)] + layout
    assert len(paths) >= 20, "the layout lists the package's modules"
    files = [str(f.relative_to(PACKAGE)) for f in PACKAGE.rglob("*")]
    missing = [
        p
        for p in paths
        if not (PACKAGE / p).exists()
        and not (ROOT / p).exists()
        # `note.py` beside `terminal.py` in a sentence about report/: unique in the package
        and sum(f == p.rstrip("/") or f.endswith("/" + p.rstrip("/")) for f in files) != 1
    ]
    assert not missing, f"docs/design.md names paths that do not exist: {missing}"


def test_every_module_name_the_doc_uses_exists() -> None:
    missing = []
    for ref in references():
        if ref.endswith(".py"):
            continue
        m = re.fullmatch(r"([a-z_]+(?:\.[a-z_]+)*)\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)(\(\))?", ref)
        if not m:
            continue
        # the longest dotted prefix that is a module, the rest names a definition in it
        parts = ref.removesuffix("()").split(".")
        for i in range(len(parts) - 1, 0, -1):
            module = modules().get(".".join(parts[:i]))
            if module is not None:
                if not defined(module, parts[i:]) and ".".join(parts) not in modules():
                    missing.append(ref)
                break
    assert not missing, f"docs/design.md names what the code does not define: {missing}"
