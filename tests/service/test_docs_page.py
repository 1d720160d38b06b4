"""``/docs`` works offline (every asset from the service itself) and can send the key."""

from __future__ import annotations

import json
import re
from urllib.parse import urljoin

import httpx

from tests.support.service import RunningService

OUTSIDE = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.IGNORECASE)


def test_docs_loads_every_asset_from_the_service(offline_service: RunningService) -> None:
    page = httpx.get(f"{offline_service.url}/docs")
    assert page.status_code == 200
    html = page.text
    assert not OUTSIDE.search(html), "the page names an outside address"
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        fetched = httpx.get(urljoin(f"{offline_service.url}/docs", asset))
        assert fetched.status_code == 200, asset
        assert fetched.content, asset
    script = httpx.get(urljoin(f"{offline_service.url}/docs", "/docs/assets/swagger-ui-bundle.js"))
    assert "SwaggerUIBundle" in script.text
    # Swagger UI would show a badge from validator.swagger.io without this.
    assert '"validatorUrl": null' in html
    # The page fetches its document from the service too.
    assert "url: '/openapi.json'" in html
    assert httpx.get(f"{offline_service.url}/redoc").status_code == 404


def test_the_document_carries_both_key_schemes(offline_service: RunningService) -> None:
    document = httpx.get(f"{offline_service.url}/openapi.json").json()
    assert document["components"]["securitySchemes"] == {
        "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
        "Bearer": {"type": "http", "scheme": "bearer"},
    }
    paths = document["paths"]
    assert paths["/v1/batches"]["post"]["security"] == [{"ApiKeyHeader": []}, {"Bearer": []}]
    assert paths["/v1/files"]["get"]["security"] == [{"ApiKeyHeader": []}, {"Bearer": []}]
    assert "security" not in paths["/healthz"]["get"]


def test_try_it_out_with_the_key_as_swagger_sends_it(offline_service: RunningService) -> None:
    key = offline_service.keys[0]
    with_header = httpx.get(f"{offline_service.url}/v1/batches", headers={"x-api-key": key})
    with_bearer = httpx.get(
        f"{offline_service.url}/v1/batches", headers={"authorization": f"Bearer {key}"}
    )
    assert with_header.status_code == with_bearer.status_code == 200


def test_the_jsonl_body_is_described_with_an_example_the_service_accepts(
    offline_service: RunningService,
) -> None:
    document = httpx.get(f"{offline_service.url}/openapi.json").json()
    content = document["paths"]["/v1/batches"]["post"]["requestBody"]["content"]
    jsonl = content["application/jsonl"]
    assert "One JSON request per line" in jsonl["schema"]["description"]
    example = jsonl["example"]
    assert all(json.loads(row)["custom_id"] for row in example.splitlines())
    accepted = httpx.post(
        f"{offline_service.url}/v1/batches",
        content=example.encode(),
        headers={"x-api-key": offline_service.keys[0], "content-type": "application/jsonl"},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["request_counts"]["total"] == 2


def test_descriptions_have_no_rest_backticks(offline_service: RunningService) -> None:
    document = httpx.get(f"{offline_service.url}/openapi.json").text
    assert "``" not in document
    # Markdown single backticks instead, as the docstrings meant.
    batches = json.loads(document)["paths"]["/v1/batches"]["post"]["description"]
    assert "`Idempotency-Key`" in batches
