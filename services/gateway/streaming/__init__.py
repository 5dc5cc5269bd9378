"""Server-sent events: runs and threads streamed live from the log plus token deltas, resumable by event id."""
