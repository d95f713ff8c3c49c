"""One msal sign-in session per client id, and what its failures mean.

A :class:`MsalSession` is one msal application (one client id of one profile, public for
device code, confidential for a secret or certificate), built on first use, with the token
cache it shares with the profile's other applications and the context every error message
needs. The token sources of :mod:`cutover.auth` ask it for tokens; :func:`in_thread` runs
msal's blocking calls in a worker thread and turns whatever escapes into a
:class:`SignInError`.

Every failure is a :class:`SignInError` (a :class:`cutover.errors.EnvironmentProblem`, exit 3)
naming profile, tenant, client id, the AADSTS code and the fix. It never contains a secret or a
token: server text goes through :func:`cutover.redaction.redact`, with the secret the session
used as an extra literal.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import msal

from .errors import EnvironmentProblem
from .msal_http import (
    AUTHORITY_HOST,
    IdentityHttpClient,
    IdentityPlatformUnreachable,
    IdentityRoutingError,
    RoutedIdentityHttpClient,
)
from .profile import ConfigError, Profile
from .redaction import redact

if TYPE_CHECKING:
    from .token_cache import TokenCacheFile

__all__ = ["MsalSession", "OnCode", "SignInError", "in_thread"]

# on_code(message, user_code, verification_uri), sync or async: shows a device code.
OnCode = Callable[[str, str, str], Awaitable[None] | None]


class SignInError(EnvironmentProblem):
    """Signing in failed. ``str(error)`` names the profile, tenant and client id, the reason
    (with the AADSTS code when the identity platform gave one) and the fix. It never holds a
    secret or a token. ``code`` is e.g. ``"AADSTS7000215"``, ``"cancelled"``, ``"expired"``,
    ``"declined"``, ``"unreachable"``, ``"certificate"``, ``"sign-in-required"``."""

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
        super().__init__(self.reason, fix=redact(fix) if fix else None)

    def render(self) -> str:
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


# --- what the identity platform's answers mean -------------------------------------------------

# AADSTS code -> (short reason, fix). {cid}, {tenant}, {profile}, {secret_from} are filled in.
_FIXES: dict[int, tuple[str, str]] = {
    90002: (
        "the tenant was not found",
        "check tenant in profile '{profile}': use the Directory (tenant) ID GUID or the primary domain (e.g. contoso.onmicrosoft.com) shown in Microsoft Entra admin center > Overview",
    ),
    900023: (
        "the tenant is not a valid tenant id or domain",
        "check tenant in profile '{profile}': use the Directory (tenant) ID GUID or the primary domain",
    ),
    700016: (
        "the application was not found in this tenant",
        "check client_id and tenant in profile '{profile}': the Application (client) ID must belong to an app registration of tenant {tenant}, or an administrator must add the application to that tenant",
    ),
    7000215: (
        "the client secret was rejected (invalid client secret)",
        "{secret_from} must hold the secret's Value (not its Secret ID) of client id {cid}; if unsure create a new one under App registrations > {cid} > Certificates & secrets",
    ),
    7000222: (
        "the client secret has expired",
        "create a new client secret under App registrations > {cid} > Certificates & secrets > New client secret and put its Value in {secret_from}",
    ),
    7000218: (
        "the application does not allow public client flows",
        "enable 'Allow public client flows' under App registrations > {cid} > Authentication, or sign in with client-secret or certificate",
    ),
    700027: (
        "the certificate is not registered on the application, or the assertion signature is invalid",
        "upload the certificate's public part under App registrations > {cid} > Certificates & secrets > Certificates, or point cert_path of profile '{profile}' at the registered certificate",
    ),
    700024: (
        "the client assertion is outside its validity window",
        "check this machine's clock (timedatectl) and time zone",
    ),
    700021: ("the client assertion names another application", "use the certificate of client id {cid}"),
    1002012: ("the scope is not <resource>/.default", "check dataverse_url / fno_url of profile '{profile}'"),
    65001: (
        "the user or administrator has not consented to the application",
        "have an administrator grant admin consent for {cid} under App registrations > API permissions",
    ),
    50076: (
        "multi-factor authentication is required",
        "run `cutover login {profile}` and complete the sign-in, including MFA, on your phone",
    ),
    50079: (
        "multi-factor authentication registration is required",
        "register MFA for the account, then run `cutover login {profile}`",
    ),
    53003: (
        "a Conditional Access policy blocked the sign-in",
        "ask the tenant administrator which policy applies to this jump host / account",
    ),
    70000: ("the refresh token or grant is invalid", "sign in again: `cutover login {profile}`"),
    700082: ("the refresh token has expired", "sign in again: `cutover login {profile}`"),
    50173: ("the refresh token was revoked", "sign in again: `cutover login {profile}`"),
    70020: (
        "the device code expired before the sign-in was completed",
        "run `cutover login {profile}` again and finish the sign-in within the time shown",
    ),
}


def _first_line(text: str) -> str:
    return (text or "").replace("\r", "").split("\n", 1)[0].strip()


# --- the session -------------------------------------------------------------------------------


class MsalSession:
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
            redact(reason, extra=self._secrets),
            profile=self.profile.name,
            tenant=self.tenant,
            client_id=self.client_id,
            code=code,
            fix=redact(fix, extra=self._secrets) if fix else None,
        )

    def unreachable(self, exc: IdentityPlatformUnreachable) -> SignInError:
        where = self.http_client.describe()
        if isinstance(self.http_client, RoutedIdentityHttpClient):
            fix = f"is the rehearsal simulator running at {self.http_client.simulator_base_url}? Start it (`cutover sim serve`) or fix the profile's URLs"
        elif exc.tls:
            fix = "the TLS certificate of the identity platform could not be verified: check the clock, and if a proxy inspects TLS set SSL_CERT_FILE to its CA bundle"
        else:
            fix = f"check the network, DNS and proxy (HTTPS_PROXY) of this host; it must reach https://{AUTHORITY_HOST}"
        return self.error(
            f"the identity platform at {where} cannot be reached ({exc.detail})", code="unreachable", fix=fix
        )

    def from_result(self, result: Mapping[str, Any] | None) -> SignInError:
        result = result or {}
        codes = result.get("error_codes") or []
        desc = _first_line(str(result.get("error_description", ""))).rstrip(".")
        m = re.match(r"AADSTS(\d+)", desc)
        number = int(codes[0]) if codes else (int(m.group(1)) if m else None)
        error = str(result.get("error") or "unknown_error")
        fmt = {
            "cid": self.client_id,
            "tenant": self.tenant,
            "profile": self.profile.name,
            "secret_from": self.secret_from,
        }
        if number in _FIXES:
            short, fix = _FIXES[number]
            return self.error(
                f"AADSTS{number}: {short} ({error}: {desc})", code=f"AADSTS{number}", fix=fix.format(**fmt)
            )
        return self.error(
            (f"AADSTS{number}: " if number else "") + f"{error}: {desc or 'no description'}",
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


async def in_thread(session: MsalSession, fn: Callable[[], Any]) -> Any:
    """Run msal's blocking ``fn`` in a worker thread; anything but a SignInError or ConfigError
    that escapes becomes a SignInError of ``session`` (no secrets in it)."""
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
