"""Workflow batch jobs with replaying fake tiers (SQLite, the embedded executor): one whole
workflow per row, its run the item's run; paused items needs_review until their reviews resume
the workflow; bad workflow names and options refused before a job exists; a failed item resumed
by retry-failed; a re-delivered item (after a finished or a dead execution) runs no step twice."""

from __future__ import annotations

import json
import math

import pytest
from sqlalchemy import func, select, text as sql
from typer.testing import CliRunner

from agents.backends import FakeScoringBackend
from agents.errors import InvalidInputError, TierUnreachableError, UnknownTaskError
from orchestrator import Cascade, Jobs, Workflows, load_settings
from orchestrator.jobs.records import JobRecord
from orchestrator.workflows.support_triage import DEFAULT_INTENTS
from tests.conftest import fake_tiers, write_config


def scores(labels: list[str], best: str, p: float) -> dict[str, float]:
    rest = (1 - p) / (len(labels) - 1)
    return {label: math.log(p if label == best else rest) for label in labels}


INTENT = scores(DEFAULT_INTENTS, "card lost or stolen", 0.95)
FRAUD, LEGIT = scores(["fraud", "legit"], "fraud", 0.98), scores(["fraud", "legit"], "legit", 0.98)
UNSURE = scores(["fraud", "legit"], "legit", 0.7)  # below the fraud threshold on the last tier: a person decides
DIE = "die"  # the process running the item dies at this call


class Died(BaseException):
    """A killed process: nothing catches it, nothing is recorded after it."""


class DyingBackend(FakeScoringBackend):
    def score(self, messages, item, continuations):
        if self.outputs and self.outputs[0] == DIE:
            self.outputs.popleft()
            raise Died()
        return super().score(messages, item, continuations)


@pytest.fixture
def make(tmp_path):
    opened = []

    def build(outputs: list) -> tuple[Jobs, Cascade, DyingBackend]:
        fake = DyingBackend(outputs)
        settings = load_settings(write_config(tmp_path / "c.yaml", fake_tiers(1)), data_dir=str(tmp_path / "data"))
        cascade = Cascade(settings, backends={"t0": fake})
        jobs = Jobs(settings, cascade=cascade)
        opened.append((jobs, cascade))
        return jobs, cascade, fake

    yield build
    for jobs, cascade in opened:
        jobs.close()
        cascade.close()


