"""Tiny stub objectives for tests: the engine and the workers do not need a CNN.

Each follows the objective contract ``fn(params, epochs, report) -> float``.
"""

from __future__ import annotations

import math
import os
import random
import signal
import time


def quadratic(params: dict, epochs: int, report) -> float:
    """Best at lr = 10^-2.5; a categorical nudge; more epochs help a little."""
    v = (math.log10(params["lr"]) + 2.5) ** 2 + 0.1 * (params.get("act", "relu") != "relu")
    for e in range(1, epochs + 1):
        report(e, v + 1.0 / e)
    return v + 1.0 / epochs


def sparse(params: dict, epochs: int, report) -> float:
    """:func:`quadratic` reporting every other epoch and the last: it steps over rungs."""
    v = quadratic(params, epochs, lambda *_: None)
    for e in range(2, epochs + 1, 2):
        report(e, quadratic(params, e, lambda *_: None))
    if epochs % 2:
        report(epochs, v)
    return v


def seeded(params: dict, epochs: int, report) -> float:
    """:func:`quadratic` plus the ``[fixed]`` ``offset`` and noise drawn from the trial's
    seed: only the same params, fixed values and seed give the same value again."""
    noise = random.Random(report.seed).random() * 1e-3
    return quadratic(params, epochs, report) + params["offset"] + noise


def sleepy(params: dict, epochs: int, report) -> float:
    """Sleeps ``STUB_SLEEP`` seconds (default 0.3) per epoch: for tests that kill workers."""
    pause = float(os.environ.get("STUB_SLEEP", "0.3"))
    for e in range(1, epochs + 1):
        time.sleep(pause)
        report(e, quadratic(params, e, lambda *_: None))
    return quadratic(params, epochs, lambda *_: None)


def holds_the_gil(params: dict, epochs: int, report) -> float:
    """Holds the interpreter lock for ``STUB_HOLD`` seconds (default 6) in one C call, as a
    long BLAS call or an extension that never releases it does: libc's ``sleep`` called
    through ``ctypes.PyDLL``, which keeps the lock held. No thread of the worker runs.
    SIGALRM is blocked meanwhile (``trial_timeout``'s interruption would end ``sleep``
    early, which a C loop that retries on EINTR does not do)."""
    import ctypes

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        ctypes.PyDLL(None).sleep(int(os.environ.get("STUB_HOLD", "6")))
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
    return quadratic(params, epochs, report)


def killed(params: dict, epochs: int, report) -> float:
    """SIGKILLs its own worker process: a worker that dies on every trial."""
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL cannot be caught")


def crash_on_tanh(params: dict, epochs: int, report) -> float:
    if params.get("act") == "tanh":
        raise RuntimeError("tanh is not supported by this stub")
    return quadratic(params, epochs, report)


def nan_on_tanh(params: dict, epochs: int, report) -> float:
    return math.nan if params.get("act") == "tanh" else quadratic(params, epochs, report)


def broken(params: dict, epochs: int, report) -> float:
    """A typo (``params["learning_rate"]``) until ``STUB_FIXED`` is set: the broken, then
    fixed objective of the fail-fast tests. Sleeps ``STUB_SLEEP`` s (default 0) first."""
    time.sleep(float(os.environ.get("STUB_SLEEP", "0")))
    if not os.environ.get("STUB_FIXED"):
        return params["learning_rate"]
    return quadratic(params, epochs, report)


def tanh_until_fixed(params: dict, epochs: int, report) -> float:
    """``crash_on_tanh`` until ``STUB_FIXED`` is set; then tanh is the better choice, so a
    stage narrowed from the failed results searches the wrong one."""
    if not os.environ.get("STUB_FIXED"):
        return crash_on_tanh(params, epochs, report)
    return quadratic(params, epochs, report) - 0.2 * (params["act"] == "tanh")


_calls = 0


def fails_late(params: dict, epochs: int, report) -> float:
    """Succeeds for the first ``STUB_OK`` calls in this process (default 5), then fails
    every time, as when a disk fills up half-way through a search."""
    global _calls
    _calls += 1
    if _calls > int(os.environ.get("STUB_OK", "5")):
        raise OSError("No space left on device (stub)")
    return quadratic(params, epochs, report)


def two_args(params: dict, epochs: int) -> float:
    """The objective contract broken: no ``report`` parameter."""
    return 1.0


def _check_lr(lr: float) -> None:
    if lr > 1e-2:
        raise ValueError(f"lr too large for this model: {lr}")


def lr_too_large(params: dict, epochs: int, report) -> float:
    """Fails with a message holding the value (every message differs) when lr > 1e-2, from
    a helper beside it; a library's error (json, deep in the standard library) when lr
    < 1e-4. Succeeds between."""
    _check_lr(params["lr"])
    if params["lr"] < 1e-4:
        import json

        json.loads("{not json")
    return quadratic(params, epochs, report)


TOY = """
name = "{name}"
objective = "stubs:{objective}"
metric = "loss"
seed = {seed}
{top}
[space.lr]
low = 1e-5
high = 1.0
log = true
[space.wd]
low = 1e-6
high = 1e-2
log = true
[space.act]
choices = ["relu", "tanh"]
[[stage]]
name = "coarse"
trials = {coarse}
epochs = 1
sampler = "{sampler}"
[[stage]]
name = "fine"
trials = {fine}
epochs = 2
keep = 0.25
"""


def toy_study(
    name: str = "toy",
    objective: str = "quadratic",
    seed: int = 0,
    coarse: int = 20,
    fine: int = 8,
    sampler: str = "random",
    max_failures: int | None = None,
) -> str:
    """The text of a two-stage study file over the stubs."""
    top = "" if max_failures is None else f"max_failures = {max_failures}"
    return TOY.format(
        name=name,
        objective=objective,
        seed=seed,
        coarse=coarse,
        fine=fine,
        sampler=sampler,
        top=top,
    )


def gpu_seen(params: dict, epochs: int, report) -> float:
    """Records which GPUs its worker process was given (``$CUDA_VISIBLE_DEVICES``)."""
    report.log(cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    time.sleep(float(os.environ.get("STUB_SLEEP", "0.05")))
    return quadratic(params, epochs, report)


def odd_values(params: dict, epochs: int, report) -> float:
    """Hands back values no float holds, on the trials with ``act = "tanh"``: returns
    ``10**400`` (``STUB_ODD=return``), reports it (``report``), or logs attrs the storage
    cannot keep as they are (``log``: a huge int, NaN, an object)."""
    odd = params.get("act") == "tanh"
    how = os.environ.get("STUB_ODD", "return")
    if odd and how == "report":
        report(1, 10**400)
    if how == "log":
        report.log(huge=10**400, nan=math.nan, thing=object(), fine=[1, 2.5, "x"])
    if odd and how == "return":
        return 10**400
    return quadratic(params, epochs, report)


def extreme(params: dict, epochs: int, report) -> float:
    """Best in the middle of the widest ranges a study may declare."""
    v = abs(math.log10(params["tiny"]) + 20) + abs(params["wide"]) / 1e100
    return v + abs(params["count"]) / 2**53


def hangs(params: dict, epochs: int, report) -> float:
    """Hangs on the trials with ``act = "tanh"``: sleeps (``STUB_HANG=sleep``), or also
    swallows every interruption (``stubborn``), as a stuck objective would."""
    if params.get("act") == "tanh":
        stubborn = os.environ.get("STUB_HANG", "sleep") == "stubborn"
        while True:
            try:
                time.sleep(0.05)
            except BaseException:
                if not stubborn:
                    raise
    return quadratic(params, epochs, report)
