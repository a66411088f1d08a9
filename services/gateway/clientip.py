"""Who is calling: the client address behind TRUSTED_PROXIES, and the anonymous identity.

X-Forwarded-For is believed only when the TCP peer is a trusted proxy, and then only as far
as the chain stays trusted: walking the header from the right (the hop nearest to us),
the first address that is not a trusted proxy is the client. A client can prepend
anything it likes to the header, but not past the proxies that append to it.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from aiohttp import web
from marshmallow import ValidationError, fields

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Anonymous IPv6 callers are counted per /64: one host usually holds a whole /64, so a
#: per-address bucket would be no limit at all.
IPV6_PREFIX = 64


class NetworkList(fields.Field):
    """TRUSTED_PROXIES: comma-separated addresses or CIDRs, loaded as a tuple of networks."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple:
        if not isinstance(value, str):
            raise ValidationError("comma-separated addresses or CIDRs such as 10.0.0.0/8")
        try:
            return tuple(
                ipaddress.ip_network(item.strip(), strict=False)
                for item in value.split(",")
                if item.strip()
            )
        except ValueError as exc:
            raise ValidationError(f"not an address or CIDR: {exc}") from None


# Cached: the same few peers and proxies call again and again, and ipaddress parses in
# Python. Both functions are pure and their results immutable.
@lru_cache(maxsize=4096)
def parse_address(text: str) -> IPAddress | None:
    """An address from a peer name or a forwarded hop (``[v6]:port`` and ``v4:port`` too)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, proxies: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in proxies)


def client_address(request: web.Request, proxies: tuple[IPNetwork, ...]) -> IPAddress | None:
    """The caller's address: the TCP peer, or what trusted proxies say it is."""
    address = parse_address(request.remote or "")
    if address is None or not _trusted(address, proxies):
        return address
    hops = [
        hop for header in request.headers.getall("X-Forwarded-For", ()) for hop in header.split(",")
    ]
    for hop in reversed(hops):
        forwarded = parse_address(hop)
        if forwarded is None:
            # A malformed hop: nothing left of it can be believed; the last trusted
            # proxy is the best address we have.
            break
        address = forwarded
        if not _trusted(address, proxies):
            break
    return address


@lru_cache(maxsize=4096)
def anonymous_identity(address: IPAddress | None) -> str:
    """``ip:<address>`` (IPv6 as its /64), the identity of a caller without an API key."""
    if address is None:
        return "ip:unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return f"ip:{ipaddress.ip_network(f'{address}/{IPV6_PREFIX}', strict=False)}"
    return f"ip:{address}"
