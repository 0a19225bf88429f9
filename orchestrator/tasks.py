"""The task families the cascade runs: each one's prompt, prompt version, label set and evidence.

Fraud flagging is classification with its own instruction line, a fixed label set and rule-based
risk indicators recorded next to the verdict; both run through the same graph and scoring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents import classify as classification
from agents import fraud
from agents.errors import InvalidInputError
from agents.results import TierOutput


@dataclass(frozen=True)
class TaskSpec:
    name: str
    instruction: str  # the prompt's system line
    prompt_base: str  # the prompt version without demonstrations; calibration artifacts match on it
    labels: tuple[str, ...] | None = None  # a fixed label set in prompt order, or None: each call gives its own
    evidence: Callable[[str], dict[str, Any]] = lambda text: {}  # recorded in the audit run's params

    def run(self, backend, payload: dict[str, Any]) -> TierOutput:
        return classification.classify(backend, payload, self.instruction)

    def prompt_version(self, demonstrations: list[tuple[str, str]] = ()) -> str:
        return classification.prompt_version(demonstrations, base=self.prompt_base)

    def labels_for(self, labels: Any) -> list[str]:
        """The item's label set: the caller's (checked), or the task's fixed one."""
        if self.labels is None:
            return classification.validate_labels(labels)
        if labels is not None:
            raise InvalidInputError(f"the {self.name} task has fixed labels ({', '.join(self.labels)}); give no labels")
        return list(self.labels)


def _fraud_evidence(text: str) -> dict[str, Any]:
    return {"indicators": [i.model_dump() for i in fraud.find_indicators(text)]}


TASKS: dict[str, TaskSpec] = {
    "classify": TaskSpec("classify", classification.SYSTEM, classification.PROMPT_VERSION),
    "fraud": TaskSpec("fraud", fraud.INSTRUCTION, fraud.PROMPT_VERSION, tuple(fraud.LABELS), _fraud_evidence),
}

# Per-task defaults of TaskSettings fields the config leaves out. Fraud is asymmetric: wrongly
# keeping "legit" lets fraud through, so "legit" needs more confidence, and an unsure "legit" is
# never kept, not even by the last tier (a person decides).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "fraud": {"class_thresholds": {"legit": 0.9, "fraud": 0.6}, "review_below_threshold": ["legit"]},
}
