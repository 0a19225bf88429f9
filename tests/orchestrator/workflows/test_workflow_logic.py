"""Workflow machinery with replaying fake tiers (to pin the model's answers) on real SQLite and
PostgreSQL: routing, the fraud stop, pauses and resumes through the review queue, failures,
registration of any LangGraph graph, and the audit ledger over a workflow case."""

from __future__ import annotations

import math
from typing import TypedDict

import pytest
import sqlalchemy
from langgraph.graph import END, START, StateGraph

from agents.backends.fake import FakeScoringBackend
from agents.errors import InvalidInputError, TierUnreachableError, UnknownTaskError
from orchestrator import Cascade, Workflows, load_settings
from orchestrator.workflows import register_graph, routed_task
from orchestrator.workflows.support_triage import DEFAULT_INTENTS
from tests.conftest import fake_tiers, write_config


def scores(labels: list[str], best: str, p: float = 0.95) -> dict[str, float]:
    rest = (1 - p) / (len(labels) - 1)
    return {label: math.log(p if label == best else rest) for label in labels}


INTENT = scores(DEFAULT_INTENTS, "card lost or stolen")
LEGIT, FRAUD = scores(["fraud", "legit"], "legit", 0.98), scores(["fraud", "legit"], "fraud", 0.98)


def cascade_with(tmp_path, outputs, database_url: str | None = None) -> tuple[Cascade, FakeScoringBackend]:
    config = write_config(tmp_path / "cascade.yaml", fake_tiers(1))
    overrides = {"database_url": database_url} if database_url else {}
    fake = FakeScoringBackend(outputs)
    return Cascade(load_settings(config, data_dir=str(tmp_path / "data"), **overrides), backends={"t0": fake}), fake


def test_a_fraud_verdict_stops_the_flow_and_flags_the_case(tmp_path):
    cascade, fake = cascade_with(tmp_path, [INTENT, FRAUD])
    with cascade, Workflows(cascade) as workflows:
        run = workflows.run("support-triage", "WINNER!! claim your prize at http://bit.ly/x")
        assert run.status == "completed"
        assert run.output["disposition"] == "flagged_fraud" and run.output["flagged"] is True
        assert [p["step"] for p in run.output["path"]] == ["intent", "fraud-screen"]  # no answer step ran
        assert len(fake.calls) == 2
        record = cascade.audit.get_run(run.run_id)
        assert record["task"] == "workflow" and record["params"]["flagged"] == "fraud"
        children = cascade.audit.child_runs(run.run_id)
        assert [c["task"] for c in children] == ["classify", "fraud"]
        assert [p["run_id"] for p in run.output["path"]] == [c["id"] for c in children]
        assert [e["kind"] for e in run.events] == ["step", "step", "step", "finish"]
        assert cascade.audit.verify()["ok"]


def test_a_paused_step_resumes_from_the_review_queue_with_the_persons_answer(tmp_path):
    unsure = scores(["fraud", "legit"], "legit", 0.7)  # legit below 0.9 on the last tier: a person decides
    cascade, fake = cascade_with(tmp_path, [INTENT, unsure])
    with cascade, Workflows(cascade) as workflows:
        run = workflows.run("support-triage", "Is my card blocked?")
        assert run.status == "paused" and [w["step"] for w in run.waiting] == ["fraud-screen"]
        queue = cascade.review_queue()
        assert [q["id"] for q in queue] == [run.waiting[0]["review_run_id"]]
        assert workflows.resume(run.run_id).status == "paused"  # nothing resolved yet: still waiting

        review = cascade.resolve_review(queue[0]["id"], "legit", "alice", note="known customer")
        resumed = review["workflow"]
        # no document ingested: the answer step cannot answer, so the case goes to a person
        assert resumed["status"] == "paused" and resumed["waiting"][0]["step"] == "handoff"
        done = cascade.resolve_review(resumed["waiting"][0]["review_run_id"], "We blocked it.", "bob")["workflow"]
        assert done["status"] == "completed"
        assert done["output"]["disposition"] == "answered_by_person" and done["output"]["reply"] == "We blocked it."
        screen = next(p for p in done["output"]["path"] if p["step"] == "fraud-screen")
        assert screen["decided_by"] == "person" and screen["reviewer"] == "alice" and screen["answer"] == "legit"
        events = [(e["step"], e["kind"], e["reviewer"]) for e in workflows.status(run.run_id).events]
        assert events == [("intent", "step", None), ("fraud-screen", "step", None), ("fraud-screen", "pause", None),
                          ("fraud-screen", "resume", "alice"), ("answer", "step", None), ("handoff", "step", None),
                          ("handoff", "pause", None), ("handoff", "resume", "bob"), ("disposition", "step", None),
                          ("finish", "finish", None)]
        assert len(fake.calls) == 2  # resuming re-ran no model call
        assert cascade.audit.verify()["ok"]
        with pytest.raises(InvalidInputError, match="already completed"):
            workflows.resume(run.run_id)


