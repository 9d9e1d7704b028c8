"""Pre-warming: ahead of the returns a project's policy expects (`prewarm`), the ticker replica
holding its lease resumes the project's PAUSED sandbox, within the project's daily budget of
sandbox-minutes; if nobody comes, the idle rule pauses it again."""
