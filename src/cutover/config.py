"""Workspace and environment profiles: ``<workspace>/cutover.toml``, typed and validated.

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

Secrets never live in this file: a profile names an environment variable (``secret_env``)
or an OS-keyring entry (``keyring_service`` / ``keyring_username``) and
:func:`resolve_secret` reads it at the moment of use. A table holding a key such as
``client_secret`` or ``password`` is refused, and no error message ever repeats the value of
such a key or the text of a line that failed to parse.

Every problem is a :class:`ConfigError` whose text names the file, the line (when known) and
the key, and says what to do. This module is core code: stdlib only (``tomllib`` to read, a
small serializer of its own to write), and it shares nothing with ``cutover.sim``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "AUTH_METHODS",
    "CONFIG_FILENAME",
    "Config",
    "ConfigError",
    "DEFAULT_ENTITY_NAMES",
    "DEFAULT_INVOICE_CONFIRM_ACTION",
    "DEFAULT_INVOICE_CREATE_ACTION",
    "DEFAULT_WORKSPACE",
    "FingerprintMismatch",
    "KINDS",
    "Profile",
    "REHEARSAL_CLIENT_ID",
    "config_path",
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

KINDS = ("rehearsal", "sandbox", "production")
AUTH_METHODS = ("device-code", "client-secret", "certificate", "simulator")

DEFAULT_INVOICE_CREATE_ACTION = "msdyn_NewInvoiceContract"
DEFAULT_INVOICE_CONFIRM_ACTION = "msdyn_PostInvoice"

# Logical name -> entity set name. A profile overrides only those that differ in its
# environment's version; an unknown logical name in a profile is refused (a typo would
# otherwise be ignored silently).
DEFAULT_ENTITY_NAMES: Mapping[str, str] = {
    "milestones": "msdyn_contractlinescheduleofvalues",
    "contracts": "salesorders",
    "contract_lines": "salesorderdetails",
    "invoices": "invoices",
    "invoice_lines": "invoicedetails",
    "projects": "msdyn_projects",
    "accounts": "accounts",
    "currencies": "transactioncurrencies",
    "fno_milestones": "ProjectContractLineMilestones",
    "fno_customer_transactions": "CustTransactions",
    "fno_gl_account_entries": "GeneralJournalAccountEntryBiEntities",
    "fno_gl_entries": "GeneralJournalEntryBiEntities",
    "fno_dualwrite_configurations": "DualWriteProjectConfigurations",
}

# The simulator's built-in rehearsal identities. SIMULATOR-ONLY credentials: they open
# nothing but a local rehearsal database and are used only for `kind = "rehearsal"`
# profiles when no secret variable is set. Deliberately a copy, not an import: the
# simulator shares no code with the clients.
REHEARSAL_CLIENT_ID = "cutover-rehearsal"
REHEARSAL_SECRETS: Mapping[str, str] = {
    "cutover-rehearsal": "rehearsal-secret",
    "cutover-rehearsal-2": "rehearsal-secret-2",
    "cutover-rehearsal-3": "rehearsal-secret-3",
    "cutover-rehearsal-4": "rehearsal-secret-4",
    "cutover-verify": "verify-secret",
}

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
_ENV_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_TENANT_RE = re.compile(r"[A-Za-z0-9.-]{1,253}")
_ODATA_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ACTION_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,254}")

# Keys that would put a secret into the TOML file. Refused wherever they appear; any other
# key mentioning secret/password/token/passphrase (but not a known field) is refused too.
_SECRET_KEYS = frozenset(
    {"secret", "client_secret", "password", "passphrase", "token", "access_token", "refresh_token", "api_key", "private_key", "key"}
)
_SECRET_WORDS = ("secret", "password", "passwd", "passphrase", "token", "credential", "private_key", "apikey", "api_key")


# --- errors -------------------------------------------------------------------------------------


class ConfigError(Exception):
    """A configuration problem, with where it is and what to do about it.

    ``str(error)`` reads e.g. ``/ws/cutover.toml line 7, key 'kind': 'prod' is not one of
    rehearsal, sandbox, production; ...``. ``path``, ``line`` (1-based), ``column`` and ``key``
    are None where unknown; ``profile`` names the profile concerned, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        key: str | None = None,
        profile: str | None = None,
        column: int | None = None,
    ):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        self.column = column
        self.key = key
        self.profile = profile
        super().__init__(self._render())

    def _render(self) -> str:
        where = str(self.path) if self.path is not None else ""
        if self.line is not None:
            where = f"{where} line {self.line}".strip()
            if self.column is not None:
                where += f", column {self.column}"
        if self.key is not None:
            where = f"{where}, key '{self.key}'" if where else f"key '{self.key}'"
        return f"{where}: {self.message}" if where else self.message

    def located(self, path: Path | str | None, line: int | None) -> ConfigError:
        """A copy of this error that also names the file and line (keeps the subclass)."""
        err = type(self).__new__(type(self))
        ConfigError.__init__(
            err,
            self.message,
            path=path if path is not None else self.path,
            line=line if line is not None else self.line,
            key=self.key,
            profile=self.profile,
            column=self.column,
        )
        return err