def test_a_run_whose_process_died_while_pausing_resumes_as_paused(tmp_path):
    # The checkpoint holds the interrupt, but the process died before it recorded the pause: the run
    # still says running. Resuming with no review resolved records the pause instead of leaving it so.
    unsure = scores(["fraud", "legit"], "legit", 0.7)
    cascade, fake = cascade_with(tmp_path, [INTENT, unsure])
    with cascade, Workflows(cascade) as workflows:
        run = workflows.run("support-triage", "Is my card blocked?")
        assert run.status == "paused"
        cascade.audit.set_workflow_status(run.run_id, "running", reason="running", latency_ms=run.latency_ms)
        resumed = workflows.resume(run.run_id)
        assert resumed.status == "paused" and [w["step"] for w in resumed.waiting] == ["fraud-screen"]
        assert cascade.audit.get_run(run.run_id)["status"] == "paused"
        assert len(fake.calls) == 2  # nothing ran again


def test_a_failing_step_is_recorded_and_the_workflow_stops_then_resumes(tmp_path):
    cascade, fake = cascade_with(tmp_path, [INTENT, TierUnreachableError("t0 is down")])
    with cascade, Workflows(cascade) as workflows:
        run = workflows.run("support-triage", "I lost my card")
        assert run.status == "failed" and run.error.startswith("fraud-screen: ")
        fail = next(e for e in run.events if e["kind"] == "fail")
        assert fail["detail"]["error_type"] == "TierUnreachableError"
        assert cascade.audit.get_run(fail["child_run_id"])["status"] == "failed"
        fake.outputs.extend([LEGIT, INTENT])  # the tier is back: the failed step runs again, the intent is kept
        again = workflows.resume(run.run_id)
        assert again.status == "paused"  # at the handoff: nothing ingested to answer from
        screens = [c for c in cascade.audit.child_runs(run.run_id) if c["task"] == "fraud"]
        assert [c["status"] for c in screens] == ["failed", "accepted"]  # the retry is a new run
        assert len([c for c in cascade.audit.child_runs(run.run_id) if c["task"] == "classify"]) == 1
        assert len(fake.outputs) == 1  # INTENT left over: classify did not run twice
        assert cascade.audit.verify()["ok"]


def test_bad_input_is_refused_before_a_run_is_recorded(tmp_path):
    cascade, _ = cascade_with(tmp_path, [])
    with cascade, Workflows(cascade) as workflows:
        with pytest.raises(UnknownTaskError, match="support-triage"):
            workflows.run("no-such-flow", "hello")
        with pytest.raises(InvalidInputError, match="unknown option"):
            workflows.run("support-triage", "hello", colour="red")
        with pytest.raises(InvalidInputError, match="non-empty"):
            workflows.run("support-triage", "  ")
        with pytest.raises(InvalidInputError, match="no workflow run"):
            workflows.status("nope")
        assert cascade.audit.list_runs() == []


