"""Notifications out (issue 17, item 5), the pure core: which lifecycle facts and warnings a
project hears about, how a delivery is signed, and which destinations are refused. The projector
enqueues and delivers them (projector/notifications)."""

from sandbox_common.notifications.destinations import (
    Destination,
    DestinationError,
    Reach,
    check_address,
    parse_destination,
)
from sandbox_common.notifications.events import Notice, NoticeKind, notice_of
from sandbox_common.notifications.signing import (
    SIGNATURE_HEADER,
    SignatureError,
    sign,
    verify,
)
from sandbox_common.notifications.target import Target, TargetError, decode_target

__all__ = [
    "SIGNATURE_HEADER",
    "Destination",
    "DestinationError",
    "Notice",
    "NoticeKind",
    "Reach",
    "SignatureError",
    "Target",
    "TargetError",
    "check_address",
    "decode_target",
    "notice_of",
    "parse_destination",
    "sign",
    "verify",
]
