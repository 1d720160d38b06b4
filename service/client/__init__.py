"""The client side of the ``textbatch`` command: it talks to a running service over HTTP only."""
