"""Outbound address policy for webhooks: only public destinations, unless allow-listed.

The check applies to *resolved* addresses (so decimal, hex and octal spellings of an IP, and names
that resolve to private addresses, are caught), against the standard library's tables and an explicit
deny list of special-purpose, documentation and translation ranges; to IPv4 and IPv6 alike; to
IPv4-mapped / -compatible, 6to4, Teredo and NAT64 forms (checked as the IPv4 address they carry); and
the caller connects to the checked address itself, so a second DNS answer cannot swap it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedDestination(ValueError):
    pass


# Kept beside the standard library's tables, which count some of these as global: special-purpose
# IPv4 (192.0.0.0/24, where cloud metadata services live, e.g. 192.0.0.192), benchmarking, the old
# IPv6 site-local range, and the translation prefixes whose embedded IPv4 address is checked too.
DENIED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "fec0::/10",
        "fc00::/7",
        "fe80::/10",
        "100::/64",
        "2001:db8::/32",
        "2001:10::/28",
        "2001:20::/28",
    )
)
NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if any(address in prefix for prefix in NAT64_PREFIXES):
        return ipaddress.IPv4Address(address.packed[12:])
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
    if any(address in network for network in DENIED_NETWORKS if network.version == address.version):
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

    def __init__(self, entries: Iterable[str], *, public: bool = True) -> None:
        self.public = public  # false: only the allow-listed destinations, public or not
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
        if allow.allows(host, address):
            continue
        if not allow.public:
            raise BlockedDestination(
                f"{host} ({address}) is not in TRELLIS_WEBHOOK_ALLOW_HOSTS, and public destinations are off "
                "(TRELLIS_WEBHOOK_PUBLIC_DESTINATIONS=false)"
            )
        if not is_public(address):
            raise BlockedDestination(
                f"{host} resolves to {address}, which is not a public address; "
                "add the host to TRELLIS_WEBHOOK_ALLOW_HOSTS to allow it"
            )
    return addresses[0]
