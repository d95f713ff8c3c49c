"""The embedded simulator a rehearsal profile starts for the duration of one command."""

from __future__ import annotations

import httpx
import pytest

from cutover.embedded import EmbeddedSimulatorError, embedded_simulator
from cutover.sim.seed import organization_id


def test_embedded_simulator_serves_the_profile_database_and_stops(world_db):
    """It serves the named database on a loopback port, and the port is closed afterwards."""
    with embedded_simulator(world_db) as url:
        assert url.startswith("http://127.0.0.1:")
        summary = httpx.get(f"{url}/_sim/").json()
        assert summary["organization_id"] == organization_id(1)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_sim/", timeout=2)


def test_missing_database_names_the_command_that_creates_it(tmp_path):
    """A profile pointing at a database that does not exist says how to create it."""
    with pytest.raises(EmbeddedSimulatorError, match="cutover sim seed --db"):
        with embedded_simulator(tmp_path / "nope.sqlite"):
            pass