class Note(TypedDict, total=False):
    text: str
    topic: dict
    shout: str


def test_any_langgraph_graph_runs_as_a_workflow_with_routed_task_nodes(tmp_path):
    graph = StateGraph(Note)
    graph.add_node("topic", routed_task("classify", lambda s: {"text": s["text"], "labels": ["a", "b"]}, "topic"))
    graph.add_node("shout", lambda s: {"shout": s["topic"]["answer"].upper()})
    graph.add_edge(START, "topic")
    graph.add_edge("topic", "shout")
    graph.add_edge("shout", END)
    register_graph("shout-topic", graph.compile(), description="test", replace=True)
    cascade, _ = cascade_with(tmp_path, [scores(["a", "b"], "b")])
    with cascade, Workflows(cascade) as workflows:
        run = workflows.run("shout-topic", "some text")
        assert run.status == "completed" and run.output["shout"] == "B"
        assert run.output["topic"]["tier"] == "t0"
        assert cascade.audit.child_runs(run.run_id)[0]["parent_run_id"] == run.run_id


def test_an_edited_workflow_event_breaks_the_ledger(tmp_path):
    cascade, _ = cascade_with(tmp_path, [INTENT, FRAUD])
    with cascade, Workflows(cascade) as workflows:
        run = workflows.run("support-triage", "WINNER!!")
        with cascade.audit.engine.begin() as conn:
            conn.execute(sqlalchemy.text("UPDATE workflow_events SET reviewer = 'mallory' WHERE seq = 1"))
        broken = cascade.audit.verify()["broken"]
        assert broken["run_id"] == run.run_id and broken["table"] == "workflow_events"


@pytest.mark.postgres
def test_postgresql_checkpointer_pauses_and_resumes(tmp_path, postgres_url):
    unsure = scores(["fraud", "legit"], "legit", 0.7)
    cascade, _ = cascade_with(tmp_path, [INTENT, unsure], database_url=postgres_url)
    with cascade, Workflows(cascade) as workflows:
        run = workflows.run("support-triage", "Is my card blocked?")
        assert run.status == "paused"
        with cascade.audit.engine.connect() as conn:
            tables = set(sqlalchemy.inspect(conn).get_table_names())
            assert {"checkpoints", "checkpoint_writes"} <= tables
            threads = conn.execute(sqlalchemy.text("SELECT count(*) FROM checkpoints WHERE thread_id = :t"),
                                   {"t": run.run_id}).scalar()
        assert threads > 0
        assert not (tmp_path / "data" / "workflows.sqlite").exists()
    # a new process (a new Cascade and Workflows) resumes it from the PostgreSQL checkpoint
    cascade, _ = cascade_with(tmp_path, [], database_url=postgres_url)
    with cascade:
        resumed = cascade.resolve_review(run.waiting[0]["review_run_id"], "legit", "alice")["workflow"]
        assert resumed["status"] == "paused" and resumed["waiting"][0]["step"] == "handoff"
        done = cascade.resolve_review(resumed["waiting"][0]["review_run_id"], "Done.", "bob")["workflow"]
        assert done["status"] == "completed"
        with cascade.audit.engine.connect() as conn:  # a completed workflow's checkpoints are deleted
            assert conn.execute(sqlalchemy.text("SELECT count(*) FROM checkpoints WHERE thread_id = :t"),
                                {"t": run.run_id}).scalar() == 0
        assert cascade.audit.verify()["ok"]


