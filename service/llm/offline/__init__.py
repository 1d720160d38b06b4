"""A ChatBackend that answers the three tasks locally, so textbatch runs without an LLM."""

from service.llm.offline.engine import OfflineEngine

__all__ = ["OfflineEngine"]
