"""Fakes that replay queued outputs and record their calls: for isolating routing logic in tests."""

from __future__ import annotations

from collections import deque

from agents.errors import ModelError

from .litellm_backend import Completion
from .llama_cpp import Scored


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
