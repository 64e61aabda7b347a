"""Outbound HTTP of the skills that call out (http, llm), under the egress policy.

The policy is domain.egress; this is its enforcement, the one path every outbound call
takes:

- **Vetted, then pinned.** The URL's host is resolved (``socket.getaddrinfo``); if any
  address is refused the call is refused (``EgressRefused``, not retryable). The request
  then goes to a vetted address itself: the URL is rewritten to that IP while the
  ``Host`` header and, for https, the TLS server name (SNI — and so the certificate check)
  keep the original name. Nothing resolves the name a second time, so a DNS answer that
  changes between the check and the connection (DNS rebinding) cannot swap the address.
  (The vetted addresses are tried in the resolver's order when one refuses the connection.)
- **Redirects hop by hop.** httpx never follows them; each Location is vetted the same
  way, up to MAX_REDIRECTS. A redirect to another origin carries none of the step's
  headers (they may hold the tenant's secrets).
- **No shared client state.** Each call has its own httpx.Client (so its own connection
  pool), whose cookie jar never stores a cookie, with ``trust_env`` off (no proxy from the
  environment, no ``.netrc`` credentials). Only the TLS context (CA certificates; no
  client-side session cache) is shared. A cookie a server sets during one step therefore
  never reaches another step, tenant or run.

Nothing here logs a URL or a header; httpx's own request log is quieted
(``quiet_http_client_logs``).
"""

import contextlib
import http.cookiejar
import logging
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

from activities.skills.errors import SkillError
from domain.egress import (
    DEFAULT_PORTS,
    EgressPolicy,
    EgressRule,
    ProtectedEndpoint,
    Target,
    deployment_endpoints,
)

MAX_REDIRECTS = 5
_REDIRECT_TO_GET = {301: ("POST",), 302: ("POST",), 303: ("POST", "PUT", "DELETE", "PATCH")}

log = logging.getLogger(__name__)


def quiet_http_client_logs() -> None:
    """httpx logs every request's URL at INFO, httpcore its traffic at DEBUG: keep both to
    warnings, so that no step's URL (which may carry a secret) reaches the logs."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


class EgressRefused(SkillError):
    """A call the egress policy refuses; fails the step, not retryably, with the reason."""

    def __init__(self, reason: str, target: Target | None = None) -> None:
        super().__init__(f"egress refused: {reason}", retryable=False)
        self.reason = reason
        self.target = target


class _NeverStore(http.cookiejar.DefaultCookiePolicy):
    """A cookie policy that accepts no cookie and returns none."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def no_cookies() -> http.cookiejar.CookieJar:
    return http.cookiejar.CookieJar(policy=_NeverStore())


def resolve(host: str, port: int) -> tuple[str, ...]:
    """Every address ``host`` resolves to, in the resolver's order, each once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SkillError(f"cannot resolve {host}: {exc}", retryable=True) from None
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def target_of(url: httpx.URL) -> Target:
    """The target of ``url``, its host resolved (nothing is resolved for a bad scheme)."""
    port = url.port or DEFAULT_PORTS.get(url.scheme, 0)
    if url.scheme not in DEFAULT_PORTS or not url.host:
        return Target(url.scheme, url.host, port, ())
    return Target(url.scheme, url.host, port, resolve(url.host, port))


def origin_of(url: httpx.URL | str) -> str:
    """scheme://host:port of ``url``: what messages name (never a path or a query)."""
    url = httpx.URL(str(url))
    port = url.port or DEFAULT_PORTS.get(url.scheme, 0)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}:{port}"


