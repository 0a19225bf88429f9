"""The task families the cascade runs: each one's prompt, prompt version, label set and evidence.

Fraud flagging is classification with its own instruction line, a fixed label set and rule-based
risk indicators recorded next to the verdict; both run through the same graph and scoring.
Document QA ("ask") generates a JSON answer with citations to retrieved passages; its checks
(schema, span, support) ride on each attempt and a failed one escalates. Contract review
("contract") runs the same way per (contract, clause category), on passages retrieved for the category.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from agents import classify as classification
from agents import contracts, fraud, qa, reader_tasks
from agents.errors import InvalidInputError
from agents.results import TierOutput

from orchestrator.core.qa_support import load_support_model


@dataclass(frozen=True)
class TaskSpec:
    name: str
    instruction: str  # the prompt's system line
    prompt_base: str  # the prompt version without demonstrations; calibration artifacts match on it
    labels: tuple[str, ...] | None = None  # a fixed label set in prompt order, or None: each call gives its own
    evidence: Callable[[str], dict[str, Any]] = lambda text: {}  # recorded in the audit run's params
    label_scored: bool = True  # answers are label scores (what `cascade calibrate` fits); False: generated text

    def run(self, backend, payload: dict[str, Any]) -> TierOutput:
        return classification.classify(backend, payload, self.instruction)

    def runner(self, embed: Callable[[list[str]], Any], settings: Any) -> Callable[[Any, dict[str, Any]], TierOutput]:
        """The (backend, payload) -> TierOutput function the graph calls, with this task's dependencies."""
        return self.run

    def item_fields(self, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Payload fields beyond text/labels/demonstrations that the task's runner needs, and what
        the audit run's params record of them."""
        return {}, {}

    def prompt_version(self, demonstrations: list[tuple[str, str]] = (), vote_weight: float = 0.0) -> str:
        return classification.prompt_version(demonstrations, base=self.prompt_base, vote_weight=vote_weight)

    def labels_for(self, labels: Any) -> list[str]:
        """The item's label set: the caller's (checked), or the task's fixed one."""
        if self.labels is None:
            return classification.validate_labels(labels)
        if labels is not None:
            raise InvalidInputError(f"the {self.name} task has fixed labels ({', '.join(self.labels)}); give no labels")
        return list(self.labels)


@dataclass(frozen=True)
class QATaskSpec(TaskSpec):
    """Document QA: the payload carries the retrieved passages; no labels, no demonstrations."""

    label_scored: bool = False

    def runner(self, embed, settings):
        checks = {"embed": embed, "support_threshold": settings.support_threshold, "support_model": load_support_model()}
        return partial(_by_backend, partial(qa.answer, **checks, max_tokens=settings.max_answer_tokens),
                       partial(reader_tasks.answer, **checks))

    def item_fields(self, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        passages, sources = self.passages(payload)
        return {"passages": passages}, {"passages": sources}

    def passages(self, payload: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        """The payload's passage texts (checked), and what the audit keeps of them: where each came
        from (file or contract, offsets, content hash), not its text."""
        passages = payload.get("passages")
        if not isinstance(passages, list) or not passages or not all(isinstance(p, str) and p.strip() for p in passages):
            raise InvalidInputError(f"the {self.name} task needs a non-empty list of passage texts")
        return passages, payload.get("sources") or [{"chars": len(p)} for p in passages]

    def prompt_version(self, demonstrations=(), vote_weight: float = 0.0) -> str:
        return self.prompt_base

    def labels_for(self, labels: Any) -> list[str]:
        return []


@dataclass(frozen=True)
class ContractTaskSpec(QATaskSpec):
    """Contract review: the payload carries one clause category and the contract's passages retrieved
    for it; the text is the category's question."""

    def runner(self, embed, settings):
        return partial(_by_backend, partial(contracts.review, embed=embed, max_tokens=settings.max_answer_tokens),
                       reader_tasks.review)

    def item_fields(self, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        passages, sources = self.passages(payload)
        category = payload.get("category")
        if category not in contracts.CATEGORIES:
            raise InvalidInputError(f"the contract task needs a known clause category; got {category!r}")
        return ({"passages": passages, "category": category},
                {"category": category, "contract": payload.get("contract"), "passages": sources})


def _by_backend(generate: Callable[..., TierOutput], read: Callable[..., TierOutput], backend,
                payload: dict[str, Any]) -> TierOutput:
    """A reader tier (an extractive reader) answers by pointing at a span; any other tier generates."""
    return (read if hasattr(backend, "reader") else generate)(backend, payload)


def _fraud_evidence(text: str) -> dict[str, Any]:
    return {"indicators": [i.model_dump() for i in fraud.find_indicators(text)]}


TASKS: dict[str, TaskSpec] = {
    "classify": TaskSpec("classify", classification.SYSTEM, classification.PROMPT_VERSION),
    "fraud": TaskSpec("fraud", fraud.INSTRUCTION, fraud.PROMPT_VERSION, tuple(fraud.LABELS), _fraud_evidence),
    "ask": QATaskSpec("ask", qa.INSTRUCTION, qa.PROMPT_VERSION, ()),
    "contract": ContractTaskSpec("contract", contracts.INSTRUCTION, contracts.PROMPT_VERSION, ()),
}

# Per-task defaults of TaskSettings fields the config leaves out. Fraud is asymmetric: wrongly
# keeping "legit" lets fraud through, so "legit" needs more confidence, and an unsure "legit" is
# never kept, not even by the last tier (a person decides).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "fraud": {"class_thresholds": {"legit": 0.9, "fraud": 0.6}, "review_below_threshold": ["legit"]},
    # Document QA: the threshold is on the answer tokens' 10% quantile probability (a placeholder until
    # calibrated); passages are not redacted, so they never go to an external tier unless allowed;
    # no demonstrations, and answers never become stored examples.
    "ask": {"threshold": 0.3, "support_threshold": qa.SUPPORT_THRESHOLD, "max_answer_tokens": 160,
            "examples": {"k": 0, "learn": False}, "privacy": {"external": "forbid", "keep_examples": False}},
    # Contract review: as ask (a placeholder threshold on the answer tokens' probability; contracts are
    # confidential, so external tiers are skipped unless allowed); clauses are quoted up to 300 characters.
    "contract": {"threshold": 0.3, "max_answer_tokens": 160, "examples": {"k": 0, "learn": False},
                 "privacy": {"external": "forbid", "keep_examples": False}},
}
