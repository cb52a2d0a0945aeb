"""The example study files that ship in the package: listed, printed, written out, launched."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from cli_runner import hpsearch

from hpsearch import examples
from hpsearch.engine.loader import prepare_params
from hpsearch.objectives.catalog import load_spec

NAMES = ["cifar10_cnn", "digits_cnn", "quickstart"]


def test_example_without_name_lists_every_example_with_its_summary(tmp_path):
    r = hpsearch("example", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()
    assert [row.split()[0] for row in rows] == NAMES
    assert "Quickstart: the coarse-to-fine recipe" in r.stdout
    assert "hpsearch example NAME > NAME.toml" in r.stderr  # the hint stays out of stdout


def test_example_prints_the_packaged_toml_exactly(tmp_path):
    r = hpsearch("example", "quickstart", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == examples.read("quickstart")
    assert tomllib.loads(r.stdout)["name"] == "quickstart"


def test_an_unknown_example_exits_2_naming_the_examples(tmp_path):
    r = hpsearch("example", "quikstart", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert "example 'quikstart': no such example" in r.stderr
    assert ", ".join(NAMES) in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] * (n != "quickstart")) for n in NAMES]
)  # each a torch import: the CNN examples run under -m slow
def test_a_written_out_example_launches_from_any_folder(tmp_path, name):
    """``hpsearch example NAME > NAME.toml && hpsearch launch NAME.toml``, checked with
    ``--dry-run``, which validates the file and prints the plan without running it."""
    path = tmp_path / f"{name}.toml"
    path.write_text(hpsearch("example", name, cwd=tmp_path).stdout)
    r = hpsearch("launch", path.name, "--dry-run", cwd=tmp_path)
    assert not (tmp_path / "hpsearch.db").exists()
    if name == "cifar10_cnn":  # the dry run loads the data, which the user brings
        assert r.returncode == 2 and "fixed.data_dir: CIFAR-10 data_dir" in r.stderr
        return
    assert r.returncode == 0, r.stderr
    assert f"search {load_spec(path).name}: val_loss (minimize)" in r.stdout


def test_the_cifar10_data_dir_is_read_beside_the_written_out_file(tmp_path, monkeypatch):
    """A relative ``data_dir`` means the folder the file was written to, wherever the
    search is launched from (the package's own folder plays no part)."""
    folder = tmp_path / "mine"
    (folder / "data" / "cifar-10-batches-py").mkdir(parents=True)
    (folder / "cifar10.toml").write_text(examples.read("cifar10_cnn"))
    monkeypatch.chdir(tmp_path)  # launched from the folder above
    spec = load_spec(Path("mine/cifar10.toml"))
    data_dir = prepare_params(spec, dict(spec.fixed))["data_dir"]
    assert Path(data_dir).resolve() == folder / "data" / "cifar-10-batches-py"
