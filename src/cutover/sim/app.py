"""The simulator as one ASGI application (Starlette) over one SQLite file: the composition.

Routes:
  /api/data/v9.2/…  Dataverse Web API subset          (bearer token required)  gateway.py
  /data/…           Finance and Operations OData     (bearer token required)  gateway.py
  /_sim/token       stand-in identity platform (client credentials)          identity_platform.py
  /_sim/login/…     stand-in for login.microsoftonline.com                     identity_platform.py
  /_sim/…           rehearsal admin: maps, maintenance, version, faults,      admin.py
                    limits, request log, settings, identities

The running simulator's state (database, services, protection, request log) is one
:class:`~cutover.sim.simulator.Simulator` at ``app.state.sim``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from starlette.applications import Starlette

from . import admin, identity_platform
from .errors import SimulatedDrop
from .gateway import DATAVERSE_ROOT, FNO_ROOT, Gateway
from .protection import Limits
from .simulator import Simulator
from .store import connect

__all__ = ["DATAVERSE_ROOT", "FNO_ROOT", "Gateway", "SimulatedDrop", "Simulator", "create_app"]


def create_app(db: str | Path | sqlite3.Connection, limits: Limits | None = None) -> Gateway:
    """Build the simulator over a database file (or an open connection)."""
    conn = db if isinstance(db, sqlite3.Connection) else connect(db)
    app = Starlette(routes=[*admin.ROUTES, *identity_platform.ROUTES])
    app.state.sim = Simulator(conn, limits)
    app.state.identity_platform = identity_platform.PlatformState()
    return Gateway(app)
