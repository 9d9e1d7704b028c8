"""The ticker process: on its schedule, the replica holding the lease judges the due part of the
idle-deadline index and asks for pauses (tick.py), and repairs sandboxes stuck in PAUSING or
STARTING (repair.py). The reconciler runs in the same process, beside it."""
