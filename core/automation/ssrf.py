"""Outbound address policy for webhooks: only public destinations, unless allow-listed.

The check applies to *resolved* addresses (so decimal, hex and octal spellings of an IP, and names
that resolve to private addresses, are caught), to IPv4 and IPv6 alike, to IPv4-mapped / -compatible,
6to4 and Teredo IPv6 forms (checked as the IPv4 address they carry), and the caller connects to the
checked address itself, so a second DNS answer cannot swap it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedDestination(ValueError):
    pass


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address.packed[:12] == bytes(12) and address != ipaddress.IPv6Address("::1") and int(address) > 1:
        return ipaddress.IPv4Address(address.packed[12:])  # deprecated IPv4-compatible ::a.b.c.d
    return None


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


class AllowList:
    """Hosts (exact names) and networks (CIDR or single IPs) that may be reached although not public."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.hosts: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.rstrip("."))

    def allows(self, host: str, address: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        return any(address in network for network in self.networks if network.version == address.version)


def check_destination(host: str, addresses: list[IPAddress], allow: AllowList) -> IPAddress:
    """The address to connect to: the first resolved one, if every resolved one is permitted."""
    if not addresses:
        raise BlockedDestination(f"{host} did not resolve to any address")
    for address in addresses:
        if not (is_public(address) or allow.allows(host, address)):
            raise BlockedDestination(
                f"{host} resolves to {address}, which is not a public address; "
                "add the host to TRELLIS_WEBHOOK_ALLOW_HOSTS to allow it"
            )
    return addresses[0]
