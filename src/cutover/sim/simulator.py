"""The state of one running simulator: its database, its services, its knobs and its logs.

One :class:`Simulator` per app (``app.state.sim``); the gateway, the admin API and the
identity platform all reach it through :func:`cutover.sim.adminkit.simulator_of`.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import time
from collections import deque

from . import auth, dualwrite
from .dataverse_service import DataverseService
from .fno_service import FnoService
from .hosts import HostPolicy
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
    """State of one running simulator: its database, services, knobs and request log.

    ``admin_token`` is the secret every ``/_sim/…`` admin request must carry in
    ``X-Cutover-Admin`` (random per run unless given); ``hosts`` the names it answers to, the
    root it writes into links and the token audiences it accepts (:mod:`cutover.sim.hosts`)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        limits: Limits | None = None,
        *,
        admin_token: str | None = None,
        hosts: HostPolicy | None = None,
    ):
        if admin_token is not None and not re.fullmatch(r"[A-Za-z0-9._~+/=-]{16,}", admin_token):
            raise ValueError("admin_token must be at least 16 characters of A-Z a-z 0-9 . _ ~ + / = -")
        self.admin_token = admin_token or secrets.token_urlsafe(32)
        self.hosts = hosts or HostPolicy()
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
