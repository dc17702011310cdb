"""Which addresses a far end may have: one parser for outbound calls and the cloud start-up check.

The resolver decides what a host means, never a regular expression: ``127.1``,
``2130706433``, ``0x7f000001`` and ``0177.0.0.1`` are all 127.0.0.1 to ``getaddrinfo``
(``inet_aton``'s spellings), ``[::ffff:127.0.0.1]`` is loopback in IPv6 clothing, and ``0``
is 0.0.0.0. So ``literal_address(host)`` asks ``getaddrinfo`` with ``AI_NUMERICHOST`` (no DNS
query), ``resolve(host, port)`` asks it for a name, and ``internal_kind`` classifies the
``ipaddress`` of what came back:

    internal_kind(address) → "unspecified" | "loopback" | "link-local" | "multicast"
                             | "unique-local" | "private" | "non-public" | None (public)

An IPv4-mapped IPv6 address is classified as the IPv4 address it carries.

``AddressPolicy`` decides, per resolved address, whether a call may connect to it: locally
anything goes (the warehouse stand-in listens on 127.0.0.1); in the cloud only public
addresses, unless a webhook's catalog table allows more (``allow_private = true`` for private
and unique-local networks, or a list of networks, the only way to reach loopback or
link-local ones such as the metadata server 169.254.169.254).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SockAddr = tuple[Any, ...]   # (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6
IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
# What ``allow_private = true`` opens: networks a VPC may route to. Never loopback, link-local
# (the metadata server), unspecified or multicast: those only by naming the network.
PRIVATE_KINDS = frozenset({"private", "unique-local", "non-public"})


@dataclass(frozen=True)
class Resolved:
    """One address the resolver gave for a host: how to connect to it, and what it is."""

    family: int
    sockaddr: SockAddr
    address: IPAddress


def internal_kind(address: IPAddress) -> str | None:
    """What keeps ``address`` off the public internet (``"loopback"``, …), or ``None`` when it is public."""
    address = unmapped(address)
    for kind, found in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                        ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                        ("unique-local", address in UNIQUE_LOCAL), ("private", address.is_private)):
        if found:
            return kind
    return None if address.is_global else "non-public"


def unmapped(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) carries; else ``address``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def literal_address(host: str | None) -> IPAddress | None:
    """The address ``host`` spells as the resolver reads a numeric host (``127.1`` is 127.0.0.1), or ``None``."""
    name = (host or "").strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if not name:
        return None
    try:
        found = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return _address(str(found[0][4][0])) if found else None


def resolve(host: str, port: int) -> list[Resolved]:
    """Every TCP address ``host`` resolves to now (``socket.gaierror`` when none)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [Resolved(family, tuple(sockaddr), _address(str(sockaddr[0])))
            for family, _, _, _, sockaddr in found if family in IP_FAMILIES]


def _address(text: str) -> IPAddress:
    """``ipaddress`` of a resolver's answer, without an IPv6 zone (``fe80::1%eth0``)."""
    return ipaddress.ip_address(text.split("%", 1)[0])


def parse_allow_private(value: object) -> bool | tuple[str, ...]:
    """``allow_private`` from the catalog: ``true``/``false`` or a list of networks (``"10.8.0.0/16"``).

    Raises ``ValueError`` saying what to write instead.
    """
    if isinstance(value, bool):
        return value
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("webhook allow_private must be true, false or a list of networks, "
                         "e.g. [\"10.8.0.0/16\"]")
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"webhook allow_private: {item!r} is not a network or an address, "
                             "e.g. \"10.8.0.0/16\" or \"10.8.0.5\"") from None
    return tuple(value)


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses an outbound call may connect to (see the module docstring).

    The default allows every address: the local backend, and a client built directly.
    """

    refuse_internal: bool = False
    allow_private: bool = False
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def for_backend(cls, cloud: bool, allow_private: bool | Sequence[str] = False) -> "AddressPolicy":
        """The policy of a webhook: anything locally; in the ``cloud``, public addresses and what
        its ``allow_private`` names."""
        if isinstance(allow_private, bool):
            return cls(refuse_internal=cloud, allow_private=allow_private)
        networks = tuple(ipaddress.ip_network(item, strict=False) for item in allow_private)
        return cls(refuse_internal=cloud, allowed_networks=networks)

    def refusal(self, address: IPAddress) -> str | None:
        """Why a call must not connect to ``address`` (its internal kind), or ``None`` when it may."""
        if not self.refuse_internal:
            return None
        kind = internal_kind(address)
        if kind is None or self._listed(address):
            return None
        return None if self.allow_private and kind in PRIVATE_KINDS else kind

    def _listed(self, address: IPAddress) -> bool:
        address = unmapped(address)
        # ``in`` does not compare versions: 127.0.0.1 would be "in" ::/96.
        return any(address.version == net.version and address in net for net in self.allowed_networks)
