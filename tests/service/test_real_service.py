"""The real bundled SmolLM2 through the real server; and a job submitted over HTTP in distributed
mode, run by a real Celery worker on PostgreSQL and Redis, its completion webhook received by a
local receiver with the signature checked."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from orchestrator import AuditStore, KeyStore, load_settings
from service import create_app
from tests.orchestrator.jobs.test_batch_distributed import TEXTS, Cluster
from tests.conftest import free_port
from tests.service.conftest import start_server
from tests.service.receiver import Receiver
from tests.service.test_jobs_http import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]


def test_distributed_job_over_http_with_webhook_and_real_smollm2(tmp_path, data_dir, postgres_url):
    cluster = Cluster(tmp_path, data_dir, postgres_url)
    settings = load_settings(cluster.config, data_dir=str(data_dir), database_url=postgres_url,
                             batch_mode="distributed", broker_url=cluster.env["CASCADE_BROKER_URL"])
    store = KeyStore(settings.audit_url)
    key = store.create(["tasks", "jobs"], name="pipeline")
    store.close()
    port = free_port()
    server, thread = start_server(create_app(settings, webhook_interval_s=0.2), port)
    headers = {"Authorization": f"Bearer {key.token}"}
    try:
        with Receiver() as receiver, httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers,
                                                  timeout=120) as client:
            one = client.post("/v1/classify", json={"text": "WINNER! Claim your prize", "labels": ["spam", "ham"]})
            assert one.status_code == 200, one.text
            assert one.json()["tier_name"] == "smollm2-135m" and one.json()["answer"] in ("spam", "ham")
            ready = client.get("/readyz").json()
            assert ready["checks"] == {"database": "ok", "broker": "ok", "tier1": "ok"}

            cluster.start_worker()
            items = [{"id": f"m{i}", "text": t, "labels": ["spam", "ham"]} for i, t in enumerate(TEXTS)]
            accepted = client.post("/v1/jobs", json={"task": "classify", "items": items, "callback_url": receiver.url})
            assert accepted.status_code == 202 and accepted.json()["mode"] == "distributed"
            job_id = accepted.json()["job_id"]
            status = wait_for(client, job_id, lambda s: (s.get("webhook") or {}).get("state") == "delivered", 400)
            results = [json.loads(x) for x in client.get(f"/v1/jobs/{job_id}/results").text.splitlines()]
        assert status["done"] == len(TEXTS) and status["failed"] == 0
        assert [r["id"] for r in results] == [f"m{i}" for i in range(len(TEXTS))]
        audit = AuditStore(postgres_url)
        item_runs = [audit.get_run(r["run_id"]) for r in results]
        assert all(run["status"] == "accepted" and run["api_key_id"] == key.key_id for run in item_runs)
        assert audit.get_run(one.json()["run_id"])["api_key_id"] == key.key_id
        assert audit.verify()["ok"]
        audit.close()
        [delivery] = receiver.received
        expected = "sha256=" + hmac.new(key.webhook_secret.encode(), delivery["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(delivery["headers"]["X-Cascade-Signature"], expected)
        assert json.loads(delivery["body"])["job"]["done"] == len(TEXTS)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        cluster.stop()
