"""Kafka topic names and consumer groups (the contract's names, in one place)."""

from typing import Final

LIFECYCLE = "sandbox-lifecycle"
COMMANDS = "sandbox-commands"
LIFECYCLE_DLQ = "sandbox-lifecycle.dlq"
# Notifications a project's receiver kept refusing, with the reason (never redriven onto the
# lifecycle: they are notices, not facts).
NOTIFICATIONS_DLQ = "sandbox-notifications.dlq"
# Compacted: each sandbox's latest state and the lifecycle offset it reflects, written by the
# projector, so a rebuild reads the fleet plus the lifecycle's tail instead of all its history.
STATE = "sandbox-state"

# Every producer compresses its batches: facts are JSON with repeated field names, and the
# lifecycle topic keeps every record for ever (replay source), so disk, replication and the
# bytes a replay reads shrink several times for a little producer CPU.
COMPRESSION: Final = "zstd"


def record_key(sandbox_id: str) -> bytes:
    """Records are keyed by sandbox id so one sandbox's facts stay in one partition, in order."""
    return sandbox_id.encode()
