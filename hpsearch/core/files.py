"""Files the user asked for are written whole or not at all.

A report written in place and cut short (a full disk, a quota, a read-only folder) leaves
a truncated HTML page or a 0-byte CSV that looks like a result. :func:`write_atomic` writes
to a temporary file in the target's folder, flushes it to disk and renames it over the
target: ``os.replace`` is atomic within one file system, so the path holds the old file or
the whole new one, never part of one, and the temporary file is removed on any failure.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click


class WriteError(click.ClickException):
    """A file could not be written (disk full, permission denied): one line, exit code 1.

    A ``ClickException`` so that the command line prints it without a traceback; it is not
    a :class:`~hpsearch.core.errors.UserError` (exit 2) because the input was fine."""


def write_atomic(path: str | Path, data: str | bytes) -> int:
    """Write ``data`` (text as UTF-8) to ``path`` whole, or leave ``path`` as it was.

    Returns the number of bytes written. Raises :class:`WriteError` naming the path and the
    reason when the file cannot be written.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    # A symlink keeps pointing where it did: the file it names is the one replaced.
    target = Path(os.path.realpath(path))
    try:
        if target.exists() and not target.is_file():
            # /dev/stdout, a FIFO, /dev/full: renaming over it would replace the device
            # itself, and such a file has no old content to keep.
            with open(target, "wb") as f:
                f.write(raw)
        else:
            _replace(target, raw)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return len(raw)


def _replace(target: Path, raw: bytes) -> None:
    # Our own instead of tempfile.mkstemp: mkstemp creates the file with mode 0600, and a
    # report must get the mode a plain open() would give it (0666 less the umask, applied by
    # the kernel), or the mode of the file it replaces.
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "wb") as f:  # closes fd
            if target.exists():
                os.chmod(f.fileno(), target.stat().st_mode & 0o7777)
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename, or a crash may leave it empty
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
