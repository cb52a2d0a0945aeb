"""Speed of the tuning loop's commands on a 40-trial SQLite search (issue 21, item 7).

Each command runs as a user runs it (``hpsearch ...`` in a fresh process, from the search's
folder) and is timed from start to exit, median of ``--repeat`` runs: ``launch`` of a
40-trial no-op search (30 coarse + 10 fine, one epoch each) end to end, then ``status``,
``best``, ``list``, a refusal (a relaunch after an incompatible edit, exit 2) and
``report`` (terminal). Each gets its wall time and its CPU time (user + system, of the
command and the children it waited for: a launch's note drawer): on a machine shared
with other work the wall time grows with the load, the CPU time much less, so both are
printed with the load average. The import share is what ``python -X importtime``
attributes to the top-level imports of one ``status``.

    python benchmarks/loop_speed.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STUDY = """name = "bench"
objective = "noop:noop"
metric = "loss"
seed = {seed}
[space.lr]
low = 1e-5
high = 1.0
log = true
[[stage]]
name = "coarse"
trials = 30
epochs = 1
[[stage]]
name = "fine"
trials = 10
epochs = 1
"""
NOOP = "def noop(params, epochs, report):\n    return params['lr']\n"
TARGETS = {"launch": 8.0, "status": 1.0, "best": 1.0, "list": 1.0, "refusal": 1.0, "report": 2.5}


def _hpsearch() -> list[str]:
    return [sys.executable, "-c", "from hpsearch.cli import main; main()"]


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "HPSEARCH_STORAGE": ""}


def _cpu() -> float:
    """User + system seconds of the children this process has waited for, so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _timed(args: list[str], cwd: Path, expect: int = 0) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``hpsearch`` command."""
    start, cpu = time.perf_counter(), _cpu()
    done = subprocess.run(
        [*_hpsearch(), *args], cwd=cwd, env=_env(), capture_output=True, text=True
    )
    took = time.perf_counter() - start, _cpu() - cpu
    if done.returncode != expect:
        raise SystemExit(f"hpsearch {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return took


def one_round(folder: Path, seed: int) -> dict[str, tuple[float, float]]:
    (folder / "noop.py").write_text(NOOP)
    study = folder / "bench.toml"
    study.write_text(STUDY.format(seed=seed))
    out = {"launch": _timed(["launch", "-q", "--no-progress", str(study)], folder)}
    out["status"] = _timed(["status", "bench"], folder)
    out["best"] = _timed(["best", "bench"], folder)
    out["list"] = _timed(["list"], folder)
    (folder / "edited.toml").write_text(STUDY.format(seed=seed + 1))
    out["refusal"] = _timed(["launch", str(folder / "edited.toml")], folder, expect=2)
    out["report"] = _timed(["report", "bench"], folder)
    return out


def import_share(folder: Path) -> tuple[float, float]:
    """(seconds in top-level imports, seconds in all) for one ``status``."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *_hpsearch()[1:], "status", "bench"],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
    )
    total = time.perf_counter() - start
    imports = sum(
        int(m.group(1))
        for m in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| (\S)", done.stderr, re.M)
    )
    return imports / 1e6, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    rounds, loads = [], []
    for i in range(args.repeat):
        loads.append(os.getloadavg()[0])
        folder = Path(tempfile.mkdtemp(prefix="hpsearch-loop-"))
        try:
            rounds.append(one_round(folder, i))
            if i == args.repeat - 1:
                imports, total = import_share(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"40-trial SQLite search, median of {args.repeat} (seconds; target):")
    for key, target in TARGETS.items():
        walls = [r[key][0] for r in rounds]
        cpus = [r[key][1] for r in rounds]
        median = statistics.median(walls)
        mark = "ok" if median < target else "OVER"
        shown = "; ".join(f"{w:.2f}/{c:.2f}" for w, c in zip(walls, cpus, strict=True))
        print(
            f"  {key:<8} wall {median:6.2f}  cpu {statistics.median(cpus):5.2f}  "
            f"(< {target:g}: {mark}; runs wall/cpu {shown})"
        )
    print(
        f"  imports: {imports:.2f} s of {total:.2f} s of one status "
        f"({imports / total:.0%}; python -X importtime)"
    )
    shown = [", ".join(f"{x:.1f}" for x in load) for load in (load_before, os.getloadavg())]
    print(f"  load average (1, 5, 15 min): {shown[0]} before, {shown[1]} after")
    print(f"  1-min load at each round's start: {', '.join(f'{x:.1f}' for x in loads)}")


if __name__ == "__main__":
    main()
