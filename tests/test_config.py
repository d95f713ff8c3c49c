"""Workspace and environment profiles (`cutover.config`): what an operator sees when the
profile file is right, and the message they get when it is wrong."""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
import types
from pathlib import Path

import pytest

from cutover.config import (
    AUTH_METHODS,
    CONFIG_FILENAME,
    DEFAULT_ENTITY_NAMES,
    DEFAULT_WORKSPACE,
    KINDS,
    WORKSPACE_ENV,
    Config,
    ConfigError,
    FingerprintMismatch,
    Profile,
    config_path,
    load_config,
    pin_fingerprint,
    resolve_secret,
    resolve_workspace,
    save_config,
)
from cutover.errors import EXIT_USAGE, CutoverError, WrongEnvironment, exit_code_of

DV = "https://contoso.crm.dynamics.com"
FNO = "https://contoso.operations.dynamics.com"
ORG = "7d3a1c52-1b8e-4f4e-9a51-0c1d2e3f4a5b"


def write(ws: Path, text: str) -> Path:
    ws.mkdir(parents=True, exist_ok=True)
    path = config_path(ws)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(ws: Path, text: str) -> ConfigError:
    write(ws, text)
    with pytest.raises(ConfigError) as info:
        load_config(ws)
    return info.value


def production(**kw) -> Profile:
    base = dict(
        name="prod",
        kind="production",
        dataverse_url=DV,
        fno_url=FNO,
        tenant="contoso.onmicrosoft.com",
        client_id="11111111-2222-3333-4444-555555555555",
        auth="client-secret",
        secret_env="CUTOVER_PROD_SECRET",
    )
    base.update(kw)
    return Profile(**base)


# --- workspace ------------------------------------------------------------------------------------


def test_workspace_explicit_beats_environment_beats_default(tmp_path, monkeypatch):
    """--workspace DIR wins over $CUTOVER_WORKSPACE, which wins over ./cutover-workspace."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUTOVER_WORKSPACE", str(tmp_path / "from-env"))
    assert resolve_workspace(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_workspace(None) == tmp_path / "from-env"
    monkeypatch.delenv("CUTOVER_WORKSPACE")
    assert resolve_workspace(None) == tmp_path / "cutover-workspace"
    monkeypatch.setenv("CUTOVER_WORKSPACE", "")
    assert resolve_workspace(None) == tmp_path / "cutover-workspace", "an empty variable counts as unset"


def test_workspace_relative_and_home_paths_become_absolute(tmp_path, monkeypatch):
    """A relative --workspace is taken from the current directory and ~ is the home directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_workspace("ws") == tmp_path / "ws"
    assert resolve_workspace("~/ws") == tmp_path / "home" / "ws"
    assert config_path(tmp_path / "ws") == tmp_path / "ws" / "cutover.toml"


# --- round trips ----------------------------------------------------------------------------------

