"""textbatch service: HTTP API, storage, queue, workers and LLM clients."""
