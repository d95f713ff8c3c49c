"""The harness itself: a seeded world answers over both transports."""

from tests.conftest import fixed_price_line, milestone_payload


async def test_in_process_world_answers_whoami_with_its_seeded_organization(sim):
    """Dataverse WhoAmI returns the organization id, which derives from the seed."""
    from cutover.sim.seed import organization_id

    r = await sim.dv("GET", "WhoAmI")
    assert r.status_code == 200
    assert r.json()["OrganizationId"] == organization_id(1)


async def test_socket_world_creates_a_milestone(socket_sim):
    """A create over a real socket answers 204 with OData-EntityId, as Dataverse does."""
    import sqlite3

    line = fixed_price_line(sqlite3.connect(socket_sim.db))
    r = await socket_sim.dv("POST", "msdyn_contractlinescheduleofvalues", json=milestone_payload(line))
    assert r.status_code == 204
    assert "msdyn_contractlinescheduleofvalues(" in r.headers["OData-EntityId"]
