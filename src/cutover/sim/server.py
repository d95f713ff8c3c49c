"""Serving the simulator on loopback: in the foreground (`python -m cutover.sim serve`,
`cutover sim serve`) or in a thread.

Only 127.0.0.1 is ever bound. Port 0 picks a free port; the bound URL is reported before
the first request can arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from .app import create_app
from .errors import SimulatedDrop
from .protection import Limits

HOST = "127.0.0.1"


class _HideSimulatedDrops(logging.Filter):
    """A dropped connection is a fault we injected on purpose, not a server error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedDrop)


def bind(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, a response written in two parts waits
    # ~40 ms for the client's delayed ACK (Nagle), which would make every call look slow.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    return f"http://{HOST}:{sock.getsockname()[1]}"


def _server(db: str | Path, limits: Limits | None, log_level: str) -> uvicorn.Server:
    app = create_app(db, limits)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    logging.getLogger("uvicorn.error").addFilter(_HideSimulatedDrops())
    return uvicorn.Server(config)


def serve_forever(
    db: str | Path, port: int = 0, limits: Limits | None = None, on_ready=print, log_level: str = "warning"
) -> None:
    """Serve until interrupted; `on_ready` receives 'listening on http://127.0.0.1:PORT' first."""
    sock = bind(port)
    try:
        server = _server(db, limits, log_level)
        on_ready(f"listening on {url_of(sock)}")
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()


@contextlib.contextmanager
def running(db: str | Path, limits: Limits | None = None, port: int = 0) -> Iterator[str]:
    """Run a simulator in a background thread for the duration of a `with` block; yields its URL."""
    sock = bind(port)
    server = _server(db, limits, "error")
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), name="cutover-sim", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the simulator failed to start; see the log above")
            threading.Event().wait(0.01)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