class FingerprintMismatch(ConfigError):
    """The environment answered with an organization id other than the profile's pinned one."""


def _err(profile: str | None, key: str | None, message: str) -> ConfigError:
    return ConfigError(message, key=key, profile=profile)


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


# --- the profile --------------------------------------------------------------------------------


def _default_entity_names() -> dict[str, str]:
    return dict(DEFAULT_ENTITY_NAMES)


@dataclass(frozen=True)
class Profile:
    """One environment: where it is, how to sign in, and what its names are.

    Constructing a Profile validates and normalises it (URLs without trailing slash, rehearsal
    defaults filled in, entity-name overrides merged onto :data:`DEFAULT_ENTITY_NAMES`); an
    invalid one raises :class:`ConfigError` whose ``key`` names the offending field.
    ``dataclasses.replace(profile, ...)`` validates again.

    Relative ``sim_db`` / ``cert_path`` are relative to the workspace: see :meth:`sim_db_path`
    and :meth:`cert_file`.
    """

    name: str
    kind: str
    dataverse_url: str | None = None
    fno_url: str | None = None
    tenant: str | None = None
    client_id: str | None = None
    auth: str | None = None
    secret_env: str | None = None
    keyring_service: str | None = None
    keyring_username: str | None = None
    cert_path: str | None = None
    sim_db: str | None = None
    invoice_create_action: str = DEFAULT_INVOICE_CREATE_ACTION
    invoice_confirm_action: str = DEFAULT_INVOICE_CONFIRM_ACTION
    entity_names: dict[str, str] = field(default_factory=_default_entity_names, hash=False)
    pinned_org_id: str | None = None
    identities: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for f, value in _validated(self).items():
            object.__setattr__(self, f, value)

    # --- conveniences ---

    @property
    def is_rehearsal(self) -> bool:
        return self.kind == "rehearsal"

    @property
    def embedded_simulator(self) -> bool:
        """True when commands start the simulator themselves on ``sim_db``."""
        return self.sim_db is not None

    def entity_set(self, logical: str) -> str:
        """The entity set name for a logical name such as ``"milestones"``."""
        try:
            return self.entity_names[logical]
        except KeyError:
            raise _err(self.name, "entity_names", f"unknown logical entity name {logical!r}; known: {', '.join(self.entity_names)}") from None

    def sim_db_path(self, workspace: str | Path) -> Path | None:
        return _relative_to(workspace, self.sim_db)

    def cert_file(self, workspace: str | Path) -> Path | None:
        return _relative_to(workspace, self.cert_path)

    def all_client_ids(self) -> tuple[str, ...]:
        """The main client id followed by the extra identities of the write pool."""
        return ((self.client_id,) if self.client_id else ()) + self.identities

    # --- TOML mapping ---

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any]) -> Profile:
        """Build from one ``[profiles.NAME]`` table as tomllib returns it (checks key names
        and value types first, then the rules)."""
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise _err(name, None, f"profile name {name!r} is not allowed; use 1 to 40 letters, digits, '_' or '-'")
        _refuse_secret_keys(name, table)
        kwargs: dict[str, Any] = {}
        for key, value in table.items():
            if key not in _FIELD_TYPES:
                raise _err(name, key, f"unknown key in [profiles.{name}]; known keys: {', '.join(_FIELD_TYPES)}")
            expected = _FIELD_TYPES[key]
            if expected is str:
                if not isinstance(value, str):
                    raise _err(name, key, f"must be a string in double quotes, not {_toml_type(value)}")
                kwargs[key] = value
            elif key == "identities":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise _err(name, key, 'must be an array of client id strings, e.g. identities = ["id-2", "id-3"]')
                kwargs[key] = tuple(value)
            elif key == "entity_names":
                if not isinstance(value, dict):
                    raise _err(name, key, f'must be a table, e.g. [profiles.{name}.entity_names] with milestones = "..."')
                for logical, set_name in value.items():
                    if not isinstance(set_name, str):
                        raise _err(name, f"entity_names.{logical}", f"must be a string in double quotes, not {_toml_type(set_name)}")
                kwargs[key] = dict(value)
        if "kind" not in kwargs:
            raise _err(name, "kind", f'is missing; add kind = "rehearsal", "sandbox" or "production" to [profiles.{name}]')
        return cls(name=name, **kwargs)

    def to_table(self) -> dict[str, Any]:
        """The TOML table for this profile: unset fields omitted, and only the entity names
        that differ from the defaults."""
        out: dict[str, Any] = {}
        for f in _FIELD_TYPES:
            value = getattr(self, f)
            if f == "entity_names":
                overrides = {k: v for k, v in value.items() if DEFAULT_ENTITY_NAMES.get(k) != v}
                if overrides:
                    out[f] = overrides
            elif f == "identities":
                if value:
                    out[f] = list(value)
            elif value is not None:
                out[f] = value
        return out


