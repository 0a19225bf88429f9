"""Embedded batch jobs end to end: the real SmolLM2 as tier 1, the real Gemma server as tier 2,
SQLite, the `cascade batch` commands; escalations that fail while the Gemma server is down, then
`retry-failed` once it is up."""

from __future__ import annotations

import csv
import io
import json

import pytest
import typer
from typer.testing import CliRunner

from cli.batch import batch_app
from orchestrator import AuditStore, load_settings
from orchestrator.core.models import stop_server
from orchestrator.core.serving import start_tier_server
from tests.conftest import SMOL, free_port, gemma_tier, write_config

pytestmark = pytest.mark.slow  # real models

TEXTS = ["WINNER! Claim your free prize now, call 09061701461", "Are we still meeting for lunch today?",
         "URGENT: your account is suspended, click here", "Thanks, see you tomorrow at the office",
         "Free ringtones! Text GO to 80082", "Can you pick up milk on the way home?"]

app = typer.Typer()
app.add_typer(batch_app, name="batch")


def cli(env, *args):
    result = CliRunner().invoke(app, ["batch", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def write_input(path, n: int, labels: bool = True):
    with path.open("w") as f:
        for i in range(n):
            row = {"id": f"m{i}", "text": TEXTS[i % len(TEXTS)]}
            if labels:
                row["labels"] = ["spam", "ham"]
            f.write(json.dumps(row) + "\n")
        f.write('{"id": "broken", "text": \n')
    return path


def test_embedded_job_with_progress_and_results(tmp_path, data_dir):
    env = {"CASCADE_DATA_DIR": str(data_dir), "CASCADE_CONFIG": str(write_config(tmp_path / "c.yaml", [{**SMOL, "n_threads": 1}]))}
    output = cli(env, "submit", str(write_input(tmp_path / "in.jsonl", 8)), "--task", "classify", "--wait")
    job_id = output.split()[1].rstrip(":")
    assert "9/9" in output  # the progress bar: finished of total
    status = json.loads(cli(env, "status", job_id, "--json"))
    assert status["status"] == "done" and status["done"] == 8 and status["invalid"] == 1
    assert status["escalated"] == 0 and status["latency_ms_p50"] > 0 and status["latency_ms_p95"] >= status["latency_ms_p50"]

    rows = list(csv.DictReader(io.StringIO(cli(env, "results", job_id, "--format", "csv"))))
    assert [r["row"] for r in rows] == [str(i) for i in range(1, 10)]
    assert {r["answer"] for r in rows[:8]} <= {"spam", "ham"} and rows[8]["status"] == "invalid"
    store = AuditStore(f"sqlite:///{data_dir / 'audit.db'}")
    runs = [store.get_run(r["run_id"]) for r in rows[:8]]
    assert all(run["status"] == "accepted" and len(run["attempts"]) == 1 for run in runs)
    assert len({r["run_id"] for r in rows[:8]}) == 8


@pytest.mark.server
def test_embedded_two_phases_with_budget_on_real_tiers(tmp_path, data_dir, gemma_server):
    """Threshold 0.99: most items need tier 2; the budget (34% of 6 = 2) admits the least confident."""
    config = write_config(tmp_path / "c.yaml", [{**SMOL, "n_threads": 1}, gemma_server["tier"]], threshold=0.99)
    env = {"CASCADE_DATA_DIR": str(data_dir), "CASCADE_CONFIG": str(config)}
    log = gemma_server["log"]
    before = log.read_text().count("POST /v1/chat/completions") if log.exists() else 0
    output = cli(env, "submit", str(write_input(tmp_path / "in.jsonl", 6, labels=False)), "--task", "classify",
                 "-l", "spam", "-l", "ham", "--max-escalation-share", "0.34", "--json")
    status = json.loads(output[output.index("{"):])
    assert status["status"] == "done" and status["needed_escalation"] >= 2
    assert status["escalated"] == 2 and status["over_budget"] == status["needed_escalation"] - 2
    assert log.read_text().count("POST /v1/chat/completions") - before == 2, "tier 2 saw only the admitted items"

    rows = [json.loads(line) for line in cli(env, "results", status["id"]).splitlines()]
    store = AuditStore(f"sqlite:///{data_dir / 'audit.db'}")
    escalated = [r for r in rows if r["escalated"]]
    for r in escalated:
        run = store.get_run(r["run_id"])
        assert [a["tier_name"] for a in run["attempts"]] == ["smollm2-135m", "gemma3-270m"]
        assert r["tier"] == "gemma3-270m" and r["status"] == "done"
    over = [r for r in rows if r["status"] == "over_budget"]
    assert all(r["reason"].startswith("needs escalation, over budget") and r["answer"] is None for r in over)
    assert all(store.get_run(r["run_id"])["status"] == "needs_review" for r in over)
    # the escalated ones were the least confident on tier 1
    conf = {r["id"]: store.get_run(r["run_id"])["attempts"][0]["confidence"] for r in rows if r["run_id"]}
    needing = sorted((c, k) for k, c in conf.items() if c < 0.99)
    assert {r["id"] for r in escalated} == {k for _, k in needing[:2]}


@pytest.mark.server
def test_escalation_to_a_down_provider_fails_then_retry_failed_runs_it(tmp_path, data_dir, models_dir):
    """Tier 2 is the real Gemma server on a port where nothing listens yet: the items that need
    escalation fail with the provider error after their retries. Once the server is up,
    `cascade batch retry-failed` runs them again (tier 1, then tier 2) and they end done."""
    tier = gemma_tier(free_port())
    config = write_config(tmp_path / "c.yaml", [{**SMOL, "n_threads": 1}, tier], threshold=0.99)
    env = {"CASCADE_DATA_DIR": str(data_dir), "CASCADE_CONFIG": str(config), "CASCADE_BATCH_MAX_RETRIES": "1",
           "CASCADE_BATCH_RETRY_BACKOFF_S": "0.1"}
    output = cli(env, "submit", str(write_input(tmp_path / "in.jsonl", 4, labels=False)), "--task", "classify",
                 "-l", "spam", "-l", "ham", "--max-spend", "1", "--json")
    status = json.loads(output[output.index("{"):])
    job_id = status["id"]
    assert status["status"] == "done" and status["failed"] >= 1 and status["failed"] == status["escalated"]
    failed = [r for r in map(json.loads, cli(env, "results", job_id).splitlines()) if r["status"] == "failed"]
    for r in failed:
        assert r["error"].startswith("TierUnreachableError: openai/gemma-3-270m at http://127.0.0.1:")
        assert "is unreachable" in r["error"] and r["error"].endswith("(gave up after 2 tries)")
        assert r["reason"] == f"failed: {r['error']}"
    # the local Gemma tier has no price: a spend cap admits it at an estimated 0
    assert status["max_spend"] == 1.0 and status["estimated_spend"] == 0.0 and status["spend"] == 0.0

    settings = load_settings(config, data_dir=str(models_dir))
    server = start_tier_server(settings, settings.tiers[1])  # the provider is back
    try:
        output = cli(env, "retry-failed", job_id, "--json")
    finally:
        stop_server(server)
    status = json.loads(output[output.index("{"):])
    assert status["status"] == "done" and status["failed"] == 0 and status["done"] == 4, status
    rows = {r["id"]: r for r in map(json.loads, cli(env, "results", job_id).splitlines())}
    store = AuditStore(f"sqlite:///{data_dir / 'audit.db'}")
    for r in failed:
        again = rows[r["id"]]
        assert again["status"] == "done" and again["tier"] == "gemma3-270m" and again["error"] is None
        run = store.get_run(again["run_id"])
        assert run["status"] in ("accepted", "needs_review") and run["id"] != r["run_id"]
        assert [a["tier_name"] for a in run["attempts"]] == ["smollm2-135m", "gemma3-270m"]
    assert store.list_runs(status="running", limit=1000) == [] and store.verify()["ok"]

