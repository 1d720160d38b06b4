"""The benchmark harness: ``python -m bench`` measures textbatch against plain client scripts.

One command starts a stand-in upstream in its own process, the service as a
user runs it (``textbatch api`` and ``textbatch worker`` on a real Redis) and
the baseline scripts, runs each scenario, prints a table and writes the figures
to a JSON file. Every target is a ratio measured side by side in one run, since
the machines it runs on are small and shared.
"""
