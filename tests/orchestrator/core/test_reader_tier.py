"""A reader tier in the ladder, logic only: a stand-in reader isolates the routing and the audit naming;
the real trained reader runs in tests/cli/test_reader_cli.py."""

from __future__ import annotations

import json

import yaml

from agents.backends import FakeGeneratingBackend
from agents.reader import Reading, Span, TaskReaders
from orchestrator import Cascade

READER = {"name": "reader", "kind": "reader"}
SMALL = {"name": "t1", "kind": "llama_cpp", "model_path": "unused.gguf"}
CLAUSE = "This Agreement shall be governed by the laws of the State of New York."


class StandInReader:
    """Answers every question with a fixed reading, named like a trained artifact."""

    model_id, file_hash = "contract-reader-0123abcd-v3", "f" * 64

    def __init__(self, reading: Reading) -> None:
        self.reading, self.calls = reading, []

    def read(self, question, passages):
        self.calls.append((question, passages))
        return self.reading


def _cascade(tmp_path, tiers, backends, **tasks):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"tiers": tiers, "tasks": tasks}))
    return Cascade.from_config(config, data_dir=str(tmp_path / "data"), backends=backends)


def test_a_reader_tier_without_a_trained_artifact_escalates_and_says_how_to_train_one(tmp_path):
    small = FakeGeneratingBackend(['{"answer": null, "citations": []}'])
    with _cascade(tmp_path, [READER, SMALL], {"t1": small}) as cascade:
        result = cascade.run("ask", text="Who wrote it?", passages=["Mount Fuji is in Japan."])
    first, second = result.attempts
    assert first.decision == "escalate" and "train-reader --data halueval" in first.error
    assert second.tier_name == "t1" and result.outcome == "accepted" and result.answer is not None


def test_the_reader_s_clause_is_kept_with_its_span_check_and_the_audit_names_the_artifact(tmp_path):
    span = Span(passage=0, start=0, end=len(CLAUSE), text=CLAUSE, score=9.0)
    stand_in = StandInReader(Reading(span=span, best=span, span_prob=0.93, null_prob=0.01, margin=7.5))
    with _cascade(tmp_path, [READER, SMALL], {"reader": TaskReaders(lambda task: stand_in)}) as cascade:
        result = cascade.run("contract", text="Governing Law", category="Governing Law",
                             passages=[f"{CLAUSE} Notices go to the addresses above."])
        stored = cascade.audit.get_run(result.run_id)
    [attempt] = result.attempts
    assert result.outcome == "accepted" and json.loads(result.answer) == {"present": True, "clause": CLAUSE}
    assert attempt.confidence == 0.93 and {c.name: c.passed for c in attempt.checks} == {"schema": True, "span": True}
    assert stored["attempts"][0]["model_id"] == "contract-reader-0123abcd-v3"
    assert stored["attempts"][0]["model_file_hash"] == "f" * 64
    assert stand_in.calls[0][0].startswith("Governing Law - ")  # the category's question, as trained


def test_an_unsure_abstention_escalates_to_the_generative_tier(tmp_path):
    stand_in = StandInReader(Reading(span=None, best=None, span_prob=0.2, null_prob=0.1, margin=-0.4))
    small = FakeGeneratingBackend(['{"answer": null, "citations": []}'])
    with _cascade(tmp_path, [READER, SMALL], {"reader": TaskReaders(lambda task: stand_in), "t1": small}) as cascade:
        result = cascade.run("ask", text="Who wrote it?", passages=["Mount Fuji is in Japan."])
    first = result.attempts[0]
    assert json.loads(first.answer) == {"answer": None, "citations": []} and first.confidence == 0.1
    assert first.decision == "escalate" and result.attempts[1].tier_name == "t1"


def test_classification_escalates_past_a_reader_tier(tmp_path):
    from agents.backends import FakeScoringBackend

    scorer = FakeScoringBackend([{"spam": 0.9, "ham": 0.1}])
    with _cascade(tmp_path, [READER, SMALL], {"reader": TaskReaders(lambda task: None), "t1": scorer}) as cascade:
        result = cascade.run("classify", text="Win a prize now", labels=["spam", "ham"])
    assert "cannot classify" in result.attempts[0].error and result.attempts[1].answer == "spam"
