"""Sign-in: msal token providers for Dataverse and Finance and Operations, one per resource.

Every profile signs in through msal, the Microsoft Authentication Library, so the code path
that runs on the cutover night is the one every rehearsal and test runs:

* ``client-secret`` (and ``simulator``, a rehearsal profile's default) —
  :class:`MsalClientSecretSource`: ``ConfidentialClientApplication`` with the secret from
  :func:`cutover.config.resolve_secret`, the OAuth 2.0 client credentials flow ("Microsoft
  identity platform and the OAuth 2.0 client credentials flow": scope ``<resource>/.default``).
* ``certificate`` — :class:`MsalCertificateSource`: the same flow with a certificate credential
  (msal's ``{"private_key", "public_certificate"}`` for a PEM file holding key and certificate,
  ``{"private_key_pfx_path"}`` for a .pfx/.p12), which msal turns into a signed client assertion.
* ``device-code`` — :class:`MsalDeviceCodeSource`: ``PublicClientApplication`` and the OAuth 2.0
  device authorization grant, for an operator over SSH: ``on_code(message, user_code,
  verification_uri)`` shows the code, polling can be cancelled (msal's documented way: set the
  flow's ``expires_at`` to 0), and the refresh token then serves both resources silently
  (refresh tokens of the identity platform are not bound to one resource).

Silent first: ``acquire_token_for_client`` looks in the token cache before it asks the identity
platform (msal ≥ 1.23, documented), and the device-code source calls ``acquire_token_silent``
(cache, then refresh token) before it ever shows a code. msal treats an access token that
expires within five minutes as expired and refreshes it.

The token cache is one ``msal.SerializableTokenCache`` per profile in
``<workspace>/.tokens/<profile>.json``: directory 0700, file 0600 (both checked and tightened
on load), written atomically. If the optional ``msal_extensions`` package is importable its
encrypted persistence is used instead; otherwise the file is plain JSON protected by its mode
only, and :meth:`TokenSource.describe` says so. No dependency is added for this.

Rehearsal profiles use msal too: :class:`RoutedIdentityHttpClient` is handed to msal as its
``http_client`` and sends ``https://login.microsoftonline.com/...`` to the simulator's
``/_sim/login/...`` stand-ins (msal insists on an https authority; this keeps it happy).

Every failure is a :class:`SignInError` naming profile, tenant, client id, the AADSTS code and
the fix; it never contains a secret or a token, and any server text in it has gone through
:func:`redact`. This module is core code: no Textual, nothing from ``cutover.sim``.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import json
import logging
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msal

from .config import ConfigError, Profile, resolve_secret
from .redaction import redact

__all__ = [
    "AUTHORITY_HOST",
    "IdentityHttpClient",
    "IdentityPlatformUnreachable",
    "IdentityResponse",
    "IdentityRoutingError",
    "MsalCertificateSource",
    "MsalClientSecretSource",
    "MsalDeviceCodeSource",
    "REHEARSAL_TENANT",
    "RoutedIdentityHttpClient",
    "SignInError",
    "TokenCacheFile",
    "TokenSource",
    "certificate_credential",
    "pool_sources_for",
    "redact",
    "token_cache_path",
    "token_sources_for",
]

logger = logging.getLogger("cutover.auth")

AUTHORITY_HOST = "login.microsoftonline.com"
# The tenant the rehearsal simulator knows by default. Deliberately a copy, not an import:
# the simulator shares no code with the clients.
REHEARSAL_TENANT = "contoso.onmicrosoft.com"
SIM_LOGIN_PATH = "/_sim/login"
TOKENS_DIR = ".tokens"

OnCode = Callable[[str, str, str], Awaitable[None] | None]


# --- errors -------------------------------------------------------------------------------------


class SignInError(Exception):
    """Signing in failed. ``str(error)`` names the profile, tenant and client id, the reason
    (with the AADSTS code when the identity platform gave one) and the fix. It never holds a
    secret or a token. ``code`` is e.g. ``"AADSTS7000215"``, ``"cancelled"``, ``"expired"``,
    ``"declined"``, ``"unreachable"``, ``"certificate"``, ``"sign-in-required"``."""

    exit_code = 3  # an environment problem (DESIGN: exit codes)

    def __init__(
        self,
        reason: str,
        *,
        profile: str | None = None,
        tenant: str | None = None,
        client_id: str | None = None,
        code: str | None = None,
        fix: str | None = None,
    ):
        self.reason = redact(reason)
        self.profile = profile
        self.tenant = tenant
        self.client_id = client_id
        self.code = code
        self.fix = redact(fix) if fix else None
        super().__init__(self._render())

    def _render(self) -> str:
        who = []
        if self.tenant:
            who.append(f"tenant {self.tenant}")
        if self.client_id:
            who.append(f"client id {self.client_id}")
        head = "sign-in failed"
        if self.profile:
            head += f" for profile '{self.profile}'"
        if who:
            head += f" ({', '.join(who)})"
        text = f"{head}: {self.reason}"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


class IdentityRoutingError(ValueError):
    """A rehearsal sign-in tried to reach a host other than the identity platform's."""


