"""A project's receiver as the API takes it: `{url, events, secret}`. Refusals name the field
(422): the URL's form and destination (destinations.py), the events it asks for, a secret long
enough to sign with."""

from __future__ import annotations

from typing import Annotated

import msgspec

from sandbox_common.notifications.destinations import (
    DestinationError,
    Reach,
    parse_destination,
)
from sandbox_common.notifications.events import NoticeKind
from sandbox_common.policies.model import decode_named

# As long as our own secrets must be (settings.MIN_SECRET_BYTES): an HMAC key to guess.
MIN_SECRET_LENGTH = 32


class TargetError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class Target(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    # Each of NoticeKind's values at most once; every kind when left out.
    events: Annotated[list[NoticeKind], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: list(NoticeKind)
    )
    secret: Annotated[str, msgspec.Meta(min_length=MIN_SECRET_LENGTH, max_length=256)]

    def __post_init__(self) -> None:
        if len(set(self.events)) != len(self.events):
            raise ValueError("events: an event is named twice")


_decoder = msgspec.json.Decoder(Target)


def decode_target(body: bytes, reach: Reach) -> Target:
    """TargetError naming the field for anything else; the URL's host is not resolved here
    (I/O: the caller checks what it resolves to)."""
    target = decode_named(_decoder, body, TargetError)
    try:
        parse_destination(target.url, reach)
    except DestinationError as exc:
        raise TargetError(exc.field, exc.reason) from None
    return target
