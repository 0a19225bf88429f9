"""Result values shared by every layer: what one tier produced, and what the cascade decided."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Decision = Literal["accept", "escalate", "error", "review"]  # review: kept by no tier, a person decides
# pending: paused before escalating (two-phase batches); needs_review: no answer could be kept (no tier
# was confident, the budget or the data policy stopped escalation), so a person decides
Outcome = Literal["accepted", "needs_review", "failed", "pending"]


class Check(BaseModel):
    """One hallucination or schema check of an answer: a failed check escalates the item."""

    model_config = ConfigDict(frozen=True)

    name: str  # e.g. schema, span, support
    passed: bool
    score: float | None = None  # in [0, 1] where the check has one (share of quotes found, similarity)
    reason: str = ""


class TierOutput(BaseModel):
    """What a task parser made of one model call, before any routing decision."""

    model_config = ConfigDict(frozen=True)

    answer: str | None
    label_probs: dict[str, float] = Field(default_factory=dict)
    label_logprobs: list[float] | None = None  # raw full-sequence log-probability per label, in label order
    confidence: float | None = None
    raw_output: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    invalid_reason: str | None = None
    checks: list[Check] = Field(default_factory=list)
    # a tier serving several trained artifacts (a reader per task) names the one that answered
    model_id: str | None = None
    model_file_hash: str | None = None


class Attempt(BaseModel):
    """One tier's try at a task, kept whether or not it was accepted."""

    tier_index: int
    tier_name: str
    model_id: str
    model_file_hash: str | None
    prompt_version: str
    answer: str | None = None
    label_probs: dict[str, float] = Field(default_factory=dict)
    confidence: float | None = None
    raw_confidence: float | None = None  # the model's own top probability, before calibration
    calibration: str | None = None  # which calibration artifact set confidence and threshold, or why none
    threshold: float | None = None
    decision: Decision = "error"
    reason: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost: float = 0.0
    error: str | None = None
    redactions: dict[str, int] = Field(default_factory=dict)  # entity type -> count replaced before sending
    checks: list[Check] = Field(default_factory=list)  # any failed check escalates (or, on the last tier, reviews)


class CascadeResult(BaseModel):
    """The cascade's final answer for one task, with every attempt that led to it."""

    run_id: str
    task: str
    outcome: Outcome
    answer: str | None
    confidence: float | None
    tier_name: str | None
    reason: str
    attempts: list[Attempt]
    latency_ms: float
    cost: float

    @property
    def escalated(self) -> bool:
        return len(self.attempts) > 1
