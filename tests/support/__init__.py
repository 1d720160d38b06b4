"""Fixtures' building blocks: real Redis, real service processes, HTTP helpers."""
