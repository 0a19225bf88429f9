"""Embedded batch jobs end to end: the real SmolLM2 as tier 1, the real Gemma server as tier 2,
SQLite, the `cascade batch` commands."""

from __future__ import annotations

import csv
import io
import json

import pytest
import typer
from typer.testing import CliRunner

from cli.batch import batch_app
from orchestrator import AuditStore
from tests.conftest import SMOL, write_config

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
    assert all(store.get_run(r["run_id"])["status"] == "unresolved" for r in over)
    # the escalated ones were the least confident on tier 1
    conf = {r["id"]: store.get_run(r["run_id"])["attempts"][0]["confidence"] for r in rows if r["run_id"]}
    needing = sorted((c, k) for k, c in conf.items() if c < 0.99)
    assert {r["id"] for r in escalated} == {k for _, k in needing[:2]}
