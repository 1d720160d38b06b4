"""A native line's first call: captured instead of sent, later answered from the upstream batch.

A task line is rendered by running the very task path of the direct lane with a
``CapturingBackend``: its first upstream call is written as the body the HTTP
backend would send, and the run stops there. When the upstream batch has ended the
line runs the same path again with a ``ReplayingBackend``, which answers that first
call from the batch's result and sends any further call (a re-ask after an
unusable answer, more calls of a long text) directly. So validation, grounding and
post-processing are the direct lane's own code.
"""

from __future__ import annotations

from typing import Any

from service.llm.base import ChatReply, ChatRequest
from service.llm.native.base import NativeResult
from service.llm.openai_compat import OpenAICompatibleBackend
from service.llm.reply_reading import UnusableBody, chat_reply, read_completion, usage_of


class CallCaptured(Exception):
    """Stops a task run at its first upstream call; the call's body was recorded."""


class _StandInFor:
    """A backend that speaks for a real one: its name, budget and context are the real one's."""

    def __init__(self, real: OpenAICompatibleBackend) -> None:
        self.real = real

    @property
    def name(self) -> str:
        return self.real.name

    @property
    def output_token_cap(self) -> int:
        return self.real.output_token_cap

    @property
    def context_tokens(self) -> int | None:
        return self.real.context_tokens


class CapturingBackend(_StandInFor):
    """Records the bodies of the calls a task makes and sends none of them."""

    def __init__(self, real: OpenAICompatibleBackend) -> None:
        super().__init__(real)
        self.bodies: list[dict[str, Any]] = []

    async def complete(self, request: ChatRequest) -> ChatReply:
        self.bodies.append(self.real.request_body(request))
        raise CallCaptured

    async def aclose(self) -> None:
        """The real backend is the worker's; it closes it."""


class ReplayingBackend(_StandInFor):
    """Answers the first call from an upstream batch's result, every later one directly."""

    def __init__(self, real: OpenAICompatibleBackend, result: NativeResult) -> None:
        super().__init__(real)
        self._result: NativeResult | None = result

    async def complete(self, request: ChatRequest) -> ChatReply:
        result, self._result = self._result, None
        if result is not None and result.state == "succeeded" and result.body is not None:
            try:
                read = read_completion(result.body)
            except UnusableBody:
                pass  # as a direct call would, ask again, here directly
            else:
                usage = usage_of(result.body)
                return chat_reply(read, self.real.model, read.completion_id, usage, 1)
        # An errored line, or an answer that is no completion: the direct lane's own call.
        return await self.real.complete(request)

    async def aclose(self) -> None:
        """The real backend is the worker's; it closes it."""