try:  # msal's silent path falls back on a cached token when the refresh hits a transport error
    from requests.exceptions import ConnectionError as _TransportErrorBase  # msal depends on requests
except ImportError:  # pragma: no cover - msal always brings requests
    _TransportErrorBase = ConnectionError  # type: ignore[assignment,misc]


class IdentityPlatformUnreachable(_TransportErrorBase):  # type: ignore[misc,valid-type]
    """The identity platform (or the simulator standing in for it) could not be reached."""

    def __init__(self, url: str, detail: str, *, tls: bool = False):
        super().__init__(f"{url}: {detail}")
        self.url = url
        self.detail = detail
        self.tls = tls


# --- the http client msal uses ------------------------------------------------------------------


@dataclass
class IdentityResponse:
    """What msal reads of a response: ``status_code``, ``text``, ``headers``,
    ``raise_for_status()`` (msal.oauth2cli.http.Response)."""

    status_code: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    url: str = ""

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise httpx.HTTPStatusError(
                f"identity platform answered HTTP {self.status_code} for {self.url}",
                request=httpx.Request("GET", self.url or "https://invalid"),
                response=httpx.Response(self.status_code),
            )


class IdentityHttpClient:
    """msal's ``http_client`` (the ``get``/``post`` interface of msal.oauth2cli.http.HttpClient),
    implemented with a synchronous ``httpx.Client``. Transport failures become
    :class:`IdentityPlatformUnreachable`. The last OAuth error body seen on this thread is kept
    in :attr:`last_error` (msal wraps some of them in a ValueError without the server's words)."""

    def __init__(self, *, timeout: float = 30.0, verify: bool | str = True, transport: httpx.BaseTransport | None = None):
        self._client = httpx.Client(timeout=timeout, verify=verify, transport=transport, follow_redirects=False)
        self._local = threading.local()

    @property
    def last_error(self) -> dict | None:
        return getattr(self._local, "error", None)

    def clear_last_error(self) -> None:
        self._local.error = None

    def _target(self, url: str) -> str:
        return url

    def describe(self) -> str:
        return f"https://{AUTHORITY_HOST}"

    def _send(self, method: str, url: str, params=None, data=None, headers=None) -> IdentityResponse:
        target = self._target(url)
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if isinstance(data, (str, bytes)):
            kwargs["content"] = data
        elif data is not None:
            # as requests would encode it: bytes (msal's client assertion) as text, None left out
            kwargs["data"] = {k: (v.decode("utf-8") if isinstance(v, bytes) else str(v)) for k, v in data.items() if v is not None}
        try:
            r = self._client.request(method, target, **kwargs)
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            tls = "CERTIFICATE_VERIFY_FAILED" in detail or "SSL" in detail.upper()
            raise IdentityPlatformUnreachable(target, f"{type(exc).__name__}: {redact(detail)}", tls=tls) from None
        response = IdentityResponse(r.status_code, r.text, dict(r.headers), str(r.request.url))
        if r.status_code >= 400:
            try:
                body = json.loads(response.text)
            except ValueError:
                body = {"error": f"http_{r.status_code}", "error_description": response.text[:500]}
            self._local.error = body if isinstance(body, dict) else {"error": f"http_{r.status_code}"}
        return response

    def post(self, url: str, params=None, data=None, headers=None, **kwargs) -> IdentityResponse:
        return self._send("POST", url, params=params, data=data, headers=headers)

    def get(self, url: str, params=None, headers=None, **kwargs) -> IdentityResponse:
        return self._send("GET", url, params=params, headers=headers)

    def close(self) -> None:
        self._client.close()


