"""Keys stay secret: no client key or upstream key in any log, response or output line."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis

from standins.upstream import StandinUpstream
from tests.support.batches import line, output_lines, submit, wait_finished
from tests.support.service import start_service

UPSTREAM_SECRET = "sk-upstream-do-not-leak-7f3a9c"


def test_no_key_appears_in_logs_responses_outputs_or_redis(redis_url: str, tmp_path: Path) -> None:
    # Given a service logging at debug level, whose upstream rejects some calls
    with StandinUpstream(api_key=UPSTREAM_SECRET) as upstream:
        service = start_service(
            redis_url,
            tmp_path,
            log_dir=tmp_path,
            llm_base_url=upstream.base_url,
            llm_api_key=UPSTREAM_SECRET,
            llm_max_attempts="2",
            llm_backoff_base="0.01",
            log_level="debug",
        )
        seen: list[str] = []
        try:
            with service.client() as client:
                lines = [
                    line("ok", {"model": "summarize", "text": "A fine day. Nothing else."}),
                    line("fails", {"model": "summarize", "text": "Broken [[fail:500]]"}),
                    line("rejected", {"model": "summarize", "text": "Refused [[fail:401]]"}),
                    line(
                        "passthrough",
                        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                    ),
                ]
                batch = submit(client, lines).json()
                seen.append(str(wait_finished(client, batch["id"])))
                seen += [str(item) for item in output_lines(client, batch["id"])]
                seen.append(client.get("/v1/batches").text)
                for text in ("Realtime [[fail:401]]", "Realtime [[fail:500]]", "fine"):
                    seen.append(
                        client.post(
                            "/v1/chat/completions", json={"model": "summarize", "text": text}
                        ).text
                    )
                seen.append(
                    httpx.get(f"{service.url}/v1/batches", headers={"x-api-key": "wrong"}).text
                )
                seen.append(httpx.get(f"{service.url}/readyz").text)
        finally:
            service.stop()
            logs = service.logs()

    assert any("Broken" in text or "fails" in text for text in seen)
    assert "DEBUG" in logs or "debug" in logs.lower(), "debug logging was on"
    secrets = [UPSTREAM_SECRET, *service.keys]
    for secret in secrets:
        assert secret not in logs
        for text in seen:
            assert secret not in text
    # Keys are kept only as hashes: no Redis value holds one.
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match="textbatch:*"):
            assert not any(secret.encode() in key for secret in secrets)
            if client.type(key) == b"hash":
                for value in client.hgetall(key).values():
                    assert not any(secret.encode() in value for secret in secrets)
    finally:
        client.close()