def write_rows(path, texts: list[str]):
    path.write_text("".join(json.dumps({"id": f"m{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def job_count(jobs: Jobs) -> int:
    with jobs.store._tx() as s:
        return s.scalar(select(func.count()).select_from(JobRecord))


def test_a_workflow_job_runs_each_row_and_a_paused_item_completes_from_the_review_queue(make, tmp_path):
    # rows 1-2: fraud (the flow stops, completed); row 3: legit, nothing ingested to answer from ->
    # handed to a person; row 4: the fraud screen is unsure -> a person decides
    jobs, cascade, fake = make([INTENT, FRAUD, INTENT, FRAUD, INTENT, LEGIT, INTENT, UNSURE])
    path = write_rows(tmp_path / "in.jsonl", ["WINNER! claim now", "Free prize, call", "I lost my card",
                                              "Is my card blocked?"])
    job_id = jobs.submit(path, "workflow", workflow="support-triage", options={"k": 2})
    assert jobs.store.get_job(job_id)["params"] == {"workflow": "support-triage", "options": {"k": 2}}
    summary = jobs.run(job_id)
    assert summary["status"] == "done" and summary["done"] == 4 and summary["escalated"] == 0
    assert summary["phase"] == 1 and summary["budget"] is None  # no escalation phase, no budget decision
    rows = list(jobs.results(job_id))
    assert [(r["status"], r["outcome"], r["answer"]) for r in rows] == [
        ("done", "accepted", "flagged_fraud"), ("done", "accepted", "flagged_fraud"),
        ("done", "needs_review", None), ("done", "needs_review", None)]
    assert "waiting for review: handoff" in rows[2]["reason"] and "fraud-screen" in rows[3]["reason"]
    assert len(fake.calls) == 8
    for row, tasks in zip(rows, (["classify", "fraud"], ["classify", "fraud"], ["classify", "fraud", "handoff"],
                                 ["classify", "fraud"])):
        run = cascade.audit.get_run(row["run_id"])
        assert run["task"] == "workflow" and run["params"]["workflow"] == "support-triage"
        assert [c["task"] for c in cascade.audit.child_runs(row["run_id"])] == tasks

    with Workflows(cascade) as workflows:
        waiting = workflows.status(rows[2]["run_id"]).waiting
        assert [w["step"] for w in waiting] == ["handoff"]
        resumed = cascade.resolve_review(waiting[0]["review_run_id"], "We blocked it.", "bob")["workflow"]
        assert resumed["status"] == "completed" and resumed["output"]["reply"] == "We blocked it."
        assert workflows.status(rows[2]["run_id"]).status == "completed"
    assert len(fake.calls) == 8  # resuming ran no model call again
    assert cascade.audit.verify()["ok"]


def test_bad_workflow_names_and_options_are_refused_before_a_job_exists(make, tmp_path):
    jobs, _, _ = make([])
    path = write_rows(tmp_path / "in.jsonl", ["hello"])
    with pytest.raises(UnknownTaskError, match="unknown workflow 'no-such-flow'; registered workflows: .*support-triage"):
        jobs.submit(path, "workflow", workflow="no-such-flow")
    with pytest.raises(InvalidInputError, match=r"unknown option\(s\) \['colour'\] for support-triage"):
        jobs.submit(path, "workflow", workflow="support-triage", options={"colour": "red"})
    with pytest.raises(InvalidInputError, match="k must be an integer"):
        jobs.submit(path, "workflow", workflow="support-triage", options={"k": "four"})
    with pytest.raises(InvalidInputError, match="k must be an integer from 1 to 8"):
        jobs.submit(path, "workflow", workflow="contract-review", options={"k": 20})
    with pytest.raises(InvalidInputError, match="needs the workflow's name"):
        jobs.submit(path, "workflow")
    with pytest.raises(InvalidInputError, match="no escalation budget"):
        jobs.submit(path, "workflow", workflow="support-triage", max_spend=1.0)
    with pytest.raises(InvalidInputError, match="takes no --label"):
        jobs.submit(path, "workflow", workflow="support-triage", labels=["a", "b"])
    with pytest.raises(InvalidInputError, match="go with --task workflow"):
        jobs.submit(path, "classify", labels=["a", "b"], workflow="support-triage")
    assert job_count(jobs) == 0


def test_a_row_the_workflow_refuses_is_an_invalid_item(make, tmp_path):
    jobs, _, _ = make([])
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"text": "  "}) + "\n" + json.dumps({"text": "x", "labels": ["a"]}) + "\n")
    job_id = jobs.submit(path, "workflow", workflow="support-triage")
    assert [r["error"] for r in jobs.results(job_id)] == [
        "line 1: text is missing or empty; give the input of workflow support-triage",
        "line 2: unknown key(s) ['labels']; a workflow row has ['id', 'text']"]


def test_the_cli_refuses_bad_workflow_options_before_a_job_exists(tmp_path, monkeypatch):
    from cli.batch import batch_app

    config = write_config(tmp_path / "c.yaml", fake_tiers(1))
    path = write_rows(tmp_path / "in.jsonl", ["hello"])
    monkeypatch.setenv("CASCADE_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(batch_app, ["submit", str(path), "-t", "workflow", "-w", "support-triage",
                                            "-o", "colour=red", "-c", str(config)])
    assert result.exit_code == 2 and "unknown option(s) ['colour'] for support-triage" in result.output
    result = CliRunner().invoke(batch_app, ["submit", str(path), "-t", "workflow", "-w", "support-triage",
                                            "-o", "k", "-c", str(config)])
    assert result.exit_code == 2 and "is not key=value" in result.output


