"""`cascade demo`: a handful of banking questions through the default ladder, on the trained route.

The task's example store is seeded with a small labelled sample shipped next to this module
(`demo_banking_sample.jsonl`: 100 rows of banking77's train split, CC BY 4.0, PolyAI), so the
encoder tier fits a head on it and answers in milliseconds; what it is unsure of escalates to
SmolLM2 (shown the nearest examples) and then to Gemma (its local server starts on demand).
Seeding is idempotent: near-duplicates are stored once.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

from agents.errors import CascadeError
from cli.common import ConfigOpt, JsonOpt, err, fail, out, results_table

__all__ = ["DEMO_LABELS", "DEMO_SAMPLE", "DEMO_TEXTS", "demo"]

DEMO_SAMPLE = Path(__file__).with_name("demo_banking_sample.jsonl")
DEMO_LABELS = ["card arrival", "lost or stolen card", "exchange rate", "top up failed"]
DEMO_TEXTS = [
    "I lost my card yesterday, can you block it?",
    "When will my new card be delivered?",
    "What rate do you use to convert dollars to euros?",
    "My top-up did not go through, why?",
    "Someone stole my wallet with my card inside",
    "How long does delivery of a card take to Spain?",
    # two that sit between labels: the encoder is less sure, and what it is unsure of escalates
    "My card never arrived and I think someone took it from my mailbox",
    "I topped up in dollars and got fewer euros than I expected",
]


def demo(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Classify a handful of banking questions: the trained encoder first, escalating what it is unsure of."""
    from orchestrator import load_settings
    from orchestrator.core.cascade import Cascade
    from orchestrator.core.example_files import read_examples

    try:
        settings = load_settings(config)
        with Cascade(settings) as cascade:
            seeded = cascade.examples.add("classify", read_examples(DEMO_SAMPLE))
            if seeded and not as_json:
                err.print(f"seeded the classify example store with {len(seeded)} labelled banking questions "
                          "(banking77, CC BY 4.0)")
            results = []
            with out.status("classifying...") if not as_json else nullcontext():
                for text in DEMO_TEXTS:
                    results.append((text, cascade.classify(text, labels=DEMO_LABELS)))
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps([r.model_dump(mode="json") for _, r in results]))
        return
    out.print(f"labels: {', '.join(DEMO_LABELS)}")
    out.print(results_table(results))
    escalated = sum(r.escalated for _, r in results)
    out.print(f"{escalated} of {len(results)} escalated; audit log: {settings.audit_url}")