class RoutedIdentityHttpClient(IdentityHttpClient):
    """An :class:`IdentityHttpClient` for rehearsals: ``https://login.microsoftonline.com/<rest>``
    goes to ``<simulator_base_url>/_sim/login/<rest>``; any other host is refused, so a
    rehearsal never talks to the real identity platform."""

    def __init__(self, simulator_base_url: str, **kwargs):
        super().__init__(**kwargs)
        self.simulator_base_url = simulator_base_url.rstrip("/")

    def describe(self) -> str:
        return f"{self.simulator_base_url}{SIM_LOGIN_PATH} (the simulator standing in for https://{AUTHORITY_HOST})"

    def _target(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or (parts.hostname or "").lower() != AUTHORITY_HOST:
            raise IdentityRoutingError(f"a rehearsal sign-in only talks to the simulator; refusing to send a request to {parts.scheme}://{parts.netloc}")
        return self.simulator_base_url + SIM_LOGIN_PATH + parts.path + (f"?{parts.query}" if parts.query else "")


# --- the token cache ----------------------------------------------------------------------------


def token_cache_path(workspace: str | Path, profile_name: str) -> Path:
    """``<workspace>/.tokens/<profile>.json``."""
    return Path(workspace) / TOKENS_DIR / f"{profile_name}.json"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TokenCacheFile:
    """The persistent msal token cache of one profile. ``cache`` is what the msal applications
    share; :meth:`save` persists it after each sign-in. ``notes`` lists what loading had to
    fix (e.g. loose permissions tightened)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.notes: list[str] = []
        self.encrypted = False
        self._lock = threading.Lock()
        self._secure_directory()
        self.cache: msal.SerializableTokenCache = self._open()

    # directory 0700, file 0600
    def _secure_directory(self) -> None:
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.name == "posix" and _mode(directory) & 0o077:
            old = _mode(directory)
            os.chmod(directory, 0o700)
            self._note(f"tightened the permissions of {directory} from {old:04o} to 0700")

    def _note(self, text: str) -> None:
        self.notes.append(text)
        logger.warning("token cache: %s", text)

    def _open(self) -> msal.SerializableTokenCache:
        try:
            import msal_extensions  # optional, never a dependency of cutover
        except ImportError:
            msal_extensions = None
        if msal_extensions is not None:
            try:
                persistence = msal_extensions.build_encrypted_persistence(str(self.path.with_suffix(".bin")))
                cache = msal_extensions.PersistedTokenCache(persistence)
            except Exception as exc:  # e.g. no libsecret / keyring on a headless Linux host
                self._note(f"encrypted persistence is not available here ({type(exc).__name__}); using a plain file with mode 0600")
            else:
                self.encrypted = True
                self.path = self.path.with_suffix(".bin")
                return cache
        cache = msal.SerializableTokenCache()
        text = self._read()
        if text:
            try:
                cache.deserialize(text)
            except ValueError:
                self._note(f"{self.path} was not a readable token cache; starting with an empty one (you may have to sign in again)")
        return cache

    def _read(self) -> str:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise SignInError(
                f"the token cache {self.path} cannot be opened ({exc.strerror or exc})",
                code="token-cache",
                fix=f"check that {self.path} is a regular file owned by you, or delete it and sign in again",
            ) from None
        try:
            st = os.fstat(fd)
            if os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
                old = stat.S_IMODE(st.st_mode)
                os.fchmod(fd, 0o600)
                self._note(f"tightened the permissions of {self.path} from {old:04o} to 0600")
            with os.fdopen(fd, "r", encoding="utf-8") as fh:
                fd = -1
                return fh.read()
        finally:
            if fd >= 0:
                os.close(fd)

    def save(self) -> None:
        """Persist the cache if it changed: merged with what is on disk (another process or
        source of the same profile may have written since), written to a 0600 temporary file
        and renamed over the cache file."""
        if self.encrypted:
            return  # msal_extensions' PersistedTokenCache persists itself
        with self._lock:
            if not self.cache.has_state_changed:
                return
            ours = json.loads(self.cache.serialize() or "{}")
            try:
                merged = json.loads(self._read() or "{}")
            except ValueError:
                merged = {}
            if not isinstance(merged, dict):
                merged = {}
            for kind, entries in ours.items():
                if isinstance(merged.get(kind), dict) and isinstance(entries, dict):
                    merged[kind].update(entries)
                else:
                    merged[kind] = entries
            data = json.dumps(merged, indent=1)
            self._secure_directory()
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)

    def describe(self) -> str:
        if self.encrypted:
            return f"token cache {self.path} (encrypted by msal-extensions)"
        return (
            f"token cache {self.path} (plain JSON protected by file mode 0600 in a 0700 directory; not encrypted: "
            "the optional msal-extensions package is not installed or has no encrypted store on this host)"
        )


# --- credentials --------------------------------------------------------------------------------

_PEM_KEY_RE = re.compile(r"-----BEGIN ((?:ENCRYPTED |RSA |EC )?PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL)
_PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _msal_version() -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", msal.__version__)[:3])


def certificate_credential(path: Path, passphrase: Callable[[], str] | None = None) -> dict:
    """msal's ``client_credential`` dict for a certificate file (ClientApplication docs):

    * ``.pfx`` / ``.p12`` → ``{"private_key_pfx_path", "passphrase"}`` (msal ≥ 1.29, SHA-256
      thumbprint);
    * PEM with the private key and the certificate (``openssl pkcs12 -nodes`` output) →
      ``{"private_key", "public_certificate"}`` from which msal (≥ 1.35) computes the SHA-256
      thumbprint; older msal also gets ``"thumbprint"`` (SHA-1, the legacy form).

    ``passphrase`` is called only if the key is encrypted. Raises ValueError with a readable
    reason (file missing, no key, no certificate, wrong passphrase)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the certificate file {path} ({exc.strerror or exc})") from None
    if path.suffix.lower() in (".pfx", ".p12"):
        secret: str | None = None
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(raw, None)
        except ValueError:
            if passphrase is None:
                raise ValueError(f"{path} is encrypted or not a PKCS#12 file, and no passphrase is configured") from None
            secret = passphrase()
            try:
                key, cert, _ = pkcs12.load_key_and_certificates(raw, secret.encode())
            except ValueError:
                raise ValueError(f"{path} could not be opened with the configured passphrase (wrong passphrase, or not a PKCS#12 file)") from None
        if key is None or cert is None:
            raise ValueError(f"{path} must contain both the private key and the certificate")
        cred: dict[str, Any] = {"private_key_pfx_path": str(path)}
        if secret:
            cred["passphrase"] = secret
        return cred
    text = raw.decode("ascii", "replace")
    key_match, cert_match = _PEM_KEY_RE.search(text), _PEM_CERT_RE.search(text)
    if not key_match:
        raise ValueError(f"{path} holds no PEM private key; give a PEM file with the private key and the certificate, or a .pfx")
    if not cert_match:
        raise ValueError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); add the certificate to the file, or use a .pfx")
    key_pem, cert_pem = key_match.group(0), cert_match.group(0)
    secret = None
    if "ENCRYPTED" in key_match.group(1) or "Proc-Type: 4,ENCRYPTED" in key_pem:
        if passphrase is None:
            raise ValueError(f"the private key in {path} is encrypted and no passphrase is configured")
        secret = passphrase()
    try:
        serialization.load_pem_private_key(key_pem.encode(), secret.encode() if secret else None)
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except (ValueError, TypeError) as exc:
        reason = "wrong passphrase or damaged key" if secret else type(exc).__name__
        raise ValueError(f"the key or certificate in {path} cannot be loaded ({reason})") from None
    cred = {"private_key": key_pem, "public_certificate": cert_pem}
    if secret:
        cred["passphrase"] = secret
    if _msal_version() < (1, 35):
        cred["thumbprint"] = cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - msal's legacy x5t
    return cred


