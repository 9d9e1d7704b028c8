"""E2B's REST API: the client (`client`, httpx), what its list answers hold (`listing`, pure),
and the pacing of calls (`pacing`). Import from the modules: this one imports nothing, so the
pure parts come without httpx."""
