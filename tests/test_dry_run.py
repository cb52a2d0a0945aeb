"""``launch --dry-run`` answers as ``launch`` would against the stored search, through the
CLI: the same refusal and exit code 2 after an incompatible edit, the edits a relaunch
would apply and the plan as stored plus the edit, and nothing written (not even the
SQLite file)."""

from __future__ import annotations

import hashlib

import pytest
from cli_runner import hpsearch
from stubs import toy_study


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dry_run_of_a_new_search_creates_no_database(tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(coarse=4, fine=2))
    r = hpsearch("launch", "--dry-run", str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "dry run: a new search toy in" in r.stdout and "coarse: 4 trials" in r.stdout
    assert not (tmp_path / "hpsearch.db").exists()


def test_dry_run_answers_as_a_relaunch_would_and_writes_nothing(tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(coarse=4, fine=2))
    assert hpsearch("launch", "-q", str(study), cwd=tmp_path).returncode == 0
    db = tmp_path / "hpsearch.db"
    before = _digest(db)

    r = hpsearch("launch", "--dry-run", str(study), cwd=tmp_path)  # the same file
    assert r.returncode == 0, r.stderr
    assert "is stored in" in r.stdout and "a relaunch resumes it" in r.stdout

    study.write_text(toy_study(coarse=6, fine=3))  # compatible: more trials
    r = hpsearch("launch", "--dry-run", str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "a relaunch would apply these edits" in r.stdout
    assert "  coarse trials 4 -> 6 (2 slots appended)" in r.stdout
    assert "  fine trials 2 -> 3 (1 slots appended)" in r.stdout
    assert "note: stage fine was prepared from stage coarse's results" in r.stdout
    assert "coarse: 6 trials" in r.stdout and "fine: 3 trials" in r.stdout

    study.write_text(toy_study(coarse=6, fine=3, seed=1))  # refused: a new seed
    dry = hpsearch("launch", "--dry-run", str(study), cwd=tmp_path)
    assert _digest(db) == before  # the dry runs wrote nothing
    real = hpsearch("launch", str(study), cwd=tmp_path)
    assert dry.returncode == real.returncode == 2
    assert "seed: stored 0, file 1" in dry.stderr and dry.stderr == real.stderr


@pytest.mark.postgres
def test_dry_run_on_an_empty_postgres_database_creates_no_tables(tmp_path, postgres_url):
    import sqlalchemy as sa

    study = tmp_path / "toy.toml"
    study.write_text(toy_study(coarse=4, fine=2))
    r = hpsearch("launch", "--dry-run", "--storage", postgres_url, str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "dry run: a new search toy in" in r.stdout
    engine = sa.create_engine(postgres_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
