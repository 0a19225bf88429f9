"""`cascade demo` on the default ladder: the encoder tier, fitted on the shipped banking sample,
answers most questions itself; what it escalates says why. Real MiniLM (and SmolLM2 for what escalates)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.demo import DEMO_TEXTS
from cli.main import app
from orchestrator import AuditStore

pytestmark = pytest.mark.slow

# What a banking clerk would answer for the first six demo texts (the last two sit between labels)
GOLD = ["lost or stolen card", "card arrival", "exchange rate", "top up failed", "lost or stolen card", "card arrival"]


def test_demo_answers_on_the_trained_route_and_escalates_with_a_reason(data_dir):
    result = CliRunner().invoke(app, ["demo", "--json"], env={"CASCADE_DATA_DIR": str(data_dir)})
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout[result.stdout.index("["):])
    assert len(results) == len(DEMO_TEXTS)
    right = sum(r["answer"] == gold for r, gold in zip(results, GOLD))
    assert right >= 5, [r["answer"] for r in results]
    assert all(r["attempts"][0]["tier_name"] == "encoder" for r in results)
    assert sum(r["tier_name"] == "encoder" for r in results) >= len(results) // 2  # most stay local
    for r in results:
        assert r["reason"]
        for attempt in r["attempts"][:-1]:  # every escalation records why
            assert attempt["decision"] == "escalate" and attempt["reason"]
    audit = AuditStore(f"sqlite:///{data_dir / 'audit.db'}")
    try:
        assert len(audit.list_runs(limit=100)) == len(DEMO_TEXTS)
    finally:
        audit.close()
