"""Every endpoint through the real server: task results with their audit run (and the key that
asked), documents, review, audit, jobs, health, metrics, OpenAPI; errors by status."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestrator import AuditStore

pytestmark = pytest.mark.slow  # a real server (and MiniLM for documents and contracts)


def audit(service) -> AuditStore:
    return AuditStore(service.settings.audit_url)


def test_classify_returns_the_sdk_result_and_records_the_key(service):
    with service.client("tasks") as client:
        response = client.post("/v1/classify", json={"text": "I lost my card", "labels": ["lost card", "arrival"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == "lost card" and body["outcome"] == "accepted" and body["tier_name"] == "t0"
    assert response.headers["x-request-id"]
    run = audit(service).get_run(body["run_id"])
    assert run["status"] == "accepted" and run["api_key_id"] == service.key_ids["tasks"]
    assert audit(service).verify()["ok"]


def test_fraud_and_an_escalation_to_review(service):
    with service.client("tasks") as client:
        fraud = client.post("/v1/fraud", json={"text": "URGENT: pay the fee at http://bit.ly/x"})
        unsure = client.post("/v1/fraud", json={"text": "unsure item"})
    assert fraud.status_code == 200 and fraud.json()["verdict"] in ("fraud", "legit")
    assert {i["name"] for i in fraud.json()["indicators"]} >= {"urgency", "suspicious_link"}
    result = unsure.json()
    assert result["outcome"] == "needs_review" and [a["tier_name"] for a in result["attempts"]] == ["t0", "t1"]
    with service.client("review") as client:
        queue = client.get("/v1/review").json()
        assert result["run_id"] in [r["id"] for r in queue]
        resolved = client.post(f"/v1/review/{result['run_id']}", json={"answer": "legit"})
        assert resolved.status_code == 200 and resolved.json()["reviewer"] == "review key"
        again = client.post(f"/v1/review/{result['run_id']}", json={"answer": "legit"})
        assert again.status_code == 422 and "already resolved" in again.json()["detail"]
        assert client.post("/v1/review/no-such-run", json={"answer": "b"}).status_code == 404


def test_documents_ask_and_contract(service):
    with service.client("admin") as client:
        added = client.post("/v1/documents", json={"documents": [
            {"name": "handbook.md", "text": "The notice period is three months.\n\nHolidays: 25 days a year."}]})
        assert added.status_code == 200, added.text
        assert added.json()[0]["chunks"] >= 1
        listed = client.get("/v1/documents").json()
        assert [d["path"].rsplit("/", 1)[-1] for d in listed] == ["handbook.md"]
        bad = client.post("/v1/documents", json={"documents": [{"name": "../x.md", "text": "hi"}]})
        assert bad.status_code == 422 and "../x.md" in bad.json()["detail"]
        answer = client.post("/v1/ask", json={"question": "What is the notice period?"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["run_id"] and answer.json()["outcome"] in ("accepted", "needs_review")
        review = client.post("/v1/contract", json={"text": "This Agreement is governed by the laws of Delaware. " * 30,
                                                    "categories": ["Governing Law"]})
        assert review.status_code == 200, review.text
        assert [r["category"] for r in review.json()["results"]] == ["Governing Law"]
        unknown = client.post("/v1/contract", json={"text": "x", "categories": ["Nope"]})
        assert unknown.status_code == 422 and "Nope" in unknown.json()["detail"]


def test_audit_endpoints(service):
    with service.client("tasks") as client:
        run_id = client.post("/v1/classify", json={"text": "for the audit", "labels": ["a", "b"]}).json()["run_id"]
    with service.client("audit") as client:
        run = client.get(f"/v1/audit/runs/{run_id}").json()
        assert run["id"] == run_id and len(run["attempts"]) == 1 and run["api_key_id"] == service.key_ids["tasks"]
        assert run_id in [r["id"] for r in client.get("/v1/audit/runs", params={"limit": 50}).json()]
        missing = client.get("/v1/audit/runs/nope")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        assert client.get("/v1/audit/verify").json()["ok"] is True
        exported = [json.loads(line) for line in client.get("/v1/audit/export").text.splitlines()]
        assert run_id in [r["id"] for r in exported] and all(r["ledger_hash"] for r in exported)


def test_errors_have_a_status_and_name_the_problem(service):
    with service.client("tasks") as client:
        missing = client.post("/v1/classify", json={"labels": ["a", "b"]})
        assert missing.status_code == 422 and "body.text" in missing.json()["detail"]
        wrong_type = client.post("/v1/classify", json={"text": "x", "labels": "ab"})
        assert wrong_type.status_code == 422 and "body.labels" in wrong_type.json()["detail"]
        malformed = client.post("/v1/classify", content=b'{"text": ', headers={"Content-Type": "application/json"})
        assert malformed.status_code == 422 and malformed.json()["error"] == "invalid_request"
        one_label = client.post("/v1/classify", json={"text": "x", "labels": ["a"]})
        assert one_label.status_code == 422 and "label" in one_label.json()["detail"]
        big = client.post("/v1/classify", json={"text": "x" * (70 * 1024), "labels": ["a", "b"]})
        assert big.status_code == 413 and big.json()["error"] == "body_too_large"
        down = client.post("/v1/classify", json={"text": "tier-down now", "labels": ["a", "b"]})
        assert down.status_code == 503 and down.json()["tier"] == "t0" and "'t0'" in down.json()["detail"]
        assert client.get("/v1/nothing-here").status_code == 404
    run = audit(service).get_run(down.json()["run_id"])
    assert run["status"] == "failed" and run["error_type"] == "TierUnreachableError"
    assert all("traceback" not in r.text.lower() for r in (missing, big, down))


def test_request_id_is_kept_or_made(service):
    with service.client("tasks") as client:
        given = client.get("/healthz", headers={"X-Request-ID": "pipeline-42"})
        made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert given.headers["x-request-id"] == "pipeline-42"
    assert made.headers["x-request-id"] != "bad id with spaces" and len(made.headers["x-request-id"]) == 32


def test_idempotent_retries_run_nothing_twice(service):
    store = audit(service)
    before = len(store.list_runs(limit=10_000))
    body = {"text": "pay me once", "labels": ["a", "b"]}
    with service.client("tasks") as client:
        first = client.post("/v1/classify", json=body, headers={"Idempotency-Key": "retry-1"})
        retries = [client.post("/v1/classify", json=body, headers={"Idempotency-Key": "retry-1"}) for _ in range(3)]
        with ThreadPoolExecutor(4) as pool:  # racing duplicates: one runs, the others replay or are told to wait
            raced = list(pool.map(lambda _: client.post("/v1/classify", json=body, headers={"Idempotency-Key": "race"}),
                                  range(4)))
        other_body = client.post("/v1/classify", json={**body, "text": "else"}, headers={"Idempotency-Key": "retry-1"})
    assert first.status_code == 200
    assert all(r.status_code == 200 and r.json() == first.json() and r.headers["idempotent-replayed"] == "true"
               for r in retries)
    assert {r.status_code for r in raced} <= {200, 409} and len({r.json()["run_id"] for r in raced if r.status_code == 200}) == 1
    assert other_body.status_code == 422 and "different request" in other_body.json()["detail"]
    assert len(store.list_runs(limit=10_000)) == before + 2  # one run per key, no duplicate


def test_a_failed_request_frees_its_idempotency_key(service):
    body = {"text": "tier-down once", "labels": ["a", "b"]}
    with service.client("tasks") as client:
        first = client.post("/v1/classify", json=body, headers={"Idempotency-Key": "fails"})
        second = client.post("/v1/classify", json=body, headers={"Idempotency-Key": "fails"})
    assert first.status_code == second.status_code == 503
    assert first.json()["run_id"] != second.json()["run_id"]  # the retry ran (and was recorded) again


def test_health_readiness_metrics_and_openapi(service):
    with service.client(None) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "tier1": "ok"}
        schema = anonymous.get("/openapi.json").json()
        assert {"/v1/classify", "/v1/fraud", "/v1/contract", "/v1/ask", "/v1/jobs", "/v1/review",
                "/v1/audit/runs/{run_id}", "/v1/documents", "/metrics"} <= set(schema["paths"])
        assert "CascadeResult" in schema["components"]["schemas"]
        assert anonymous.get("/docs").status_code == 200
        assert anonymous.get("/metrics").status_code == 401
    with service.client("tasks") as client:
        client.post("/v1/classify", json={"text": "unsure metric", "labels": ["a", "b"]})
    with service.client("admin") as client:
        text = client.get("/metrics").text
    assert 'cascade_http_requests_total{endpoint="/v1/classify",method="POST",status="200"}' in text
    assert 'cascade_escalations_total{task="classify",tier="t1"}' in text
    assert "cascade_http_request_seconds_bucket" in text and 'cascade_queue_depth{status="queued"}' in text


def test_workflows_run_pause_and_resume_through_the_review_endpoint(service):
    with service.client("tasks") as client:
        listed = client.get("/v1/workflows").json()
        assert {w["name"] for w in listed} >= {"support-triage", "contract-review"}
        flagged = client.post("/v1/workflows/support-triage/runs", json={"text": "WINNER claim at http://bit.ly/x"})
        assert flagged.status_code == 200, flagged.text
        assert flagged.json()["status"] == "completed" and flagged.json()["output"]["disposition"] == "flagged_fraud"
        paused = client.post("/v1/workflows/support-triage/runs", json={"text": "unsure: is my card blocked?"}).json()
        assert paused["status"] == "paused" and paused["waiting"][0]["step"] == "fraud-screen"
        assert client.post(f"/v1/workflows/runs/{paused['run_id']}/resume").json()["status"] == "paused"  # no answer yet
        assert client.post("/v1/workflows/no-such-flow/runs", json={"text": "hi"}).status_code == 404
        bad = client.post("/v1/workflows/support-triage/runs", json={"text": "hi", "options": {"colour": "red"}})
        assert bad.status_code == 422 and "colour" in bad.json()["detail"]
        assert client.get("/v1/workflows/runs/no-such-run").status_code == 404
        step_run = flagged.json()["output"]["path"][0]["run_id"]  # a step's run is not a workflow run
        assert client.post(f"/v1/workflows/runs/{step_run}/resume").status_code == 404
    with service.client("review") as client:
        resolved = client.post(f"/v1/review/{paused['waiting'][0]['review_run_id']}", json={"answer": "legit"}).json()
        assert resolved["workflow"]["status"] == "paused"  # the reader cannot answer: a person gets the case
        handoff = resolved["workflow"]["waiting"][0]
        assert handoff["step"] == "handoff"
        client.post(f"/v1/review/{handoff['review_run_id']}", json={"answer": "We unblocked it."})
    with service.client("tasks") as client:
        done = client.get(f"/v1/workflows/runs/{paused['run_id']}").json()
        assert done["status"] == "completed" and done["output"]["reply"] == "We unblocked it."
        assert [e["kind"] for e in done["events"]].count("resume") == 2
        again = client.post(f"/v1/workflows/runs/{paused['run_id']}/resume")
        assert again.status_code == 422 and "already completed" in again.json()["detail"]
    with service.client("jobs") as client:  # a key without the tasks scope
        assert client.get("/v1/workflows").status_code == 403
    store = audit(service)
    assert store.get_run(paused["run_id"])["api_key_id"] == service.key_ids["tasks"]
    assert [c["task"] for c in store.child_runs(paused["run_id"])][:2] == ["classify", "fraud"]
    assert store.verify()["ok"]
