"""Contract of the simulator's admin surface (`/_sim/…`) and its stand-in identity endpoint.

Rules: DESIGN.md, the rehearsal simulator: the admin surface (maps, maintenance mode,
version, faults, limits, a request log of method, path and status "so tests can prove e.g.
that verification wrote nothing"), and `/_sim/token`, which answers like the Microsoft identity
platform's client-credentials endpoint (AADSTS error codes), while "every other route except
`/_sim/` admin answers 401 without a bearer token it issued".
"""

from __future__ import annotations

import asyncio

import pytest

from cutover.sim.seed import organization_id
from tests.conftest import DV, FNO, READER, WRITER, SimHarness

INVALID_ARGUMENT = "0x80040203"
BAD_PAYLOAD = "0x80048d19"


def admin_error(r, status: int, code: str) -> str:
    """Assert an admin refusal in Dataverse's shape with this status and code; return the message."""
    assert r.status_code == status, (r.status_code, r.text)
    data = r.json()
    assert set(data) == {"error"} and data["error"]["code"] == code, data
    return data["error"]["message"]


async def token_response(sim: SimHarness, client_id: str, secret: str, override: dict | None = None):
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": "http://sim.test/.default",
        **(override or {}),
    }
    return await sim.client.post("/_sim/token", data=form)


# --- summary, maintenance, version ----------------------------------------------------------


async def test_summary_names_the_organization_counts_and_maps(sim):
    """GET /_sim/ summarises the environment: the organization id WhoAmI answers, row counts per
    entity set, and the three dual-write maps Running on their original versions."""
    summary = (await sim.admin("GET", "")).json()
    assert summary["organization_id"] == organization_id(1)
    assert summary["organization_id"] == (await sim.dv("GET", "WhoAmI")).json()["OrganizationId"]
    counts = summary["counts"]
    assert (counts["CustTransactions"], counts["GeneralJournalAccountEntryBiEntities"], counts["salesorders"]) == (
        500,
        5000,
        20,
    )
    assert counts["msdyn_contractlinescheduleofvalues"] == 0
    assert summary["maps"] == {
        "msdyn_contractlinescheduleofvalues": {"state": "Running", "active_version": "1.0.0.5"},
        "msdyn_actuals": {"state": "Running", "active_version": "1.0.0.3"},
        "invoices": {"state": "Running", "active_version": "1.0.0.2"},
    }
    assert summary["endpoints"] == {"dataverse": DV, "fno": FNO, "token": "/_sim/token"}


async def test_summary_counts_follow_writes(sim):
    """The counts are live: a milestone created through the API shows up in them."""
    from tests.conftest import fixed_price_line, milestone_payload

    r = await sim.dv("POST", "msdyn_contractlinescheduleofvalues", json=milestone_payload(fixed_price_line(sim.conn)))
    assert r.status_code == 204
    counts = (await sim.admin("GET", "")).json()["counts"]
    assert counts["msdyn_contractlinescheduleofvalues"] == 1
    assert counts["ProjectContractLineMilestones"] == 1


async def test_maintenance_mode_can_be_read_and_set(sim):
    """Maintenance mode (procedure prerequisite; attested, not readable through OData) is a
    rehearsal knob: off by default, PUT turns it on, GET and the summary read it back."""
    assert (await sim.admin("GET", "maintenance")).json() == {"enabled": False}
    r = await sim.admin("PUT", "maintenance", json={"enabled": True})
    assert r.json() == {"enabled": True}
    assert (await sim.admin("GET", "maintenance")).json() == {"enabled": True}
    assert (await sim.admin("GET", "")).json()["maintenance_mode"] is True


async def test_maintenance_put_without_the_field_is_a_400(sim):
    """A PUT that does not say what to set is refused and changes nothing."""
    r = await sim.admin("PUT", "maintenance", json={"on": True})
    assert admin_error(r, 400, INVALID_ARGUMENT) == "Unknown field(s) on; known: enabled."
    r = await sim.admin("PUT", "maintenance", json={})
    assert admin_error(r, 400, INVALID_ARGUMENT) == "enabled is required."
    assert (await sim.admin("GET", "maintenance")).json() == {"enabled": False}


async def test_the_fno_version_can_be_read_and_set(sim):
    """The F&O version (procedure prerequisite: 10.0.24 or later) is a rehearsal knob, so a
    rehearsal can show the preflight refusing an old environment."""
    assert (await sim.admin("GET", "version")).json() == {"version": "10.0.40"}
    assert (await sim.admin("PUT", "version", json={"version": "10.0.23"})).json() == {"version": "10.0.23"}
    assert (await sim.admin("GET", "version")).json() == {"version": "10.0.23"}
    assert (await sim.admin("GET", "")).json()["fno_version"] == "10.0.23"


