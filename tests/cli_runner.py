"""Run ``hpsearch`` as a user does: a real process, with the stub objectives importable."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TESTS = Path(__file__).parent

#: ``hpsearch`` with some modules unimportable, as on an install that lacks them: a None in
#: ``sys.modules`` makes ``import`` raise ModuleNotFoundError and ``find_spec`` return None.
WITHOUT = (
    "import sys\n"
    "for m in {modules!r}: sys.modules[m] = None\n"
    "from hpsearch.cli import main\n"
    "main()"
)


def child_pythonpath() -> str:
    """The stub objectives, then this checkout: a test's processes run the code under test,
    not whichever copy of hpsearch the environment has installed (an editable install of
    another checkout, say)."""
    return os.pathsep.join([str(TESTS), str(TESTS.parent)])


def hpsearch(
    *args: str,
    cwd: Path,
    env: dict | None = None,
    without: Sequence[str] = (),
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess:
    """``hpsearch ARGS`` in ``cwd``; ``$HPSEARCH_STORAGE`` is dropped unless ``env`` sets it,
    so a developer's own setting cannot leak into a test. An existing ``$PYTHONPATH`` is
    kept after the tests folder, so a checkout put first on it is the one tested. Standard
    input is no terminal (as under a scheduler), whatever pytest was started from."""
    full_env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    full_env.update({"PYTHONPATH": child_pythonpath(), **(env or {})})
    if without:
        command = ["-c", WITHOUT.format(modules=tuple(without))]
    else:
        command = ["-m", "hpsearch.cli"]
    return subprocess.run(
        [sys.executable, *command, *args],
        cwd=cwd,
        env=full_env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=240,
    )
