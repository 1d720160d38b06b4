"""A refused task line fails as model_refused, once, and the tokens it was billed still count."""

from __future__ import annotations

from pathlib import Path

from standins.unruly import Scripted, UnrulyUpstream, completion
from tests.support.batches import line, run_batch
from tests.support.service import start_service


def test_a_refusal_fails_its_line_and_its_tokens_count(redis_url: str, tmp_path: Path) -> None:
    with UnrulyUpstream() as upstream:
        upstream.rules["Refuse this"] = Scripted(
            body=completion(
                None,
                refusal="I can't help with that.",
                usage={"prompt_tokens": 9, "completion_tokens": 3},
            )
        )
        upstream.rules["Fine text"] = Scripted(
            body=completion(
                '{"summary": "Fine text."}', usage={"prompt_tokens": 10, "completion_tokens": 5}
            )
        )
        service = start_service(
            redis_url,
            tmp_path,
            llm_base_url=upstream.base_url,
            llm_model="unruly-model",
            llm_max_attempts="3",
            llm_backoff_base="0.01",
        )
        try:
            with service.client() as client:
                batch, outputs = run_batch(
                    client,
                    [
                        line("refused", {"model": "summarize", "text": "Refuse this, please."}),
                        line("fine", {"model": "summarize", "text": "Fine text. Really."}),
                    ],
                )
        finally:
            service.stop()
        refused_calls = [call for call in upstream.calls if "Refuse this" in str(call["body"])]

    by_id = {output["custom_id"]: output for output in outputs}
    assert by_id["refused"]["error"]["code"] == "model_refused"
    assert "I can't help with that." in by_id["refused"]["error"]["message"]
    assert by_id["fine"]["error"] is None
    assert len(refused_calls) == 1, "a refusal is not asked again"
    assert batch["request_counts"] == {
        "total": 2,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "expired": 0,
    }
    assert batch["usage"]["input_tokens"] == 19
    assert batch["usage"]["output_tokens"] == 8
