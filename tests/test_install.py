"""The base install (no torch, no scikit-learn) runs custom objectives end to end and
refuses the built-in CNN with the extra to install.

Fast: the CLI with torch and scikit-learn made unimportable in its process. Slow: a
fresh virtual environment with ``pip install .``, as a user gets it from PyPI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runner import hpsearch
from stubs import toy_study

from hpsearch import examples
from hpsearch.engine.stages import register_search
from hpsearch.objectives.catalog import load_spec
from hpsearch.store import SearchStore

REPO = Path(__file__).parents[1]
CNN_EXTRA = 'pip install "hpsearch[cnn]"'
LIGHT = ("torch", "sklearn")


def test_without_torch_and_sklearn_a_custom_objective_runs_and_reports(tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(coarse=12, fine=4))
    r = hpsearch("launch", str(study), cwd=tmp_path, without=LIGHT)
    assert r.returncode == 0, r.stderr
    assert "stage fine: 4/4 trials" in r.stdout
    assert "importance (ped-anova)" in r.stdout  # auto would pick fANOVA with scikit-learn

    r = hpsearch("report", "toy", "--importance", "fanova", cwd=tmp_path, without=LIGHT)
    assert r.returncode == 2 and "pip install scikit-learn" in r.stderr, r.stderr


@pytest.mark.parametrize("missing", ["torch", "sklearn"])
def test_without_the_cnn_extra_the_cnn_objective_exits_2_naming_it(tmp_path, missing):
    study = tmp_path / "quickstart.toml"
    study.write_text(examples.read("quickstart"))
    r = hpsearch("launch", study.name, cwd=tmp_path, without=[missing])
    assert r.returncode == 2, r.stderr
    assert "objective: 'cnn' needs torch and scikit-learn" in r.stderr
    assert CNN_EXTRA in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "hpsearch.db").exists()


def test_a_worker_without_torch_refuses_a_stored_cnn_search(tmp_path):
    """A worker on another machine reads the spec from storage: the same refusal."""
    study = tmp_path / "quickstart.toml"
    study.write_text(examples.read("quickstart"))
    url = f"sqlite:///{tmp_path / 'search.db'}"
    register_search(SearchStore.open(url), load_spec(study))
    r = hpsearch("worker", "quickstart", "--storage", url, cwd=tmp_path, without=["torch"])
    assert r.returncode == 2 and CNN_EXTRA in r.stderr, r.stderr


OBJECTIVE = '''
def objective(params, epochs, report):
    """Best at x = 0.3."""
    value = (params["x"] - 0.3) ** 2
    for epoch in range(1, epochs + 1):
        report(epoch, value + 1.0 / epoch)
    return value + 1.0 / epochs
'''

STUDY = """
name = "light"
objective = "myobjective:objective"
metric = "loss"
[space.x]
low = 0.0
high = 1.0
[[stage]]
name = "coarse"
trials = 3
epochs = 1
[[stage]]
name = "fine"
trials = 1
epochs = 2
keep = 0.5
"""


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_fresh_pip_install_runs_a_custom_objective_without_torch(tmp_path):
    """``pip install .`` into a new virtual environment, then the CLI from it alone.

    The sources are copied out first: building in the checkout would leave build/ and
    *.egg-info there. Takes a minute or two (pip installs Optuna, pandas, plotly, scipy)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "hpsearch", src / "hpsearch", ignore=shutil.ignore_patterns("*.pyc"))

    venv = tmp_path / "venv"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "HPSEARCH_STORAGE")
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(src)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    print(f"venv + pip install .: {time.monotonic() - start:.0f} s")

    work = tmp_path / "work"
    work.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(venv / "bin" / "hpsearch"), *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    python = str(venv / "bin" / "python")
    for module in LIGHT:
        gone = subprocess.run([python, "-c", f"import {module}"], env=env, capture_output=True)
        assert gone.returncode != 0, f"{module} was installed by pip install ."

    (work / "myobjective.py").write_text(OBJECTIVE)
    (work / "light.toml").write_text(STUDY)
    r = run("launch", "light.toml")
    assert r.returncode == 0, r.stderr
    assert "stage coarse: 3/3 trials" in r.stdout and "stage fine: 1/1 trials" in r.stdout
    r = run("report", "light", "--csv", "light.csv", "--html", "light.html")
    assert r.returncode == 0, r.stderr
    assert len((work / "light.csv").read_text().splitlines()) == 1 + 4
    assert (work / "light.html").stat().st_size > 0

    r = run("example")  # the examples come from the installed package, not a checkout
    assert r.returncode == 0 and "quickstart" in r.stdout, r.stderr
    (work / "quickstart.toml").write_text(run("example", "quickstart").stdout)
    r = run("launch", "quickstart.toml")
    assert r.returncode == 2 and CNN_EXTRA in r.stderr, r.stderr
    print(f"the whole test: {time.monotonic() - start:.0f} s")
