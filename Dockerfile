# One image for both roles: the API by default; run a worker with
#   docker run … textbatch worker
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TEXTBATCH_HOST=0.0.0.0 \
    TEXTBATCH_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY tasks ./tasks
COPY prompts ./prompts
RUN pip install --no-cache-dir . && useradd --create-home textbatch && mkdir -p /data \
    && chown textbatch /data
USER textbatch
VOLUME ["/data"]
EXPOSE 8000
CMD ["textbatch", "api"]
