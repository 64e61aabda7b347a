"""Egress policy of the skills that call out (http, llm): which targets a step may reach.

Pure: the caller resolves the target's host and passes every address it resolved to; the
policy answers with the reason of a refusal, or None.

- **Default deny** of every address that is not globally reachable: loopback, link-local,
  private (RFC 1918, ULA), multicast, unspecified, reserved and the other special-purpose
  ranges (``ipaddress``'s properties), also inside IPv4-mapped, NAT64 and 6to4 addresses.
- **Protected endpoints** — the deployment's own (Temporal frontend and Web UI, the HTTP
  API) — are refused always, even when an allow-list rule names them.
- **Allow-list rules** ``{"scheme", "host", "port"}`` (the operator's ``EGRESS_ALLOW`` plus
  the tenant's own) let a step reach what the default denies. ``host`` is a name (exact, or
  ``*.example.com`` for its subdomains), an IP, a CIDR, or ``*``; ``scheme`` and ``port``
  may be ``*``/null for any.
- Public addresses stay reachable without a rule unless the policy is ``exclusive``: the
  rules are exceptions to the default deny, not a list of the only reachable hosts.
- A target is refused if **any** of its addresses is refused.
"""

import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
ANY = "*"

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128")
)

# (name of the range, test) in the order a refusal names them: loopback before private.
_DENIED_RANGES: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("loopback", lambda a: a.is_loopback),
    ("unspecified", lambda a: a.is_unspecified),
    ("link-local", lambda a: a.is_link_local),
    ("multicast", lambda a: a.is_multicast),
    ("reserved", lambda a: a.is_reserved),
    ("private", lambda a: a.is_private),
    ("special-purpose", lambda a: not a.is_global),
)


class EgressRuleError(ValueError):
    """An allow-list rule that cannot be read; the message names the field."""


def parse_address(text: str) -> IPAddress:
    """An address as the resolver returns it (an IPv6 scope id is dropped)."""
    return ipaddress.ip_address(text.split("%", 1)[0])


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _judged(address: IPAddress) -> tuple[IPAddress, ...]:
    """The addresses a check looks at: an IPv4-mapped or NAT64 address is its IPv4 address;
    a 6to4 address is itself and its IPv4 address."""
    embedded = embedded_ipv4(address)
    if embedded is None:
        return (address,)
    if isinstance(address, ipaddress.IPv6Address) and address.sixtofour is not None:
        return (address, embedded)
    return (embedded,)


def denied_range(address: IPAddress) -> str | None:
    """The name of the default-denied range ``address`` is in, or None (globally reachable)."""
    for candidate in _judged(address):
        for name, is_in in _DENIED_RANGES:
            if is_in(candidate):
                return name
    return None


def _host_text(host: str) -> str:
    return host.strip().lower().removesuffix(".").removeprefix("[").removesuffix("]")


def _network(host: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(host, strict=False)
    except ValueError:
        return None


def _port(value: Any) -> int | None:
    if value is None or value == ANY:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise EgressRuleError(f"port: expected a number or '*', got {value!r}")
    try:
        port = int(value)
    except ValueError:
        raise EgressRuleError(f"port: expected a number or '*', got {value!r}") from None
    if not 1 <= port <= 65535:
        raise EgressRuleError(f"port: {port} is not between 1 and 65535")
    return port


def _scheme(value: Any) -> str | None:
    if value is None or value == ANY:
        return None
    scheme = str(value).lower()
    if scheme not in SCHEMES:
        raise EgressRuleError(f"scheme: expected http, https or '*', got {value!r}")
    return scheme


def _host(value: Any) -> str:
    if not isinstance(value, str) or not _host_text(value):
        raise EgressRuleError(f"host: expected a name, an IP, a CIDR or '*', got {value!r}")
    host = _host_text(value)
    network = _network(host)
    if network is not None:
        return str(network.network_address) if network.num_addresses == 1 else str(network)
    if "/" in host or " " in host or ":" in host:
        raise EgressRuleError(f"host: {value!r} is neither a name, an IP nor a CIDR")
    return host


@dataclass(frozen=True)
class EgressRule:
    """One allow-list entry; None means any scheme / any port."""

    scheme: str | None
    host: str
    port: int | None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "EgressRule":
        if not isinstance(raw, Mapping):
            raise EgressRuleError(f"expected an object with scheme, host, port, got {raw!r}")
        unknown = sorted(set(raw) - {"scheme", "host", "port"})
        if unknown:
            raise EgressRuleError(f"unknown fields: {', '.join(unknown)}")
        return cls(_scheme(raw.get("scheme")), _host(raw.get("host")), _port(raw.get("port")))

    @classmethod
    def parse_text(cls, text: str) -> "EgressRule":
        """``scheme://host[:port]`` (``*`` for any scheme, host or port; a URL without a
        port means the scheme's default port), or a JSON object."""
        text = text.strip()
        if text.startswith("{"):
            try:
                return cls.parse(json.loads(text))
            except json.JSONDecodeError as exc:
                raise EgressRuleError(f"not JSON ({exc.msg}): {text!r}") from None
        scheme, sep, rest = text.partition("://")
        if not sep or not rest:
            raise EgressRuleError(f"expected scheme://host[:port], got {text!r}")
        host, port = _split_host_port(rest.removesuffix("/"))
        if port is None and scheme != ANY:
            port = str(DEFAULT_PORTS.get(scheme.lower(), ANY))
        return cls.parse({"scheme": scheme, "host": host, "port": port})

    @classmethod
    def for_url(cls, url: str) -> "EgressRule":
        """The rule that allows exactly the origin (scheme, host, port) of ``url``."""
        scheme, _, rest = url.partition("://")
        authority = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        host, port = _split_host_port(authority)
        return cls.parse(
            {"scheme": scheme, "host": host, "port": port or DEFAULT_PORTS.get(scheme.lower())}
        )

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme or ANY, "host": self.host, "port": self.port or ANY}

    def matches(self, scheme: str, host: str, port: int, address: IPAddress) -> bool:
        if self.scheme is not None and self.scheme != scheme:
            return False
        if self.port is not None and self.port != port:
            return False
        return self._matches_host(_host_text(host), address)

    def _matches_host(self, host: str, address: IPAddress) -> bool:
        if self.host == ANY:
            return True
        network = _network(self.host)
        if network is not None:
            return any(a in network for a in (address, *_judged(address)))
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host


