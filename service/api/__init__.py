"""The HTTP edge: FastAPI app, one router per resource, errors turned into responses."""
