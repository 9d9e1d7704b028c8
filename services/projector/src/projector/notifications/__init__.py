"""Notifications out (issue 17, item 5): the projector enqueues a notice in the transaction that
stores its fact (adapters/notification_outbox.py); every projector replica also delivers what
is due, signed, retried with backoff, dead-lettered to `sandbox-notifications.dlq` when it keeps
failing (delivery.py, with its I/O in outbox_rows.py and sender.py)."""