def test_a_failed_workflow_fails_its_item_and_retry_failed_resumes_it_at_the_failed_step(make, tmp_path):
    jobs, cascade, fake = make([INTENT, TierUnreachableError("t0 is down")])
    job_id = jobs.submit(write_rows(tmp_path / "in.jsonl", ["WINNER! claim now"]), "workflow",
                         workflow="support-triage")
    jobs.run(job_id)
    [row] = jobs.results(job_id)
    assert row["status"] == "failed" and row["error"].startswith("fraud-screen: ")
    assert row["reason"].startswith("failed: workflow support-triage at fraud-screen: ")
    assert cascade.audit.get_run(row["run_id"])["status"] == "failed"  # the workflow run stays in the log

    fake.outputs.append(FRAUD)
    assert jobs.retry_failed(job_id) == 1
    jobs.run(job_id)
    [again] = jobs.results(job_id)
    assert again["status"] == "done" and again["answer"] == "flagged_fraud" and again["run_id"] == row["run_id"]
    assert [c["task"] for c in cascade.audit.child_runs(row["run_id"])].count("classify") == 1
    assert len(fake.calls) == 3  # intent once, the fraud screen twice (failed, then retried)


def test_a_redelivered_item_runs_no_step_twice(make, tmp_path):
    # Item 1's execution is interrupted in its fraud screen (Ctrl-C), leaving its workflow run
    # `running`; item 2 finished its workflow but the execution died before writing the item. Both
    # are delivered again.
    jobs, cascade, fake = make([INTENT, DIE, FRAUD, INTENT, FRAUD])
    job_id = jobs.submit(write_rows(tmp_path / "in.jsonl", ["WINNER! claim now", "Free prize"]), "workflow",
                         workflow="support-triage")
    first, second = (i["id"] for i in jobs.store.iter_items(job_id))
    with pytest.raises(Died):
        jobs.process_item(first, "queued")
    run_id = next(jobs.store.iter_items(job_id))["run_id"]
    assert cascade.audit.get_run(run_id)["status"] == "running"

    assert jobs.process_item(first, "queued") == "done"  # resumed from its checkpoint
    assert jobs.process_item(first, "queued") == "skipped"  # a duplicate message: nothing to do
    children = cascade.audit.child_runs(run_id)  # the interrupted fraud screen is retried; the intent is kept
    assert [(c["task"], c["status"]) for c in children] == [("classify", "accepted"), ("fraud", "failed"),
                                                            ("fraud", "accepted")]

    assert jobs.process_item(second, "queued") == "done"
    with jobs.store._tx() as s:
        s.execute(sql("UPDATE job_items SET status = 'queued', outcome = NULL WHERE id = :i"), {"i": second})
    calls = len(fake.calls)
    assert jobs.process_item(second, "queued") == "done"  # the completed run's recorded result
    assert len(fake.calls) == calls == 4  # each item's intent and fraud screen once (the call that died aside)
    assert [(r["outcome"], r["answer"]) for r in jobs.results(job_id)] == [("accepted", "flagged_fraud")] * 2
    with cascade.audit.engine.connect() as conn:
        assert conn.execute(sql("SELECT count(*) FROM runs WHERE status = 'running'")).scalar() == 0
    assert cascade.audit.verify()["ok"]


def test_an_item_whose_execution_died_before_the_first_checkpoint_restarts_its_run(make, tmp_path):
    jobs, cascade, fake = make([INTENT, FRAUD])
    job_id = jobs.submit(write_rows(tmp_path / "in.jsonl", ["WINNER! claim now"]), "workflow",
                         workflow="support-triage")
    [item] = jobs.store.iter_items(job_id)
    started = jobs.store.start_item(item["id"], "queued")  # the dead execution fixed the run id, started the run
    cascade.audit.start_run("workflow", "WINNER! claim now", {"workflow": "support-triage", "options": {}}, "-",
                            run_id=started["run_id"])
    assert jobs.process_item(item["id"], "queued") == "done"
    [row] = jobs.results(job_id)
    assert row["run_id"] == started["run_id"] and row["answer"] == "flagged_fraud"
    assert len(fake.calls) == 2
