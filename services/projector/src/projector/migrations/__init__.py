"""Schema migrations, applied in file-name order under an advisory lock (see adapters/schema.py)."""
