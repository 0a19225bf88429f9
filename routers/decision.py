"""The per-attempt routing decision: keep the tier's answer, or escalate it, and say why."""

from __future__ import annotations

from typing import Literal

from agents.results import Attempt

# review: the last tier's answer may not be kept below its threshold (an asymmetric task): a person decides
Decision = Literal["accept", "escalate", "error", "review"]


def decide(attempt: Attempt, threshold: float, is_last_tier: bool, basis: str = "",
           keep_on_last_tier: bool = True) -> tuple[Decision, str]:
    """Accept at or above the threshold; escalate below it while a tier is left.

    The last tier's valid answer is kept even below the threshold (there is nothing better to
    ask), and the reason says so, unless `keep_on_last_tier` is False (the answer's label is
    never kept unsure): then a person decides. An invalid answer escalates; on the last tier it
    is an error. A failed check (`attempt.checks`) escalates; on the last tier a person decides. `basis` says which threshold applied (e.g. "configured for 'legit'").
    """
    if attempt.answer is None:
        problem = attempt.error or "no answer"
        return ("error", f"{problem}; no tier left") if is_last_tier else ("escalate", problem)
    failed = [c for c in attempt.checks if not c.passed]
    if failed:  # an answer that fails a check is never kept, whatever its confidence
        problem = "; ".join(f"{c.name} check failed: {c.reason}" for c in failed)
        return ("review", f"{problem}; no tier left") if is_last_tier else ("escalate", problem)
    named = f"threshold {threshold:.3f}" + (f" ({basis})" if basis else "")
    never_unsure = f"a {attempt.answer!r} answer is never kept below its threshold: a person decides"
    if attempt.confidence is None:
        if is_last_tier:
            if keep_on_last_tier:
                return "accept", "final tier; it gives no confidence signal"
            return "review", f"final tier gives no confidence signal to compare with {named}; {never_unsure}"
        return "escalate", "tier gives no confidence signal"
    if attempt.confidence >= threshold:
        return "accept", f"confidence {attempt.confidence:.3f} >= {named}"
    if is_last_tier:
        if keep_on_last_tier:
            return "accept", f"final tier: confidence {attempt.confidence:.3f} < {named}, no tier left to escalate to"
        return "review", f"final tier: confidence {attempt.confidence:.3f} < {named}; {never_unsure}"
    return "escalate", f"confidence {attempt.confidence:.3f} < {named}"
