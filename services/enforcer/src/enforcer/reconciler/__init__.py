"""The reconciler: on its schedule (in the ticker process) or once (`sandboxctl reconcile`),
compares our state with E2B's list and publishes corrective facts (rules.py, reconcile.py)."""