ROUND_TRIP = {
    "rehearsal-db": dict(name="rehearsal-db", kind="rehearsal", sim_db="rehearsal.sqlite"),
    "rehearsal-running": dict(
        name="rehearsal-running",
        kind="rehearsal",
        dataverse_url="http://127.0.0.1:8123",
        fno_url="http://127.0.0.1:8123",
        identities=("cutover-rehearsal-2", "cutover-rehearsal-3"),
        pinned_org_id=ORG,
    ),
    "sandbox": dict(
        name="sandbox",
        kind="sandbox",
        dataverse_url=DV,
        fno_url=FNO,
        tenant="contoso.onmicrosoft.com",
        client_id="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        auth="device-code",
    ),
    "production": dict(
        name="production",
        kind="production",
        dataverse_url=DV,
        fno_url=FNO,
        tenant="9f8e7d6c-0000-1111-2222-333344445555",
        client_id="11111111-2222-3333-4444-555555555555",
        auth="client-secret",
        secret_env="CUTOVER_PROD_SECRET",
        keyring_service="cutover",
        keyring_username="prod-app",
        identities=("id-two", "id-three"),
        invoice_create_action="msdyn_CreateInvoiceFromContract",
        entity_names={"milestones": "msdyn_milestones_v2"},
        pinned_org_id=ORG,
    ),
    "cert": dict(
        name="cert",
        kind="sandbox",
        dataverse_url=DV,
        fno_url=FNO,
        tenant="contoso.onmicrosoft.com",
        client_id="app",
        auth="certificate",
        cert_path='C:\\certs\\"odd" name\n\ttab\x01\x7f é ✓.pem',
    ),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_save_then_load_gives_equal_profiles(tmp_path, name):
    """Every kind of profile written by `env add` reads back identical, strings with quotes,
    backslashes, control characters and non-ASCII text included."""
    profile = Profile(**ROUND_TRIP[name])
    config = Config(path=config_path(tmp_path / "ws"))
    config.add(profile)
    save_config(config)
    loaded = load_config(tmp_path / "ws")
    assert loaded.profiles == {name: profile}
    assert loaded.get(name) == profile


def test_all_profiles_round_trip_together_in_order(tmp_path):
    """Several profiles share one file and keep their order."""
    config = Config(path=config_path(tmp_path))
    for kw in ROUND_TRIP.values():
        config.add(Profile(**kw))
    save_config(config)
    loaded = load_config(tmp_path)
    assert list(loaded.profiles) == list(ROUND_TRIP)
    assert loaded.profiles == config.profiles


def test_file_holds_only_entity_name_overrides(tmp_path):
    """The file lists only the entity sets that differ from the defaults; the rest still resolve."""
    config = Config(path=config_path(tmp_path))
    config.add(Profile(**ROUND_TRIP["production"]))
    save_config(config)
    text = config.path.read_text()
    assert "[profiles.production.entity_names]" in text
    assert 'milestones = "msdyn_milestones_v2"' in text
    assert "salesorderdetails" not in text
    profile = load_config(tmp_path).get("production")
    assert profile.entity_set("milestones") == "msdyn_milestones_v2"
    assert profile.entity_set("contract_lines") == "salesorderdetails"


def test_missing_file_is_an_empty_config(tmp_path):
    """A workspace without cutover.toml has no profiles, and says so when one is asked for."""
    config = load_config(tmp_path / "nowhere")
    assert config.profiles == {}
    with pytest.raises(ConfigError, match=r"no profile named 'prod' \(known: none yet\)"):
        config.get("prod")


def test_hand_written_file_with_comments_and_inline_table_loads(tmp_path):
    """An operator's hand-edited file (comments, inline tables, quoted keys) is accepted."""
    write(
        tmp_path,
        f"""
# our sandbox
[profiles.sbx]   # comment
kind = "sandbox"
"dataverse_url" = "{DV}/"
fno_url = '{FNO}//'
tenant = "contoso.onmicrosoft.com"
client_id = "app"
auth = "certificate"
cert_path = "certs/app.pem"
entity_names = {{ invoices = "invoices_v2" }}
""",
    )
    p = load_config(tmp_path).get("sbx")
    assert p.dataverse_url == DV and p.fno_url == FNO
    assert p.entity_names["invoices"] == "invoices_v2"
    assert p.cert_file(tmp_path) == tmp_path / "certs" / "app.pem"


# --- defaults and normalisation -------------------------------------------------------------------


def test_rehearsal_defaults():
    """A rehearsal profile signs in to the simulator as cutover-rehearsal unless told otherwise,
    and uses the default invoice actions and entity sets."""
    p = Profile(name="r", kind="rehearsal", sim_db="/tmp/world.sqlite")
    assert p.auth == "simulator"
    assert p.client_id == "cutover-rehearsal"
    assert p.invoice_create_action == "msdyn_NewInvoiceContract"
    assert p.invoice_confirm_action == "msdyn_PostInvoice"
    assert p.entity_names == dict(DEFAULT_ENTITY_NAMES)
    assert p.entity_names["milestones"] == "msdyn_contractlinescheduleofvalues"
    assert p.embedded_simulator
    assert p.sim_db_path("/ws") == Path("/tmp/world.sqlite")


def test_urls_are_normalised():
    """Trailing slashes go, scheme and host are lower-cased."""
    p = production(dataverse_url="HTTPS://Contoso.CRM.dynamics.com///", fno_url=FNO + "/")
    assert p.dataverse_url == DV
    assert p.fno_url == FNO


def test_changed_profile_is_validated_again():
    """dataclasses.replace re-checks the rules (a profile can never be invalid)."""
    with pytest.raises(ConfigError, match="https"):
        dataclasses.replace(production(), fno_url="http://contoso.operations.dynamics.com")


# --- bad input: messages --------------------------------------------------------------------------


def test_bad_kind_names_file_line_and_key(tmp_path):
    """A wrong kind is reported as `cutover.toml line N, key 'kind': 'prod' is not one of ...`."""
    err = load_error(
        tmp_path,
        f"""# profiles
[profiles.rehearsal]
kind = "rehearsal"
sim_db = "world.sqlite"

[profiles.live]
kind = "prod"
dataverse_url = "{DV}"
""",
    )
    assert err.line == 7
    assert err.key == "kind"
    assert err.path == tmp_path / "cutover.toml"
    assert "cutover.toml line 7, key 'kind': 'prod' is not one of rehearsal, sandbox, production" in str(err)
    assert "[profiles.live]" in str(err)


def test_toml_syntax_error_names_line_and_column(tmp_path):
    """A syntax error gives the line and column and never repeats the line (it may hold a secret)."""
    err = load_error(tmp_path, '[profiles.p]\nkind = "rehearsal"\nsim_db = hunter2-secret\n')
    assert err.line == 3
    assert err.column == 10
    assert "cutover.toml line 3, column 10: not valid TOML" in str(err)
    assert "hunter2" not in str(err)


def test_missing_kind(tmp_path):
    """A profile without a kind says which one to add, pointing at the table header."""
    err = load_error(tmp_path, '\n[profiles.p]\nsim_db = "x"\n')
    assert (err.line, err.key) == (2, "kind")
    assert 'is missing; add kind = "rehearsal", "sandbox" or "production"' in str(err)


def test_unknown_key_and_wrong_type_are_named(tmp_path):
    """A typo in a key, or a number where text belongs, is reported at its line."""
    err = load_error(tmp_path, f'[profiles.p]\nkind = "sandbox"\ndataverse_ur = "{DV}"\n')
    assert (err.line, err.key) == (3, "dataverse_ur")
    assert "unknown key in [profiles.p]; known keys: kind, dataverse_url" in str(err)
    err = load_error(tmp_path, "[profiles.p]\nkind = 3\n")
    assert (err.line, err.key) == (2, "kind")
    assert "must be a string in double quotes, not an integer" in str(err)


def test_unknown_entity_name_points_into_the_sub_table(tmp_path):
    """An override of a logical entity name that does not exist is named with its line."""
    err = load_error(
        tmp_path,
        '[profiles.p]\nkind = "rehearsal"\nsim_db = "w"\n\n[profiles.p.entity_names]\ninvoices = "x"\nmilestone = "y"\n',
    )
    assert (err.line, err.key) == (7, "entity_names.milestone")
    assert "unknown logical entity name; known: milestones, contracts" in str(err)


def test_unknown_top_level_key(tmp_path):
    """Only [profiles.NAME] tables and a [keys] table belong in the file."""
    err = load_error(tmp_path, 'default = "prod"\n[profiles.p]\nkind = "rehearsal"\nsim_db = "w"\n')
    assert (err.line, err.key) == (1, "default")
    assert "holds [profiles.NAME] tables and a [keys] table" in str(err)


@pytest.mark.parametrize("key", ["secret", "client_secret", "password", "token", "refresh_token", "cert_password"])
def test_secret_in_toml_is_refused_without_echoing_it(tmp_path, key):
    """A secret written into the profile is refused with a pointer to secret_env or the keyring,
    and the secret itself is not shown."""
    err = load_error(tmp_path, f'[profiles.p]\nkind = "rehearsal"\nsim_db = "w"\n{key} = "s3cr3t-value"\n')
    assert (err.line, err.key) == (4, key)
    assert "secrets are never stored in cutover.toml" in str(err)
    assert "secret_env" in str(err) and "keyring" in str(err)
    assert "s3cr3t-value" not in str(err)


def test_secret_at_top_level_is_refused(tmp_path):
    """Even outside a profile table the file may not hold a secret."""
    err = load_error(tmp_path, 'client_secret = "abc"\n')
    assert (err.line, err.key) == (1, "client_secret")
    assert "secrets are never stored" in str(err) and "abc" not in str(err)


def test_secret_pasted_into_secret_env_is_not_echoed():
    """secret_env holds a variable NAME; a pasted secret is refused without repeating it."""
    with pytest.raises(ConfigError) as info:
        production(secret_env="Xy7~abc.def-ghi")
    assert info.value.key == "secret_env"
    assert "NAME of an environment variable" in str(info.value)
    assert "Xy7~abc" not in str(info.value)


@pytest.mark.parametrize("kind", ["production", "sandbox"])
@pytest.mark.parametrize("key", ["dataverse_url", "fno_url"])
def test_https_is_enforced_outside_rehearsal(kind, key):
    """Sandbox and production refuse http URLs, saying why and what to use instead."""
    with pytest.raises(ConfigError) as info:
        production(kind=kind, **{key: "http://contoso.example.com/"})
    assert info.value.key == key
    assert f"a {kind} profile needs an https URL" in str(info.value)
    assert "use https://contoso.example.com" in str(info.value)


def test_https_rule_reported_at_its_line(tmp_path):
    """In the file, the http URL's own line is named."""
    err = load_error(
        tmp_path,
        f"""[profiles.prod]
kind = "production"
dataverse_url = "{DV}"
fno_url = "http://contoso.operations.dynamics.com"
tenant = "t"
client_id = "c"
auth = "device-code"
""",
    )
    assert (err.line, err.key) == (4, "fno_url")
    assert "needs an https URL" in str(err)


def test_rehearsal_may_use_http():
    """A running simulator on loopback is plain http."""
    p = Profile(name="r", kind="rehearsal", dataverse_url="http://127.0.0.1:8000/", fno_url="http://127.0.0.1:8000")
    assert p.dataverse_url == "http://127.0.0.1:8000"
    assert not p.embedded_simulator


def test_rehearsal_needs_sim_db_or_both_urls_not_both():
    """A rehearsal profile is a database file or a running simulator: exactly one of them."""
    with pytest.raises(ConfigError, match="either sim_db .* or dataverse_url and fno_url .*not both"):
        Profile(
            name="r",
            kind="rehearsal",
            sim_db="w.sqlite",
            dataverse_url="http://127.0.0.1:1",
            fno_url="http://127.0.0.1:1",
        )
    with pytest.raises(ConfigError, match=r"needs either sim_db = \"PATH\"") as info:
        Profile(name="r", kind="rehearsal")
    assert info.value.key == "sim_db"
    with pytest.raises(
        ConfigError, match=r"needs either sim_db = \"PATH\" .* or both dataverse_url and fno_url"
    ) as info:
        Profile(name="r", kind="rehearsal", dataverse_url="http://127.0.0.1:1")
    assert info.value.key == "fno_url"


@pytest.mark.parametrize("missing", ["dataverse_url", "fno_url", "tenant", "client_id", "auth"])
def test_sandbox_and_production_need_urls_tenant_client_and_auth(missing):
    """Each missing setting of a real environment is named, with an example to add."""
    with pytest.raises(ConfigError) as info:
        production(**{missing: None})
    assert info.value.key == missing
    assert f"is required for a production profile; add {missing}" in str(info.value) or (
        missing == "auth" and "is required for a production profile; set auth to one of" in str(info.value)
    )


def test_client_secret_needs_a_secret_source():
    """client-secret sign-in must say where the secret is: a variable or the keyring."""
    with pytest.raises(ConfigError, match=r'add secret_env = "VARIABLE_NAME" .* or keyring_service') as info:
        production(secret_env=None)
    assert info.value.key == "auth"
    assert production(secret_env=None, keyring_service="cutover").keyring_service == "cutover"


def test_certificate_needs_cert_path():
    """certificate sign-in needs the certificate file."""
    with pytest.raises(ConfigError, match=r'add cert_path = "/path/to/cert.pem"') as info:
        production(auth="certificate", secret_env=None)
    assert info.value.key == "cert_path"


def test_other_sign_in_rules():
    """simulator sign-in and sim_db are rehearsal-only; a bad auth value lists the choices."""
    with pytest.raises(ConfigError, match="'simulator' sign-in is only for rehearsal profiles"):
        production(auth="simulator")
    with pytest.raises(ConfigError, match="only rehearsal profiles run on a simulator database"):
        production(sim_db="w.sqlite")
    with pytest.raises(
        ConfigError, match="'password' is not one of device-code, client-secret, certificate, simulator"
    ):
        production(auth="password")
    with pytest.raises(ConfigError, match="needs keyring_service too"):
        production(keyring_username="u")


@pytest.mark.parametrize("bad", ["", "has space", "a" * 41, "dot.ted", "ünï"])
def test_profile_names_are_restricted(bad):
    """Names are 1-40 letters, digits, '_' or '-'."""
    with pytest.raises(ConfigError, match="use 1 to 40 letters, digits, '_' or '-'"):
        Profile(name=bad, kind="rehearsal", sim_db="w")
    assert Profile(name="A_b-9" + "x" * 35, kind="rehearsal", sim_db="w").name == "A_b-9" + "x" * 35


def test_bad_urls_are_explained():
    """A URL with credentials, a query, or the API path appended is refused with the fix."""
    with pytest.raises(ConfigError) as info:
        production(dataverse_url="https://user:pa55@contoso.crm.dynamics.com")
    assert "must not contain a user name or password" in str(info.value) and "pa55" not in str(info.value)
    with pytest.raises(ConfigError, match="without '/api/data/...'"):
        production(dataverse_url=DV + "/api/data/v9.2/")
    with pytest.raises(ConfigError, match="without '/data'"):
        production(fno_url=FNO + "/data")
    with pytest.raises(ConfigError, match="is not an http\\(s\\) URL"):
        production(fno_url="contoso.operations.dynamics.com")
    with pytest.raises(ConfigError, match="must not have a query"):
        production(fno_url=FNO + "?cross-company=true")


def test_identities_rules():
    """Extra identities must be distinct client ids and need client-secret (or simulator) sign-in."""
    with pytest.raises(ConfigError, match="listed twice"):
        production(identities=("x", "x"))
    with pytest.raises(ConfigError, match="listed twice"):
        production(identities=("11111111-2222-3333-4444-555555555555",))
    with pytest.raises(ConfigError, match="needs client-secret sign-in"):
        production(auth="device-code", secret_env=None, identities=("x",))
    assert production(identities=["a", "b"]).identities == ("a", "b")


def test_pinned_org_id_must_be_a_guid(tmp_path):
    """A damaged fingerprint is refused with how to re-pin it."""
    err = load_error(tmp_path, '[profiles.r]\nkind = "rehearsal"\nsim_db = "w"\npinned_org_id = "not-a-guid"\n')
    assert (err.line, err.key) == (4, "pinned_org_id")
    assert "run `cutover env test r` to pin it again" in str(err)


# --- the config object and file -------------------------------------------------------------------


def test_duplicate_name_is_refused_unless_replace(tmp_path):
    """`env add` of an existing name fails; replacing is explicit."""
    config = Config(path=config_path(tmp_path))
    config.add(production())
    with pytest.raises(ConfigError, match="a profile named 'prod' already exists"):
        config.add(production(tenant="other"))
    assert config.get("prod").tenant == "contoso.onmicrosoft.com"
    config.add(production(tenant="other"), replace=True)
    assert config.get("prod").tenant == "other"


def test_unknown_name_lists_known_ones(tmp_path):
    """Asking for a profile that does not exist lists the ones that do."""
    config = Config(path=config_path(tmp_path))
    config.add(production())
    config.add(Profile(name="rehearsal", kind="rehearsal", sim_db="w"))
    with pytest.raises(ConfigError) as info:
        config.get("prd")
    assert "no profile named 'prd' (known: prod, rehearsal)" in str(info.value)
    assert str(config_path(tmp_path)) in str(info.value)


def test_saved_file_is_private_and_written_atomically(tmp_path):
    """cutover.toml is mode 0600 after every save (even if it was wider), no temp files remain,
    and the workspace directory is created."""
    ws = tmp_path / "new" / "ws"
    config = Config(path=config_path(ws))
    config.add(production())
    save_config(config)
    assert stat.S_IMODE(os.stat(config.path).st_mode) == 0o600
    os.chmod(config.path, 0o644)
    config.add(Profile(name="r", kind="rehearsal", sim_db="w"))
    save_config(config)
    assert stat.S_IMODE(os.stat(config.path).st_mode) == 0o600
    assert sorted(p.name for p in ws.iterdir()) == ["cutover.toml"]
    assert set(load_config(ws).profiles) == {"prod", "r"}


def test_saved_file_contains_no_secret(tmp_path, monkeypatch):
    """Saving a profile whose secret is in the environment writes the variable's name only."""
    monkeypatch.setenv("CUTOVER_PROD_SECRET", "very-secret-value")
    config = Config(path=config_path(tmp_path))
    config.add(production())
    save_config(config)
    text = config.path.read_text()
    assert "very-secret-value" not in text
    assert 'secret_env = "CUTOVER_PROD_SECRET"' in text


def test_pin_fingerprint_persists_and_guards(tmp_path):
    """`env test` pins the org id on first success; a different id later is refused."""
    config = Config(path=config_path(tmp_path))
    config.add(production())
    save_config(config)
    pinned = pin_fingerprint(tmp_path, "prod", ORG.upper())
    assert pinned.pinned_org_id == ORG
    assert load_config(tmp_path).get("prod").pinned_org_id == ORG
    assert pin_fingerprint(tmp_path, "prod", ORG).pinned_org_id == ORG
    assert pin_fingerprint(tmp_path, "prod", ORG.upper()).pinned_org_id == ORG  # the same organization, upper case
    other = "00000000-0000-0000-0000-000000000001"
    with pytest.raises(FingerprintMismatch) as info:
        pin_fingerprint(tmp_path, "prod", other)
    assert f"pinned to organization {ORG}, but the environment answered {other}" in str(info.value)
    assert info.value.key == "pinned_org_id" and info.value.line is not None
    assert load_config(tmp_path).get("prod").pinned_org_id == ORG
    assert pin_fingerprint(tmp_path, "prod", other, force=True).pinned_org_id == other
    assert load_config(tmp_path).get("prod").pinned_org_id == other
    with pytest.raises(ConfigError, match="no profile named 'nope'"):
        pin_fingerprint(tmp_path, "nope", ORG)
    assert set(load_config(tmp_path).profiles) == {"prod"}


# --- secrets --------------------------------------------------------------------------------------


def test_secret_from_environment_variable():
    """The client secret is read from the variable the profile names."""
    assert resolve_secret(production(), {"CUTOVER_PROD_SECRET": "s3"}) == "s3"


@pytest.mark.parametrize("environ", [{}, {"CUTOVER_PROD_SECRET": ""}])
def test_missing_secret_variable_says_what_to_export(environ):
    """An unset or empty variable gives a message naming it, the profile, and `export VAR=...`."""
    with pytest.raises(ConfigError) as info:
        resolve_secret(production(), environ)
    msg = str(info.value)
    assert "CUTOVER_PROD_SECRET" in msg and "profile 'prod'" in msg
    assert "export CUTOVER_PROD_SECRET=..." in msg
    assert info.value.key == "secret_env"


def test_rehearsal_secret_defaults_to_the_simulators():
    """A rehearsal profile uses the simulator-only default secret unless a variable is set."""
    p = Profile(
        name="r", kind="rehearsal", sim_db="w", secret_env="REHEARSAL_SECRET", identities=("cutover-rehearsal-2",)
    )
    assert resolve_secret(p, {}) == "rehearsal-secret"
    assert resolve_secret(p, {}, client_id="cutover-rehearsal-2") == "rehearsal-secret-2"
    assert resolve_secret(p, {"REHEARSAL_SECRET": "mine"}) == "mine"
    unknown = Profile(name="r", kind="rehearsal", sim_db="w", client_id="someone-else")
    with pytest.raises(ConfigError, match="the simulator has no built-in secret"):
        resolve_secret(unknown, {})


def test_production_never_falls_back_to_the_rehearsal_secret():
    """The simulator's default secret is never used for a real environment."""
    p = production(client_id="cutover-rehearsal")
    with pytest.raises(
        ConfigError, match="the environment variable CUTOVER_PROD_SECRET .* is not set or empty"
    ) as info:
        resolve_secret(p, {})
    assert info.value.key == "secret_env" and "rehearsal-secret" not in str(info.value)
    assert resolve_secret(p, {"CUTOVER_PROD_SECRET": "real-one"}) == "real-one"


def test_pool_identities_read_numbered_variables():
    """The n-th client id of the write pool reads <secret_env>_<n>."""
    p = production(identities=("two", "three"))
    env = {"CUTOVER_PROD_SECRET": "s1", "CUTOVER_PROD_SECRET_2": "s2", "CUTOVER_PROD_SECRET_3": "s3"}
    assert [resolve_secret(p, env, client_id=c) for c in p.all_client_ids()] == ["s1", "s2", "s3"]
    with pytest.raises(ConfigError, match="export CUTOVER_PROD_SECRET_3=..."):
        resolve_secret(p, {"CUTOVER_PROD_SECRET": "s1"}, client_id="three")
    with pytest.raises(ConfigError, match="is not part of profile 'prod'"):
        resolve_secret(p, env, client_id="stranger")


def test_device_code_has_no_secret():
    """A device-code profile asks the operator to sign in; there is no secret to read."""
    with pytest.raises(ConfigError, match="signs in with device code"):
        resolve_secret(production(auth="device-code", secret_env=None), {})


def test_keyring_absent_says_install_or_use_a_variable(monkeypatch):
    """Without the optional keyring package the message says to install it or use secret_env."""
    monkeypatch.setitem(sys.modules, "keyring", None)  # makes `import keyring` fail
    p = production(secret_env=None, keyring_service="cutover")
    with pytest.raises(ConfigError) as info:
        resolve_secret(p, {})
    assert "'keyring' is not installed" in str(info.value)
    assert "pip install keyring" in str(info.value) and "secret_env" in str(info.value)


def test_keyring_is_used_when_available(monkeypatch):
    """With a keyring package present the secret comes from (service, user); a missing entry says how to store it."""
    store = {("cutover", "prod-app"): "from-keyring", ("cutover", "two"): "second"}
    fake = types.ModuleType("keyring")
    fake.get_password = lambda service, user: store.get((service, user))
    monkeypatch.setitem(sys.modules, "keyring", fake)
    p = production(secret_env=None, keyring_service="cutover", keyring_username="prod-app", identities=("two", "three"))
    assert resolve_secret(p, {}) == "from-keyring"
    assert resolve_secret(p, {}, client_id="two") == "second"
    with pytest.raises(ConfigError, match="store it with `keyring set cutover three`"):
        resolve_secret(p, {}, client_id="three")
    both = production(keyring_service="cutover", keyring_username="prod-app")
    assert resolve_secret(both, {"CUTOVER_PROD_SECRET": "env-wins"}) == "env-wins"
    assert resolve_secret(both, {}) == "from-keyring"


# --- the error root, and what the split modules keep ------------------------------------------------


def test_config_errors_exit_2_and_keep_their_text_and_location(tmp_path):
    """A ConfigError is a CutoverError (exit 2) whose text is `<file> line N, key 'k': message`;
    the location is also its `where`."""
    err = load_error(tmp_path, '[profiles.p]\nkind = "prod"\nsim_db = "w"\n')
    assert isinstance(err, CutoverError) and not isinstance(err, WrongEnvironment)
    assert err.exit_code == EXIT_USAGE and exit_code_of(err) == EXIT_USAGE
    assert err.where == f"{config_path(tmp_path)} line 2, key 'kind'"
    assert str(err) == f"{err.where}: {err.message}" and err.args == (str(err),)
    assert err.message.startswith("'prod' is not one of rehearsal, sandbox, production")
    bare = ConfigError("plain")
    assert (str(bare), bare.where, bare.path, bare.line, bare.key, bare.profile) == (
        "plain",
        None,
        None,
        None,
        None,
        None,
    )


def test_a_config_that_cannot_be_written_is_a_config_error_naming_the_file(tmp_path):
    """If the workspace is not a folder, saving says so and names cutover.toml; nothing is left behind."""
    blocker = tmp_path / "ws"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    config = Config(path=config_path(blocker))
    config.add(production())
    with pytest.raises(ConfigError, match="cannot write the configuration .*; check the workspace directory") as info:
        save_config(config)
    assert info.value.path == config_path(blocker) and str(info.value).startswith(str(config_path(blocker)))
    assert blocker.read_text("utf-8") == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]


