"""Report files are written whole or not at all: a full disk, a read-only folder and
``/dev/full`` through the command line, in a real process.

The full disk and the read-only folder are real tmpfs mounts, so these tests need root
(or CAP_SYS_ADMIN) and skip without it; ``/dev/full`` needs nothing.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_runner import hpsearch

from hpsearch.core.files import write_atomic

OUTPUTS = ("--html", "--csv", "--json")
#: Each write costs a whole report in a real process: the quick run writes the CSV, the
#: slow one every format.
EVERY_OUTPUT = [pytest.param(o, marks=[pytest.mark.slow] * (o != "--csv")) for o in OUTPUTS]
OLD = "an earlier report, which a failed write must leave as it was\n"


@contextmanager
def tmpfs(folder: Path, *options: str) -> Iterator[Path]:
    folder.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(["size=256k", *options]), "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Write until the file system is full."""
    with (
        open(folder / "filler", "wb", buffering=0) as f,
        pytest.raises(OSError, match="No space left on device"),
    ):
        while True:
            f.write(b"\0" * 4096)


def report_to(url: str, option: str, path: Path, cwd: Path) -> subprocess.CompletedProcess:
    return hpsearch("report", "toy", "--storage", url, option, str(path), cwd=cwd)


def assert_one_line_failure(r: subprocess.CompletedProcess, path: Path, reason: str) -> None:
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == f"Error: cannot write {path}: {reason}", r.stderr


@pytest.mark.parametrize("option", EVERY_OUTPUT)
def test_a_full_disk_fails_in_one_line_and_keeps_the_old_file(finished_toy, tmp_path, option):
    with tmpfs(tmp_path / "disk") as disk:
        target = disk / "report.out"
        target.write_text(OLD)
        fill(disk)
        r = report_to(finished_toy, option, target, tmp_path)
        assert_one_line_failure(r, target, "No space left on device")
        assert target.read_text() == OLD
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "report.out"]  # no temp


@pytest.mark.parametrize("option", EVERY_OUTPUT)
def test_a_read_only_folder_fails_in_one_line_and_writes_nothing(finished_toy, tmp_path, option):
    with tmpfs(tmp_path / "ro", "ro") as folder:
        target = folder / "report.out"
        r = report_to(finished_toy, option, target, tmp_path)
        assert_one_line_failure(r, target, "Read-only file system")
        assert list(folder.iterdir()) == []


def test_dev_full_is_written_in_place_and_fails_in_one_line(finished_toy, tmp_path):
    # A device is never renamed over: that would replace /dev/full itself (as root).
    r = report_to(finished_toy, "--csv", Path("/dev/full"), tmp_path)
    assert_one_line_failure(r, Path("/dev/full"), "No space left on device")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_written_file_gets_the_mode_open_gives_or_keeps_its_own(tmp_path):
    old_umask = os.umask(0o022)
    try:
        assert write_atomic(tmp_path / "new.csv", "a,b\n") == 4
        assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o644  # not 0600
        kept = tmp_path / "kept.csv"
        kept.write_text("old")
        kept.chmod(0o600)
        write_atomic(kept, b"new")
        assert kept.read_text() == "new" and stat.S_IMODE(kept.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


def test_a_symlinked_report_replaces_the_file_it_points_to(tmp_path):
    (tmp_path / "real.html").write_text(OLD)
    (tmp_path / "link.html").symlink_to("real.html")
    write_atomic(tmp_path / "link.html", "<html/>")
    assert (tmp_path / "link.html").is_symlink()
    assert (tmp_path / "real.html").read_text() == "<html/>"
