"""The enforcer's shared domain, pure (no I/O, no clock): the idle decision the ticker makes and
the actuator re-checks (`idle`), and what E2B's answers mean for a command (`outcomes`)."""
