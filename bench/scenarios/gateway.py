"""Scenario 7, realtime pass-through: textbatch as a gateway, side by side with LiteLLM's proxy.

The same mock upstream (no latency), the same request, the same closed-loop load
from this process: first straight to the upstream (what the machine allows),
then through ``textbatch api`` (one process), then through LiteLLM's proxy (one
worker) when it is installed — ``TEXTBATCH_BENCH_LITELLM`` names its ``litellm``
command, else it is looked up on PATH; it is never a dependency of the project.
Added latency is a gateway's p50 at one client minus the upstream's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from bench import procs
from bench.gateway_load import closed_loop
from bench.report import Check, ScenarioResult, ratio
from bench.runs import Context
from bench.service import ServiceSettings

TITLE = "realtime pass-through gateway vs LiteLLM"
BODY = {
    "model": "bench-model",
    "messages": [{"role": "user", "content": "Summarise: the order arrived late."}],
    "max_tokens": 20,
}
LITELLM_KEY = "sk-bench-litellm"


def _litellm_command() -> str | None:
    return os.environ.get("TEXTBATCH_BENCH_LITELLM") or shutil.which("litellm")


def _measure(url: str, headers: dict[str, str], ctx: Context) -> dict[str, Any]:
    seconds = ctx.sizes.gateway_seconds
    return {
        "load": closed_loop(url, headers, BODY, ctx.sizes.gateway_clients, seconds),
        "single": closed_loop(url, headers, BODY, 1, seconds / 2),
    }


def _litellm(ctx: Context, command: str) -> dict[str, Any]:
    work = ctx.scratch("s7-litellm")
    config = work / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench-model\n"
        "    litellm_params:\n"
        "      model: openai/bench-model\n"
        f"      api_base: {ctx.upstream.base_url}\n"
        "      api_key: sk-upstream\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
    )
    port = procs.free_port()
    env = {
        **procs.base_env(),
        # Its price map ships with it; fetching it from the network would stall the start.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
    }
    log = work / "litellm.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [command, "--config", str(config), "--port", str(port), "--num_workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        procs.wait_http_ok(f"{base}/health/liveliness", process, timeout=120, log=log)
        headers = {"authorization": f"Bearer {LITELLM_KEY}"}
        closed_loop(f"{base}/v1/chat/completions", headers, BODY, 4, 1.0)  # warm up
        return _measure(f"{base}/v1/chat/completions", headers, ctx)
    finally:
        procs.stop([process])


def run(ctx: Context) -> ScenarioResult:
    ctx.upstream.reset(0.0)
    direct = _measure(f"{ctx.upstream.base_url}/chat/completions", {}, ctx)
    settings = ServiceSettings(llm_concurrency=256, upstream_capacity=1024)
    with ctx.service("s7-gateway", settings, workers=0) as service:
        headers = {"x-api-key": service.key}
        url = f"{service.url}/v1/chat/completions"
        closed_loop(url, headers, BODY, 4, 1.0)  # warm the API's upstream connections
        ours = _measure(url, headers, ctx)
    command = _litellm_command()
    theirs = _litellm(ctx, command) if command else None
    result = ScenarioResult("7", TITLE, settings=settings.as_record())
    result.settings.update(clients=ctx.sizes.gateway_clients, seconds=ctx.sizes.gateway_seconds)
    upstream_p50 = direct["single"]["p50_ms"]

    def added(run: dict[str, Any] | None) -> float | None:
        if run is None or run["single"]["p50_ms"] is None:
            return None
        return round(run["single"]["p50_ms"] - upstream_p50, 2)

    result.figures = {
        "upstream": direct,
        "textbatch": ours,
        "litellm": theirs,
        "textbatch_added_p50_ms": added(ours),
        "litellm_added_p50_ms": added(theirs),
        "textbatch_vs_litellm_rps": ratio(
            ours["load"]["requests_per_s"], theirs["load"]["requests_per_s"] if theirs else None
        ),
    }
    result.checks = [
        Check("upstream alone", direct["load"]["requests_per_s"], "", None, " req/s"),
        Check("textbatch api", ours["load"]["requests_per_s"], "", None, " req/s"),
        Check("textbatch added p50", added(ours), "", None, " ms"),
        Check(
            "LiteLLM proxy",
            theirs["load"]["requests_per_s"] if theirs else None,
            "",
            None,
            " req/s",
        ),
        Check("LiteLLM added p50", added(theirs), "", None, " ms"),
        Check.at_least(
            "textbatch / LiteLLM req/s", result.figures["textbatch_vs_litellm_rps"], 1.0, "x"
        ),
    ]
    errors = ours["load"]["errors"] + (theirs["load"]["errors"] if theirs else 0)
    if errors:
        result.notes.append(f"{errors} requests answered other than 200")
    if theirs is None:
        result.notes.append(
            "LiteLLM not measured: install it apart (pip install 'litellm[proxy]') and set "
            "TEXTBATCH_BENCH_LITELLM to its litellm command"
        )
    return result
