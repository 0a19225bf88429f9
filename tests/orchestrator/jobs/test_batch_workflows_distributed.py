"""A workflow batch job on a real Celery worker (real Redis, PostgreSQL with LangGraph's PostgreSQL
checkpointer, the real SmolLM2 as the only tier): the worker runs each item's whole workflow
through the same item path as the embedded executor, and reuses one checkpointer connection."""

from __future__ import annotations

import json

import pytest

from orchestrator import Cascade, Workflows
from tests.orchestrator.jobs.test_batch_distributed import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1200)]


def test_a_workflow_job_on_a_celery_worker(tmp_path, data_dir, postgres_url):
    cluster = Cluster(tmp_path, data_dir, postgres_url)
    try:
        cluster.start_worker(pool="prefork", concurrency=1)
        path = tmp_path / "in.jsonl"
        path.write_text("".join(json.dumps({"id": f"m{i}", "text": t}) + "\n" for i, t in
                                enumerate(["I lost my card yesterday", "WINNER! Claim your free prize now",
                                           "Why was I charged a fee?"])))
        job_id = cluster.jobs.submit(path, "workflow", workflow="support-triage", options={"k": 2})
        cluster.wait_until(job_id, 3, timeout=900)
        rows = list(cluster.jobs.results(job_id))
        # no document is ingested: a legit message ends with a person (needs_review), a fraud verdict completes
        assert all(r["status"] == "done" and r["outcome"] in ("accepted", "needs_review") for r in rows), rows
        assert len({r["run_id"] for r in rows}) == 3
        with Cascade.from_config(cluster.config, data_dir=str(data_dir), database_url=postgres_url) as cascade, \
                Workflows(cascade) as workflows:
            for r in rows:
                run = workflows.status(r["run_id"])
                assert run.workflow == "support-triage" and run.status in ("completed", "paused")
                assert (run.status == "completed") == (r["outcome"] == "accepted")
                assert [c["task"] for c in cascade.audit.child_runs(r["run_id"])][:2] == ["classify", "fraud"]
        assert cluster.running_runs(job_id) == []
        log = (tmp_path / "worker0.log").read_text()
        assert log.count("llama.cpp threads per local tier") == 1, "the pool process builds its job layer once"
    finally:
        cluster.stop()
