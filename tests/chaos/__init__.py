"""Tests that kill real processes: workers, the API, Redis."""
