"""The state of one running simulator: its database, its services, its knobs and its logs.

One :class:`Simulator` per app (``app.state.sim``); the gateway, the admin API and the
identity platform all reach it through :func:`cutover.sim.adminkit.simulator_of`.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque

from . import auth, dualwrite
from .dataverse_service import DataverseService
from .fno_service import FnoService
from .protection import Limits, Protection

REQUEST_LOG_LIMIT = 200_000


class RequestLog:
    """A bounded, numbered log of requests (the API's ``/_sim/requests``, the identity
    platform's ``/_sim/login/requests``). Sequence numbers keep counting across a clear."""

    def __init__(self, limit: int):
        self.entries: deque[dict] = deque(maxlen=limit)
        self.seq = 0

    def record(self, **entry) -> dict:
        """Append one entry (``seq`` and ``at`` added); returns it."""
        self.seq += 1
        entry = {"seq": self.seq, "at": time.time(), **entry}
        self.entries.append(entry)
        return entry

    def since(self, seq: int, **match) -> list[dict]:
        """Entries after ``seq`` whose fields equal every non-None value in ``match``."""
        wanted = {k: v for k, v in match.items() if v is not None}
        return [e for e in self.entries if e["seq"] > seq and all(e.get(k) == v for k, v in wanted.items())]

    def clear(self) -> dict:
        """Forget every entry; returns ``{"cleared": True, "next_seq": …}``."""
        self.entries.clear()
        return {"cleared": True, "next_seq": self.seq + 1}


class Simulator:
    """State of one running simulator: its database, services, knobs and request log."""

    def __init__(self, conn: sqlite3.Connection, limits: Limits | None = None):
        self.conn = conn
        auth.ensure_identities(conn)
        dualwrite.install_maps(conn)
        self.dataverse = DataverseService(conn)
        self.fno = FnoService(conn)
        self.protection = Protection(limits)
        self.requests = RequestLog(REQUEST_LOG_LIMIT)

    def record(self, **entry) -> dict:
        """Append one entry to the API request log (``/_sim/requests``); returns it."""
        return self.requests.record(**entry)
