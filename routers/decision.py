"""The per-attempt routing decision: keep the tier's answer, or escalate it, and say why."""

from __future__ import annotations

from typing import Literal

from agents.results import Attempt

Decision = Literal["accept", "escalate", "error"]


def decide(attempt: Attempt, threshold: float, is_last_tier: bool) -> tuple[Decision, str]:
    """Accept at or above the threshold; escalate below it while a tier is left.

    The last tier's valid answer is kept even below the threshold (there is nothing better to
    ask), and the reason says so. An invalid answer escalates; on the last tier it is an error.
    """
    if attempt.answer is None:
        problem = attempt.error or "no answer"
        return ("error", f"{problem}; no tier left") if is_last_tier else ("escalate", problem)
    if attempt.confidence is None:
        if is_last_tier:
            return "accept", "final tier; it gives no confidence signal"
        return "escalate", "tier gives no confidence signal"
    if attempt.confidence >= threshold:
        return "accept", f"confidence {attempt.confidence:.3f} >= threshold {threshold:.3f}"
    if is_last_tier:
        return "accept", (f"final tier: confidence {attempt.confidence:.3f} < threshold {threshold:.3f}, "
                          "no tier left to escalate to")
    return "escalate", f"confidence {attempt.confidence:.3f} < threshold {threshold:.3f}"
