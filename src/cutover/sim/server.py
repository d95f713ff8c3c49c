"""Serving the simulator on loopback: in the foreground (`python -m cutover.sim serve`,
`cutover sim serve`) or in a thread.

Only 127.0.0.1 is ever bound. Port 0 picks a free port; the bound URL is reported before
the first request can arrive. Every run has its own random admin token
(:func:`new_admin_token`): the ``/_sim/…`` admin routes want it in ``X-Cutover-Admin``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from .app import create_app
from .errors import SimulatedDrop
from .protection import Limits

HOST = "127.0.0.1"
ADMIN_HEADER = "X-Cutover-Admin"


class _HideSimulatedDrops(logging.Filter):
    """A dropped connection is a fault we injected on purpose, not a server error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedDrop)


class SimulatorURL(str):
    """The base URL of a running simulator (a ``str``), carrying its ``admin_token``."""

    admin_token: str

    def __new__(cls, url: str, admin_token: str) -> SimulatorURL:
        self = super().__new__(cls, url)
        self.admin_token = admin_token
        return self

    @property
    def admin_headers(self) -> dict[str, str]:
        return {ADMIN_HEADER: self.admin_token}


def new_admin_token() -> str:
    return secrets.token_urlsafe(32)


def bind(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, a response written in two parts waits
    # ~40 ms for the client's delayed ACK (Nagle), which would make every call look slow.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((HOST, port))
        sock.listen(512)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    return f"http://{HOST}:{sock.getsockname()[1]}"


def _server(db: str | Path, limits: Limits | None, log_level: str, admin_token: str) -> uvicorn.Server:
    app = create_app(db, limits, admin_token=admin_token)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    logging.getLogger("uvicorn.error").addFilter(_HideSimulatedDrops())
    return uvicorn.Server(config)


def _stop_when(stop: threading.Event, server: uvicorn.Server) -> None:
    def wait() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=wait, name="cutover-sim-stop", daemon=True).start()


def serve_forever(
    db: str | Path,
    port: int = 0,
    limits: Limits | None = None,
    on_ready: Callable[[str], object] = print,
    log_level: str = "warning",
    *,
    admin_token: str | None = None,
    on_listening: Callable[[str, str], object] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve until interrupted (Ctrl+C, SIGTERM) or until ``stop`` is set.

    Once the socket listens: ``on_listening(url, admin_token)`` (to publish them), then
    ``on_ready`` receives ``listening on http://127.0.0.1:PORT`` and ``admin token: TOKEN``.
    ``admin_token`` defaults to a new random one.
    """
    token = admin_token or new_admin_token()
    sock = bind(port)
    try:
        server = _server(db, limits, log_level, token)
        url = url_of(sock)
        if on_listening is not None:
            on_listening(url, token)
        on_ready(f"listening on {url}")
        on_ready(f"admin token: {token}")
        if stop is not None:
            _stop_when(stop, server)  # first: a stop that comes before serving starts still counts
            if stop.is_set():
                return
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()


@contextlib.contextmanager
def running(
    db: str | Path, limits: Limits | None = None, port: int = 0, *, admin_token: str | None = None
) -> Iterator[SimulatorURL]:
    """Run a simulator in a background thread for the duration of a `with` block; yields its
    URL (a ``str`` whose ``admin_token`` attribute is this run's admin token)."""
    token = admin_token or new_admin_token()
    sock = bind(port)
    try:
        server = _server(db, limits, "error", token)
    except BaseException:
        sock.close()
        raise
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), name="cutover-sim", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the simulator failed to start; see the log above")
            threading.Event().wait(0.01)
        yield SimulatorURL(url_of(sock), token)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
