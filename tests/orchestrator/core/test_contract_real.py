"""Contract review with the real bundled SmolLM2 (one llama.cpp thread, grammar-constrained JSON)
and real MiniLM retrieval on real CUAD contracts. The tiny model's answers are not judged for being
right; what is asserted is that nothing kept claims a clause that is not in the contract, that risk
flags follow the table, and that every (contract, category) leaves a complete audit record."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from agents.contract_categories import risk_for
from agents.qa import normalise
from cli.main import app
from orchestrator import Cascade
from evaluation.cuad import load_cuad
from evaluation.datasets import ENV_VAR, data_root
from tests.conftest import SMOL

CATEGORIES = ["Governing Law", "Cap on Liability"]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (data_root() / "cuad" / "master_clauses.csv").is_file(),
                                reason=f"shared evaluation data not found at {data_root()}; set {ENV_VAR} to the "
                                       "directory holding cuad/")]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tiers": [{**SMOL, "n_threads": 1}]}))
    return path


@pytest.fixture(scope="module")
def cuad_contracts():
    return load_cuad(limit=2).contracts


def assert_honest(result, text: str, run: dict) -> None:
    assert result.outcome in ("accepted", "needs_review")
    assert run["task"] == "contract" and run["status"] == result.outcome
    assert run["params"]["category"] == result.category and len(run["params"]["passages"]) == 3
    assert run["attempts"][0]["prompt_version"] == "contract-v1"
    for stored, attempt in zip(run["attempts"], result.attempts):
        assert [k["name"] for k in stored["checks"]] == [k.name for k in attempt.checks]
        assert stored["checks"][0]["name"] == "schema"
    if result.outcome == "needs_review":
        assert result.present is None and result.risk == "unknown"
        return
    assert (result.risk, result.risk_reason) == risk_for(result.category, result.present)
    if result.present:  # a kept clause is in the contract: the span check held
        assert normalise(result.clause) in normalise(text)
        assert result.clause_start is not None
        assert normalise(text[result.clause_start:result.clause_end]) == normalise(result.clause)
        assert any(normalise(result.clause) in normalise(text[p.start:p.end]) for p in result.passages)


def test_real_model_reviews_cuad_contracts_with_checked_clauses(config, data_dir, cuad_contracts):
    with Cascade.from_config(config, data_dir=str(data_dir)) as cascade:
        for contract in cuad_contracts:
            text = contract.text()
            review = cascade.contract(text, categories=CATEGORIES)
            assert [r.category for r in review.results] == CATEGORIES and review.chars == len(text)
            for result in review.results:
                assert_honest(result, text, cascade.audit.get_run(result.run_id))
                first = result.attempts[0]
                assert first.confidence is None or 0 < first.confidence <= 1  # from the model's token log-probs


def test_cli_reviews_a_cuad_contract_as_json(config, data_dir, cuad_contracts, monkeypatch):
    monkeypatch.setenv("CASCADE_DATA_DIR", str(data_dir))
    path = cuad_contracts[0].path
    result = CliRunner().invoke(app, ["contract", str(path), "--category", "Governing Law", "--json", "-c", str(config)])
    assert result.exit_code == 0, result.output
    review = json.loads(result.stdout)
    [clause] = review["results"]
    assert {"category", "present", "clause", "clause_start", "clause_end", "risk", "risk_reason", "checks",
            "passages", "outcome", "run_id", "attempts"} <= set(clause)
    if clause["present"]:
        assert normalise(clause["clause"]) in normalise(path.read_text(encoding="utf-8"))
    table = CliRunner().invoke(app, ["contract", str(path), "--category", "Governing Law", "-c", str(config)])
    assert table.exit_code == 0 and "Governing Law" in table.output and "audit runs:" in table.output


def test_escalation_to_the_real_gemma_server_runs_the_same_checks(tmp_path, data_dir, cuad_contracts, gemma_server):
    """Tier 1 can never be sure enough (threshold 1.0), so the category goes on to Gemma behind the
    local OpenAI-compatible server (litellm, JSON-schema mode) with the same passages and checks."""
    config = tmp_path / "escalate.yaml"
    config.write_text(yaml.safe_dump({"tiers": [{**SMOL, "n_threads": 1}, {**gemma_server["tier"], "max_tokens": 128}],
                                      "tasks": {"contract": {"threshold": 1.0}}}))
    text = cuad_contracts[0].text()
    with Cascade.from_config(config, data_dir=str(data_dir)) as cascade:
        [result] = cascade.contract(text, categories=["Governing Law"]).results
        run = cascade.audit.get_run(result.run_id)
    first, second = result.attempts
    assert first.decision == "escalate" and second.tier_name == "gemma3-270m"
    assert second.checks and second.checks[0].name == "schema"
    assert_honest(result, text, run)
