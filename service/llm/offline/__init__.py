"""A ChatBackend that answers the three tasks locally, so textbatch runs without an LLM."""

from service.llm.offline.engine import OFFLINE_MODEL, OfflineEngine

__all__ = ["OFFLINE_MODEL", "OfflineEngine"]
