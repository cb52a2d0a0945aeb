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


def hpsearch(
    *args: str, cwd: Path, env: dict | None = None, without: Sequence[str] = ()
) -> subprocess.CompletedProcess:
    """``hpsearch ARGS`` in ``cwd``; ``$HPSEARCH_STORAGE`` is dropped unless ``env`` sets it,
    so a developer's own setting cannot leak into a test. An existing ``$PYTHONPATH`` is
    kept after the tests folder, so a checkout put first on it is the one tested."""
    full_env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    full_env.update({"PYTHONPATH": path, **(env or {})})
    if without:
        command = ["-c", WITHOUT.format(modules=tuple(without))]
    else:
        command = ["-m", "hpsearch.cli"]
    return subprocess.run(
        [sys.executable, *command, *args],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,  # no terminal: commands that would ask must refuse
        capture_output=True,
        text=True,
        timeout=240,
    )
