"""Serve optuna-dashboard on a search's storage: loopback and read-only unless told otherwise.

optuna-dashboard has no authentication, and its API deletes studies, tells trials (a tell
of NaN has made a SQLite study unreadable), rewrites notes and even upgrades the database
schema (``POST /incompatible-rdb-schema``). Reviewing a search needs none of that, so the
app is wrapped in :class:`ReadOnly`, which refuses every request whose method can write.
Every route of optuna-dashboard 0.21 that writes is a POST, PUT or DELETE; its GET routes
only read, so refusing by method (not by path) closes them all, including any a later
version adds under a new path.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socketserver
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from hpsearch.core.errors import UserError
from hpsearch.engine.interrupts import stop_signals_interrupt
from hpsearch.store import SearchStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

#: Methods that only read. Anything else may write and is refused in read-only mode.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class DashboardError(UserError):
    """The dashboard cannot start with these options (no database, port taken, ...)."""


@dataclass(frozen=True)
class DashboardConfig:
    """``hpsearch dashboard``'s options. ``port=0`` picks a free port (tests)."""

    storage_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    allow_writes: bool = False
    wait_s: float = 10.0  # how long to wait for an unreachable database


class ReadOnly:
    """WSGI middleware: a 403 with a JSON reason for every request that could write."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method in READ_METHODS:
            return self.app(environ, start_response)
        path = environ.get("PATH_INFO", "")
        log.info("refused %s %s (read-only)", method, path)
        body = json.dumps(
            {
                "reason": (
                    f"{method} {path} refused: this dashboard is read-only. "
                    "Restart it with `hpsearch dashboard --allow-writes` to edit notes, "
                    "tell trials or delete studies."
                )
            }
        ).encode()
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses: only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def make_app(config: DashboardConfig) -> WSGIApplication:
    """optuna-dashboard's WSGI app on the storage, read-only unless ``allow_writes``."""
    import optuna_dashboard

    # Read-only: a missing SQLite file is an error naming it (Optuna would create an empty
    # database there, and the dashboard would show nothing).
    store = SearchStore.open(config.storage_url, wait_s=config.wait_s, readonly=True)
    app = optuna_dashboard.wsgi(store.dashboard_storage())
    return app if config.allow_writes else ReadOnly(app)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request: the dashboard's page fires several API
    calls at once, which the single-threaded server (optuna-dashboard's ``run_server``)
    answers one by one. Threads are daemons so that Ctrl-C never waits on a slow request."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to the log (``-vv``), not to stderr for every poll of the page."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


def make_dashboard_server(config: DashboardConfig) -> WSGIServer:
    """A bound, not yet serving, server; ``server.server_port`` is the port it got."""
    app = make_app(config)
    try:
        return make_server(
            config.host,
            config.port,
            app,
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
    except OSError as exc:
        raise DashboardError(
            f"cannot listen on {config.host}:{config.port} ({exc.strerror or exc}); "
            "pick another --port or --host"
        ) from exc


def dashboard_url(server: WSGIServer, host: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{server.server_port}/dashboard"


def serve(config: DashboardConfig, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM (also when started with SIGINT ignored);
    ``on_ready(url)`` is called once the port is bound."""
    server = make_dashboard_server(config)
    try:
        # the handler first: a Ctrl-C right after the "press Ctrl-C" line must count
        with server, stop_signals_interrupt():
            if on_ready is not None:
                on_ready(dashboard_url(server, config.host))
            server.serve_forever()
    except KeyboardInterrupt:
        log.info("dashboard stopped")
