"""The gateway: OpenAI-shaped HTTP in, events appended to the log, reads served from the read models."""
