"""Storage URLs: masking every password form, and refusing URLs that cannot work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hpsearch.store.urls import (
    StorageUrlError,
    check_url,
    mask_text,
    mask_url,
    resolve_url,
    sqlite_path,
)

#: (url, its password as written, the masked form). Every legal place a password goes.
MASKED = [
    ("postgresql://u:s3cret@db:5432/x", "s3cret", "postgresql://u:***@db:5432/x"),
    ("postgresql+psycopg://u:p%40ss@h/x", "p%40ss", "postgresql+psycopg://u:***@h/x"),
    ("postgresql://:s3cret@h/db", "s3cret", "postgresql://:***@h/db"),
    ("postgresql://u:p@ss@word@h/db", "p@ss@word", "postgresql://u:***@h/db"),
    ("postgresql://u:pa/ss@h/db", "pa/ss", "postgresql://u:***@h/db"),
    ("postgresql://u@h/db?password=s3cret", "s3cret", "postgresql://u@h/db?password=***"),
    (
        "postgresql://u@h/db?sslmode=require&PassWord=s3cret",
        "s3cret",
        "postgresql://u@h/db?PassWord=***&sslmode=require",
    ),
    ("mysql+pymysql://u:s3cret@h/db?charset=utf8mb4", "s3cret", None),
    ("sqlite+pysqlcipher://:s3cret@/x.db", "s3cret", "sqlite+pysqlcipher://:***@/x.db"),
]
PLAIN = ["sqlite:///a.db", "sqlite:///:memory:", "postgresql://u@h/x", "sqlite:////abs/x.db"]


@pytest.mark.parametrize(("url", "secret", "masked"), MASKED)
def test_every_password_form_is_masked(url, secret, masked):
    shown = mask_url(url)
    assert secret not in shown and "s3cret" not in shown
    if masked is not None:
        assert shown == masked


@pytest.mark.parametrize("url", PLAIN)
def test_urls_without_a_password_are_shown_as_written(url):
    assert mask_url(url) == url


@pytest.mark.parametrize(("url", "secret", "_"), MASKED)
def test_messages_quoting_the_url_or_its_password_lose_the_password(url, secret, _):
    from urllib.parse import quote, unquote

    plain = unquote(secret)
    text = (
        f"(psycopg.OperationalError) connection to {url} failed: password {plain!r} "
        f"refused; encoded {quote(plain, safe='')}; raw {secret}"
    )
    masked = mask_text(text, url)
    assert plain not in masked and secret not in masked and quote(plain, safe="") not in masked
    assert "psycopg.OperationalError" in masked


@pytest.mark.parametrize(
    "garbage",
    ["", "not a url", "://:@", "postgresql://u:s3cret@[bad", "x://u:s3cret@@@", "\x00\uffff"],
)
def test_garbage_never_raises_and_still_loses_the_password(garbage):
    assert "s3cret" not in mask_url(garbage)
    assert "s3cret" not in mask_text(f"failed on {garbage}", garbage)
    assert "s3cret" not in mask_text("dsn host=h password=s3cret dbname=x")


def test_resolve_url_prefers_the_option_then_the_environment(monkeypatch):
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    assert resolve_url(None) == "sqlite:///hpsearch.db"
    monkeypatch.setenv("HPSEARCH_STORAGE", "sqlite:///env.db")
    assert resolve_url(None) == "sqlite:///env.db"
    assert resolve_url("sqlite:///opt.db") == "sqlite:///opt.db"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///a/b.db", "a/b.db"),
        ("sqlite:////abs/b.db", "/abs/b.db"),
        ("sqlite:///file:x.db?uri=true", "x.db"),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("sqlite:///file:x?mode=memory&uri=true", None),
        ("postgresql://u@h/db", None),
    ],
)
def test_sqlite_path(url, path):
    got = sqlite_path(url)
    assert (str(got) if got is not None else None) == path


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("postgres://u:s3cret@h/db", "write postgresql://, not postgres://"),
        ("postgres://u:s3cret@h/db", "postgresql://u:***@h/db"),
        ("mysql://u:s3cret@h/db", "pip install 'pymysql' and write mysql+pymysql://u:***@h/db"),
        ("mysql+mysqldb://u@h/db", "pip install 'mysqlclient'"),
        ("postgresql+psycopg2://u@h/db", "pip install 'psycopg2-binary'"),
        ("mysql+nosuch://u@h/db", "no driver 'nosuch' for mysql; use one of pymysql"),
        ("oracle://u@h/db", "unsupported database 'oracle'; use one of sqlite, postgresql, mysql"),
        ("nosuchdb://u:s3cret@h/db", "unsupported database 'nosuchdb'"),
        ("postgresql+asyncpg://u@h/db", "asyncio driver"),
        ("postgresql://u:p@ss@h/db", "write it URL-encoded as %40"),
        ("not a url", "not a database URL"),
    ],
)
def test_unusable_urls_are_refused_with_the_fix(url, fix):
    if "pip install" in fix:
        _skip_if_installed(url)
    with pytest.raises(StorageUrlError) as info:
        check_url(url, source="--storage")
    text = str(info.value)
    assert text.startswith("--storage ") and fix in text, text
    assert "s3cret" not in text and "p@ss" not in text


def test_a_sqlite_file_in_a_missing_folder_names_the_folder(tmp_path):
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'x.db'}"
    with pytest.raises(StorageUrlError, match=f"the folder {tmp_path / 'no' / 'such'} does not"):
        check_url(url, creates=True)
    with pytest.raises(StorageUrlError, match="mkdir -p"):
        check_url(url, creates=True)
    with pytest.raises(StorageUrlError, match="no database to read"):
        check_url(url)
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    "url",
    ["sqlite:///hpsearch.db", "sqlite:///:memory:", "postgresql://u:s3cret@h:5432/db"],
)
def test_usable_urls_pass_without_connecting(url):
    check_url(url, creates=True)


def test_nothing_heavy_is_imported():
    code = (
        "import sys\n"
        "from hpsearch.store.urls import mask_url, check_url\n"
        "mask_url('postgresql://u:p@h/db'); check_url('sqlite:///x.db')\n"
        "print(sorted(m for m in ('optuna', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _skip_if_installed(url: str) -> None:
    from sqlalchemy.engine import make_url

    try:
        make_url(url).get_dialect().import_dbapi()
    except ImportError:
        return
    pytest.skip(f"the driver of {url} is installed here")
