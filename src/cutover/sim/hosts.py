"""Which names the simulator answers to, which URL it writes into its answers, and which
token audiences are its own.

* **Host check** (DNS-rebinding protection): a web page on ``evil.example`` whose name an
  attacker re-points at 127.0.0.1 can make the browser send requests to the simulator, but
  its ``Host`` header still says ``evil.example``. Only loopback names are served —
  ``127.0.0.1``, ``localhost``, ``[::1]``, any port — plus the host of the configured base
  URL and any ``allowed_hosts`` given to :func:`cutover.sim.app.create_app` (the in-process
  test harness adds ``sim.test``). Anything else is refused before routing, on every route.
* **Service root**: links the simulator writes (``@odata.context``, ``@odata.nextLink``,
  ``OData-EntityId`` …) start with the *configured* base URL, never with the request's
  ``Host`` or ``X-Forwarded-Host``. Without one configured, the address of the socket the
  request arrived on (the ASGI ``server`` tuple, which a client cannot forge) is used.
* **Audiences**: a token is for this simulator when its ``aud`` is the simulator's own root
  under any served name and the served port (``http://127.0.0.1:PORT``,
  ``http://localhost:PORT`` — msal's scope ``<resource>/.default`` gives audience
  ``<resource>``), or the stable rehearsal resource :data:`REHEARSAL_RESOURCE`, which the
  tool's embedded profiles can use so that a cached token survives a restart on another port.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
REHEARSAL_RESOURCE = "https://rehearsal.cutover.local"
DEFAULT_BASE_URL = "http://127.0.0.1"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(value: str) -> tuple[str, int | None] | None:
    """``"127.0.0.1:8000"`` → ``("127.0.0.1", 8000)``; ``"[::1]"`` → ``("::1", None)``;
    None for anything that is not a host with an optional numeric port."""
    value = value.strip()
    if not value or any(c in value for c in "/@?# \t\\"):
        return None
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text = value.partition(":")
        if not sep:
            port_text = None
        elif ":" in port_text:
            return None
    if not host:
        return None
    if port_text is None:
        return host.lower().rstrip("."), None
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host.lower().rstrip("."), int(port_text)


def _normal_root(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL like http://127.0.0.1:8000, not {url!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


@dataclass
class HostPolicy:
    """The names the simulator answers to and the root URL it writes (see the module docstring)."""

    base_url: str | None = None
    allowed_hosts: Iterable[str] = ()
    _hosts: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_url = _normal_root(self.base_url) if self.base_url else None
        hosts = set(LOOPBACK_HOSTS)
        for h in self.allowed_hosts:
            parsed = split_host(h)
            if parsed is None:
                raise ValueError(f"allowed_hosts: {h!r} is not a host name")
            hosts.add(parsed[0])
        if self.base_url:
            hosts.add((urlsplit(self.base_url).hostname or "").lower())
        self._hosts = frozenset(hosts)
        self.allowed_hosts = tuple(sorted(hosts))

    def allows(self, host_header: str | None) -> bool:
        """Whether a request with this ``Host`` header is for this simulator."""
        parsed = split_host(host_header or "")
        return parsed is not None and parsed[0] in self._hosts

    def root(self, scope: dict) -> str:
        """The scheme://host[:port] the simulator writes into links, from its configuration
        (or the socket the request came in on) — never from the request's headers."""
        if self.base_url:
            return self.base_url
        server = scope.get("server")
        scheme = scope.get("scheme", "http")
        if server and server[0]:
            host, port = server[0], server[1]
            shown = f"[{host}]" if ":" in host else host
            if port is None or port == _DEFAULT_PORTS.get(scheme):
                return f"{scheme}://{shown}"
            return f"{scheme}://{shown}:{port}"
        return DEFAULT_BASE_URL

    def served_port(self, scope: dict) -> int:
        parts = urlsplit(self.root(scope))
        return parts.port or _DEFAULT_PORTS[parts.scheme]

    def is_own_resource(self, resource: str, scope: dict) -> bool:
        """Whether ``resource`` (a token's ``aud``, or a scope without ``/.default``) names
        this simulator: :data:`REHEARSAL_RESOURCE`, or its root under a served name and port."""
        resource = resource.strip().removesuffix("/.default").rstrip("/")
        if resource.lower() == REHEARSAL_RESOURCE:
            return True
        parts = urlsplit(resource)
        if parts.scheme != urlsplit(self.root(scope)).scheme or parts.path or parts.query or parts.fragment:
            return False
        if parts.username or parts.password:
            return False
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            return False
        return (parts.hostname or "") in self._hosts and port == self.served_port(scope)

    def describe(self, scope: dict) -> str:
        """For messages: the resources a token may be for."""
        return f"{self.root(scope)} or {REHEARSAL_RESOURCE}"
