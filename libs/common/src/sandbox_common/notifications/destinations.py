"""Which URLs a project may have notifications sent to. A notification is a request our
servers make to an address a project chose: without these checks a project could aim it at
the cloud's metadata service, an admin port on loopback or a database on the private network
(server-side request forgery).

Two steps, because resolving a name is I/O: `parse_destination` checks the URL's form (and an
IP literal at once); the caller resolves the host and passes every address to `check_address`,
at registration and again before each delivery (a name may resolve elsewhere later).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

_SCHEMES = {"http": 80, "https": 443}
_MAX_URL = 2048


class Reach(enum.IntEnum):
    """How far inside our own networks a destination may be (a setting; the dev stack's
    receivers listen on loopback)."""

    PUBLIC = 0
    LOOPBACK = 1
    PRIVATE = 2  # loopback and the private ranges


class DestinationError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"url: {reason}")
        self.field = "url"
        self.reason = reason


@dataclass(frozen=True)
class Destination:
    url: str
    host: str
    port: int


def parse_destination(url: str, reach: Reach = Reach.PUBLIC) -> Destination:
    if len(url) > _MAX_URL:
        raise DestinationError(f"longer than {_MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationError(f"not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise DestinationError("must be http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise DestinationError("must not carry a user or password (the secret signs instead)")
    if parts.fragment:
        raise DestinationError("must not have a #fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise DestinationError("has no host")
    literal = _ip(host)
    if literal is not None:
        check_address(literal, reach)
    elif host == "localhost" or host.endswith(".localhost"):
        check_address(ipaddress.ip_address("127.0.0.1"), reach)
    return Destination(url, host, port or _SCHEMES[scheme])


def check_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, reach: Reach = Reach.PUBLIC
) -> None:
    """DestinationError unless `reach` lets a notification go to `address`."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_global and not address.is_multicast:
        return
    if address.is_loopback:
        if reach >= Reach.LOOPBACK:
            return
        raise DestinationError(f"{address} is a loopback address")
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        # Link-local holds the clouds' metadata services: never, whatever the setting.
        raise DestinationError(f"{address} is link-local, multicast or unspecified")
    if reach >= Reach.PRIVATE:
        return
    raise DestinationError(f"{address} is a private or reserved address")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
