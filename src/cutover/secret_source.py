"""Where a secret comes from: the one place that knows.

A profile never holds a secret. It names an environment variable (``secret_env``) or an
OS-keyring entry (``keyring_service`` / ``keyring_username``), and :func:`resolve_secret` reads
the client secret (for certificate sign-in: the certificate's passphrase) at the moment of
use. :func:`describe_secret_source` says where it would come from, for messages and
``cutover env show`` — never what it is. Both follow the same :func:`secret_location`, so the
place a message names is the place that was read.

The extra identities of the write pool use the variable ``<secret_env>_<n>`` (n = 2, 3, ... in
the order of ``identities``) and the keyring user name equal to their client id.

Rehearsal profiles fall back on the simulator's built-in rehearsal secrets. Those are
SIMULATOR-ONLY credentials: they open nothing but a local rehearsal database, and are never
used for a sandbox or production profile. They are deliberately a copy, not an import: the
simulator shares no code with the clients.

The optional ``keyring`` package is used when it is importable; it is not a dependency.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .profile import ConfigError, Profile

__all__ = ["REHEARSAL_SECRETS", "SecretLocation", "describe_secret_source", "resolve_secret", "secret_location"]

REHEARSAL_SECRETS: Mapping[str, str] = {
    "cutover-rehearsal": "rehearsal-secret",
    "cutover-rehearsal-2": "rehearsal-secret-2",
    "cutover-rehearsal-3": "rehearsal-secret-3",
    "cutover-rehearsal-4": "rehearsal-secret-4",
    "cutover-verify": "verify-secret",
}


@dataclass(frozen=True)
class SecretLocation:
    """Where the secret of one client id of a profile is looked for (names only, no value)."""

    client_id: str
    position: int  # 1 for the profile's own client id, n for the n-th id of the pool
    variable: str | None  # the environment variable, if the profile names one
    keyring_service: str | None
    keyring_user: str


def secret_location(profile: Profile, client_id: str | None = None) -> SecretLocation:
    """Where the secret of ``client_id`` (default: the profile's own) is looked for. A client id
    that is not the profile's is a ConfigError naming its client ids."""
    cid = client_id or profile.client_id or ""
    ids = profile.all_client_ids()
    if cid not in ids:
        raise ConfigError(
            f"client id {cid!r} is not part of profile '{profile.name}' (its client ids: {', '.join(ids)})",
            key="identities",
            profile=profile.name,
        )
    position = ids.index(cid) + 1
    var = profile.secret_env if position == 1 or not profile.secret_env else f"{profile.secret_env}_{position}"
    keyring_user = (profile.keyring_username or cid) if position == 1 else cid
    return SecretLocation(cid, position, var, profile.keyring_service, keyring_user)


def describe_secret_source(profile: Profile, client_id: str, environ: Mapping[str, str] = os.environ) -> str:
    """Where the secret of ``client_id`` comes from, in words, for messages (never the value):
    the variable if it is set, else the rehearsal secret, the OS keyring, or the variable that
    should hold it."""
    try:
        where = secret_location(profile, client_id)
    except ConfigError:  # not one of the profile's ids: describe the profile's own source
        where = secret_location(profile)
    var = where.variable
    if var and environ.get(var):
        return f"the environment variable {var}"
    if profile.is_rehearsal:
        return "the simulator's built-in rehearsal secret"
    if where.keyring_service:
        user = where.keyring_user if where.client_id == client_id else (profile.keyring_username or client_id)
        return f"the OS keyring (service {where.keyring_service}, user {user})"
    return f"the environment variable {var}" if var else "the configured secret"


def resolve_secret(profile: Profile, environ: Mapping[str, str] = os.environ, client_id: str | None = None) -> str:
    """The client secret (for certificate sign-in: the certificate's passphrase) of
    ``client_id`` (default: the profile's own client id).

    Order: the environment variable named by ``secret_env``; else the OS keyring
    (``keyring_service``, user ``keyring_username`` or the client id), only if the optional
    ``keyring`` package is importable. A rehearsal profile takes the variable if it is set,
    else the simulator's built-in rehearsal secret for that client id (e.g.
    ``rehearsal-secret`` for ``cutover-rehearsal``). Every failure is a ConfigError that names
    the variable or keyring entry and says what to do; none repeats a secret.
    """
    where = secret_location(profile, client_id)
    cid, var = where.client_id, where.variable

    if profile.auth == "device-code":
        raise _err(profile, "auth", f"profile '{profile.name}' signs in with device code; it has no client secret")

    if var and environ.get(var):
        return environ[var]

    if profile.is_rehearsal:
        if cid in REHEARSAL_SECRETS:
            return REHEARSAL_SECRETS[cid]
        hint = var or f"{_suggest_var(profile.name)}"
        raise _err(
            profile,
            "secret_env",
            f"no secret for client id {cid!r} of rehearsal profile '{profile.name}': the simulator has no built-in secret "
            f"for it; set secret_env in the profile and export {hint}=...",
        )

    if where.keyring_service:
        return _from_keyring(profile, where.keyring_service, where.keyring_user, var)

    if var:
        raise _err(
            profile,
            "secret_env",
            f"the environment variable {var} (named by secret_env of profile '{profile.name}') is not set or empty; "
            f"set it in this shell: export {var}=... (read it with `read -s {var}; export {var}` to keep it out of the history)",
        )
    what = "certificate passphrase" if profile.auth == "certificate" else "client secret"
    raise _err(
        profile,
        "secret_env",
        f"profile '{profile.name}' names no {what}; add secret_env = \"{_suggest_var(profile.name)}\" "
        'or keyring_service = "..." to the profile',
    )


def _err(profile: Profile, key: str, message: str) -> ConfigError:
    return ConfigError(message, key=key, profile=profile.name)


def _suggest_var(name: str) -> str:
    return "CUTOVER_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_SECRET"


def _from_keyring(profile: Profile, service: str, user: str, var: str | None) -> str:
    alternative = (
        f"export {var}=..." if var else f'set secret_env = "{_suggest_var(profile.name)}" in the profile and export it'
    )
    try:
        import keyring  # optional; not a dependency of cutover
    except ImportError:
        raise _err(
            profile,
            "keyring_service",
            f"profile '{profile.name}' reads its secret from the OS keyring, but the Python package 'keyring' is not "
            f"installed; install it (pip install keyring) or use an environment variable instead: {alternative}",
        ) from None
    try:
        secret = keyring.get_password(service, user)
    except Exception as exc:  # keyring backends raise their own types; their messages hold no secret
        raise _err(
            profile,
            "keyring_service",
            f"the OS keyring could not be read ({type(exc).__name__}: {exc}); unlock or configure the keyring, "
            f"or use an environment variable instead: {alternative}",
        ) from None
    if not secret:
        raise _err(
            profile,
            "keyring_service",
            f"the OS keyring has no secret for service {service!r}, user {user!r} (profile '{profile.name}'); "
            f"store it with `keyring set {service} {user}`, or use an environment variable instead: {alternative}",
        )
    return secret
