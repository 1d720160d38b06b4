"""Through the service: a dripping or huge upstream answer fails its line, batch or realtime."""

from __future__ import annotations

from pathlib import Path

from standins.unruly import Scripted, UnrulyUpstream, completion
from tests.support.batches import line, run_batch
from tests.support.service import start_service

MAX_BYTES = 256 * 1024


def test_dripping_and_huge_answers_fail_their_lines_and_nothing_huge_is_stored(
    redis_url: str, tmp_path: Path
) -> None:
    with UnrulyUpstream() as upstream:
        drip = Scripted(body=completion('{"summary": "slow"}'), drip_seconds=0.5)
        upstream.rules["drip-feed"] = drip
        upstream.rules["huge-answer"] = Scripted(
            body=completion("FILL"), huge_bytes=100 * 1024 * 1024
        )
        upstream.rules["Plain text"] = Scripted(body=completion('{"summary": "Plain text."}'))
        service = start_service(
            redis_url,
            tmp_path,
            llm_base_url=upstream.base_url,
            llm_model="unruly-model",
            llm_timeout="1.5",
            llm_max_attempts="1",
            llm_max_response_bytes=str(MAX_BYTES),
        )
        try:
            with service.client() as client:
                batch, outputs = run_batch(
                    client,
                    [
                        line("drip-task", {"model": "summarize", "text": "drip-feed it."}),
                        line("huge-task", {"model": "summarize", "text": "huge-answer it."}),
                        line(
                            "drip-pass",
                            {"model": "m", "messages": [{"role": "user", "content": "drip-feed"}]},
                        ),
                        line(
                            "huge-pass",
                            {
                                "model": "m",
                                "messages": [{"role": "user", "content": "huge-answer"}],
                            },
                        ),
                        line("fine", {"model": "summarize", "text": "Plain text. More."}),
                    ],
                )
                realtime_drip = client.post(
                    "/v1/chat/completions", json={"model": "summarize", "text": "drip-feed now."}
                )
                realtime_huge = client.post(
                    "/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "huge-answer"}]},
                )
        finally:
            service.stop()

    codes = {output["custom_id"]: (output["error"] or {}).get("code") for output in outputs}
    assert codes == {
        "drip-task": "upstream_timeout",
        "huge-task": "upstream_response_too_large",
        "drip-pass": "upstream_timeout",
        "huge-pass": "upstream_response_too_large",
        "fine": None,
    }
    assert batch["request_counts"] == {
        "total": 5,
        "completed": 1,
        "failed": 4,
        "cancelled": 0,
        "expired": 0,
    }
    assert all(len(str(output)) < MAX_BYTES for output in outputs)
    assert realtime_drip.json()["error"]["code"] == "upstream_timeout"
    assert realtime_huge.json()["error"]["code"] == "upstream_response_too_large"
    assert realtime_huge.status_code >= 500
