"""Storage URLs: where a search lives, how it is shown, and whether it can be used at all.

Everything here is about the URL string alone: nothing connects, and nothing imports
Optuna (SQLAlchemy's URL parser and dialect registry are imported inside the functions),
so that a bad ``--storage`` fails in milliseconds with the fix instead of a driver's
traceback after a retry loop.

A URL holds a password in two places: the userinfo (``user:secret@host``) and, as libpq
and the MySQL drivers also accept it, the query string (``?password=secret``). Both are
masked wherever a URL or a message that may quote one is shown.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from hpsearch.core.errors import UserError

ENV_STORAGE = "HPSEARCH_STORAGE"
DEFAULT_STORAGE = "sqlite:///hpsearch.db"

#: What a masked secret is shown as (SQLAlchemy's own ``hide_password`` mark).
MASK = "***"
#: The databases Optuna's RDBStorage is written and tested for.
BACKENDS = ("sqlite", "postgresql", "mysql")
#: pip packages of the synchronous drivers SQLAlchemy knows for them (SQLAlchemy names
#: the driver, not the package that provides it), the first of each backend the advice.
DRIVER_PACKAGES = {
    "postgresql": {
        "psycopg": "psycopg[binary]",
        "psycopg2": "psycopg2-binary",
        "pg8000": "pg8000",
    },
    "mysql": {
        "pymysql": "pymysql",
        "mysqldb": "mysqlclient",
        "mysqlconnector": "mysql-connector-python",
        "mariadbconnector": "mariadb",
    },
}

# The regex mask, for text that is not a URL SQLAlchemy can parse: a userinfo password
# (up to the last "@" of the word, since a password may hold "@") and query passwords.
_USERINFO_RE = re.compile(r"(\w[\w+.-]*://[^\s:/@]*:)\S*@")
_QUERY_RE = re.compile(r"((?:^|[?&;\s])[^\s=&;]*password[^\s=&;]*=)[^\s&;]*", re.IGNORECASE)


class StorageUrlError(UserError):
    """A storage URL that cannot work as written; the message says how to write it."""


def resolve_url(url: str | None) -> str:
    """``--storage``, else ``$HPSEARCH_STORAGE``, else ``hpsearch.db`` in this folder."""
    return url or os.environ.get(ENV_STORAGE) or DEFAULT_STORAGE


def url_source(url: str | None) -> str:
    """Where the URL of :func:`resolve_url` came from, for messages."""
    if url:
        return "--storage"
    return f"${ENV_STORAGE}" if os.environ.get(ENV_STORAGE) else "the default storage"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL as written (relative to the current folder), or
    None for an in-memory database or another backend.

    ``sqlite:///file:x.db?uri=true`` (SQLite's URI form) names ``x.db``; ``mode=memory``
    there is in memory too.
    """
    if not is_sqlite(url):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database or ""
    if parsed.query.get("uri") in ("true", "1") and database.startswith("file:"):
        if parsed.query.get("mode") == "memory":
            return None
        database = database[len("file:") :]
    if database in ("", ":memory:"):
        return None
    return Path(database)


def mask_url(url: str) -> str:
    """The URL with every password shown as ``***``: safe for logs, banners and messages.

    SQLAlchemy renders the URL (``hide_password``), after the userinfo has been split at
    its last ``@`` and re-quoted: SQLAlchemy's parser stops a password at the first ``@``
    and would show the rest of it as the host. Query-string passwords are masked too.
    Anything that does not parse gets the regex mask; this never raises.
    """
    if is_sqlite(url):
        # Kept as written (SQLAlchemy would encode ``:memory:``); only SQLCipher's
        # ``sqlite+pysqlcipher://:key@/x.db`` holds a secret, which the regex masks.
        return _regex_mask(url)
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(_requote_userinfo(url))
        # A placeholder survives the query's percent-encoding, which would turn *** into
        # %2A%2A%2A; it is swapped for the mark afterwards.
        hidden = "hpsearchmasked"
        query = {k: hidden if _is_secret_key(k) else v for k, v in parsed.query.items()}
        text = parsed.set(query=query).render_as_string(hide_password=True)
        return text.replace(hidden, MASK)
    except Exception:
        return _regex_mask(url)


def mask_text(text: str, url: str | None = None) -> str:
    """``text`` (an error message, a log line) with ``url``'s passwords removed.

    A driver may quote the URL, its password alone, or the password URL-encoded; every
    form of every password ``url`` holds is replaced, and any other URL-looking word gets
    the regex mask. Never raises.
    """
    try:
        if url:
            text = text.replace(url, mask_url(url))
            for secret in sorted(_secrets(url), key=len, reverse=True):
                text = text.replace(secret, MASK)
        return _regex_mask(text)
    except Exception:
        return _regex_mask(str(text))


