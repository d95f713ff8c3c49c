"""Where a secret comes from (`cutover.secret_source`): the one place that knows. What a
message says about the source is the source that is read, and neither ever shows the value."""

from __future__ import annotations

import sys
import types

import pytest

import cutover.auth
import cutover.config
from cutover.config import ConfigError, Profile
from cutover.secret_source import describe_secret_source, resolve_secret, secret_location

DV = "https://contoso.crm.dynamics.com"
FNO = "https://contoso.operations.dynamics.com"


def production(**kw) -> Profile:
    base = dict(
        name="prod",
        kind="production",
        dataverse_url=DV,
        fno_url=FNO,
        tenant="contoso.onmicrosoft.com",
        client_id="app-1",
        auth="client-secret",
        secret_env="CUTOVER_PROD_SECRET",
    )
    base.update(kw)
    return Profile(**base)


def test_config_and_auth_use_this_one_implementation():
    assert cutover.config.resolve_secret is resolve_secret
    assert cutover.auth.resolve_secret is resolve_secret
    assert cutover.auth.describe_secret_source is describe_secret_source


def test_each_pool_identity_is_described_by_the_variable_it_is_read_from():
    p = production(identities=("app-2", "app-3"))
    env = {"CUTOVER_PROD_SECRET": "value-1", "CUTOVER_PROD_SECRET_2": "value-2", "CUTOVER_PROD_SECRET_3": "value-3"}
    for n, cid in enumerate(p.all_client_ids(), 1):
        where = secret_location(p, cid)
        var = "CUTOVER_PROD_SECRET" + ("" if n == 1 else f"_{n}")
        assert (where.position, where.variable) == (n, var)
        assert resolve_secret(p, env, cid) == env[var] == f"value-{n}"
        described = describe_secret_source(p, cid, env)
        assert described == f"the environment variable {var}"
        assert "value-" not in described


def test_an_unset_variable_is_still_named_as_the_place_to_put_the_secret():
    p = production()
    assert describe_secret_source(p, "app-1", {}) == "the environment variable CUTOVER_PROD_SECRET"
    with pytest.raises(ConfigError, match="export CUTOVER_PROD_SECRET=...") as info:
        resolve_secret(p, {})
    assert info.value.key == "secret_env" and info.value.profile == "prod"


def test_the_keyring_is_described_with_the_user_it_is_read_as(monkeypatch):
    store = {("cutover", "prod-app"): "kr-secret-1", ("cutover", "app-2"): "kr-secret-2"}
    fake = types.ModuleType("keyring")
    fake.get_password = lambda service, user: store.get((service, user))
    monkeypatch.setitem(sys.modules, "keyring", fake)
    p = production(secret_env=None, keyring_service="cutover", keyring_username="prod-app", identities=("app-2",))
    assert describe_secret_source(p, "app-1", {}) == "the OS keyring (service cutover, user prod-app)"
    assert describe_secret_source(p, "app-2", {}) == "the OS keyring (service cutover, user app-2)"
    assert resolve_secret(p, {}, "app-1") == "kr-secret-1"
    assert resolve_secret(p, {}, "app-2") == "kr-secret-2"


def test_a_rehearsal_profile_falls_back_on_the_simulator_secret_and_says_so():
    p = Profile(name="reh", kind="rehearsal", sim_db="w", secret_env="REH_SECRET")
    assert describe_secret_source(p, "cutover-rehearsal", {}) == "the simulator's built-in rehearsal secret"
    assert resolve_secret(p, {}) == "rehearsal-secret"
    assert (
        describe_secret_source(p, "cutover-rehearsal", {"REH_SECRET": "mine-123"})
        == "the environment variable REH_SECRET"
    )
    assert resolve_secret(p, {"REH_SECRET": "mine-123"}) == "mine-123"


def test_a_client_id_outside_the_profile_is_refused_naming_the_ones_it_has():
    p = production(identities=("app-2",))
    with pytest.raises(
        ConfigError, match=r"client id 'stranger' is not part of profile 'prod' \(its client ids: app-1, app-2\)"
    ) as info:
        secret_location(p, "stranger")
    assert info.value.key == "identities"
    # a message about such an id still names a place, never a value
    assert (
        describe_secret_source(p, "stranger", {"CUTOVER_PROD_SECRET": "value-1"})
        == "the environment variable CUTOVER_PROD_SECRET"
    )


def test_a_failing_keyring_is_reported_without_a_secret(monkeypatch):
    fake = types.ModuleType("keyring")

    def locked(service, user):
        raise RuntimeError("the collection is locked")

    fake.get_password = locked
    monkeypatch.setitem(sys.modules, "keyring", fake)
    p = production(keyring_service="cutover")
    with pytest.raises(
        ConfigError, match=r"the OS keyring could not be read \(RuntimeError: the collection is locked\)"
    ) as info:
        resolve_secret(p, {})
    assert "export CUTOVER_PROD_SECRET=..." in str(info.value) and info.value.key == "keyring_service"
