"""Classify a few texts with the SDK and show what the audit log kept.

Run after `make demo` (or with the local server up: `cascade models serve`):
    .venv/bin/python examples/sdk_classify.py
"""

from orchestrator import Cascade, TierUnreachableError

LABELS = ["billing question", "technical problem", "cancellation request"]
TEXTS = [
    "I was charged twice this month, please refund one payment",
    "The app crashes every time I open the settings page",
    "Please close my account at the end of the month",
]

with Cascade.from_config() as cascade:
    for text in TEXTS:
        try:
            result = cascade.classify(text, labels=LABELS)
        except TierUnreachableError as exc:  # escalation needed but the larger tier is down
            print(f"{text[:40]!r}: {exc}")
            continue
        print(f"{text[:40]!r} -> {result.answer} by {result.tier_name} "
              f"(confidence {result.confidence}, {len(result.attempts)} attempt(s)): {result.reason}")
        run = cascade.audit.get_run(result.run_id)
        for attempt in run["attempts"]:
            print(f"    {attempt['tier_name']}: {attempt['decision']} - {attempt['reason']}")
