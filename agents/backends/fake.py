"""Fakes that replay queued outputs and record their calls: for isolating routing logic in tests."""

from __future__ import annotations

from collections import deque

from agents.errors import ModelError

from .litellm_backend import Completion
from .llama_cpp import Generated, Scored


class FakeScoringBackend:
    """Stands in for a local scoring model: each call pops the next {label: logprob} mapping."""

    def __init__(self, outputs: list[dict[str, float] | ModelError], model_id: str = "fake-scorer") -> None:
        self.outputs = deque(outputs)
        self.calls: list[dict] = []
        self.model_id = model_id
        self.file_hash = None

    def score(self, messages, item, continuations) -> Scored:
        self.calls.append({"messages": messages, "item": item, "continuations": list(continuations)})
        output = self.outputs.popleft()
        if isinstance(output, ModelError):
            raise output
        return Scored(logprobs=[output[c] for c in continuations], tokens_in=len(item.split()),
                      tokens_out=len(continuations), prefix_reused=False)


class FakeCompletionBackend:
    """Stands in for a remote chat model: each call pops the next text (or raises a queued error)."""

    def __init__(self, outputs: list[str | ModelError], model_id: str = "fake-chat") -> None:
        self.outputs = deque(outputs)
        self.calls: list[list[dict]] = []
        self.model_id = model_id
        self.file_hash = None

    def complete(self, messages, schema=None) -> Completion:
        self.calls.append(messages)
        output = self.outputs.popleft()
        if isinstance(output, ModelError):
            raise output
        return Completion(text=output, tokens=None, tokens_in=10, tokens_out=2, cost=0.0)


class FakeGeneratingBackend:
    """Stands in for a local generating model: each call pops the next text (every token's
    log-probability is `logprob`; one "token" per character) or raises a queued error."""

    def __init__(self, outputs: list[str | ModelError], logprob: float = -0.01, model_id: str = "fake-generator") -> None:
        self.outputs = deque(outputs)
        self.calls: list[dict] = []
        self.logprob = logprob
        self.model_id = model_id
        self.file_hash = None

    def generate(self, messages, item, schema=None, max_tokens=128) -> Generated:
        self.calls.append({"messages": messages, "item": item, "schema": schema, "max_tokens": max_tokens})
        output = self.outputs.popleft()
        if isinstance(output, ModelError):
            raise output
        sizes = [len(ch.encode("utf-8")) for ch in output]
        return Generated(text=output, token_bytes=sizes, token_logprobs=[self.logprob] * len(sizes),
                         tokens_in=len(item.split()), tokens_out=len(sizes))
