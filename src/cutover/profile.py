"""An environment profile: one ``[profiles.NAME]`` table of ``cutover.toml``, typed and validated.

A :class:`Profile` says where an environment is (Dataverse and F&O URLs, or a simulator
database), how to sign in (tenant, client id, method, and where the secret is — never the
secret), and the names that vary by environment version (entity sets, invoice actions).
Constructing one validates and normalises it, so a profile in hand is always valid; every
problem is a :class:`ConfigError` whose ``key`` names the offending field.

This module knows nothing about files: :mod:`cutover.config` reads and writes the workspace's
``cutover.toml`` and adds the file and line to these errors. Stdlib only.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import EXIT_USAGE, CutoverError

__all__ = [
    "AUTH_METHODS",
    "ConfigError",
    "DEFAULT_ENTITY_NAMES",
    "DEFAULT_INVOICE_CONFIRM_ACTION",
    "DEFAULT_INVOICE_CREATE_ACTION",
    "DEFAULT_INVOICE_CREATE_STYLE",
    "INVOICE_CREATE_STYLES",
    "KINDS",
    "NAME_RE",
    "Profile",
    "REHEARSAL_CLIENT_ID",
    "location",
    "refuse_secret_keys",
]

KINDS = ("rehearsal", "sandbox", "production")
AUTH_METHODS = ("device-code", "client-secret", "certificate", "simulator")

DEFAULT_INVOICE_CREATE_ACTION = "msdyn_NewInvoiceContract"
DEFAULT_INVOICE_CONFIRM_ACTION = "msdyn_PostInvoice"
# "bound": the create action is bound to each contract (salesorder); "unbound": one action call
# takes the contract ids (ContractIds, comma separated). Which one an environment has is checked
# against its $metadata before invoicing.
INVOICE_CREATE_STYLES = ("bound", "unbound")
DEFAULT_INVOICE_CREATE_STYLE = "bound"

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

# The client id a rehearsal profile signs in with unless it names another: one of the
# simulator's built-in rehearsal identities (see cutover.secret_source.REHEARSAL_SECRETS).
REHEARSAL_CLIENT_ID = "cutover-rehearsal"

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
_ENV_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_TENANT_RE = re.compile(r"[A-Za-z0-9.-]{1,253}")
_ODATA_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ACTION_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,254}")

# Keys that would put a secret into the TOML file. Refused wherever they appear; any other
# key mentioning secret/password/token/passphrase (but not a known field) is refused too.
_SECRET_KEYS = frozenset(
    {
        "secret",
        "client_secret",
        "password",
        "passphrase",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "private_key",
        "key",
    }
)
_SECRET_WORDS = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "credential",
    "private_key",
    "apikey",
    "api_key",
)


# --- errors -------------------------------------------------------------------------------------


def location(path: Path | None, line: int | None, column: int | None, key: str | None) -> str:
    """``/ws/cutover.toml line 7, column 3, key 'kind'`` — each part only when known ("" if none)."""
    where = str(path) if path is not None else ""
    if line is not None:
        where = f"{where} line {line}".strip()
        if column is not None:
            where += f", column {column}"
    if key is not None:
        where = f"{where}, key '{key}'" if where else f"key '{key}'"
    return where


class ConfigError(CutoverError):
    """A configuration problem, with where it is and what to do about it (exit 2).

    ``str(error)`` reads e.g. ``/ws/cutover.toml line 7, key 'kind': 'prod' is not one of
    rehearsal, sandbox, production; ...``. ``path``, ``line`` (1-based), ``column`` and ``key``
    are None where unknown; ``profile`` names the profile concerned, if any. ``where`` is the
    location part of the text.
    """

    exit_code = EXIT_USAGE

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
        self.path = Path(path) if path is not None else None
        self.line = line
        self.column = column
        self.key = key
        self.profile = profile
        super().__init__(message, where=location(self.path, line, column, key) or None)

    def render(self) -> str:
        where = location(self.path, self.line, self.column, self.key)
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


def _err(profile: str | None, key: str | None, message: str) -> ConfigError:
    return ConfigError(message, key=key, profile=profile)


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
    invoice_create_style: str = DEFAULT_INVOICE_CREATE_STYLE
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
            raise _err(
                self.name,
                "entity_names",
                f"unknown logical entity name {logical!r}; known: {', '.join(self.entity_names)}",
            ) from None

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
        refuse_secret_keys(name, table)
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
                    raise _err(
                        name, key, f'must be a table, e.g. [profiles.{name}.entity_names] with milestones = "..."'
                    )
                for logical, set_name in value.items():
                    if not isinstance(set_name, str):
                        raise _err(
                            name,
                            f"entity_names.{logical}",
                            f"must be a string in double quotes, not {_toml_type(set_name)}",
                        )
                kwargs[key] = dict(value)
        if "kind" not in kwargs:
            raise _err(
                name, "kind", f'is missing; add kind = "rehearsal", "sandbox" or "production" to [profiles.{name}]'
            )
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
    f.name: (str if f.name not in ("entity_names", "identities") else object)
    for f in dataclasses.fields(Profile)
    if f.name != "name"
}


def _relative_to(workspace: str | Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(workspace) / p


def _toml_type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", list: "an array", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def _looks_secret(key: str) -> bool:
    k = key.lower()
    if k in _FIELD_TYPES:
        return False
    return k in _SECRET_KEYS or any(word in k for word in _SECRET_WORDS)


def refuse_secret_keys(profile: str | None, table: Mapping[str, Any], prefix: str = "") -> None:
    """Refuse a table (and its sub-tables) holding a key that would put a secret into the file;
    the ConfigError names the key, never its value."""
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
            refuse_secret_keys(profile, value, prefix + key + ".")


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

    for key in (
        "tenant",
        "client_id",
        "auth",
        "secret_env",
        "keyring_service",
        "keyring_username",
        "cert_path",
        "sim_db",
    ):
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
                'a rehearsal profile needs either sim_db = "PATH" (a simulator database file) or both '
                "dataverse_url and fno_url of a running simulator",
            )
    else:
        if v["sim_db"]:
            raise fail(
                "sim_db", f"only rehearsal profiles run on a simulator database; remove sim_db from this {kind} profile"
            )
        for key in ("dataverse_url", "fno_url"):
            if not v[key]:
                example = (
                    "https://contoso.crm.dynamics.com"
                    if key == "dataverse_url"
                    else "https://contoso.operations.dynamics.com"
                )
                raise fail(key, f'is required for a {kind} profile; add {key} = "{example}"')

    # who signs in, and how
    if rehearsal:
        v["auth"] = v["auth"] or "simulator"
        v["client_id"] = v["client_id"] or REHEARSAL_CLIENT_ID
    else:
        if not v["tenant"]:
            raise fail(
                "tenant", f'is required for a {kind} profile; add tenant = "<tenant id or contoso.onmicrosoft.com>"'
            )
        if not v["client_id"]:
            raise fail("client_id", f'is required for a {kind} profile; add client_id = "<application (client) id>"')
        if not v["auth"]:
            raise fail(
                "auth", f"is required for a {kind} profile; set auth to one of device-code, client-secret, certificate"
            )
    if v["auth"] not in AUTH_METHODS:
        raise fail("auth", f"{v['auth']!r} is not one of {', '.join(AUTH_METHODS)}")
    if v["auth"] == "simulator" and not rehearsal:
        raise fail(
            "auth",
            f"'simulator' sign-in is only for rehearsal profiles; use device-code, client-secret or certificate for a {kind} profile",
        )
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
        raise fail(
            "keyring_username", 'needs keyring_service too; add keyring_service = "<service name in the OS keyring>"'
        )
    if v["auth"] == "client-secret" and not rehearsal and not (v["secret_env"] or v["keyring_service"]):
        raise fail(
            "auth",
            'client-secret sign-in needs to know where the secret is: add secret_env = "VARIABLE_NAME" '
            '(an environment variable holding it) or keyring_service = "..." (the OS keyring)',
        )
    if v["auth"] == "certificate" and not v["cert_path"]:
        raise fail("cert_path", 'certificate sign-in needs the certificate file; add cert_path = "/path/to/cert.pem"')
    if v["auth"] == "device-code" and (v["secret_env"] or v["keyring_service"]):
        raise fail(
            "auth",
            'device-code sign-in uses no stored secret; remove secret_env / keyring_service, or use auth = "client-secret"',
        )

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
        raise fail(
            "identities",
            f"a pool of identities needs client-secret sign-in (or simulator in rehearsal), not {v['auth']}",
        )
    v["identities"] = tuple(ids)

    # names that vary by environment version
    for key in ("invoice_create_action", "invoice_confirm_action"):
        action = text(key)
        if action is None or not _ACTION_RE.fullmatch(action):
            raise fail(key, f"{getattr(p, key)!r} is not an action name (e.g. {DEFAULT_INVOICE_CREATE_ACTION})")
        v[key] = action
    style = (text("invoice_create_style") or "").lower()
    if style not in INVOICE_CREATE_STYLES:
        raise fail(
            "invoice_create_style", f"{p.invoice_create_style!r} is not one of {', '.join(INVOICE_CREATE_STYLES)}"
        )
    v["invoice_create_style"] = style
    overrides = p.entity_names
    if not isinstance(overrides, Mapping):
        raise fail("entity_names", "must be a table of logical name = entity set name")
    names = _default_entity_names()
    for logical, set_name in overrides.items():
        if logical not in DEFAULT_ENTITY_NAMES:
            raise fail(
                f"entity_names.{logical}", f"unknown logical entity name; known: {', '.join(DEFAULT_ENTITY_NAMES)}"
            )
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
    example = (
        "https://contoso.crm.dynamics.com" if key == "dataverse_url" else "https://contoso.operations.dynamics.com"
    )
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        host = None
    if not host or parts.scheme.lower() not in ("http", "https"):
        raise _err(profile, key, f"{value!r} is not an http(s) URL; give e.g. {example}")
    if parts.username is not None or parts.password is not None:
        raise _err(
            profile,
            key,
            "must not contain a user name or password (secrets never go in cutover.toml); give the URL without them",
        )
    if parts.query or parts.fragment:
        raise _err(profile, key, f"must not have a query or fragment; give the environment URL only, e.g. {example}")
    scheme = parts.scheme.lower()
    if kind != "rehearsal" and scheme != "https":
        raise _err(
            profile,
            key,
            f"a {kind} profile needs an https URL (http would send tokens and data unencrypted); use https://{parts.netloc}{parts.path.rstrip('/')}",
        )
    path = re.sub(r"/+$", "", parts.path)
    if key == "dataverse_url" and re.search(r"/api(/data(/v[0-9.]+)?)?$", path, re.IGNORECASE):
        raise _err(
            profile,
            key,
            f"give the organization URL without '/api/data/...' (e.g. {example}); the client adds the API path",
        )
    if key == "fno_url" and re.search(r"/data$", path, re.IGNORECASE):
        raise _err(
            profile, key, f"give the environment URL without '/data' (e.g. {example}); the client adds the OData path"
        )
    return urlunsplit((scheme, parts.netloc.lower(), path, "", ""))
