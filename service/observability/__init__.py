"""Operators' view of the service: Prometheus metrics, recorded by every layer, served by the API.

The lowest layer: it imports no other part of the service, so any layer may import it.
"""
