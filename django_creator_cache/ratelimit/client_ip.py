"""The client's IP address, taken safely behind proxies, and the block it is limited by.

``REMOTE_ADDR`` is the only address nobody can forge: it is used as is unless
``RATELIMIT_TRUSTED_PROXIES`` says which peers are our own proxies. Only then is
``X-Forwarded-For`` read, from the right (each proxy appends the address it saw), skipping
trusted hops; the first address not vouched for by a trusted hop is the client. A forged
header sent straight to the site is ignored, so nobody escapes a limit by inventing one.
Parsing is cached (bounded LRUs); the settings are still read on every call.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from django.http import HttpRequest

from . import config

Address = IPv4Address | IPv6Address


@lru_cache(maxsize=4096)
def parse_address(text: str) -> Address | None:
    """An address from a header entry (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``), or None.

    IPv4-mapped IPv6 addresses (``::ffff:1.2.3.4``) are their IPv4 address, so a client
    counts the same over either stack.
    """
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_ip(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or behind trusted proxies the right hop of
    ``X-Forwarded-For``. A ``REMOTE_ADDR`` that is not an address (a Unix socket) is
    returned as is, or counts as a trusted hop when proxies are configured."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    trusted = config.trusted_proxies()
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "") if trusted else ""
    return _client_ip(remote, forwarded, trusted)


@lru_cache(maxsize=1024)
def _client_ip(remote: str, forwarded: str, trusted: config.TrustedProxies) -> str:
    current = parse_address(remote)
    if trusted:
        for hop, entry in enumerate(reversed(forwarded.split(","))):
            if not _is_trusted(trusted, hop, current):
                break
            previous = parse_address(entry)
            if previous is None:  # not an address: the chain ends at the hop we trust
                break
            current = previous
    return remote if current is None else str(current)


def _is_trusted(trusted: config.TrustedProxies, hop: int, address: Address | None) -> bool:
    """Whether the peer at ``hop`` (0 = ``REMOTE_ADDR``) is one of our proxies."""
    if isinstance(trusted, int):
        return hop < trusted
    return address is None or any(address in network for network in trusted)


def ip_group(address: str) -> str:
    """The block an address is limited by: its /64 for IPv6 (``RATELIMIT_IPV6_PREFIX``),
    itself for IPv4 (``RATELIMIT_IPV4_PREFIX`` = 32). One IPv6 host usually owns a whole
    /64, so limiting single IPv6 addresses would let it rotate past any limit."""
    parsed = parse_address(address)
    if parsed is None:
        return address
    v4 = isinstance(parsed, IPv4Address)
    return _block(parsed, config.prefix("RATELIMIT_IPV4_PREFIX" if v4 else "RATELIMIT_IPV6_PREFIX"))


@lru_cache(maxsize=4096)
def _block(address: Address, bits: int) -> str:
    if bits == address.max_prefixlen:
        return str(address)
    network = IPv4Network if isinstance(address, IPv4Address) else IPv6Network
    return str(network((int(address), bits), strict=False))