async def test_admin_body_must_be_a_json_object(sim):
    """Malformed admin bodies are 400s naming the problem."""
    r = await sim.admin("PUT", "version", content=b"{not json", headers={"Content-Type": "application/json"})
    assert admin_error(r, 400, BAD_PAYLOAD).startswith("Request body is not valid JSON: ")
    r = await sim.admin("PUT", "version", json=["10.0.30"])
    assert admin_error(r, 400, BAD_PAYLOAD) == "Request body must be a JSON object."
    assert (await sim.admin("GET", "version")).json() == {"version": "10.0.40"}


# --- settings ------------------------------------------------------------------------------


async def test_unknown_settings_are_refused(sim):
    """Settings are a closed set: an unknown key is a 400 that lists the known keys, and nothing
    in the same request is applied."""
    r = await sim.admin("PUT", "settings", json={"invoice_create_action": "new_Create", "token_lifetme": 5})
    message = admin_error(r, 400, INVALID_ARGUMENT)
    assert "token_lifetme" in message and "token_lifetime" in message
    assert (await sim.admin("GET", "settings")).json()["invoice_create_action"] == "msdyn_NewInvoiceContract"


async def test_the_invoice_action_names_are_settings_seen_in_metadata(sim):
    """The invoice actions are "settings of the environment profile, checked against $metadata"
    (DESIGN): renamed here, the Dataverse $metadata offers the new name and not the old one."""
    r = await sim.admin("PUT", "settings", json={"invoice_create_action": "new_CreateInvoices"})
    assert r.status_code == 200
    assert r.json()["invoice_create_action"] == "new_CreateInvoices"
    metadata = (await sim.dv("GET", "$metadata")).text
    assert 'Action Name="new_CreateInvoices"' in metadata
    assert 'Action Name="msdyn_NewInvoiceContract"' not in metadata


# --- identities and tokens -----------------------------------------------------------------


async def test_the_token_endpoint_answers_like_the_identity_platform(sim):
    """Client credentials give {"access_token", "token_type": "Bearer", "expires_in"} (DESIGN)."""
    r = await token_response(sim, *WRITER)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert (
        await sim.client.get(DV + "WhoAmI", headers={"Authorization": f"Bearer {body['access_token']}"})
    ).status_code == 200


@pytest.mark.parametrize(
    "client_id, secret, status, error, code",
    [
        (WRITER[0], "wrong-secret", 401, "invalid_client", 7000215),
        ("nobody", "x", 400, "unauthorized_client", 700016),
    ],
)
async def test_bad_credentials_get_aadsts_errors(sim, client_id, secret, status, error, code):
    """A wrong secret is AADSTS7000215, an unknown application AADSTS700016, as the identity
    platform answers."""
    r = await token_response(sim, client_id, secret)
    assert r.status_code == status
    body = r.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert "access_token" not in body


@pytest.mark.parametrize(
    "override, error, code",
    [
        ({"grant_type": "password"}, "unsupported_grant_type", 70003),
        ({"scope": ""}, "invalid_request", 900144),
        ({"client_id": ""}, "invalid_request", 900144),
    ],
)
async def test_malformed_token_requests_get_aadsts_errors(sim, override, error, code):
    """A wrong grant type (AADSTS70003) or a missing parameter (AADSTS900144) is a 400 with the
    identity platform's error body — never a server error."""
    r = await token_response(sim, *WRITER, override)
    assert r.status_code == 400
    assert r.json()["error"] == error
    assert r.json()["error_codes"] == [code]


async def test_a_token_request_must_be_form_encoded(sim):
    """The token endpoint takes application/x-www-form-urlencoded, like the real one."""
    r = await sim.client.post(
        "/_sim/token", json={"grant_type": "client_credentials", "client_id": WRITER[0], "client_secret": WRITER[1]}
    )
    assert r.status_code == 400
    assert "AADSTS900144" in r.json()["error_description"]


async def test_an_added_identity_with_an_expired_secret_gets_no_token(sim):
    """An application user whose secret expired gets 401 invalid_client AADSTS7000222 — the
    failure an operator meets when the app registration's secret ran out before the night."""
    r = await sim.admin(
        "POST", "identities", json={"client_id": "cutover-expired", "client_secret": "old", "secret_expired": True}
    )
    assert r.status_code == 200
    listed = {i["client_id"]: i for i in r.json()}
    assert listed["cutover-expired"]["secret_expired"] is True
    r = await token_response(sim, "cutover-expired", "old")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert r.json()["error_description"].startswith("AADSTS7000222")


