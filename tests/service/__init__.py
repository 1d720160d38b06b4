"""Tests of the real service: API and worker processes over HTTP, Redis and a stand-in upstream."""
