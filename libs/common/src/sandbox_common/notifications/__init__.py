"""Notifications out (issue 17, item 5), the pure core: which lifecycle facts and warnings a
project hears about, how a delivery is signed, and which destinations are refused. The process
that delivers them (a consumer of the topic, retries, dead letters) is not built yet."""

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

__all__ = [
    "SIGNATURE_HEADER",
    "Destination",
    "DestinationError",
    "Notice",
    "NoticeKind",
    "Reach",
    "SignatureError",
    "check_address",
    "notice_of",
    "parse_destination",
    "sign",
    "verify",
]
