"""Stand-in upstreams (OpenAI-compatible servers on loopback) shared by the tests and bench."""