async def test_an_added_identity_can_call_the_apis(sim):
    """A new application user (more identities, more throughput) gets a token and is who WhoAmI
    says; added read-only, it cannot write."""
    r = await sim.admin(
        "POST", "identities", json={"client_id": "cutover-extra", "client_secret": "s3", "can_write": False}
    )
    assert r.status_code == 200
    who = ("cutover-extra", "s3")
    me = await sim.dv("GET", "WhoAmI", who=who)
    assert me.status_code == 200
    assert me.json()["UserId"] != (await sim.dv("GET", "WhoAmI")).json()["UserId"]
    r = await sim.dv("POST", "accounts", who=who, json={"name": "Nope"})
    assert r.status_code == 403


async def test_an_identity_needs_an_id_and_a_secret(sim):
    """Adding an identity without a secret is a 400 and adds nothing."""
    before = (await sim.admin("GET", "identities")).json()
    r = await sim.admin("POST", "identities", json={"client_id": "half"})
    assert admin_error(r, 400, INVALID_ARGUMENT) == "client_secret is required."
    assert (await sim.admin("GET", "identities")).json() == before


async def test_apis_need_a_bearer_token_the_simulator_issued(sim):
    """Every route except /_sim/ answers 401 without a bearer token it issued (DESIGN), on both
    services, and the log records the refusal."""
    for path in (DV + "WhoAmI", FNO + "CustTransactions"):
        assert (await sim.client.get(path)).status_code == 401
        assert (await sim.client.get(path, headers={"Authorization": "Basic dXNlcjpwYXNz"})).status_code == 401
    good = await sim.token()
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    assert (await sim.client.get(DV + "WhoAmI", headers={"Authorization": f"Bearer {tampered}"})).status_code == 401
    log = await sim.log()
    assert [e["status"] for e in log] == [401] * 5
    assert all(e["client_id"] is None for e in log)


async def test_a_token_expires_after_the_configured_lifetime(sim):
    """token_lifetime (seconds) sets expires_in; once it has passed the API answers 401, so a
    client must renew its token during a long run."""
    await sim.admin("PUT", "settings", json={"token_lifetime": 1})
    r = await token_response(sim, *READER)
    assert r.json()["expires_in"] == 1
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await sim.client.get(DV + "WhoAmI", headers=headers)).status_code == 200
    await asyncio.sleep(2.05)  # the lifetime counts from the next whole second at most
    expired = await sim.client.get(DV + "WhoAmI", headers=headers)
    assert expired.status_code == 401
    assert "WWW-Authenticate" in expired.headers
    fresh = await token_response(sim, *READER)
    assert (
        await sim.client.get(DV + "WhoAmI", headers={"Authorization": f"Bearer {fresh.json()['access_token']}"})
    ).status_code == 200


def test_a_token_is_valid_for_at_least_expires_in_seconds(sim):
    """A client may rely on `expires_in`: a token issued just before a whole second with a
    1-second lifetime is still accepted half a second later, and refused once it has run out."""
    from cutover.sim import auth

    sim.conn.execute("INSERT OR REPLACE INTO sim_settings(key, value) VALUES ('token_lifetime', '1')")
    form = {
        "grant_type": "client_credentials",
        "client_id": WRITER[0],
        "client_secret": WRITER[1],
        "scope": "http://sim.test/.default",
    }
    issued = auth.issue_token(sim.conn, form, now=1_000.999)
    header = f"Bearer {issued['access_token']}"
    assert issued["expires_in"] == 1
    assert auth.verify_token(sim.conn, header, now=1_001.5) is not None
    assert auth.verify_token(sim.conn, header, now=1_003.0) is None


# --- request log -----------------------------------------------------------------------------


async def test_the_request_log_records_method_path_status_and_caller(sim):
    """The request log holds method, path (with query), status and the calling identity of every
    API request, and none of the admin requests."""
    await sim.dv("GET", "WhoAmI")
    await sim.fno("CustTransactions?$top=1", who=READER)
    await sim.fno("NoSuchEntity")
    log = await sim.log()
    assert [(e["service"], e["method"], e["path"], e["status"], e["client_id"]) for e in log] == [
        ("dataverse", "GET", DV + "WhoAmI", 200, WRITER[0]),
        ("fno", "GET", FNO + "CustTransactions?$top=1", 200, READER[0]),
        ("fno", "GET", FNO + "NoSuchEntity", 404, WRITER[0]),
    ]
    assert [e["seq"] for e in log] == sorted(e["seq"] for e in log)


