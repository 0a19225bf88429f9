"""The reader tier's answers in the shapes of the ask and contract tasks, with the same checks.

A reader quotes a passage by construction, so the span check passes on its answers; it still runs
(as does the support check on an ask answer), so a reader's answer is held to what every tier's is.
The confidence is the reader's own span share (agents.reader): the best span's softmax share against
its window's candidates and null score when it answers, the null's share when it abstains.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from agents import contracts, qa, qa_checks
from agents.errors import InvalidOutputError
from agents.reader import Reading
from agents.results import Check, TierOutput

_SCHEMA = Check(name="schema", passed=True, score=1.0, reason="the reader's span, written as the task's JSON answer")


def _reader(backend, task: str):
    if not hasattr(backend, "reader"):
        raise InvalidOutputError(f"{type(backend).__name__} is not an extractive reader")
    return backend.reader(task)


def _raw(reading: Reading) -> str:
    """What the audit's raw output keeps of a reading: the scores behind the decision."""
    best = reading.best
    return json.dumps({"span": reading.span.text if reading.span else None, "best": best and best.text,
                       "passage": best and best.passage + 1, "margin": round(reading.margin, 4),
                       "span_prob": round(reading.span_prob, 4), "null_prob": round(reading.null_prob, 4)})


def answer(backend, payload: dict[str, Any], *, embed: Callable[[list[str]], np.ndarray],
           support_threshold: float = qa.SUPPORT_THRESHOLD, support_model: qa_checks.SupportModel | None = None,
           **_: Any) -> TierOutput:
    """The ask task on a reader tier: the best span of the passages with its citation, or null."""
    reader = _reader(backend, "ask")
    question, passages = payload["text"], list(payload["passages"])
    reading = reader.read(question, passages)
    span = reading.span
    output = (qa.QAOutput(answer=span.text, citations=[qa.Citation(passage=span.passage + 1, quote=span.text)])
              if span is not None else qa.QAOutput(answer=None, citations=[]))
    checks = [_SCHEMA, qa.span_check(output, passages),
              qa.support_check(question, output, passages, embed, support_threshold, support_model)]
    return TierOutput(answer=output.model_dump_json(), confidence=reading.confidence, raw_output=_raw(reading),
                      checks=checks, model_id=reader.model_id, model_file_hash=reader.file_hash)


def review(backend, payload: dict[str, Any], **_: Any) -> TierOutput:
    """The contract task on a reader tier: the category's clause as the best span, or no clause."""
    reader = _reader(backend, "contract")
    category, passages = payload["category"], list(payload["passages"])
    reading = reader.read(contracts.question(category), passages)
    span = reading.span
    output = contracts.ClauseOutput(present=span is not None, clause=span.text if span is not None else None)
    return TierOutput(answer=output.model_dump_json(), confidence=reading.confidence, raw_output=_raw(reading),
                      checks=[_SCHEMA, contracts.span_check(output, passages)], model_id=reader.model_id,
                      model_file_hash=reader.file_hash)
