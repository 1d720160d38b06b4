"""The text tasks: one module per task, each with its request model, schema, prompt and result."""
