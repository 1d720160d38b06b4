"""Clients for upstreams' own batch APIs (the native lane): one module per dialect."""
