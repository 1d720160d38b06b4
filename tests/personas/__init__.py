"""Tests against stand-ins with the habits of real LLM servers."""
