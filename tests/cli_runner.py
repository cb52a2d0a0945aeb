"""Run ``hpsearch`` as a user does: a real process, with the stub objectives importable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def hpsearch(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``hpsearch ARGS`` in ``cwd``; ``$HPSEARCH_STORAGE`` is dropped unless ``env`` sets it,
    so a developer's own setting cannot leak into a test."""
    full_env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    # An existing PYTHONPATH is kept (after the stubs): a worktree puts its own copy of
    # hpsearch there, ahead of the installed one.
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    full_env.update({"PYTHONPATH": path, **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "hpsearch.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
