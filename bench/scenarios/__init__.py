"""The benchmark scenarios, one module each, numbered as in the issue."""
