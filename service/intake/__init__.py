"""Intake: a submitted body read, checked, resolved and staged, then committed and queued."""