# --- sessions: one msal application per client id ---------------------------------------------

# AADSTS code -> (short reason, fix). {cid}, {tenant}, {profile}, {secret_from} are filled in.
_FIXES: dict[int, tuple[str, str]] = {
    90002: ("the tenant was not found", "check tenant in profile '{profile}': use the Directory (tenant) ID GUID or the primary domain (e.g. contoso.onmicrosoft.com) shown in Microsoft Entra admin center > Overview"),
    900023: ("the tenant is not a valid tenant id or domain", "check tenant in profile '{profile}': use the Directory (tenant) ID GUID or the primary domain"),
    700016: ("the application was not found in this tenant", "check client_id and tenant in profile '{profile}': the Application (client) ID must belong to an app registration of tenant {tenant}, or an administrator must add the application to that tenant"),
    7000215: ("the client secret was rejected (invalid client secret)", "{secret_from} must hold the secret's Value (not its Secret ID) of client id {cid}; if unsure create a new one under App registrations > {cid} > Certificates & secrets"),
    7000222: ("the client secret has expired", "create a new client secret under App registrations > {cid} > Certificates & secrets > New client secret and put its Value in {secret_from}"),
    7000218: ("the application does not allow public client flows", "enable 'Allow public client flows' under App registrations > {cid} > Authentication, or sign in with client-secret or certificate"),
    700027: ("the certificate is not registered on the application, or the assertion signature is invalid", "upload the certificate's public part under App registrations > {cid} > Certificates & secrets > Certificates, or point cert_path of profile '{profile}' at the registered certificate"),
    700024: ("the client assertion is outside its validity window", "check this machine's clock (timedatectl) and time zone"),
    700021: ("the client assertion names another application", "use the certificate of client id {cid}"),
    1002012: ("the scope is not <resource>/.default", "check dataverse_url / fno_url of profile '{profile}'"),
    65001: ("the user or administrator has not consented to the application", "have an administrator grant admin consent for {cid} under App registrations > API permissions"),
    50076: ("multi-factor authentication is required", "run `cutover login {profile}` and complete the sign-in, including MFA, on your phone"),
    50079: ("multi-factor authentication registration is required", "register MFA for the account, then run `cutover login {profile}`"),
    53003: ("a Conditional Access policy blocked the sign-in", "ask the tenant administrator which policy applies to this jump host / account"),
    70000: ("the refresh token or grant is invalid", "sign in again: `cutover login {profile}`"),
    700082: ("the refresh token has expired", "sign in again: `cutover login {profile}`"),
    50173: ("the refresh token was revoked", "sign in again: `cutover login {profile}`"),
    70020: ("the device code expired before the sign-in was completed", "run `cutover login {profile}` again and finish the sign-in within the time shown"),
}


