"""Document QA with the real bundled SmolLM2 (one llama.cpp thread, grammar-constrained JSON) on
real HaluEval passages: ingest, ask, and check what the cascade kept against the source files.
The tiny model's answers are not judged for being right; what is asserted is that nothing kept
cites a passage it was not shown or quotes text that is not in the source."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from agents.qa import normalise
from cli.main import app
from orchestrator import Cascade
from evaluation.datasets import ENV_VAR, data_root
from tests.conftest import SMOL

pytestmark = pytest.mark.slow  # real models

HALUEVAL = data_root() / "halueval_qa" / "qa_data.jsonl"
needs_halueval = pytest.mark.skipif(
    not HALUEVAL.is_file(), reason=f"shared evaluation data not found at {data_root()}; set {ENV_VAR} to the directory holding it")


def halueval_rows(n: int) -> list[dict]:
    with HALUEVAL.open(encoding="utf-8") as f:
        return [json.loads(next(f)) for _ in range(n)]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tiers": [{**SMOL, "n_threads": 1}], "tasks": {"ask": {"max_answer_tokens": 96}}}))
    return path


@pytest.fixture
def docs(tmp_path):
    rows = halueval_rows(3)
    paths = []
    for i, row in enumerate(rows):
        paths.append(tmp_path / f"doc{i}.txt")
        paths[-1].write_text(row["knowledge"], encoding="utf-8")
    return rows, paths


def assert_honest(result, paths, run) -> None:
    """Kept citations point at ingested files and quote them; every attempt's checks are audited."""
    assert result.outcome in ("accepted", "needs_review")
    sources = {str(p.resolve()): p.read_text(encoding="utf-8") for p in paths}
    for c in result.citations:
        assert c.path in sources and normalise(c.quote) in normalise(sources[c.path][c.start:c.end])
    if result.outcome == "needs_review":
        assert result.answer is None and result.citations == []
        assert "check failed" in result.reason or "confidence" in result.reason or "invalid output" in result.reason
    for stored, attempt in zip(run["attempts"], result.attempts):
        assert [k["name"] for k in stored["checks"]] == [k.name for k in attempt.checks]
        assert stored["checks"] and all({"name", "passed", "score", "reason"} <= set(k) for k in stored["checks"])


@needs_halueval
def test_real_model_answers_with_checked_citations_or_honestly_does_not(config, data_dir, docs):
    rows, paths = docs
    with Cascade.from_config(config, data_dir=str(data_dir)) as cascade:
        added = cascade.add_documents(paths)
        assert [a.chunks for a in added] == [1, 1, 1]
        for question in (rows[1]["question"], "¿Dónde tiene su sede el grupo hotelero Oberoi?"):
            result = cascade.ask(question, k=2)
            run = cascade.audit.get_run(result.run_id)
            assert run["task"] == "ask" and run["status"] == result.outcome
            assert len(run["params"]["passages"]) == 2 and run["attempts"][0]["prompt_version"] == "ask-v2"
            assert_honest(result, paths, run)
            first = result.attempts[0]
            assert first.confidence is None or 0 < first.confidence <= 1  # from the model's token log-probabilities


@needs_halueval
def test_cli_docs_add_list_and_ask_json(config, data_dir, docs, monkeypatch):
    _, paths = docs
    monkeypatch.setenv("CASCADE_DATA_DIR", str(data_dir))
    runner = CliRunner()
    added = runner.invoke(app, ["docs", "add", *map(str, paths), "-c", str(config)])
    assert added.exit_code == 0, added.output
    assert "doc0.txt: 1 chunks added" in added.output
    again = runner.invoke(app, ["docs", "add", str(paths[0]), "-c", str(config)])
    assert "already stored" in again.output
    listed = runner.invoke(app, ["docs", "list", "--json", "-c", str(config)])
    assert len(json.loads(listed.stdout)) == 3
    asked = runner.invoke(app, ["ask", "Where is the Oberoi Group's head office?", "--k", "1", "--json", "-c", str(config)])
    assert asked.exit_code == 0, asked.output
    result = json.loads(asked.stdout)
    assert {"answer", "citations", "checks", "outcome", "tier_name", "reason", "run_id", "attempts"} <= set(result)
    empty = paths[0].with_name("empty.md")
    empty.write_text("")
    bad = runner.invoke(app, ["docs", "add", str(empty), "-c", str(config)])
    assert bad.exit_code == 2 and "is empty" in bad.output


@needs_halueval
def test_escalation_to_the_real_gemma_server_runs_the_same_checks(tmp_path, data_dir, docs, gemma_server):
    """Tier 1 can never be sure enough (threshold 1.0), so every question goes on to Gemma behind the
    local OpenAI-compatible server (litellm, JSON-schema mode) with the same passages and checks."""
    _, paths = docs
    config = tmp_path / "escalate.yaml"
    config.write_text(yaml.safe_dump({
        "tiers": [{**SMOL, "n_threads": 1}, {**gemma_server["tier"], "max_tokens": 128}],
        "tasks": {"ask": {"threshold": 1.0, "max_answer_tokens": 96}}}))
    with Cascade.from_config(config, data_dir=str(data_dir)) as cascade:
        cascade.add_documents(paths)
        result = cascade.ask("Where is the Oberoi Group's head office?", k=2)
        run = cascade.audit.get_run(result.run_id)
    first, second = result.attempts
    assert first.decision == "escalate" and second.tier_name == "gemma3-270m"
    assert second.checks and second.checks[0].name == "schema"
    assert_honest(result, paths, run)