def test_a_step_on_an_unreachable_tier_fails_the_workflow_cleanly(tmp_path):
    """A real litellm tier pointed at a closed local port: the first step's run fails, is
    recorded, and no later step runs."""
    from tests.conftest import free_port

    tier = {"name": "down", "kind": "litellm", "locality": "local", "model": "openai/none",
            "api_base": f"http://127.0.0.1:{free_port()}/v1", "timeout_s": 5}
    config = write_config(tmp_path / "cascade.yaml", [tier])
    with Cascade(load_settings(config, data_dir=str(tmp_path / "data"))) as cascade, Workflows(cascade) as workflows:
        run = workflows.run("support-triage", "I lost my card")
        assert run.status == "failed" and run.error.startswith("intent: ")
        assert [(e["step"], e["kind"]) for e in run.events] == [("intent", "fail")]
        child = cascade.audit.get_run(run.events[0]["child_run_id"])
        assert child["status"] == "failed" and child["error_type"] == "TierUnreachableError"
        assert child["parent_run_id"] == run.run_id
        assert cascade.audit.get_run(run.run_id)["reason"].startswith("failed: ")
        assert cascade.audit.verify()["ok"]


def test_the_cli_lists_workflows_and_refuses_bad_options(tmp_path):
    import json

    from typer.testing import CliRunner

    from cli.main import app

    env = {"CASCADE_DATA_DIR": str(tmp_path / "data"),
           "CASCADE_CONFIG": str(write_config(tmp_path / "cascade.yaml", fake_tiers(1)))}
    listed = CliRunner().invoke(app, ["workflow", "list", "--json"], env=env)
    assert listed.exit_code == 0
    assert {"support-triage", "contract-review"} <= {w["name"] for w in json.loads(listed.output)}
    bad = CliRunner().invoke(app, ["workflow", "run", "support-triage", "hi", "-o", "colour=red"], env=env)
    assert bad.exit_code == 2 and "unknown option" in bad.output
    missing = CliRunner().invoke(app, ["workflow", "status", "no-such-run"], env=env)
    assert missing.exit_code == 2 and "no workflow run" in missing.output


@pytest.mark.slow  # the chunk step embeds with the real MiniLM
def test_fanned_out_branches_pause_and_resume_one_by_one(tmp_path):
    """contract-review's two category branches both fail the span check (an invented clause) and
    pause; each resolution resumes its own branch, and no model call is repeated."""
    import yaml

    from agents.backends.fake import FakeGeneratingBackend

    config = tmp_path / "cascade.yaml"
    config.write_text(yaml.safe_dump({"tiers": fake_tiers(1)}))
    invented = '{"present": true, "clause": "an invented clause"}'
    fake = FakeGeneratingBackend([invented, invented], logprob=-0.1)
    contract = ("SERVICES AGREEMENT\n\n1. Governing Law. This Agreement is governed by the laws of New York.\n\n"
                "2. Liability. Neither party's liability shall exceed the fees paid in the prior twelve months.\n")
    with (Cascade(load_settings(config, data_dir=str(tmp_path / "data")), backends={"t0": fake}) as cascade,
          Workflows(cascade) as workflows):
        run = workflows.run("contract-review", contract, categories=["Governing Law", "Cap on Liability"], k=1)
        assert run.status == "paused" and len(run.waiting) == 2
        by_step = {w["step"]: w["review_run_id"] for w in run.waiting}
        first = cascade.resolve_review(by_step["category:Cap on Liability"], "absent", "alice")["workflow"]
        assert first["status"] == "paused" and [w["step"] for w in first["waiting"]] == ["category:Governing Law"]
        clause = "This Agreement is governed by the laws of New York."
        done = cascade.resolve_review(by_step["category:Governing Law"], clause, "bob")["workflow"]
        assert done["status"] == "completed"
        rows = {r["category"]: r for r in done["output"]["categories"]}
        assert (rows["Governing Law"]["present"], rows["Governing Law"]["clause"]) == (True, clause)
        assert rows["Cap on Liability"]["present"] is False and rows["Cap on Liability"]["reviewer"] == "alice"
        assert {r["tier"] for r in rows.values()} == {"person"}
        assert len(fake.calls) == 2
        assert cascade.audit.verify()["ok"]
