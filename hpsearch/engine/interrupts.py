"""Ctrl-C and SIGTERM stop a long-running command, however it was started.

A process started with SIGINT ignored (a shell's background job, ``nohup``, some CI
runners) passes that on to every child: Python then installs no KeyboardInterrupt handler
of its own, and Ctrl-C (or a SIGINT sent by a supervisor) does nothing. Commands that run
until stopped install their handler explicitly instead of relying on the inherited one.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise KeyboardInterrupt in the main thread;
    the previous handlers (SIG_IGN included) come back afterwards."""
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