_FIELD_TYPES: dict[str, type] = {
    f.name: (str if f.name not in ("entity_names", "identities") else object) for f in dataclasses.fields(Profile) if f.name != "name"
}


def _relative_to(workspace: str | Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(workspace) / p


def _toml_type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def _looks_secret(key: str) -> bool:
    k = key.lower()
    if k in _FIELD_TYPES:
        return False
    return k in _SECRET_KEYS or any(word in k for word in _SECRET_WORDS)


def _refuse_secret_keys(profile: str | None, table: Mapping[str, Any], prefix: str = "") -> None:
    for key, value in table.items():
        if _looks_secret(key):
            where = f"[profiles.{profile}]" if profile else "cutover.toml"
            raise _err(
                profile,
                prefix + key,
                f"secrets are never stored in cutover.toml; delete this line from {where}, put the secret in an "
                'environment variable and set secret_env = "VARIABLE_NAME", or store it in the OS keyring and set '
                'keyring_service = "..." (and keyring_username)',
            )
        if isinstance(value, dict):
            _refuse_secret_keys(profile, value, prefix + key + ".")


def _validated(p: Profile) -> dict[str, Any]:
    """Check a profile; return the normalised field values (raises ConfigError)."""
    name = p.name
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise _err(str(name), "name", f"profile name {name!r} is not allowed; use 1 to 40 letters, digits, '_' or '-'")

    def fail(key: str, message: str) -> ConfigError:
        return _err(name, key, message)

    def text(key: str) -> str | None:
        value = getattr(p, key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise fail(key, f"must be a string, not {_toml_type(value)}")
        value = value.strip()
        if not value:
            raise fail(key, f"is empty; remove the line or give a value in [profiles.{name}]")
        return value

    v: dict[str, Any] = {}
    kind = p.kind
    if kind not in KINDS:
        raise fail("kind", f"{kind!r} is not one of {', '.join(KINDS)}; set kind to one of them in [profiles.{name}]")
    rehearsal = kind == "rehearsal"

    for key in ("tenant", "client_id", "auth", "secret_env", "keyring_service", "keyring_username", "cert_path", "sim_db"):
        v[key] = text(key)

    # where the environment is
    v["dataverse_url"] = _normalise_url(name, "dataverse_url", text("dataverse_url"), kind)
    v["fno_url"] = _normalise_url(name, "fno_url", text("fno_url"), kind)
    urls = [k for k in ("dataverse_url", "fno_url") if v[k]]
    if rehearsal:
        if v["sim_db"] and urls:
            raise fail(
                urls[0],
                "a rehearsal profile uses either sim_db (the command starts the simulator itself) or "
                "dataverse_url and fno_url (a simulator already running), not both; remove one",
            )
        if not v["sim_db"] and len(urls) != 2:
            missing = "fno_url" if urls == ["dataverse_url"] else "dataverse_url" if urls == ["fno_url"] else "sim_db"
            raise fail(
                missing,
                "a rehearsal profile needs either sim_db = \"PATH\" (a simulator database file) or both "
                "dataverse_url and fno_url of a running simulator",
            )
    else:
        if v["sim_db"]:
            raise fail("sim_db", f"only rehearsal profiles run on a simulator database; remove sim_db from this {kind} profile")
        for key in ("dataverse_url", "fno_url"):
            if not v[key]:
                example = "https://contoso.crm.dynamics.com" if key == "dataverse_url" else "https://contoso.operations.dynamics.com"
                raise fail(key, f'is required for a {kind} profile; add {key} = "{example}"')

    # who signs in, and how
    if rehearsal:
        v["auth"] = v["auth"] or "simulator"
        v["client_id"] = v["client_id"] or REHEARSAL_CLIENT_ID
    else:
        if not v["tenant"]:
            raise fail("tenant", f'is required for a {kind} profile; add tenant = "<tenant id or contoso.onmicrosoft.com>"')
        if not v["client_id"]:
            raise fail("client_id", f'is required for a {kind} profile; add client_id = "<application (client) id>"')
        if not v["auth"]:
            raise fail("auth", f"is required for a {kind} profile; set auth to one of device-code, client-secret, certificate")
    if v["auth"] not in AUTH_METHODS:
        raise fail("auth", f"{v['auth']!r} is not one of {', '.join(AUTH_METHODS)}")
    if v["auth"] == "simulator" and not rehearsal:
        raise fail("auth", f"'simulator' sign-in is only for rehearsal profiles; use device-code, client-secret or certificate for a {kind} profile")
    if v["tenant"] and not _TENANT_RE.fullmatch(v["tenant"]):
        raise fail("tenant", f"{v['tenant']!r} is not a tenant id or domain (e.g. contoso.onmicrosoft.com or a GUID)")
    if not _CLIENT_ID_RE.fullmatch(v["client_id"]):
        raise fail("client_id", f"{v['client_id']!r} is not a client id (letters, digits, '.', '_', '-')")
    if v["secret_env"] and not _ENV_VAR_RE.fullmatch(v["secret_env"]):
        # never echo the value: it may be the secret pasted in by mistake
        raise fail(
            "secret_env",
            "must be the NAME of an environment variable (letters, digits, '_'; e.g. CUTOVER_PROD_SECRET), "
            "not the secret itself; put the secret in that variable",
        )
    if v["keyring_username"] and not v["keyring_service"]:
        raise fail("keyring_username", 'needs keyring_service too; add keyring_service = "<service name in the OS keyring>"')
    if v["auth"] == "client-secret" and not rehearsal and not (v["secret_env"] or v["keyring_service"]):
        raise fail(
            "auth",
            'client-secret sign-in needs to know where the secret is: add secret_env = "VARIABLE_NAME" '
            '(an environment variable holding it) or keyring_service = "..." (the OS keyring)',
        )
    if v["auth"] == "certificate" and not v["cert_path"]:
        raise fail("cert_path", 'certificate sign-in needs the certificate file; add cert_path = "/path/to/cert.pem"')
    if v["auth"] == "device-code" and (v["secret_env"] or v["keyring_service"]):
        raise fail("auth", "device-code sign-in uses no stored secret; remove secret_env / keyring_service, or use auth = \"client-secret\"")

    # identities: extra application users for the write pool
    identities = p.identities
    if isinstance(identities, (str, bytes)) or not isinstance(identities, (tuple, list)):
        raise fail("identities", "must be a list of client ids")
    ids = []
    for ident in identities:
        if not isinstance(ident, str) or not _CLIENT_ID_RE.fullmatch(ident.strip()):
            raise fail("identities", f"{ident!r} is not a client id (letters, digits, '.', '_', '-')")
        ident = ident.strip()
        if ident == v["client_id"] or ident in ids:
            raise fail("identities", f"client id {ident!r} is listed twice (client_id and identities must all differ)")
        ids.append(ident)
    if ids and v["auth"] not in ("client-secret", "simulator"):
        raise fail("identities", f"a pool of identities needs client-secret sign-in (or simulator in rehearsal), not {v['auth']}")
    v["identities"] = tuple(ids)

    # names that vary by environment version
    for key in ("invoice_create_action", "invoice_confirm_action"):
        action = text(key)
        if action is None or not _ACTION_RE.fullmatch(action):
            raise fail(key, f"{getattr(p, key)!r} is not an action name (e.g. {DEFAULT_INVOICE_CREATE_ACTION})")
        v[key] = action
    overrides = p.entity_names
    if not isinstance(overrides, Mapping):
        raise fail("entity_names", "must be a table of logical name = entity set name")
    names = _default_entity_names()
    for logical, set_name in overrides.items():
        if logical not in DEFAULT_ENTITY_NAMES:
            raise fail(f"entity_names.{logical}", f"unknown logical entity name; known: {', '.join(DEFAULT_ENTITY_NAMES)}")
        if not isinstance(set_name, str) or not _ODATA_NAME_RE.fullmatch(set_name.strip()):
            raise fail(f"entity_names.{logical}", f"{set_name!r} is not an entity set name (letters, digits, '_')")
        names[logical] = set_name.strip()
    v["entity_names"] = names

    # the fingerprint
    pinned = text("pinned_org_id")
    if pinned is not None:
        try:
            pinned = str(uuid.UUID(pinned))
        except ValueError:
            raise fail(
                "pinned_org_id",
                f"{pinned!r} is not an organization id (a GUID); remove the line and run `cutover env test {name}` to pin it again",
            ) from None
    v["pinned_org_id"] = pinned
    return v


def _normalise_url(profile: str, key: str, value: str | None, kind: str) -> str | None:
    if value is None:
        return None
    example = "https://contoso.crm.dynamics.com" if key == "dataverse_url" else "https://contoso.operations.dynamics.com"
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        host = None
    if not host or parts.scheme.lower() not in ("http", "https"):
        raise _err(profile, key, f"{value!r} is not an http(s) URL; give e.g. {example}")
    if parts.username is not None or parts.password is not None:
        raise _err(profile, key, "must not contain a user name or password (secrets never go in cutover.toml); give the URL without them")
    if parts.query or parts.fragment:
        raise _err(profile, key, f"must not have a query or fragment; give the environment URL only, e.g. {example}")
    scheme = parts.scheme.lower()
    if kind != "rehearsal" and scheme != "https":
        raise _err(profile, key, f"a {kind} profile needs an https URL (http would send tokens and data unencrypted); use https://{parts.netloc}{parts.path.rstrip('/')}")
    path = re.sub(r"/+$", "", parts.path)
    if key == "dataverse_url" and re.search(r"/api(/data(/v[0-9.]+)?)?$", path, re.IGNORECASE):
        raise _err(profile, key, f"give the organization URL without '/api/data/...' (e.g. {example}); the client adds the API path")
    if key == "fno_url" and re.search(r"/data$", path, re.IGNORECASE):
        raise _err(profile, key, f"give the environment URL without '/data' (e.g. {example}); the client adds the OData path")
    return urlunsplit((scheme, parts.netloc.lower(), path, "", ""))


# --- the file -----------------------------------------------------------------------------------


@dataclass
class Config:
    """All profiles of one workspace, and the file they live in."""

    path: Path
    profiles: dict[str, Profile] = field(default_factory=dict)

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
        _refuse_secret_keys(None, {k: v for k, v in data.items() if k != "profiles"})
    except ConfigError as exc:
        raise exc.located(path, _locate_top(text, exc.key)) from None
    for key in data:
        if key != "profiles":
            raise ConfigError(
                "unknown top-level key; this file holds only [profiles.NAME] tables", path=path, line=_locate_top(text, key), key=key
            )
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError("must be tables like [profiles.NAME]", path=path, line=_locate_top(text, "profiles"), key="profiles")
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"profile '{name}' must be a table; write it as [profiles.{name}] followed by key = value lines",
                path=path,
                line=_locate(text, name, None),
                key=name,
                profile=name,
            )
        try:
            profile = Profile.from_table(name, table)
        except ConfigError as exc:
            raise exc.located(path, _locate(text, name, exc.key)) from None
        config.profiles[name] = profile
    return config


# --- finding the line of a key (a simple line scan, good for files this module writes and
# for the usual hand edits; None where it cannot tell) ---

_HEADER_RE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")


def _split_dotted(s: str) -> list[str]:
    return [part.strip().strip("\"'") for part in s.split(".")]


def _key_re(key: str) -> re.Pattern[str]:
    k = re.escape(key)
    return re.compile(rf"^\s*(?:{k}|\"{k}\"|'{k}')\s*(=|\.)")


def _locate_top(text: str, key: str | None) -> int | None:
    if key is None:
        return None
    first = key.split(".")[0]
    key_re = _key_re(first)
    for i, raw in enumerate(text.splitlines(), 1):
        m = _HEADER_RE.match(raw)
        if m:
            if _split_dotted(m.group(1))[0] == first:
                return i
            return None  # top-level keys come before the first table header
        if key_re.match(raw):
            return i
    return None


def _locate(text: str, profile: str, key: str | None) -> int | None:
    """Line of ``key`` (``a`` or ``a.b``) in ``[profiles.PROFILE]``; else of the table header."""
    lines = text.splitlines()
    parts = key.split(".") if key else []
    table = ["profiles", profile]
    header_line = sub_header_line = None
    current: list[str] | None = None
    for i, raw in enumerate(lines, 1):
        m = _HEADER_RE.match(raw)
        if m:
            current = _split_dotted(m.group(1))
            if current == table and header_line is None:
                header_line = i
            if len(parts) > 1 and current == table + parts[:-1] and sub_header_line is None:
                sub_header_line = i
            continue
        if not parts or current is None:
            continue
        if current == table and _key_re(parts[0]).match(raw):
            return i  # `key = ...`, or `entity_names.x = ...` / `entity_names = {...}`
        if len(parts) > 1 and current == table + parts[:-1] and _key_re(parts[-1]).match(raw):
            return i
    if sub_header_line is not None:
        return sub_header_line
    if header_line is not None:
        return header_line
    # profiles written inline: `prod = { ... }` under [profiles], or `profiles.prod.kind = ...`
    inline = re.compile(rf"^\s*(?:profiles\s*\.\s*)?[\"']?{re.escape(profile)}[\"']?\s*[.=]")
    for i, raw in enumerate(lines, 1):
        if inline.match(raw):
            return i
    return None


# --- writing ------------------------------------------------------------------------------------

_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(s: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        elif 0xD800 <= o <= 0xDFFF:
            raise ConfigError(f"the value {s.encode('utf-8', 'backslashreplace').decode('ascii', 'backslashreplace')!r} contains undecodable bytes and cannot be written to TOML")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(k: str) -> str:
    return k if _BARE_KEY_RE.fullmatch(k) else _toml_string(k)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


_HEADER_COMMENT = """\
# cutover workspace configuration: one [profiles.NAME] table per environment.
# Secrets are never stored here: a profile names an environment variable (secret_env)
# or an OS-keyring entry (keyring_service, keyring_username).
# This file is rewritten by `cutover env ...`; comments you add are not kept.
"""


def dumps(config: Config) -> str:
    """The TOML text for ``config`` (profiles in their order)."""
    chunks = [_HEADER_COMMENT]
    for name, profile in config.profiles.items():
        table = profile.to_table()
        lines = [f"[profiles.{_toml_key(name)}]"]
        subtables = []
        for key, value in table.items():
            if isinstance(value, dict):
                subtables.append((key, value))
            else:
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        for sub, values in subtables:
            lines.append("")
            lines.append(f"[profiles.{_toml_key(name)}.{_toml_key(sub)}]")
            lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items())
        chunks.append("\n".join(lines) + "\n")
    return "\n".join(chunks)


def save_config(config: Config) -> None:
    """Write the config atomically (temp file in the same directory, then ``os.replace``),
    with mode 0600. The workspace directory is created (0700) if it does not exist."""
    data = dumps(config).encode("utf-8")
    directory = config.path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cutover.toml.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ConfigError(f"cannot write the configuration ({exc.strerror or exc}); check the workspace directory", path=config.path) from None
    try:
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, config.path)
        except OSError as exc:
            raise ConfigError(f"cannot write the configuration ({exc.strerror or exc}); check the workspace directory", path=config.path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:  # make the rename durable where the platform allows it
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def pin_fingerprint(workspace: str | Path, name: str, org_id: str, force: bool = False) -> Profile:
    """Record ``org_id`` as the profile's pinned organization and save; returns the profile.

    Pinning the id it already has is a no-op. A different id raises :class:`FingerprintMismatch`
    (the wrong-environment guard) unless ``force``.
    """
    config = load_config(workspace)
    profile = config.get(name)
    try:
        normalised = str(uuid.UUID(str(org_id)))
    except ValueError:
        raise ConfigError(f"{org_id!r} is not an organization id (a GUID)", path=config.path, key="pinned_org_id", profile=name) from None
    if profile.pinned_org_id == normalised:
        return profile
    if profile.pinned_org_id is not None and not force:
        text = config.path.read_text("utf-8")
        raise FingerprintMismatch(
            f"profile '{name}' is pinned to organization {profile.pinned_org_id}, but the environment answered "
            f"{normalised}: this is a different environment. Check the URLs of the profile; if the environment "
            f"was really replaced, delete the pinned_org_id line and run `cutover env test {name}` again",
            path=config.path,
            line=_locate(text, name, "pinned_org_id"),
            key="pinned_org_id",
            profile=name,
        )
    profile = dataclasses.replace(profile, pinned_org_id=normalised)
    config.add(profile, replace=True)
    save_config(config)
    return profile


# --- secrets ------------------------------------------------------------------------------------


def resolve_secret(profile: Profile, environ: Mapping[str, str] = os.environ, client_id: str | None = None) -> str:
    """The client secret (for certificate sign-in: the certificate's passphrase) of
    ``client_id`` (default: the profile's own client id).

    Order: the environment variable named by ``secret_env``; else the OS keyring
    (``keyring_service``, user ``keyring_username`` or the client id), only if the optional
    ``keyring`` package is importable. The extra identities of the write pool use the
    variable ``<secret_env>_<n>`` (n = 2, 3, ... in the order of ``identities``) and the
    keyring user name equal to their client id.

    A rehearsal profile takes the variable if it is set, else the simulator's built-in
    rehearsal secret for that client id (e.g. ``rehearsal-secret`` for ``cutover-rehearsal``).
    Those built-in secrets are simulator-only and are never used for a sandbox or production
    profile.
    """
    cid = client_id or profile.client_id
    ids = profile.all_client_ids()
    if cid not in ids:
        raise _err(profile.name, "identities", f"client id {cid!r} is not part of profile '{profile.name}' (its client ids: {', '.join(ids)})")
    position = ids.index(cid) + 1
    var = profile.secret_env if position == 1 or not profile.secret_env else f"{profile.secret_env}_{position}"
    keyring_user = (profile.keyring_username or cid) if position == 1 else cid

    if profile.auth == "device-code":
        raise _err(profile.name, "auth", f"profile '{profile.name}' signs in with device code; it has no client secret")

    if var and environ.get(var):
        return environ[var]

    if profile.is_rehearsal:
        if cid in REHEARSAL_SECRETS:
            return REHEARSAL_SECRETS[cid]
        hint = var or f"{_suggest_var(profile.name)}"
        raise _err(
            profile.name,
            "secret_env",
            f"no secret for client id {cid!r} of rehearsal profile '{profile.name}': the simulator has no built-in secret "
            f"for it; set secret_env in the profile and export {hint}=...",
        )

    if profile.keyring_service:
        return _from_keyring(profile, profile.keyring_service, keyring_user, var)

    if var:
        raise _err(
            profile.name,
            "secret_env",
            f"the environment variable {var} (named by secret_env of profile '{profile.name}') is not set or empty; "
            f"set it in this shell: export {var}=... (read it with `read -s {var}; export {var}` to keep it out of the history)",
        )
    what = "certificate passphrase" if profile.auth == "certificate" else "client secret"
    raise _err(
        profile.name,
        "secret_env",
        f"profile '{profile.name}' names no {what}; add secret_env = \"{_suggest_var(profile.name)}\" "
        'or keyring_service = "..." to the profile',
    )


def _suggest_var(name: str) -> str:
    return "CUTOVER_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_SECRET"


def _from_keyring(profile: Profile, service: str, user: str, var: str | None) -> str:
    alternative = f"export {var}=..." if var else f'set secret_env = "{_suggest_var(profile.name)}" in the profile and export it'
    try:
        import keyring  # optional; not a dependency of cutover
    except ImportError:
        raise _err(
            profile.name,
            "keyring_service",
            f"profile '{profile.name}' reads its secret from the OS keyring, but the Python package 'keyring' is not "
            f"installed; install it (pip install keyring) or use an environment variable instead: {alternative}",
        ) from None
    try:
        secret = keyring.get_password(service, user)
    except Exception as exc:  # keyring backends raise their own types; their messages hold no secret
        raise _err(
            profile.name,
            "keyring_service",
            f"the OS keyring could not be read ({type(exc).__name__}: {exc}); unlock or configure the keyring, "
            f"or use an environment variable instead: {alternative}",
        ) from None
    if not secret:
        raise _err(
            profile.name,
            "keyring_service",
            f"the OS keyring has no secret for service {service!r}, user {user!r} (profile '{profile.name}'); "
            f"store it with `keyring set {service} {user}`, or use an environment variable instead: {alternative}",
        )
    return secret
