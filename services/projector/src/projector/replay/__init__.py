"""Rebuilding the read models from `sandbox-lifecycle` (replay) or from PostgreSQL (Redis only).

The bulk path: every fact is folded in memory with the projector's own rules (`domain.evolve`),
then written once per sandbox (COPY into shadow tables, pipelined writes into shadow Redis keys),
and swapped in. The live projector keeps running throughout.
"""