def _first_line(text: str) -> str:
    return (text or "").replace("\r", "").split("\n", 1)[0].strip()


def _origin(url: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "", "", ""))


class _Session:
    """One msal application (one client id of one profile), the cache it shares with the
    profile's other applications, and the context error messages need."""

    def __init__(
        self,
        *,
        profile: Profile,
        tenant: str,
        client_id: str,
        kind: str,
        http_client: IdentityHttpClient,
        cache: TokenCacheFile,
        credential: Callable[[], Any] | None = None,
        secret_from: str = "the configured secret",
        on_code: OnCode | None = None,
        cancel: Any = None,
    ):
        self.profile = profile
        self.tenant = tenant
        self.client_id = client_id
        self.kind = kind  # "client-secret" | "certificate" | "device-code"
        self.http_client = http_client
        self.cache = cache
        self._credential = credential
        self.secret_from = secret_from
        self.on_code = on_code
        self.cancel = cancel
        self.username: str | None = None
        self._app: msal.ClientApplication | None = None
        self._app_lock = threading.Lock()
        self._secrets: list[str] = []
        self._locks: dict[int, asyncio.Lock] = {}

    @property
    def authority(self) -> str:
        return f"https://{AUTHORITY_HOST}/{self.tenant}"

    def interactive_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(id(loop))
        if lock is None:
            lock = self._locks[id(loop)] = asyncio.Lock()
        return lock

    def error(self, reason: str, *, code: str | None, fix: str | None) -> SignInError:
        return SignInError(
            redact(reason, extra=self._secrets), profile=self.profile.name, tenant=self.tenant, client_id=self.client_id,
            code=code, fix=redact(fix, extra=self._secrets) if fix else None,
        )

    def unreachable(self, exc: IdentityPlatformUnreachable) -> SignInError:
        where = self.http_client.describe()
        if isinstance(self.http_client, RoutedIdentityHttpClient):
            fix = f"is the rehearsal simulator running at {self.http_client.simulator_base_url}? Start it (`cutover sim serve`) or fix the profile's URLs"
        elif exc.tls:
            fix = "the TLS certificate of the identity platform could not be verified: check the clock, and if a proxy inspects TLS set SSL_CERT_FILE to its CA bundle"
        else:
            fix = f"check the network, DNS and proxy (HTTPS_PROXY) of this host; it must reach https://{AUTHORITY_HOST}"
        return self.error(f"the identity platform at {where} cannot be reached ({exc.detail})", code="unreachable", fix=fix)

    def from_result(self, result: Mapping[str, Any] | None) -> SignInError:
        result = result or {}
        codes = result.get("error_codes") or []
        desc = _first_line(str(result.get("error_description", ""))).rstrip(".")
        m = re.match(r"AADSTS(\d+)", desc)
        number = int(codes[0]) if codes else (int(m.group(1)) if m else None)
        error = str(result.get("error") or "unknown_error")
        fmt = {"cid": self.client_id, "tenant": self.tenant, "profile": self.profile.name, "secret_from": self.secret_from}
        if number in _FIXES:
            short, fix = _FIXES[number]
            return self.error(f"AADSTS{number}: {short} ({error}: {desc})", code=f"AADSTS{number}", fix=fix.format(**fmt))
        return self.error(
            f"{'AADSTS%d: ' % number if number else ''}{error}: {desc or 'no description'}",
            code=f"AADSTS{number}" if number else error,
            fix=f"read the AADSTS code at https://login.microsoftonline.com/error and check profile '{self.profile.name}'",
        )

    def app(self) -> msal.ClientApplication:
        """The msal application, built on first use (that fetches the tenant's OpenID
        configuration, so a wrong tenant shows here). Blocking: call it in a thread."""
        with self._app_lock:
            if self._app is not None:
                return self._app
            common = dict(
                authority=self.authority,
                http_client=self.http_client,
                token_cache=self.cache.cache,
                instance_discovery=False,  # the authority is login.microsoftonline.com; nothing to discover
                app_name="cutover",
            )
            try:
                if self.kind == "device-code":
                    app: msal.ClientApplication = msal.PublicClientApplication(self.client_id, **common)
                else:
                    credential = self._credential() if self._credential else None
                    if isinstance(credential, str):
                        self._secrets.append(credential)
                    elif isinstance(credential, dict) and credential.get("passphrase"):
                        self._secrets.append(credential["passphrase"])
                    app = msal.ConfidentialClientApplication(self.client_id, client_credential=credential, **common)
            except SignInError:
                raise
            except IdentityPlatformUnreachable as exc:
                raise self.unreachable(exc) from None
            except ValueError as exc:
                last = self.http_client.last_error
                if last and ("error" in last):
                    raise self.from_result(last) from None
                raise self.error(
                    f"the identity platform did not accept the authority {self.authority} ({_first_line(str(exc))[:300]})",
                    code="authority",
                    fix=f"check tenant in profile '{self.profile.name}' (a tenant id GUID or domain such as contoso.onmicrosoft.com)",
                ) from None
            self._app = app
            return app

    def close(self) -> None:
        self.http_client.close()


