# textbatch: the default command runs the whole service (API, a worker and an embedded
# Valkey, data in the /data volume). compose.yaml runs API, workers and Redis apart.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TEXTBATCH_HOST=0.0.0.0 \
    TEXTBATCH_DATA_DIR=/data

WORKDIR /app

# Dependencies first, read from pyproject.toml alone: this layer is rebuilt only when
# the dependencies change, not on every code change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt

COPY README.md ./
COPY service ./service
COPY tasks ./tasks
COPY prompts ./prompts
RUN pip install --no-cache-dir --no-deps . \
    && useradd --create-home --uid 1000 textbatch && mkdir -p /data && chown textbatch /data
COPY docker/entrypoint.sh /usr/local/bin/textbatch-entrypoint

# The entrypoint starts as root only to make a bind-mounted /data writable, then runs
# the command as the textbatch user (setpriv, part of util-linux in the base image).
ENTRYPOINT ["textbatch-entrypoint"]
VOLUME ["/data"]
EXPOSE 8000
# Ready means Redis answers, the disk has room and the upstream (if any) answers.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["textbatch", "serve"]
