"""Both shipped workflows end to end with the bundled SmolLM2 (and MiniLM), a workflow process
SIGKILLed between steps and resumed, and a paused workflow resumed through the CLI and the SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from orchestrator import AuditStore, Cascade, Workflows, load_settings
from tests.conftest import SMOL

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
CONTRACT = """SERVICES AGREEMENT

1. Services. The Supplier shall provide the hosting services described in Schedule A to the Customer.

2. Governing Law. This Agreement shall be governed by and construed in accordance with the laws of the State
of New York, without regard to its conflict of laws principles.

3. Limitation of Liability. In no event shall either party's aggregate liability under this Agreement exceed the
total fees paid by the Customer in the twelve months preceding the claim.

4. Termination. Either party may terminate this Agreement for convenience upon thirty (30) days' prior written
notice to the other party.
"""
HANDBOOK = """# Cards

If your card is lost or stolen, freeze it at once in the app under Cards > Freeze, then order a replacement.
A replacement card arrives within 5 working days.

# Fees

Transfers in euros within the EU are free. Other currencies cost 0.5% of the amount.
"""


def config_file(tmp_path: Path, screen_pauses: bool = False) -> Path:
    """SmolLM2 alone, on one thread. The fraud screen keeps SmolLM2's verdict whatever its
    confidence, or, with `screen_pauses`, keeps none (a threshold no confidence reaches): a person
    decides every verdict."""
    tier = {**SMOL, "n_threads": 1}
    path = tmp_path / "cascade.yaml"
    bar = 1.0 if screen_pauses else 0.0
    path.write_text(yaml.safe_dump({"tiers": [tier], "tasks": {
        "classify": {"threshold": 0.0},
        "fraud": {"class_thresholds": {"legit": bar, "fraud": bar},
                  "review_below_threshold": ["legit", "fraud"] if screen_pauses else []},
        "ask": {"threshold": 0.0}, "contract": {"threshold": 0.0}}}))
    return path


def resolve_all(cascade: Cascade, run) -> object:
    """Answer every review the workflow waits on, as a person would, until it stops pausing."""
    for _ in range(5):
        if run.status != "paused":
            return run
        waiting = run.waiting[0]["review_run_id"]
        labels = cascade.audit.get_run(waiting)["params"].get("labels") or []
        answer = "legit" if "legit" in labels else (labels[0] if labels else "absent")
        resumed = cascade.resolve_review(waiting, answer, "tester")["workflow"]
        run = Workflows(cascade).status(resumed["run_id"])
    return run


def assert_one_case(store: AuditStore, run_id: str) -> list[dict]:
    """Each step recorded once; each child run belongs to one step and finished; the ledger verifies."""
    events = store.workflow_events(run_id)
    steps = Counter(e["step"] for e in events if e["kind"] == "step")
    assert steps and max(steps.values()) == 1, steps
    children = store.child_runs(run_id)
    stepped = [e["child_run_id"] for e in events if e["kind"] == "step" and e["child_run_id"]]
    assert sorted(stepped) == sorted(c["id"] for c in children)
    assert all(c["status"] in ("accepted", "needs_review") for c in children)
    assert store.verify()["ok"]
    return events


def test_support_triage_end_to_end(tmp_path, data_dir):
    handbook = tmp_path / "handbook.md"
    handbook.write_text(HANDBOOK)
    settings = load_settings(config_file(tmp_path), data_dir=str(data_dir))
    with Cascade(settings) as cascade, Workflows(cascade) as workflows:
        cascade.add_documents([handbook])
        run = resolve_all(cascade, workflows.run("support-triage", "I lost my card, how do I freeze it?"))
        assert run.status == "completed"
        out = run.output
        steps = [p["step"] for p in out["path"]]
        assert steps[:2] == ["intent", "fraud-screen"]
        if out["fraud_verdict"] == "fraud":
            assert out["disposition"] == "flagged_fraud" and steps == ["intent", "fraud-screen"]
        else:
            assert "answer" in steps and out["reply"]
            if out["disposition"] == "answered":  # the reader's answer passed its checks, with citations
                assert out["citations"] and all(c["path"].endswith("handbook.md") for c in out["citations"])
        events = assert_one_case(cascade.audit, run.run_id)
        assert [e["step"] for e in events if e["kind"] == "step"] == [*steps, "disposition"]


def test_contract_review_end_to_end(tmp_path, data_dir):
    categories = ["Governing Law", "Cap on Liability"]
    settings = load_settings(config_file(tmp_path), data_dir=str(data_dir))
    with Cascade(settings) as cascade, Workflows(cascade) as workflows:
        run = resolve_all(cascade, workflows.run("contract-review", CONTRACT, categories=categories, k=2))
        assert run.status == "completed"
        rows = run.output["categories"]
        assert [r["category"] for r in rows] == categories  # the report keeps the requested order
        for r in rows:
            assert r["risk"] in ("high", "flag", "none", "unknown") and {c["name"] for c in r["checks"]} <= {"schema", "span"}
            assert r["tier"] in ("smollm2-135m", "person")
            if r["present"]:
                assert r["clause"]
        events = assert_one_case(cascade.audit, run.run_id)
        assert [e["step"] for e in events if e["kind"] == "step"][0] == "chunk"
        assert {c["task"] for c in cascade.audit.child_runs(run.run_id)} == {"contract"}


def test_a_killed_workflow_resumes_and_runs_each_step_once(tmp_path, data_dir):
    config = config_file(tmp_path)
    contract = tmp_path / "contract.txt"
    contract.write_text(CONTRACT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CASCADE_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    categories = "Governing Law,Termination for Convenience"
    command = [sys.executable, "-m", "cli.main", "workflow", "run", "contract-review", "--file", str(contract),
               "-o", f"categories={categories}", "-o", "k=2", "-c", str(config), "--json"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = AuditStore(load_settings(config, data_dir=str(data_dir)).audit_url)
    deadline, run_id = time.monotonic() + 240, None
    try:
        while time.monotonic() < deadline and process.poll() is None:
            runs = store.list_runs(task="workflow")
            if runs:
                run_id = runs[0]["id"]
                done = [e for e in store.workflow_events(run_id) if e["kind"] == "step"]
                if any(e["step"].startswith("category:") for e in done):
                    break  # one branch finished, the others not all: kill it between steps
            time.sleep(0.05)
        assert process.poll() is None, f"the workflow ended before it could be killed: {process.stderr.read()!r}"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert store.get_run(run_id)["status"] == "running"  # the process died: nobody finished the run
    finished_before = {e["step"] for e in store.workflow_events(run_id) if e["kind"] == "step"}
    assert len(finished_before) < 4  # chunk, two categories, report: not all done

    resumed = subprocess.run([sys.executable, "-m", "cli.main", "workflow", "resume", run_id, "-c", str(config),
                              "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] in ("completed", "paused")
    with Cascade(load_settings(config, data_dir=str(data_dir))) as cascade:
        assert resolve_all(cascade, Workflows(cascade).status(run_id)).status == "completed"
    events = assert_one_case(store, run_id)
    assert Counter(e["step"].split(":")[0] for e in events if e["kind"] == "step") == {"chunk": 1, "category": 2, "report": 1}
    assert len(store.child_runs(run_id)) == 2
    store.close()


def test_a_paused_workflow_resumes_from_the_cli_and_the_sdk(tmp_path, data_dir):
    config = config_file(tmp_path, screen_pauses=True)
    settings = load_settings(config, data_dir=str(data_dir))
    with Cascade(settings) as cascade, Workflows(cascade) as workflows:
        run = workflows.run("support-triage", "My transfer to Spain has not arrived")
        assert run.status == "paused" and run.waiting[0]["step"] == "fraud-screen"
        screen_run = run.waiting[0]["review_run_id"]
        assert screen_run in [q["id"] for q in cascade.review_queue()]

    env = {"CASCADE_DATA_DIR": str(data_dir), "CASCADE_CONFIG": str(config)}
    cli = CliRunner().invoke(app, ["review", "resolve", screen_run, "--answer", "legit", "--reviewer", "alice"], env=env)
    assert cli.exit_code == 0, cli.output
    assert "resumed workflow support-triage" in cli.output

    with Cascade(settings) as cascade, Workflows(cascade) as workflows:
        status = workflows.status(run.run_id)
        steps = [e["step"] for e in status.events if e["kind"] == "step"]
        assert steps[:2] == ["intent", "fraud-screen"]
        if status.status == "paused":  # nothing ingested: the answer step hands the case to a person
            assert status.waiting[0]["step"] == "handoff"
            done = cascade.resolve_review(status.waiting[0]["review_run_id"], "We are tracing it.", "bob")["workflow"]
            assert done["status"] == "completed" and done["output"]["reply"] == "We are tracing it."
        final = workflows.status(run.run_id)
        assert final.status == "completed"
        screen = final.output["path"][1]
        assert screen["decided_by"] == "person" and screen["reviewer"] == "alice"
        assert final.output["fraud_verdict"] == "legit"
        shown = CliRunner().invoke(app, ["audit", "show", run.run_id], env=env)
        assert shown.exit_code == 0 and "resume: 'legit' by alice" in shown.output
        assert_one_case(cascade.audit, run.run_id)
