"""Kafka topic names and consumer groups (the contract's names, in one place)."""

LIFECYCLE = "sandbox-lifecycle"
COMMANDS = "sandbox-commands"
LIFECYCLE_DLQ = "sandbox-lifecycle.dlq"


def record_key(sandbox_id: str) -> bytes:
    """Records are keyed by sandbox id so one sandbox's facts stay in one partition, in order."""
    return sandbox_id.encode()
