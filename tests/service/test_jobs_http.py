"""Batch jobs over HTTP on the embedded executor (the server process runs them): JSON items and a
CSV upload, status, results as JSON lines and CSV, cancel, retry-failed; the completion webhook
received by a local receiver, its signature checked, a failed delivery retried."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import time

import pytest
from sqlalchemy import func, select

from orchestrator import AuditStore, KeyStore
from orchestrator.jobs.records import JobItemRecord
from tests.service.receiver import Receiver

pytestmark = pytest.mark.slow  # a real server


def wait_for(client, job_id, done=lambda s: s["status"] in ("done", "cancelled"), timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/v1/jobs/{job_id}").json()
        if done(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not finished: {status}")


def webhook_secret(service, scope="jobs") -> str:
    store = KeyStore(service.settings.audit_url)
    try:
        return store.webhook_secret(service.key_ids[scope])
    finally:
        store.close()


def test_json_job_results_and_a_signed_webhook_retried_once(service):
    items = [{"id": f"m{i}", "text": t} for i, t in enumerate(["win a prize", "tier-down item", "see you", "ok"])]
    with Receiver(replies=[500]) as receiver, service.client("jobs") as client:
        accepted = client.post("/v1/jobs", json={"task": "classify", "labels": ["spam", "ham"], "items": items,
                                                 "callback_url": receiver.url})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        assert accepted.json()["mode"] == "embedded"
        status = wait_for(client, job_id, lambda s: (s.get("webhook") or {}).get("state") == "delivered")
        lines = [json.loads(x) for x in client.get(f"/v1/jobs/{job_id}/results").text.splitlines()]
        rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"}).text)))
        assert client.get(f"/v1/jobs/{job_id}/results", params={"format": "xml"}).status_code == 422
    assert status["total"] == 4 and status["done"] == 3 and status["failed"] == 1
    assert [d["status_code"] for d in status["webhook"]["deliveries"]] == [500, 200]  # retried after a 500
    assert [r["id"] for r in lines] == ["m0", "m1", "m2", "m3"] and [r["id"] for r in rows] == ["m0", "m1", "m2", "m3"]
    assert lines[1]["status"] == "failed" and lines[0]["answer"] == "spam"
    audit = AuditStore(service.settings.audit_url)
    assert {audit.get_run(r["run_id"])["api_key_id"] for r in lines} == {service.key_ids["jobs"]}
    audit.close()
    secret = webhook_secret(service)
    for delivery in receiver.received:
        expected = "sha256=" + hmac.new(secret.encode(), delivery["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(delivery["headers"]["X-Cascade-Signature"], expected)
    payload = json.loads(receiver.received[-1]["body"])
    assert payload["event"] == "job.finished" and payload["job"]["id"] == job_id and payload["job"]["status"] == "done"


def test_csv_upload_retry_failed_and_cancel(service):
    csv_file = "id,text\nr1,free ringtones\nr2,tier-down again\n"
    with service.client("jobs") as client:
        accepted = client.post("/v1/jobs/upload", files={"file": ("in.csv", csv_file, "text/csv")},
                               data={"task": "classify", "labels": ["spam", "ham"]})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        assert wait_for(client, job_id)["failed"] == 1
        retried = client.post(f"/v1/jobs/{job_id}/retry-failed")
        assert retried.json()["requeued"] == 1
        assert wait_for(client, job_id)["failed"] == 1  # still down: failed again, a new try recorded
        bad_name = client.post("/v1/jobs/upload", files={"file": ("in.txt", "x", "text/plain")}, data={"task": "fraud"})
        assert bad_name.status_code == 422 and "file" in bad_name.json()["detail"]
        done = client.post(f"/v1/jobs/{job_id}/cancel")
        assert done.status_code == 422 and "already done" in done.json()["detail"]
        assert client.get("/v1/jobs/no-such-job").status_code == 404
        empty = client.post("/v1/jobs", json={"task": "classify", "labels": ["a", "b"], "items": []})
        assert empty.status_code == 422 and "items" in empty.json()["detail"]


def test_a_retried_job_submission_creates_one_job(service):
    body = {"task": "fraud", "items": [{"id": "t1", "text": "see you at nine"}]}
    with service.client("jobs") as client:
        first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "job-once"})
        retry = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "job-once"})
        assert first.status_code == retry.status_code == 202
        assert retry.json()["job_id"] == first.json()["job_id"] and retry.headers["idempotent-replayed"] == "true"
        wait_for(client, first.json()["job_id"])
    jobs = service.app.state.service.jobs.store
    with jobs._tx() as s:
        n = s.scalar(select(func.count()).select_from(JobItemRecord).where(JobItemRecord.external_id == "t1"))
    assert n == 1


def test_a_workflow_job_runs_the_workflow_per_item(service):
    items = [{"id": "w1", "text": "WINNER claim at http://bit.ly/x"}, {"id": "w2", "text": "unsure: is my card blocked?"}]
    with service.client("jobs") as client:
        accepted = client.post("/v1/jobs", json={"task": "workflow", "workflow": "support-triage", "items": items})
        assert accepted.status_code == 202, accepted.text
        status = wait_for(client, accepted.json()["job_id"])
        lines = [json.loads(x) for x in client.get(f"/v1/jobs/{accepted.json()['job_id']}/results").text.splitlines()]
        bad = client.post("/v1/jobs", json={"task": "workflow", "workflow": "support-triage", "items": items,
                                            "options": {"colour": "red"}})
        assert bad.status_code == 422 and "colour" in bad.json()["detail"]
        unknown = client.post("/v1/jobs/upload", files={"file": ("in.jsonl", json.dumps(items[0]) + "\n")},
                              data={"task": "workflow", "workflow": "no-such-flow"})
        assert unknown.status_code == 404 and "no-such-flow" in unknown.json()["detail"]
        not_json = client.post("/v1/jobs/upload", files={"file": ("in.jsonl", json.dumps(items[0]) + "\n")},
                               data={"task": "workflow", "workflow": "support-triage", "options": "{k: 2"})
        assert not_json.status_code == 422 and "options" in not_json.json()["detail"]
    assert status["total"] == 2 and status["done"] == 2
    assert [(r["id"], r["outcome"]) for r in lines] == [("w1", "accepted"), ("w2", "needs_review")]
    audit = AuditStore(service.settings.audit_url)
    runs = [audit.get_run(r["run_id"]) for r in lines]
    assert [r["task"] for r in runs] == ["workflow", "workflow"] and runs[1]["status"] == "paused"
    assert [c["task"] for c in audit.child_runs(runs[0]["id"])] == ["classify", "fraud"]
    audit.close()
