"""Contract tests: the official SDK unchanged, and the OpenAPI document fuzzed."""
