"""The store: Redis, one module per aggregate, the batch lifecycle and its scripts."""