async def test_the_request_log_proves_a_read_only_run_wrote_nothing(sim):
    """What the log is for: after a mark (`since`), only GETs were sent."""
    from tests.conftest import fixed_price_line, milestone_payload

    await sim.dv("POST", "msdyn_contractlinescheduleofvalues", json=milestone_payload(fixed_price_line(sim.conn)))
    mark = (await sim.log())[-1]["seq"]
    await sim.fno("ProjectContractLineMilestones?cross-company=true", who=READER)
    await sim.dv("GET", "msdyn_contractlinescheduleofvalues?$select=msdyn_name", who=READER)
    after = await sim.log(since=mark)
    assert len(after) == 2
    assert {e["method"] for e in after} == {"GET"}
    assert {e["method"] for e in await sim.log()} == {"GET", "POST"}


async def test_the_request_log_filters_by_service(sim):
    """`service=fno` / `service=dataverse` narrows the log to one service."""
    await sim.dv("GET", "WhoAmI")
    await sim.fno("DualWriteProjectConfigurations")
    fno = (await sim.admin("GET", "requests?service=fno")).json()
    assert [e["path"] for e in fno] == [FNO + "DualWriteProjectConfigurations"]


async def test_the_request_log_can_be_cleared_and_numbering_continues(sim):
    """DELETE clears the log and says where numbering continues; new entries carry on from there,
    so an old `since` mark still works."""
    await sim.dv("GET", "WhoAmI")
    await sim.dv("GET", "WhoAmI")
    r = await sim.admin("DELETE", "requests")
    next_seq = r.json()["next_seq"]
    assert r.json()["cleared"] is True
    assert await sim.log() == []
    await sim.fno("DualWriteProjectConfigurations")
    log = await sim.log()
    assert [e["seq"] for e in log] == [next_seq]
    assert await sim.log(since=next_seq) == []


# --- maps listing ---------------------------------------------------------------------------


async def test_maps_list_shows_the_three_maps_of_the_procedure(sim):
    """The admin surface lists the three maps the procedure stops and restarts, with titles as the
    dual-write page shows them and their original versions."""
    maps = (await sim.admin("GET", "maps")).json()
    assert {m["name"] for m in maps} == {"msdyn_contractlinescheduleofvalues", "msdyn_actuals", "invoices"}
    titles = {m["name"]: m["title"] for m in maps}
    assert titles["invoices"] == "Project invoice proposal V2 (invoices)"
    assert all(m["active_version"] == m["original_version"] and len(m["versions"]) == 1 for m in maps)
    r = await sim.admin("GET", "maps/msdyn_projects")
    assert r.status_code == 404


async def test_an_unknown_map_operation_is_a_404(sim):
    """Only stop, start, pause, resume, refresh-tables, save-as and version exist."""
    r = await sim.admin("POST", "maps/invoices/restart")
    assert r.status_code == 404
    assert "stop" in r.json()["error"]["message"]
    assert (await sim.admin("GET", "maps/invoices")).json()["state"] == "Running"


async def test_generate_mapping_is_recorded(sim):
    """Procedure step 1 (Generate mapping on the contract line milestones entity) has no API; the
    rehearsal simulator records that it was done."""
    r = await sim.admin("POST", "fno/generate-mapping", json={})
    assert r.status_code == 200
    assert "Project Operations integration contract line milestones" in r.json()["generated_mappings"]


async def test_a_simulator_defect_answers_500_in_the_service_error_shape_and_writes_nothing(sim, caplog):
    """Dataverse answers unexpected failures with 500 and {"error": {"code", "message"}}; the
    simulator does the same for its own defects, rolls the change back, and logs the cause."""
    from cutover.sim import dataverse_service
    from tests.conftest import fixed_price_line, milestone_payload

    line = fixed_price_line(sim.conn)
    original = dataverse_service.DataverseService._milestone_rules

    def broken(self, values, current):
        original(self, values, current)
        raise KeyError("boom")

    before = sim.conn.execute("SELECT count(*) FROM dv_msdyn_contractlinescheduleofvalues").fetchone()[0]
    dataverse_service.DataverseService._milestone_rules = broken
    try:
        r = await sim.dv("POST", "msdyn_contractlinescheduleofvalues", json=milestone_payload(line))
    finally:
        dataverse_service.DataverseService._milestone_rules = original
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "0x80040216"
    assert "simulator defect" in r.json()["error"]["message"]
    assert sim.conn.execute("SELECT count(*) FROM dv_msdyn_contractlinescheduleofvalues").fetchone()[0] == before
    assert (await sim.log())[-1]["status"] == 500