@dataclass
class DeploymentEndpoints:
    """The worker's own endpoints: ``ports`` on loopback, on the unspecified address and on
    the addresses of ``hosts``, plus each (host, port) of ``exact``; resolved on first use."""

    ports: tuple[int, ...]
    hosts: tuple[str, ...] = ()
    exact: tuple[tuple[str, int], ...] = ()
    _protected: frozenset[ProtectedEndpoint] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def protected(self) -> frozenset[ProtectedEndpoint]:
        with self._lock:
            if self._protected is None:
                self._protected = deployment_endpoints(
                    self.ports,
                    [a for host in self.hosts for a in self._addresses(host)],
                    [(a, port) for host, port in self.exact for a in self._addresses(host)],
                )
            return self._protected

    @staticmethod
    def _addresses(host: str) -> tuple[str, ...]:
        try:
            return resolve(host, 0)
        except SkillError:
            log.warning("egress: cannot resolve the deployment's host %s; not protected", host)
            return ()


@dataclass(frozen=True)
class Outbound:
    """How a skill calls out for one step: the step's egress policy, the shared TLS context."""

    policy: EgressPolicy
    tls: ssl.SSLContext

    def allowing(self, *rules: EgressRule) -> "Outbound":
        return Outbound(self.policy.allowing(*rules), self.tls)

    def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One call, its redirects followed hop by hop, each hop vetted; raises
        EgressRefused, SkillError (too many redirects) or httpx.HTTPError."""
        with httpx.Client(
            verify=self.tls,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            cookies=no_cookies(),
        ) as client:
            return self._follow(client, method, httpx.URL(url), dict(headers or {}), json)

    def _follow(
        self, client: httpx.Client, method: str, url: httpx.URL, headers: dict, body: Any
    ) -> httpx.Response:
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send_vetted(client, method, url, headers, body)
            if not response.has_redirect_location:
                return response
            next_url = _redirect_target(url, response.headers["location"])
            if origin_of(next_url) != origin_of(url):
                headers = {}
            if method in _REDIRECT_TO_GET.get(response.status_code, ()):
                method, body = "GET", None
            url = next_url
        raise SkillError(f"{origin_of(url)}: more than {MAX_REDIRECTS} redirects", retryable=False)

    def _send_vetted(
        self, client: httpx.Client, method: str, url: httpx.URL, headers: dict, body: Any
    ) -> httpx.Response:
        target = target_of(url)
        reason = self.policy.refusal(target)
        if reason is not None:
            raise EgressRefused(reason, target)
        sent = {k: v for k, v in headers.items() if k.lower() != "host"}
        sent["Host"] = url.netloc.decode("ascii")
        tls_name = {"sni_hostname": url.host} if url.scheme == "https" else {}
        *others, last = target.addresses
        for address in others:  # every address was vetted: try them in order, as sockets do
            with contextlib.suppress(httpx.ConnectError, httpx.ConnectTimeout):
                return client.send(_pinned(client, method, url, address, sent, body, tls_name))
        return client.send(_pinned(client, method, url, last, sent, body, tls_name))


def _pinned(client: httpx.Client, method: str, url: httpx.URL, address: str, headers: dict,
            body: Any, extensions: dict) -> httpx.Request:  # fmt: skip
    """The request to ``url`` sent to ``address`` itself (Host and SNI keep the name)."""
    pinned = url.copy_with(host=address.split("%", 1)[0])
    return client.build_request(method, pinned, headers=headers, json=body, extensions=extensions)


def _redirect_target(url: httpx.URL, location: str) -> httpx.URL:
    try:
        return url.join(location)
    except httpx.InvalidURL:
        raise SkillError(
            f"{origin_of(url)} redirected to an invalid URL", retryable=False
        ) from None


@dataclass(frozen=True)
class Egress:
    """The worker's egress settings; ``for_tenant`` binds them to one step's tenant."""

    operator_rules: tuple[EgressRule, ...]
    deployment: DeploymentEndpoints
    tls: ssl.SSLContext
    exclusive: bool = False

    def for_tenant(self, tenant_id: str, tenant_rules: tuple[EgressRule, ...]) -> Outbound:
        policy = EgressPolicy(
            tenant_id=tenant_id,
            rules=(*self.operator_rules, *tenant_rules),
            protected=self.deployment.protected(),
            exclusive=self.exclusive,
        )
        return Outbound(policy, self.tls)