async def _in_thread(session: _Session, fn: Callable[[], Any]) -> Any:
    try:
        return await asyncio.to_thread(fn)
    except (SignInError, ConfigError):
        raise
    except IdentityPlatformUnreachable as exc:
        raise session.unreachable(exc) from None
    except IdentityRoutingError as exc:
        raise session.error(str(exc), code="routing", fix="give the rehearsal profile the simulator's URL") from None
    except Exception as exc:  # an msal or transport surprise: say what it was, never its secrets
        raise session.error(
            f"unexpected {type(exc).__name__} from msal: {_first_line(str(exc))[:300]}",
            code="unexpected",
            fix="run again with --verbose; if it persists report it with this message",
        ) from None


# --- token sources ------------------------------------------------------------------------------


class TokenSource(abc.ABC):
    """Bearer tokens for one resource (``scope`` = ``<resource URL>/.default``) and one client id.

    ``await source.token()`` answers from the cache while the token is good (msal treats one
    that expires within five minutes as expired) and signs in again otherwise;
    ``force_refresh=True`` skips the cached access token (e.g. after a 401)."""

    resource: str  # "dataverse" | "fno"
    scope: str
    client_id: str

    def __init__(self, session: _Session, resource: str, scope: str):
        self._session = session
        self.resource = resource
        self.scope = scope
        self.client_id = session.client_id

    @property
    def profile(self) -> str:
        return self._session.profile.name

    @property
    def cache(self) -> TokenCacheFile:
        return self._session.cache

    @abc.abstractmethod
    async def token(self, *, force_refresh: bool = False) -> str:
        """An access token for :attr:`scope`."""

    def describe(self) -> str:
        """One line for `cutover env show` / logs: method, client id, authority, cache. No secrets."""
        return (
            f"{self._method()} as client id {self.client_id} at https://{AUTHORITY_HOST}/{self._session.tenant} "
            f"via {self._session.http_client.describe()}, scope {self.scope}; {self._session.cache.describe()}"
        )

    @abc.abstractmethod
    def _method(self) -> str: ...

    def close(self) -> None:
        """Release the HTTP connections (shared by the sources of one call of the factory)."""
        self._session.close()


class _ConfidentialSource(TokenSource):
    def _acquire(self, force_refresh: bool) -> str:
        session = self._session
        app = session.app()
        if force_refresh:
            # acquire_token_for_client() refuses force_refresh; drop this scope's cached access
            # token (TokenCache.search / remove_at) so the call below asks the platform.
            for at in list(session.cache.cache.search(
                msal.TokenCache.CredentialType.ACCESS_TOKEN,
                target=[self.scope],
                query={"client_id": session.client_id, "environment": app.authority.instance, "realm": app.authority.tenant, "home_account_id": None},
            )):
                session.cache.cache.remove_at(at)
        session.http_client.clear_last_error()
        result = app.acquire_token_for_client(scopes=[self.scope])  # cache first, then the platform
        session.cache.save()
        if result and "access_token" in result:
            return result["access_token"]
        raise session.from_result(result)

    async def token(self, *, force_refresh: bool = False) -> str:
        return await _in_thread(self._session, lambda: self._acquire(force_refresh))


class MsalClientSecretSource(_ConfidentialSource):
    """Client credentials with a client secret (``ConfidentialClientApplication``)."""

    def _method(self) -> str:
        return f"client secret from {self._session.secret_from}"


class MsalCertificateSource(_ConfidentialSource):
    """Client credentials with a certificate: msal signs a client assertion with the key."""

    def _method(self) -> str:
        return f"certificate {self._session.profile.cert_path}"


