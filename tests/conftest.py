"""Shared fixtures: a freshly seeded simulator, reached in-process or over a real socket."""

from __future__ import annotations

import functools
import inspect
import secrets
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cutover.sim import seed as seeding
from cutover.sim import server as sim_server
from cutover.sim.app import create_app
from cutover.sim.gateway import ADMIN_HEADER, is_admin_path
from cutover.sim.server import running
from cutover.sim.store import connect

DV = "/api/data/v9.2/"
FNO = "/data/"
WRITER = ("cutover-rehearsal", "rehearsal-secret")
READER = ("cutover-verify", "verify-secret")
HARNESS_URL = "http://sim.test"  # the in-process simulator's configured base URL (create_app(base_url=…))


async def _admin_as_json(request: httpx.Request) -> None:
    """The harness client is a well-behaved admin client: an admin POST/PUT/DELETE that names
    no content type (e.g. ``client.delete("/_sim/requests")``) is sent as JSON, as the admin
    surface requires. Tests of the door itself use a client without this hook."""
    if is_admin_path(request.url.path) and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        request.headers.setdefault("Content-Type", "application/json")


def harness_client(app=None, *, base_url: str = HARNESS_URL, admin_token: str | None = None, **kw) -> httpx.AsyncClient:
    """An httpx client for a simulator (``app`` in-process, else ``base_url`` over the network)
    that sends the admin token on every request and JSON content type on admin writes."""
    token = admin_token if admin_token is not None else app.state.sim.admin_token
    transport = {"transport": httpx.ASGITransport(app=app)} if app is not None else {}
    return httpx.AsyncClient(
        **transport,
        base_url=base_url,
        headers={ADMIN_HEADER: token},
        event_hooks={"request": [_admin_as_json]},
        **kw,
    )


def harness_app(db, **kw):
    """``create_app`` as the in-process harness configures it (base URL ``http://sim.test``)."""
    return create_app(db, base_url=HARNESS_URL, **kw)


def seed_small(path: Path, seed: int = 1) -> Path:
    conn = connect(path)
    try:
        seeding.seed_world(
            conn, seeding.SCALES["small"], seed=seed, scale_name="small", extract_path=path.with_suffix(".csv")
        )
    finally:
        conn.close()
    return path


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory) -> Path:
    """One seeded small world per test session; tests get copies of it."""
    return seed_small(tmp_path_factory.mktemp("template") / "world.sqlite")


@pytest.fixture
def world_db(seeded_template: Path, tmp_path: Path) -> Path:
    """A private copy of the seeded small world (its legacy extract sits beside it)."""
    target = tmp_path / "world.sqlite"
    src = sqlite3.connect(seeded_template)
    dst = sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
    (tmp_path / "world.csv").write_bytes(seeded_template.with_suffix(".csv").read_bytes())
    return target


@dataclass
class SimHarness:
    """A simulator plus an HTTP client to it. `dv`/`fno` send a bearer token; `admin` sends the
    admin token (``X-Cutover-Admin``) and ``Content-Type: application/json``."""

    client: httpx.AsyncClient
    db: Path
    app: object | None = None  # the ASGI app (in-process harness only)
    _tokens: dict | None = None
    admin_token: str | None = None

    def __post_init__(self) -> None:
        if self.admin_token is None and self.app is not None:
            self.admin_token = self.app.state.sim.admin_token
        if self.admin_token is None:
            self.admin_token = self.client.headers.get(ADMIN_HEADER)

    @property
    def conn(self) -> sqlite3.Connection:
        """The simulator's own connection (in-process only): for setup and for reading state."""
        return self.app.state.sim.conn

    @property
    def sim(self):
        return self.app.state.sim

    async def token(self, client_id: str = WRITER[0], secret: str = WRITER[1]) -> str:
        self._tokens = self._tokens or {}
        if client_id not in self._tokens:
            r = await self.client.post(
                "/_sim/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": secret,
                    "scope": f"{self.client.base_url}/.default",
                },
            )
            r.raise_for_status()
            self._tokens[client_id] = r.json()["access_token"]
        return self._tokens[client_id]

    async def auth(self, who: tuple[str, str] = WRITER) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(*who)}"}

    async def dv(
        self, method: str, path: str, who: tuple[str, str] = WRITER, headers: dict | None = None, **kw
    ) -> httpx.Response:
        return await self.client.request(method, DV + path, headers={**await self.auth(who), **(headers or {})}, **kw)

    async def fno(self, path: str, who: tuple[str, str] = WRITER, headers: dict | None = None, **kw) -> httpx.Response:
        return await self.client.request(
            kw.pop("method", "GET"), FNO + path, headers={**await self.auth(who), **(headers or {})}, **kw
        )

    def admin_headers(self, headers: dict | None = None) -> dict[str, str]:
        return {ADMIN_HEADER: self.admin_token or "", "Content-Type": "application/json", **(headers or {})}

    async def admin(self, method: str, path: str, headers: dict | None = None, **kw) -> httpx.Response:
        return await self.client.request(method, "/_sim/" + path, headers=self.admin_headers(headers), **kw)

    async def log(self, since: int = 0) -> list[dict]:
        r = await self.admin("GET", f"requests?since={since}")
        return r.json()


@pytest.fixture
async def sim(world_db: Path) -> AsyncIterator[SimHarness]:
    """The seeded small world served in-process through httpx's ASGI transport."""
    app = harness_app(world_db)
    async with harness_client(app) as client:
        yield SimHarness(client, world_db, app)
    app.state.sim.conn.close()


@pytest.fixture
async def socket_sim(world_db: Path, monkeypatch) -> AsyncIterator[SimHarness]:
    """The seeded small world served by uvicorn on a real loopback socket."""
    token = sim_server.new_admin_token() if hasattr(sim_server, "new_admin_token") else secrets.token_urlsafe(32)
    if "admin_token" in inspect.signature(running).parameters:
        serving = running(world_db, admin_token=token)
    else:  # until server.running takes the token: hand it to create_app ourselves
        monkeypatch.setattr(sim_server, "create_app", functools.partial(create_app, admin_token=token))
        serving = running(world_db)
    with serving as url:
        token = getattr(url, "admin_token", token)
        async with harness_client(base_url=str(url), admin_token=token, timeout=30) as client:
            yield SimHarness(client, world_db, admin_token=token)


def fixed_price_line(conn: sqlite3.Connection, index: int = 0) -> dict:
    """A seeded fixed-price contract line with its contract, for building milestone payloads."""
    row = conn.execute(
        "SELECT d.salesorderdetailid, d._salesorderid_value, o.ordernumber, d.lineitemnumber FROM dv_salesorderdetails d "
        "JOIN dv_salesorders o ON o.salesorderid = d._salesorderid_value WHERE d.msdyn_billingmethod = 192350001 "
        "ORDER BY o.ordernumber, d.lineitemnumber LIMIT 1 OFFSET ?",
        (index,),
    ).fetchone()
    return {"line_id": row[0], "contract_id": row[1], "contract_number": row[2], "line_number": row[3]}


def milestone_payload(
    line: dict, name: str = "Milestone", amount: int | float = 1000, status: int = 192350001, date: str = "2026-10-31"
) -> dict:
    """A milestone body as a client sends it. For exact decimals send the JSON text yourself."""
    return {
        "msdyn_name": name,
        "msdyn_amount": amount,
        "msdyn_invoicedate": date,
        "msdyn_invoicestatus": status,
        "msdyn_ContractLineId@odata.bind": f"/salesorderdetails({line['line_id']})",
    }
