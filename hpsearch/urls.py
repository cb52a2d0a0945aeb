"""Storage URLs: which one to use, how to show it, and where an SQLite file lives."""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV_STORAGE = "HPSEARCH_STORAGE"
DEFAULT_STORAGE = "sqlite:///hpsearch.db"


def resolve_url(url: str | None) -> str:
    """``--storage``, else ``$HPSEARCH_STORAGE``, else ``hpsearch.db`` in this folder."""
    return url or os.environ.get(ENV_STORAGE) or DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``: safe for logs and error messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def mask_text(text: str, url: str) -> str:
    """``text`` with ``url``'s password removed wherever it appears."""
    return text.replace(url, mask_url(url))


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for other backends and in-memory databases."""
    if not is_sqlite(url) or ":memory:" in url:
        return None
    path = url.split(":///", 1)[-1].split("?", 1)[0]
    return Path(path) if path else None
