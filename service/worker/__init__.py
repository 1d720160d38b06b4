"""The worker: broker and dispatcher, chunk runner, result recorder, sweeper."""