def test_a_value_toml_cannot_hold_is_refused_before_the_file_is_touched(tmp_path):
    """A path with undecodable bytes (surrogate escapes) cannot be written; the old file stays."""
    config = Config(path=config_path(tmp_path))
    config.add(production())
    save_config(config)
    before = config.path.read_bytes()
    config.add(Profile(name="r", kind="rehearsal", sim_db="w\udcff.sqlite"))
    with pytest.raises(ConfigError, match="contains undecodable bytes and cannot be written to TOML"):
        save_config(config)
    assert config.path.read_bytes() == before
    assert set(load_config(tmp_path).profiles) == {"prod"}


def test_the_names_callers_import_are_still_here():
    """session.py and cli.py import these from cutover.config."""
    assert KINDS == ("rehearsal", "sandbox", "production")
    assert AUTH_METHODS == ("device-code", "client-secret", "certificate", "simulator")
    assert (DEFAULT_WORKSPACE, WORKSPACE_ENV, CONFIG_FILENAME) == (
        "cutover-workspace",
        "CUTOVER_WORKSPACE",
        "cutover.toml",
    )
    assert issubclass(FingerprintMismatch, WrongEnvironment) and not issubclass(FingerprintMismatch, ConfigError)


def test_the_invoice_create_style_is_a_checked_profile_setting(tmp_path):
    """bound (one action per contract) or unbound (ContractIds): saved, read back, and a wrong
    value in the file is named with its line."""
    from cutover.config import Config, load_config, save_config
    from cutover.profile import Profile

    config = Config(path=tmp_path / "cutover.toml")
    config.add(
        Profile(name="night", kind="rehearsal", sim_db=str(tmp_path / "w.sqlite"), invoice_create_style="UNBOUND")
    )
    save_config(config)
    assert load_config(tmp_path).get("night").invoice_create_style == "unbound"
    text = (tmp_path / "cutover.toml").read_text().replace('"unbound"', '"sideways"')
    (tmp_path / "cutover.toml").write_text(text)
    with pytest.raises(
        ConfigError, match=r"line \d+, key 'invoice_create_style': 'sideways' is not one of bound, unbound"
    ):
        load_config(tmp_path)


def test_a_keys_table_is_kept_through_env_add_and_its_shape_checked(tmp_path):
    """[keys] remaps the console's bindings; the config keeps it when it rewrites the file, and
    refuses a value that is not a key name, naming its line."""
    from cutover.config import load_config, update_config
    from cutover.profile import Profile

    (tmp_path / "cutover.toml").write_text('[keys]\n"run.continue" = "f5"\n"app.help" = "f1"\n')
    update_config(tmp_path, lambda c: c.add(Profile(name="night", kind="rehearsal", sim_db=str(tmp_path / "w.sqlite"))))
    config = load_config(tmp_path)
    assert config.keys == {"run.continue": "f5", "app.help": "f1"} and "night" in config.profiles
    (tmp_path / "cutover.toml").write_text('[keys]\n"run.continue" = 5\n')
    with pytest.raises(
        ConfigError, match=r"line 1, key 'keys.run.continue': the key for 'run.continue' must be a text"
    ):
        load_config(tmp_path)
