"""A chat backend for in-process task tests: scripted replies, every request recorded."""

from __future__ import annotations

from service.llm.base import ChatReply, ChatRequest


class ScriptedBackend:
    """Answers each request with the next scripted reply and records what it was asked.

    By default it is a backend with no budget cap of its own and room for any text;
    ``cap`` gives it an output cap, ``context_tokens`` a context window.
    """

    def __init__(
        self,
        replies: list[ChatReply | Exception],
        cap: int | None = None,
        context_tokens: int | None = None,
    ) -> None:
        self.replies = replies
        self.requests: list[ChatRequest] = []
        self.output_token_cap = 1_000_000 if cap is None else cap
        self.context_tokens = context_tokens

    @property
    def name(self) -> str:
        return "scripted"

    async def complete(self, request: ChatRequest) -> ChatReply:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def aclose(self) -> None:
        return None
