"""LLM backends: an OpenAI-compatible HTTP client and the built-in offline engine."""
