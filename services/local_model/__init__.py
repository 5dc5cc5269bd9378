"""threadlog's offline model: a deterministic OpenAI-compatible chat-completions server, not an LLM."""
