"""The Redis read model, in one place: its key layout (`keys`; `Layout`, the shards), the status
document and how it is made (`document`), the deadline rule (`deadlines`: idle, and E2B's hard
end), the writers
(`writer` live, `shadow` for rebuilds), the readers (`reader`), the change feed (`feed`), and
the short-lived coordination keys beside it (`coordination`). Every service reads and writes
Redis through here; none spells a key, a document field or a deadline rule itself.

This module exports only the pure parts (no Redis client is imported with it), so domain code
can use the document and the rule; the Redis parts are imported from their modules.
"""

from sandbox_common.readmodel.deadlines import IDLE_OVERRIDE_KEY, DeadlineRule, PauseReason
from sandbox_common.readmodel.document import (
    POLL_AFTER_MS,
    TRANSITIONAL,
    DocSource,
    Status,
    StatusDoc,
    decode_doc,
    encode_doc,
    to_doc,
    transitional_since,
)
from sandbox_common.readmodel.keys import Layout

__all__ = [
    "IDLE_OVERRIDE_KEY",
    "POLL_AFTER_MS",
    "TRANSITIONAL",
    "DeadlineRule",
    "DocSource",
    "Layout",
    "PauseReason",
    "Status",
    "StatusDoc",
    "decode_doc",
    "encode_doc",
    "to_doc",
    "transitional_since",
]