def _split_host_port(authority: str) -> tuple[str, str | None]:
    if authority.startswith("["):
        host, _, after = authority[1:].partition("]")
        return host, after.removeprefix(":") or None
    if authority.count(":") == 1:
        host, _, port = authority.partition(":")
        return host, port or None
    return authority, None


def parse_rules(raw: Iterable[Mapping[str, Any]] | None, source: str) -> tuple[EgressRule, ...]:
    """Every rule of an allow-list; ``source`` names the list in the error."""
    rules = []
    for i, entry in enumerate(raw or []):
        try:
            rules.append(EgressRule.parse(entry))
        except EgressRuleError as exc:
            raise EgressRuleError(f"{source}[{i}]: {exc}") from None
    return tuple(rules)


@dataclass(frozen=True)
class ProtectedEndpoint:
    """An endpoint of the deployment itself: never reachable by a step."""

    network: IPNetwork
    port: int


def deployment_endpoints(
    ports: Iterable[int], addresses: Iterable[str] = (), exact: Iterable[tuple[str, int]] = ()
) -> frozenset[ProtectedEndpoint]:
    """``ports`` on loopback, on the unspecified address and on each of ``addresses``,
    plus each (address, port) of ``exact``."""
    networks = [*_LOCAL_NETWORKS, *(ipaddress.ip_network(parse_address(a)) for a in addresses)]
    found = {ProtectedEndpoint(n, p) for n in networks for p in ports if p}
    found |= {ProtectedEndpoint(ipaddress.ip_network(parse_address(a)), p) for a, p in exact}
    return frozenset(found)


@dataclass(frozen=True)
class Target:
    """Where a request goes: its URL's scheme, host and port, and what the host resolved to."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "host": self.host, "port": self.port,
                "addresses": list(self.addresses)}  # fmt: skip


def endpoint_text(address: IPAddress, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


@dataclass(frozen=True)
class EgressPolicy:
    """The egress policy of one step: its tenant's rules and the operator's."""

    tenant_id: str
    rules: tuple[EgressRule, ...] = ()
    protected: frozenset[ProtectedEndpoint] = field(default_factory=frozenset)
    exclusive: bool = False

    def allowing(self, *rules: EgressRule) -> "EgressPolicy":
        """This policy with more rules (e.g. the operator's LLM endpoint)."""
        return replace(self, rules=(*self.rules, *rules))

    def refusal(self, target: Target, schemes: tuple[str, ...] = SCHEMES) -> str | None:
        """Why ``target`` may not be reached, or None when every address may be.
        ``schemes``: the ones this kind of call may use (an SMTP sink's is ``smtp``; only
        rules of any scheme, ``*``, match it)."""
        if target.scheme not in schemes:
            return f"scheme {target.scheme!r} is not allowed (only {' and '.join(schemes)})"
        if not target.addresses:
            return f"{target.host} resolves to no address"
        for text in target.addresses:
            reason = self._address_refusal(target, parse_address(text))
            if reason is not None:
                return reason
        return None

    def _address_refusal(self, target: Target, address: IPAddress) -> str | None:
        if self.is_protected(address, target.port):
            subject = _subject(target, address, with_port=True)
            return f"{subject} a protected endpoint of this deployment"
        if any(r.matches(target.scheme, target.host, target.port, address) for r in self.rules):
            return None
        no_entry = f"no allow-list entry for tenant {self.tenant_id}"
        denied = denied_range(address)
        if denied is not None:
            article = "an" if denied[0] in "aeiou" else "a"
            return f"{_subject(target, address)} in {article} {denied} range ({no_entry})"
        if self.exclusive:
            subject = _subject(target, address, with_port=True)
            return f"{subject} not allowed: the allow-list is exclusive ({no_entry})"
        return None

    def is_protected(self, address: IPAddress, port: int) -> bool:
        candidates = {address, *_judged(address)}
        return any(p.port == port and a in p.network for p in self.protected for a in candidates)


def _subject(target: Target, address: IPAddress, *, with_port: bool = False) -> str:
    """'10.0.0.5 is', or 'localhost resolves to 127.0.0.1, which is' (with ports if asked)."""
    shown = endpoint_text(address, target.port) if with_port else str(address)
    host = f"{target.host}:{target.port}" if with_port else target.host
    if _literal(target.host) == address:
        return f"{shown} is"
    return f"{host} resolves to {shown}, which is"


def _literal(host: str) -> IPAddress | None:
    """The address a URL host is, when it is an IP literal."""
    try:
        return parse_address(_host_text(host))
    except ValueError:
        return None
