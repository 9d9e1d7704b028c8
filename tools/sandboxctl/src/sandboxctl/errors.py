"""The one error the operator commands raise: its message is the one line the CLI prints."""


class OperatorError(RuntimeError):
    """A command could not do its job; the message names what failed and what to check."""