class MsalDeviceCodeSource(TokenSource):
    """Device authorization grant (``PublicClientApplication``) for an operator over SSH.

    Silent first (``acquire_token_silent`` with the cached account: access token, else refresh
    token — which also serves the other resource). Only if that fails is a device code
    requested; ``on_code(message, user_code, verification_uri)`` (sync or async) shows it, and
    polling stops when the sign-in completes, the code expires, ``cancel`` (an
    ``asyncio.Event`` / ``threading.Event``) is set, or the awaiting task is cancelled —
    whichever first; msal notices within a second. Without ``on_code`` (a non-interactive run)
    a needed sign-in is a :class:`SignInError` that says to run ``cutover login``."""

    def _method(self) -> str:
        return "device code sign-in" + (f" (signed in as {self._session.username})" if self._session.username else "")

    def _silent(self, force_refresh: bool) -> tuple[str | None, dict | None]:
        session = self._session
        app = session.app()
        accounts = app.get_accounts(username=session.username) if session.username else app.get_accounts()
        if not accounts:
            return None, None
        account = accounts[0]
        result = app.acquire_token_silent_with_error([self.scope], account, force_refresh=force_refresh)
        session.cache.save()
        if result and "access_token" in result:
            session.username = session.username or account.get("username") or None
            return result["access_token"], None
        return None, result

    async def token(self, *, force_refresh: bool = False) -> str:
        session = self._session
        found, failure = await _in_thread(session, lambda: self._silent(force_refresh))
        if found:
            return found
        async with session.interactive_lock():
            # another source of this profile may have signed in while we waited
            found, failure2 = await _in_thread(session, lambda: self._silent(force_refresh))
            if found:
                return found
            failure = failure2 or failure
            if session.on_code is None:
                reason = "no valid sign-in is cached"
                if failure:
                    reason += f" and the refresh failed ({session.from_result(failure).reason})"
                raise session.error(reason, code="sign-in-required", fix=f"run `cutover login {session.profile.name}` and complete the device code sign-in")
            return await self._device_flow()

    async def _device_flow(self) -> str:
        session = self._session
        app: msal.PublicClientApplication = await _in_thread(session, session.app)
        flow = await _in_thread(session, lambda: app.initiate_device_flow(scopes=[self.scope]))
        if "user_code" not in flow:
            raise session.from_result(flow)
        shown = session.on_code(flow.get("message", ""), flow["user_code"], flow.get("verification_uri", ""))
        if inspect.isawaitable(shown):
            await shown
        cancelled = threading.Event()
        started = time.monotonic()

        def poll() -> dict:
            # msal polls every `interval` s, checking its exit condition every second; setting
            # flow["expires_at"] to 0 is msal's documented way to stop it early.
            return app.acquire_token_by_device_flow(flow)

        worker = asyncio.ensure_future(_in_thread(session, poll))
        watcher = asyncio.ensure_future(self._watch_cancel(cancelled))
        try:
            await asyncio.wait({worker, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not worker.done():
                cancelled.set()
                flow["expires_at"] = 0
            result = await worker
        except asyncio.CancelledError:
            cancelled.set()
            flow["expires_at"] = 0
            raise
        finally:
            watcher.cancel()
        session.cache.save()
        if cancelled.is_set() or self._cancel_requested():
            raise session.error(
                f"the device code sign-in was cancelled after {time.monotonic() - started:.0f} s", code="cancelled",
                fix=f"run `cutover login {session.profile.name}` again when you are ready to sign in",
            )
        if result and "access_token" in result:
            claims = result.get("id_token_claims") or {}
            session.username = claims.get("preferred_username") or session.username
            return result["access_token"]
        error = (result or {}).get("error")
        if error in ("authorization_pending", "slow_down", "expired_token"):
            raise session.error(
                "the device code expired before the sign-in was completed", code="expired",
                fix=f"run `cutover login {session.profile.name}` again and finish the sign-in at the URL shown within its time limit",
            )
        if error == "authorization_declined":
            raise session.error("the sign-in request was declined on the sign-in page", code="declined", fix=f"run `cutover login {session.profile.name}` again and approve the request")
        raise session.from_result(result)

    def _cancel_requested(self) -> bool:
        cancel = self._session.cancel
        return bool(cancel is not None and cancel.is_set())

    async def _watch_cancel(self, cancelled: threading.Event) -> None:
        while not self._cancel_requested():
            await asyncio.sleep(0.05)
        cancelled.set()


# --- factories ----------------------------------------------------------------------------------


def _secret_from(profile: Profile, client_id: str, environ: Mapping[str, str]) -> str:
    """Where the secret of ``client_id`` comes from, for messages (never the value)."""
    ids = profile.all_client_ids()
    position = ids.index(client_id) + 1 if client_id in ids else 1
    var = profile.secret_env if position == 1 or not profile.secret_env else f"{profile.secret_env}_{position}"
    if var and environ.get(var):
        return f"the environment variable {var}"
    if profile.is_rehearsal:
        return "the simulator's built-in rehearsal secret"
    if profile.keyring_service:
        user = (profile.keyring_username or client_id) if position == 1 else client_id
        return f"the OS keyring (service {profile.keyring_service}, user {user})"
    return f"the environment variable {var}" if var else "the configured secret"


def _resources(profile: Profile, sim_url: str | None) -> tuple[str, str, IdentityHttpClient, str]:
    """(dataverse URL, F&O URL, http client, tenant) for a profile."""
    if profile.is_rehearsal:
        base = sim_url or (profile.dataverse_url and _origin(profile.dataverse_url))
        if not base:
            raise SignInError(
                "this rehearsal profile runs its own simulator, and no simulator URL was given",
                profile=profile.name, code="no-simulator",
                fix="start the simulator for the profile's sim_db first and pass its URL (sim_url)",
            )
        http: IdentityHttpClient = RoutedIdentityHttpClient(base)
        return (profile.dataverse_url or base, profile.fno_url or base, http, profile.tenant or REHEARSAL_TENANT)
    if not profile.tenant:
        raise SignInError("the profile names no tenant", profile=profile.name, code="no-tenant", fix=f'add tenant = "contoso.onmicrosoft.com" (or the tenant id) to [profiles.{profile.name}]')
    return (profile.dataverse_url or "", profile.fno_url or "", IdentityHttpClient(), profile.tenant)


def _scope(resource_url: str) -> str:
    return resource_url.rstrip("/") + "/.default"


def _session_for(
    profile: Profile, client_id: str, workspace: str | Path, http: IdentityHttpClient, tenant: str, cache: TokenCacheFile,
    environ: Mapping[str, str], on_code: OnCode | None, cancel: Any,
) -> _Session:
    method = profile.auth or "simulator"
    if method == "device-code":
        return _Session(profile=profile, tenant=tenant, client_id=client_id, kind="device-code", http_client=http, cache=cache, on_code=on_code, cancel=cancel)
    secret_from = _secret_from(profile, client_id, environ)
    if method == "certificate":
        cert_file = profile.cert_file(workspace)
        assert cert_file is not None  # config requires cert_path for certificate sign-in
        has_passphrase = bool(profile.secret_env or profile.keyring_service)
        passphrase = (lambda: resolve_secret(profile, environ, client_id)) if has_passphrase else None
        try:  # read now: a missing file or wrong passphrase shows before any network traffic
            credential = certificate_credential(cert_file, passphrase)
        except ValueError as exc:
            raise SignInError(
                str(exc), profile=profile.name, tenant=tenant, client_id=client_id, code="certificate",
                fix=f"check cert_path of profile '{profile.name}' (a PEM file with the private key and the certificate, or a .pfx) "
                f"and, if the key is encrypted, its passphrase in {secret_from}",
            ) from None
        return _Session(
            profile=profile, tenant=tenant, client_id=client_id, kind="certificate", http_client=http, cache=cache,
            credential=lambda: credential, secret_from=secret_from,
        )
    secret = resolve_secret(profile, environ, client_id)  # ConfigError if missing: before any network
    return _Session(profile=profile, tenant=tenant, client_id=client_id, kind="client-secret", http_client=http, cache=cache, credential=lambda: secret, secret_from=secret_from)


def _source_class(profile: Profile) -> type[TokenSource]:
    return {"device-code": MsalDeviceCodeSource, "certificate": MsalCertificateSource}.get(profile.auth or "", MsalClientSecretSource)


def token_sources_for(
    profile: Profile,
    workspace: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    on_code: OnCode | None = None,
    sim_url: str | None = None,
    cancel: Any = None,
) -> dict[str, TokenSource]:
    """``{"dataverse": TokenSource, "fno": TokenSource}`` for the profile's own client id.

    Both share one msal application and the profile's token cache, so a device-code operator
    signs in once. Rehearsal profiles sign in through msal against the simulator at ``sim_url``
    (default: the origin of the profile's ``dataverse_url``), tenant ``REHEARSAL_TENANT``
    unless the profile names one. A missing secret raises :class:`cutover.config.ConfigError`
    here, before any network traffic."""
    environ = os.environ if environ is None else environ
    dv, fno, http, tenant = _resources(profile, sim_url)
    cache = TokenCacheFile(token_cache_path(workspace, profile.name))
    client_id = profile.client_id or ""
    session = _session_for(profile, client_id, workspace, http, tenant, cache, environ, on_code, cancel)
    cls = _source_class(profile)
    return {"dataverse": cls(session, "dataverse", _scope(dv)), "fno": cls(session, "fno", _scope(fno))}


def pool_sources_for(
    profile: Profile,
    workspace: str | Path,
    *,
    resource: str = "dataverse",
    environ: Mapping[str, str] | None = None,
    sim_url: str | None = None,
) -> dict[str, TokenSource]:
    """One source per client id of the write pool (``profile.all_client_ids()``, main id
    first), all for ``resource`` ("dataverse" or "fno"), keyed by client id. Each identity has
    its own service-protection budget; the pool needs client-secret (or simulator) sign-in."""
    if resource not in ("dataverse", "fno"):
        raise ValueError(f"resource must be 'dataverse' or 'fno', not {resource!r}")
    environ = os.environ if environ is None else environ
    dv, fno, http, tenant = _resources(profile, sim_url)
    cache = TokenCacheFile(token_cache_path(workspace, profile.name))
    cls = _source_class(profile)
    scope = _scope(dv if resource == "dataverse" else fno)
    out: dict[str, TokenSource] = {}
    for client_id in profile.all_client_ids():
        session = _session_for(profile, client_id, workspace, http, tenant, cache, environ, None, None)
        out[client_id] = cls(session, resource, scope)
    return out
