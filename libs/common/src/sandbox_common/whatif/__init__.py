"""What-if on the topic: a sandbox's demand as the facts recorded it (trace.py), that demand
replayed under an idle rule (replay.py), the figures of many such replays (ledger.py), and the
idle timeout learned from a project's demand (learn.py). Pure: no I/O, no clock."""
