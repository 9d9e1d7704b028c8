"""The actuator process: carries out commands from `sandbox-commands` against E2B (pause,
resume, extend timeout) and publishes what happened as facts (carry_out.py)."""
