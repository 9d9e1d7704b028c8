"""E2B simulator: a local stand-in for api.e2b.app, built to reference/e2b.md."""
