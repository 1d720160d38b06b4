"""The upstream key never leaves through a pass-through answer or error, batch or realtime."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from standins.unruly import Scripted, UnrulyUpstream, completion
from tests.support.batches import line, run_batch
from tests.support.service import start_service

KEY = "sk-echoed-upstream-key-8d21f0"

# Each marker names one way an upstream answer may carry the key back.
ECHOES = {
    "echo-400-json": Scripted(
        status=400, body={"error": {"message": f"Invalid bearer Bearer {KEY}", "type": "x"}}
    ),
    "echo-401-plain": Scripted(status=401, body=f"Unauthorized: {KEY}"),
    "echo-422-list": Scripted(status=422, body=[{"detail": f"key {KEY} is bad"}]),
    "echo-500": Scripted(status=500, body={"error": {"message": f"proxy broke with {KEY}"}}),
    "echo-200": Scripted(body=completion(f"the key is {KEY}"), headers={"x-request-id": KEY}),
    "echo-redirect": Scripted(status=307, headers={"Location": f"http://127.0.0.1:9/{KEY}"}),
}
ENDPOINTS: dict[str, Callable[[str], dict[str, Any]]] = {
    "/v1/chat/completions": lambda marker: {
        "model": "m",
        "messages": [{"role": "user", "content": marker}],
    },
    "/v1/embeddings": lambda marker: {"model": "m", "input": marker},
    "/v1/completions": lambda marker: {"model": "m", "prompt": marker},
}


def test_no_pass_through_path_echoes_the_upstream_key(redis_url: str, tmp_path: Path) -> None:
    with UnrulyUpstream() as upstream:
        upstream.rules.update(ECHOES)
        service = start_service(
            redis_url,
            tmp_path,
            log_dir=tmp_path,
            llm_base_url=upstream.base_url,
            llm_api_key=KEY,
            llm_max_attempts="2",
            llm_backoff_base="0.01",
            log_level="debug",
        )
        seen: list[str] = []
        outputs: list[dict[str, Any]] = []
        try:
            with service.client() as client:
                # A batch calls one endpoint, so one batch per endpoint.
                for url, make in ENDPOINTS.items():
                    lines = [
                        {
                            **line(f"{marker}:{url.strip('/').replace('/', '.')}", make(marker)),
                            "url": url,
                        }
                        for marker in ECHOES
                    ]
                    batch, some = run_batch(client, lines)
                    outputs += some
                    seen.append(str(batch))
                    seen += [str(output) for output in some]
                for marker in ECHOES:
                    for url, make in ENDPOINTS.items():
                        answer = client.post(url, json=make(marker))
                        seen.append(f"{answer.status_code} {answer.headers} {answer.text}")
        finally:
            service.stop()
            logs = service.logs()

    # Every path was taken: each marker's lines came back, most as errors.
    assert len(outputs) == len(ECHOES) * len(ENDPOINTS)
    by_id = {output["custom_id"]: output for output in outputs}
    chat = "v1.chat.completions"
    assert by_id[f"echo-400-json:{chat}"]["response"]["status_code"] == 400
    assert by_id[f"echo-400-json:{chat}"]["error"]["code"] == "upstream_rejected"
    assert by_id[f"echo-500:{chat}"]["error"]["code"] == "upstream_error"
    assert by_id[f"echo-redirect:{chat}"]["error"]["code"] == "upstream_rejected"
    echoed = by_id[f"echo-200:{chat}"]["response"]["body"]["choices"][0]["message"]["content"]
    assert echoed == "the key is ***"
    assert len(upstream.calls) > 2 * len(ECHOES) * len(ENDPOINTS) - 1
    assert any("***" in text for text in seen), "the echoes did come back, scrubbed"
    for text in seen:
        assert KEY not in text
    assert KEY not in logs
