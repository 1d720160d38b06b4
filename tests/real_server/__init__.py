"""Tests against a real llama.cpp server with a small model, started on loopback."""
