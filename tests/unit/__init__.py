"""In-process tests: one module or a few together, against real Redis and loopback stand-ins."""
