"""The simulator as one ASGI application (Starlette) over one SQLite file: the composition.

Routes:
  /api/data/v9.2/…  Dataverse Web API subset          (bearer token required)  gateway.py
  /data/…           Finance and Operations OData     (bearer token required)  gateway.py
  /Metadata/…       F&O metadata service             (bearer token required)  gateway.py
  /_sim/token       stand-in identity platform (client credentials)          identity_platform.py
  /_sim/login/…     stand-in for login.microsoftonline.com                     identity_platform.py
  /_sim/…           rehearsal admin: maps, maintenance, version, faults,      admin.py
                    limits, request log, settings, identities
                    (header ``X-Cutover-Admin: <admin token>`` required)

Every request first passes the gateway's door (:class:`~cutover.sim.gateway.Gateway`): the
``Host`` check, the body size cap, and on the admin surface the admin token and
``Content-Type: application/json``.

The running simulator's state (database, services, protection, request log, admin token,
host policy) is one :class:`~cutover.sim.simulator.Simulator` at ``app.state.sim``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from starlette.applications import Starlette

from . import admin, identity_platform
from .errors import SimulatedDrop
from .gateway import ADMIN_HEADER, DATAVERSE_ROOT, FNO_ROOT, Gateway
from .hosts import REHEARSAL_RESOURCE, HostPolicy
from .protection import Limits
from .simulator import Simulator
from .store import connect

__all__ = [
    "ADMIN_HEADER",
    "DATAVERSE_ROOT",
    "FNO_ROOT",
    "REHEARSAL_RESOURCE",
    "Gateway",
    "SimulatedDrop",
    "Simulator",
    "create_app",
]


def create_app(
    db: str | Path | sqlite3.Connection,
    limits: Limits | None = None,
    *,
    admin_token: str | None = None,
    base_url: str | None = None,
    allowed_hosts: Iterable[str] = (),
) -> Gateway:
    """Build the simulator over a database file (or an open connection).

    ``admin_token``: the secret the admin surface requires in ``X-Cutover-Admin`` (a fresh
    ``secrets.token_urlsafe(32)`` when None; read it back at ``app.state.sim.admin_token``).
    ``base_url``: the root the simulator writes into links and accepts as token audience, e.g.
    ``http://127.0.0.1:8000`` (when None: the address of the socket each request came in on).
    ``allowed_hosts``: ``Host`` names served besides the loopback ones and base_url's host.
    """
    hosts = HostPolicy(base_url, allowed_hosts)
    conn = db if isinstance(db, sqlite3.Connection) else connect(db)
    app = Starlette(routes=[*admin.ROUTES, *identity_platform.ROUTES])
    try:
        app.state.sim = Simulator(conn, limits, admin_token=admin_token, hosts=hosts)
    except BaseException:
        if conn is not db:
            conn.close()
        raise
    app.state.identity_platform = identity_platform.PlatformState()
    return Gateway(app)
