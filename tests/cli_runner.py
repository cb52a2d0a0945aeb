"""Run ``hpsearch`` as a user does: a real process, with the stub objectives importable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def child_pythonpath() -> str:
    """The stub objectives, then this checkout: a test's processes run the code under test,
    not whichever copy of hpsearch the environment has installed (an editable install of
    another checkout, say)."""
    return os.pathsep.join([str(TESTS), str(TESTS.parent)])


def hpsearch(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``hpsearch ARGS`` in ``cwd``; ``$HPSEARCH_STORAGE`` is dropped unless ``env`` sets it,
    so a developer's own setting cannot leak into a test."""
    full_env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    full_env.update({"PYTHONPATH": child_pythonpath(), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "hpsearch.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