def check_url(url: str, *, creates: bool = False, source: str = "--storage") -> None:
    """Refuse a URL that cannot work, before anything connects, with the fix.

    ``postgres://`` (SQLAlchemy dropped the alias), a backend or driver SQLAlchemy does not
    know, a driver that is not installed (named with its pip package), an async driver
    (Optuna's storage is synchronous), a raw ``@`` in a password, and a SQLite file in a
    folder that does not exist. ``creates``: the command would create the database (so
    the fix is to make the folder); otherwise there is no database to read there.

    Raises:
        StorageUrlError: with ``source`` (``--storage`` or ``$HPSEARCH_STORAGE``) named.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = f"{source} {mask_url(url)}"
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageUrlError(
            f"{shown}: not a database URL; expected e.g. {DEFAULT_STORAGE} or "
            "postgresql://user@host:5432/db"
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        raise StorageUrlError(
            f"{shown}: write postgresql://, not postgres:// (SQLAlchemy has no 'postgres' "
            f"dialect): {mask_url('postgresql' + url[len('postgres') :])}"
        )
    if backend not in BACKENDS:
        raise StorageUrlError(
            f"{shown}: unsupported database {backend!r}; use one of {', '.join(BACKENDS)} "
            f"(e.g. {DEFAULT_STORAGE} or postgresql://user@host:5432/db)"
        )
    if "@" in (_userinfo(url)[1] or ""):
        raise StorageUrlError(
            f"{shown}: the password holds '@', which ends the password in a URL; write it "
            "URL-encoded as %40 (and ':' as %3A, '/' as %2F)"
        )
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError as exc:
        known = ", ".join(DRIVER_PACKAGES.get(backend, {})) or "pysqlite"
        raise StorageUrlError(
            f"{shown}: SQLAlchemy has no driver {driver!r} for {backend}; use one of "
            f"{known} ({backend}+DRIVER://...)"
        ) from exc
    if getattr(dialect, "is_async", False):
        raise StorageUrlError(
            f"{shown}: {driver} is an asyncio driver and Optuna's storage is synchronous; "
            f"use {_driver_advice(backend)}"
        )
    try:
        dialect.import_dbapi()  # imports the driver's module; connects to nothing
    except ImportError as exc:
        raise StorageUrlError(
            f"{shown}: its driver {dialect.driver} is not installed ({exc}); "
            + _install_advice(url, backend, dialect.driver, explicit=bool(driver))
        ) from exc
    path = sqlite_path(url)
    if path is not None and not path.absolute().parent.is_dir():
        folder = path.absolute().parent
        fix = (
            f"; create it first (mkdir -p {folder}) or point {source} at an existing folder"
            if creates
            else ", so there is no database to read; run this where the search was launched, "
            "or pass its --storage URL"
        )
        raise StorageUrlError(f"{shown}: the folder {folder} does not exist{fix}")


def _driver_advice(backend: str) -> str:
    """The recommended synchronous driver of ``backend``, with its package."""
    for driver, package in DRIVER_PACKAGES.get(backend, {}).items():
        return f"{backend}+{driver}:// (pip install '{package}')"
    return f"{backend}://"


def _install_advice(url: str, backend: str, driver: str, *, explicit: bool) -> str:
    """What to install for a missing driver. A URL without a driver gets SQLAlchemy's
    default (mysqldb for MySQL, which needs a C compiler), so the pure-Python first choice
    is offered first, with the URL rewritten to name it."""
    packages = DRIVER_PACKAGES.get(backend, {})
    own = f"pip install '{packages[driver]}'" if driver in packages else f"install {driver}"
    first = next(iter(packages), None)
    if explicit or first is None or first == driver:
        return own
    scheme, _, rest = url.partition("://")
    rewritten = mask_url(f"{backend}+{first}://{rest}")
    return f"pip install '{packages[first]}' and write {rewritten} (or {own} to keep {scheme}://)"


def _is_secret_key(key: str) -> bool:
    return "password" in key.lower()


def _userinfo(url: str) -> tuple[str | None, str | None]:
    """``(user, password)`` as written in the URL (still percent-encoded), split at the
    last ``@`` before the host, as urllib does (SQLAlchemy splits at the first)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None, None
    head = rest.split("?", 1)[0]
    if "@" not in head:
        return None, None
    userinfo = head.rsplit("@", 1)[0]
    user, colon, password = userinfo.partition(":")
    return user, password if colon else None


def _requote_userinfo(url: str) -> str:
    """``url`` with user and password percent-encoded, so that SQLAlchemy parses them."""
    user, password = _userinfo(url)
    if password is None:
        return url
    scheme, _, rest = url.partition("://")
    head, sep, query = rest.partition("?")
    hostpart = head.rsplit("@", 1)[1]
    userinfo = f"{quote(unquote(user or ''), safe='')}:{quote(unquote(password), safe='')}"
    return f"{scheme}://{userinfo}@{hostpart}{sep}{query}"


def _secrets(url: str) -> set[str]:
    """Every password ``url`` holds, as written, decoded and re-encoded."""
    raw: set[str] = set()
    _, password = _userinfo(url)
    if password:
        raw.add(password)
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(_requote_userinfo(url))
        if parsed.password:
            raw.add(str(parsed.password))
        raw.update(str(v) for k, v in _query_items(parsed.query) if _is_secret_key(k))
    except Exception:
        raw.update(m.group(0).split("=", 1)[1] for m in _QUERY_RE.finditer(url))
    out: set[str] = set()
    for s in raw:
        for form in (s, unquote(s), quote(unquote(s), safe=""), quote_plus(unquote(s))):
            if form:
                out.add(form)
    return out


def _query_items(query: Any) -> list[tuple[str, str]]:
    """A SQLAlchemy URL's query as pairs (a repeated key holds a tuple of values)."""
    pairs = []
    for key, value in query.items():
        for v in value if isinstance(value, tuple) else (value,):
            pairs.append((key, v))
    return pairs


def _regex_mask(text: str) -> str:
    return _QUERY_RE.sub(rf"\1{MASK}", _USERINFO_RE.sub(rf"\1{MASK}@", text))
