"""Sign-in: msal token sources for Dataverse and Finance and Operations, one per resource.

Every profile signs in through msal, the Microsoft Authentication Library, so the code path
that runs on the cutover night is the one every rehearsal and test runs:

* ``client-secret`` (and ``simulator``, a rehearsal profile's default) —
  :class:`MsalClientSecretSource`: ``ConfidentialClientApplication`` with the secret from
  :func:`cutover.secret_source.resolve_secret`, the OAuth 2.0 client credentials flow
  ("Microsoft identity platform and the OAuth 2.0 client credentials flow": scope
  ``<resource>/.default``).
* ``certificate`` — :class:`MsalCertificateSource`: the same flow with a certificate credential
  (:func:`cutover.certificates.certificate_credential`), which msal turns into a signed client
  assertion.
* ``device-code`` — :class:`MsalDeviceCodeSource`: ``PublicClientApplication`` and the OAuth 2.0
  device authorization grant, for an operator over SSH: ``on_code(message, user_code,
  verification_uri)`` shows the code, polling can be cancelled (msal's documented way: set the
  flow's ``expires_at`` to 0), and the refresh token then serves both resources silently
  (refresh tokens of the identity platform are not bound to one resource).

Silent first: ``acquire_token_for_client`` looks in the token cache before it asks the identity
platform (msal ≥ 1.23, documented), and the device-code source calls ``acquire_token_silent``
(cache, then refresh token) before it ever shows a code. msal treats an access token that
expires within five minutes as expired and refreshes it.

Every source is a :class:`cutover.tokens.TokenSource` — the one contract the transport
consumes. The pieces they are built from live in their own modules (their names are
re-exported here for callers):

* :mod:`cutover.signin` — the msal session per client id, :class:`SignInError`;
* :mod:`cutover.msal_http` — the http client msal uses, and routing to the simulator's
  identity-platform stand-ins for rehearsal profiles;
* :mod:`cutover.token_cache` — the per-profile token cache ``<workspace>/.tokens/``;
* :mod:`cutover.certificates` — the certificate credential.

Every failure is a :class:`SignInError` naming profile, tenant, client id, the AADSTS code and
the fix; it never contains a secret or a token. A missing secret is a
:class:`cutover.config.ConfigError`, raised before any network traffic. This module is core
code: no Textual, nothing from ``cutover.sim``.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msal

from .certificates import certificate_credential
from .msal_http import (
    AUTHORITY_HOST,
    IdentityHttpClient,
    IdentityPlatformUnreachable,
    IdentityResponse,
    IdentityRoutingError,
    RoutedIdentityHttpClient,
)
from .profile import Profile
from .redaction import redact
from .secret_source import describe_secret_source, resolve_secret
from .signin import MsalSession, OnCode, SignInError, in_thread
from .token_cache import TokenCacheFile, token_cache_path
from .tokens import TokenSource

__all__ = [
    "AUTHORITY_HOST",
    "REHEARSAL_RESOURCE",
    "IdentityHttpClient",
    "IdentityPlatformUnreachable",
    "IdentityResponse",
    "IdentityRoutingError",
    "MsalCertificateSource",
    "MsalClientSecretSource",
    "MsalDeviceCodeSource",
    "MsalTokenSource",
    "OnCode",
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

# The tenant the rehearsal simulator knows by default. Deliberately a copy, not an import:
# the simulator shares no code with the clients.
REHEARSAL_TENANT = "contoso.onmicrosoft.com"


# --- token sources ------------------------------------------------------------------------------


class MsalTokenSource(TokenSource):
    """Bearer tokens for one resource (``scope`` = ``<resource URL>/.default``) and one client id,
    from an msal :class:`~cutover.signin.MsalSession`.

    ``await source.token()`` answers from the cache while the token is good (msal treats one
    that expires within five minutes as expired) and signs in again otherwise;
    ``force_refresh=True`` skips the cached access token (e.g. after a 401)."""

    resource: str  # "dataverse" | "fno"
    scope: str
    client_id: str

    def __init__(self, session: MsalSession, resource: str, scope: str):
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


class _ConfidentialSource(MsalTokenSource):
    def _acquire(self, force_refresh: bool) -> str:
        session = self._session
        app = session.app()
        if force_refresh:
            # acquire_token_for_client() refuses force_refresh; drop this scope's cached access
            # token (TokenCache.search / remove_at) so the call below asks the platform.
            for at in list(
                session.cache.cache.search(
                    msal.TokenCache.CredentialType.ACCESS_TOKEN,
                    target=[self.scope],
                    query={
                        "client_id": session.client_id,
                        "environment": app.authority.instance,
                        "realm": app.authority.tenant,
                        "home_account_id": None,
                    },
                )
            ):
                session.cache.cache.remove_at(at)
        session.http_client.clear_last_error()
        result = app.acquire_token_for_client(scopes=[self.scope])  # cache first, then the platform
        session.cache.save()
        if result and "access_token" in result:
            return result["access_token"]
        raise session.from_result(result)

    async def token(self, *, force_refresh: bool = False) -> str:
        return await in_thread(self._session, lambda: self._acquire(force_refresh))


class MsalClientSecretSource(_ConfidentialSource):
    """Client credentials with a client secret (``ConfidentialClientApplication``)."""

    def _method(self) -> str:
        return f"client secret from {self._session.secret_from}"


class MsalCertificateSource(_ConfidentialSource):
    """Client credentials with a certificate: msal signs a client assertion with the key."""

    def _method(self) -> str:
        return f"certificate {self._session.profile.cert_path}"


class MsalDeviceCodeSource(MsalTokenSource):
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
        found, failure = await in_thread(session, lambda: self._silent(force_refresh))
        if found:
            return found
        async with session.interactive_lock():
            # another source of this profile may have signed in while we waited
            found, failure2 = await in_thread(session, lambda: self._silent(force_refresh))
            if found:
                return found
            failure = failure2 or failure
            if session.on_code is None:
                reason = "no valid sign-in is cached"
                if failure:
                    reason += f" and the refresh failed ({session.from_result(failure).reason})"
                raise session.error(
                    reason,
                    code="sign-in-required",
                    fix=f"run `cutover login {session.profile.name}` and complete the device code sign-in",
                )
            return await self._device_flow()

    async def _device_flow(self) -> str:
        session = self._session
        app: msal.PublicClientApplication = await in_thread(session, session.app)
        flow = await in_thread(session, lambda: app.initiate_device_flow(scopes=[self.scope]))
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

        worker = asyncio.ensure_future(in_thread(session, poll))
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
                f"the device code sign-in was cancelled after {time.monotonic() - started:.0f} s",
                code="cancelled",
                fix=f"run `cutover login {session.profile.name}` again when you are ready to sign in",
            )
        if result and "access_token" in result:
            claims = result.get("id_token_claims") or {}
            session.username = claims.get("preferred_username") or session.username
            return result["access_token"]
        error = (result or {}).get("error")
        if error in ("authorization_pending", "slow_down", "expired_token"):
            raise session.error(
                "the device code expired before the sign-in was completed",
                code="expired",
                fix=f"run `cutover login {session.profile.name}` again and finish the sign-in at the URL shown within its time limit",
            )
        if error == "authorization_declined":
            raise session.error(
                "the sign-in request was declined on the sign-in page",
                code="declined",
                fix=f"run `cutover login {session.profile.name}` again and approve the request",
            )
        raise session.from_result(result)

    def _cancel_requested(self) -> bool:
        cancel = self._session.cancel
        return bool(cancel is not None and cancel.is_set())

    async def _watch_cancel(self, cancelled: threading.Event) -> None:
        while not self._cancel_requested():
            await asyncio.sleep(0.05)
        cancelled.set()


# --- factories ----------------------------------------------------------------------------------


def _origin(url: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "", "", ""))


def _resources(profile: Profile, sim_url: str | None) -> tuple[str, str, IdentityHttpClient, str]:
    """(dataverse URL, F&O URL, http client, tenant) for a profile."""
    if profile.is_rehearsal:
        base = sim_url or (profile.dataverse_url and _origin(profile.dataverse_url))
        if not base:
            raise SignInError(
                "this rehearsal profile runs its own simulator, and no simulator URL was given",
                profile=profile.name,
                code="no-simulator",
                fix="start the simulator for the profile's sim_db first and pass its URL (sim_url)",
            )
        http: IdentityHttpClient = RoutedIdentityHttpClient(base)
        if profile.embedded_simulator:
            return (REHEARSAL_RESOURCE, REHEARSAL_RESOURCE, http, profile.tenant or REHEARSAL_TENANT)
        return (profile.dataverse_url or base, profile.fno_url or base, http, profile.tenant or REHEARSAL_TENANT)
    if not profile.tenant:
        raise SignInError(
            "the profile names no tenant",
            profile=profile.name,
            code="no-tenant",
            fix=f'add tenant = "contoso.onmicrosoft.com" (or the tenant id) to [profiles.{profile.name}]',
        )
    return (profile.dataverse_url or "", profile.fno_url or "", IdentityHttpClient(), profile.tenant)


# The one resource every embedded rehearsal profile asks tokens for: the simulator's port changes
# from run to run, so a port-bound scope would make every cached token useless the next time.
# The simulator accepts this audience besides its own URL.
REHEARSAL_RESOURCE = "https://rehearsal.cutover.local"


def _scope(resource_url: str) -> str:
    return resource_url.rstrip("/") + "/.default"


def _session_for(
    profile: Profile,
    client_id: str,
    workspace: str | Path,
    http: IdentityHttpClient,
    tenant: str,
    cache: TokenCacheFile,
    environ: Mapping[str, str],
    on_code: OnCode | None,
    cancel: Any,
) -> MsalSession:
    method = profile.auth or "simulator"
    if method == "device-code":
        return MsalSession(
            profile=profile,
            tenant=tenant,
            client_id=client_id,
            kind="device-code",
            http_client=http,
            cache=cache,
            on_code=on_code,
            cancel=cancel,
        )
    secret_from = describe_secret_source(profile, client_id, environ)
    if method == "certificate":
        cert_file = profile.cert_file(workspace)
        assert cert_file is not None  # config requires cert_path for certificate sign-in
        has_passphrase = bool(profile.secret_env or profile.keyring_service)
        passphrase = (lambda: resolve_secret(profile, environ, client_id)) if has_passphrase else None
        try:  # read now: a missing file or wrong passphrase shows before any network traffic
            credential = certificate_credential(cert_file, passphrase)
        except ValueError as exc:
            raise SignInError(
                str(exc),
                profile=profile.name,
                tenant=tenant,
                client_id=client_id,
                code="certificate",
                fix=f"check cert_path of profile '{profile.name}' (a PEM file with the private key and the certificate, or a .pfx) "
                f"and, if the key is encrypted, its passphrase in {secret_from}",
            ) from None
        return MsalSession(
            profile=profile,
            tenant=tenant,
            client_id=client_id,
            kind="certificate",
            http_client=http,
            cache=cache,
            credential=lambda: credential,
            secret_from=secret_from,
        )
    secret = resolve_secret(profile, environ, client_id)  # ConfigError if missing: before any network
    return MsalSession(
        profile=profile,
        tenant=tenant,
        client_id=client_id,
        kind="client-secret",
        http_client=http,
        cache=cache,
        credential=lambda: secret,
        secret_from=secret_from,
    )


def _source_class(profile: Profile) -> type[MsalTokenSource]:
    return {"device-code": MsalDeviceCodeSource, "certificate": MsalCertificateSource}.get(
        profile.auth or "", MsalClientSecretSource
    )


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
