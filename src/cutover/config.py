"""The workspace and its ``cutover.toml``: where it is, reading and writing it, pinning.

The workspace is a directory: ``--workspace DIR``, else ``$CUTOVER_WORKSPACE``, else
``./cutover-workspace``. Its ``cutover.toml`` holds one table per environment profile::

    [profiles.prod]
    kind = "production"
    dataverse_url = "https://contoso.crm.dynamics.com"
    fno_url = "https://contoso.operations.dynamics.com"
    tenant = "contoso.onmicrosoft.com"
    client_id = "00000000-0000-0000-0000-000000000000"
    auth = "client-secret"
    secret_env = "CUTOVER_PROD_SECRET"

    [profiles.prod.entity_names]        # only the entity sets that differ by version
    milestones = "msdyn_contractlinescheduleofvalues"

This module is the workspace API — :func:`resolve_workspace`, :func:`load_config`,
:func:`save_config`, :class:`Config`, and the wrong-environment guard (:func:`pin_fingerprint`,
:func:`check_fingerprint`, :class:`FingerprintMismatch`). The ideas it builds on live in their
own modules and are re-exported here for callers:

* :mod:`cutover.profile` — :class:`Profile`, its validation, :class:`ConfigError`;
* :mod:`cutover.secret_source` — where a secret comes from (:func:`resolve_secret`);
* :mod:`cutover.tomlfile` — writing TOML and finding the line of a key for messages;
* :mod:`cutover.files` — the atomic write of a private (0600) file.

Secrets never live in the file: a table holding a key such as ``client_secret`` or
``password`` is refused, and no error message ever repeats the value of such a key or the text
of a line that failed to parse. Every problem is a :class:`ConfigError` (exit 2) whose text
names the file, the line (when known) and the key, and says what to do; a pinned profile that
meets another organization is a :class:`FingerprintMismatch` (a
:class:`cutover.errors.WrongEnvironment`, exit 3). Core code: stdlib only, and nothing shared
with ``cutover.sim``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import EnvironmentProblem, WrongEnvironment
from .files import locked, write_private_file
from .profile import (
    AUTH_METHODS,
    DEFAULT_ENTITY_NAMES,
    DEFAULT_INVOICE_CONFIRM_ACTION,
    DEFAULT_INVOICE_CREATE_ACTION,
    KINDS,
    REHEARSAL_CLIENT_ID,
    ConfigError,
    Profile,
    location,
    refuse_secret_keys,
)
from .secret_source import REHEARSAL_SECRETS, describe_secret_source, resolve_secret
from .tomlfile import TomlWriteError, dump_tables, locate, locate_top, toml_key, toml_string

T = TypeVar("T")

__all__ = [
    "update_config",
    "AUTH_METHODS",
    "CONFIG_FILENAME",
    "Config",
    "ConfigError",
    "DEFAULT_ENTITY_NAMES",
    "DEFAULT_INVOICE_CONFIRM_ACTION",
    "DEFAULT_INVOICE_CREATE_ACTION",
    "DEFAULT_WORKSPACE",
    "FingerprintMismatch",
    "NIL_ORGANIZATION",
    "KINDS",
    "Profile",
    "REHEARSAL_CLIENT_ID",
    "REHEARSAL_SECRETS",
    "WORKSPACE_ENV",
    "check_fingerprint",
    "config_path",
    "describe_secret_source",
    "dumps",
    "load_config",
    "pin_fingerprint",
    "resolve_secret",
    "resolve_workspace",
    "save_config",
]

CONFIG_FILENAME = "cutover.toml"
DEFAULT_WORKSPACE = "cutover-workspace"
WORKSPACE_ENV = "CUTOVER_WORKSPACE"


# --- the wrong-environment guard's error ---------------------------------------------------------


class FingerprintMismatch(WrongEnvironment):
    """The environment answered with an organization id other than the profile's pinned one
    (exit 3). Carries where the pin is, as a ConfigError does: ``profile``, ``key``
    (``"pinned_org_id"``), and ``path`` / ``line`` / ``column`` of the file when known."""

    def __init__(
        self,
        message: str,
        *,
        profile: str | None = None,
        key: str | None = None,
        path: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
    ):
        self.path = Path(path) if path is not None else None
        self.line = line
        self.column = column
        self.key = key
        self.profile = profile
        super().__init__(message, where=location(self.path, line, column, key) or None)

    def render(self) -> str:
        where = location(self.path, self.line, self.column, self.key)
        return f"{where}: {self.message}" if where else self.message


# --- workspace ----------------------------------------------------------------------------------


def resolve_workspace(explicit: str | Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """The workspace directory: ``explicit`` (``--workspace DIR``), else ``$CUTOVER_WORKSPACE``,
    else ``./cutover-workspace``. ``~`` is expanded; the result is absolute (not created)."""
    env = os.environ if environ is None else environ
    if explicit is not None and str(explicit) != "":
        chosen = Path(explicit)
    elif env.get(WORKSPACE_ENV):
        chosen = Path(env[WORKSPACE_ENV])
    else:
        chosen = Path(DEFAULT_WORKSPACE)
    return chosen.expanduser().absolute()


def config_path(workspace: str | Path) -> Path:
    """``<workspace>/cutover.toml``."""
    return Path(workspace) / CONFIG_FILENAME


# --- the file -----------------------------------------------------------------------------------


@dataclass
class Config:
    """All profiles of one workspace, and the file they live in."""

    path: Path
    profiles: dict[str, Profile] = field(default_factory=dict)
    # [keys]: binding id -> key, the console's remapping. Its shape is checked here; which ids
    # and keys are valid is the console's to say (cutover.keys, when the console starts).
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def workspace(self) -> Path:
        return self.path.parent

    def add(self, profile: Profile, replace: bool = False) -> None:
        """Add a profile; a duplicate name is a ConfigError unless ``replace``."""
        if profile.name in self.profiles and not replace:
            raise ConfigError(
                f"a profile named '{profile.name}' already exists; choose another name, or replace it explicitly",
                path=self.path,
                key=profile.name,
                profile=profile.name,
            )
        self.profiles[profile.name] = profile

    def get(self, name: str) -> Profile:
        """The named profile; an unknown name is a ConfigError listing the known ones."""
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none yet"
            raise ConfigError(
                f"no profile named '{name}' (known: {known}); add one with `cutover env add {name} ...`",
                path=self.path,
                key=name,
                profile=name,
            ) from None

    def remove(self, name: str) -> Profile:
        profile = self.get(name)
        del self.profiles[name]
        return profile


def load_config(workspace: str | Path) -> Config:
    """Read and validate ``<workspace>/cutover.toml``; a missing file is an empty config."""
    path = config_path(workspace)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config(path=path)
    except IsADirectoryError:
        raise ConfigError("is a directory, not a file; move it away", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror or exc}); check its permissions", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError("is not UTF-8 text; save the file as UTF-8", path=path, line=line) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, exc) from None
    return _config_from_data(path, text, data)


def _syntax_error(path: Path, exc: tomllib.TOMLDecodeError) -> ConfigError:
    # tomllib says e.g. "Invalid value (at line 3, column 9)". The offending line itself is
    # never repeated: it may hold a secret someone pasted in.
    msg = str(exc)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", msg)
    line = column = None
    if m:
        line, column = int(m.group(1)), int(m.group(2))
        msg = msg[: m.start()]
    elif (m := re.search(r"\s*\(at end of document\)\s*$", msg)) is not None:
        msg = msg[: m.start()] + " at the end of the file"
    detail = msg[:1].lower() + msg[1:] if msg else "syntax error"
    return ConfigError(
        f"not valid TOML ({detail}); fix the syntax there (strings need double quotes, tables look like [profiles.NAME])",
        path=path,
        line=line,
        column=column,
    )


def _config_from_data(path: Path, text: str, data: dict[str, Any]) -> Config:
    config = Config(path=path)
    try:
        refuse_secret_keys(None, {k: v for k, v in data.items() if k != "profiles"})
    except ConfigError as exc:
        raise exc.located(path, locate_top(text, exc.key)) from None
    for key in data:
        if key not in ("profiles", "keys"):
            raise ConfigError(
                "unknown top-level key; this file holds [profiles.NAME] tables and a [keys] table",
                path=path,
                line=locate_top(text, key),
                key=key,
            )
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        raise ConfigError(
            'must be a table: [keys] then "binding.id" = "key"', path=path, line=locate_top(text, "keys"), key="keys"
        )
    for binding, key in keys.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(
                f'the key for {binding!r} must be a text such as "f5" or "ctrl+r"',
                path=path,
                line=locate_top(text, "keys"),
                key=f"keys.{binding}",
            )
    config.keys = {str(b): str(k) for b, k in keys.items()}
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(
            "must be tables like [profiles.NAME]", path=path, line=locate_top(text, "profiles"), key="profiles"
        )
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"profile '{name}' must be a table; write it as [profiles.{name}] followed by key = value lines",
                path=path,
                line=locate(text, name, None),
                key=name,
                profile=name,
            )
        try:
            profile = Profile.from_table(name, table)
        except ConfigError as exc:
            raise exc.located(path, locate(text, name, exc.key)) from None
        config.profiles[name] = profile
    return config


_HEADER_COMMENT = """\
# cutover workspace configuration: one [profiles.NAME] table per environment.
# Secrets are never stored here: a profile names an environment variable (secret_env)
# or an OS-keyring entry (keyring_service, keyring_username).
# This file is rewritten by `cutover env ...`; comments you add are not kept.
"""


def dumps(config: Config) -> str:
    """The TOML text for ``config`` (profiles in their order)."""
    try:
        text = dump_tables("profiles", {name: p.to_table() for name, p in config.profiles.items()}, _HEADER_COMMENT)
        if config.keys:
            lines = [f"{toml_key(b)} = {toml_string(k)}" for b, k in config.keys.items()]
            text = text.rstrip("\n") + "\n\n[keys]\n" + "\n".join(lines) + "\n"
        return text
    except TomlWriteError as exc:
        raise ConfigError(str(exc)) from None


def save_config(config: Config) -> None:
    """Write the config atomically (temp file in the same directory, then ``os.replace``),
    with mode 0600. The workspace directory is created (0700) if it does not exist."""
    data = dumps(config).encode("utf-8")
    try:
        write_private_file(config.path, data)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the configuration ({exc.strerror or exc}); check the workspace directory", path=config.path
        ) from None


# --- the fingerprint: the wrong-environment guard -----------------------------------------------


def _organization_id(org_id: str) -> str | None:
    """``org_id`` as a lower-case GUID (any case, braces or ``urn:uuid:`` accepted); None if it is none."""
    try:
        return str(uuid.UUID(str(org_id).strip()))
    except ValueError:
        return None


def update_config(workspace: str | Path, change: Callable[[Config], T]) -> T:
    """Read, change and save ``cutover.toml`` under its cross-process lock; returns what
    ``change(config)`` returned. Nothing is written if ``change`` raises."""
    path = config_path(workspace)
    with locked(path):
        config = load_config(workspace)
        result = change(config)
        save_config(config)
        return result


NIL_ORGANIZATION = str(uuid.UUID(int=0))


def pin_fingerprint(workspace: str | Path, name: str, org_id: str, force: bool = False) -> Profile:
    """Record ``org_id`` as the profile's pinned organization and save; returns the profile.

    Pinning the id it already has (in any letter case) is a no-op. A different id raises
    :class:`FingerprintMismatch` (the wrong-environment guard) unless ``force``. A missing or
    nil id is never pinned: it would make the guard accept any environment.
    """
    normalised = _organization_id(org_id) if org_id else None
    if normalised is None or normalised == NIL_ORGANIZATION:
        raise EnvironmentProblem(
            f"the environment answered WhoAmI with organization id {org_id!r}, which is not a usable organization "
            f"id; profile '{name}' was not pinned",
            fix="check that the profile's Dataverse URL points at a Dataverse environment",
        )
    with locked(config_path(workspace)):
        return _pin_locked(workspace, name, normalised, force)


def _pin_locked(workspace: str | Path, name: str, normalised: str, force: bool) -> Profile:
    config = load_config(workspace)
    profile = config.get(name)
    if profile.pinned_org_id == normalised:
        return profile
    if profile.pinned_org_id is not None and not force:
        text = config.path.read_text("utf-8")
        raise FingerprintMismatch(
            f"profile '{name}' is pinned to organization {profile.pinned_org_id}, but the environment answered "
            f"{normalised}: this is a different environment. Check the URLs of the profile; if the environment "
            f"was really replaced, delete the pinned_org_id line and run `cutover env test {name}` again",
            path=config.path,
            line=locate(text, name, "pinned_org_id"),
            key="pinned_org_id",
            profile=name,
        )
    profile = dataclasses.replace(profile, pinned_org_id=normalised)
    config.add(profile, replace=True)
    save_config(config)
    return profile


def check_fingerprint(profile: Profile, org_id: str) -> str:
    """The organization id ``WhoAmI`` answered (lower-case), after refusing to go on with
    :class:`FingerprintMismatch` if the profile is pinned to another one. Letter case and
    GUID spelling do not matter; an unpinned profile accepts any organization."""
    answered = _organization_id(org_id) or str(org_id).strip().lower()
    pinned = profile.pinned_org_id
    if pinned and pinned != answered:
        raise FingerprintMismatch(
            f"this is not the environment profile '{profile.name}' was pinned to: WhoAmI answered organization "
            f"{answered}, the profile expects {pinned}. Check the URLs; if the environment was really replaced, "
            f"re-pin it with `cutover env test {profile.name} --repin`",
            profile=profile.name,
            key="pinned_org_id",
        )
    return answered
