"""`cascade serve` refuses, at start-up, a deployment Qdrant's local mode cannot serve; `cascade
keys` creates (shown once), lists and revokes keys; log lines carry the request id, never a key."""

from __future__ import annotations

import json
import logging

import pytest
from typer.testing import CliRunner

from cli.main import app
from service.middleware import RequestIdFilter
from tests.conftest import fake_tiers, write_config


@pytest.fixture
def env(tmp_path):
    return {"CASCADE_CONFIG": str(write_config(tmp_path / "c.yaml", fake_tiers(1))),
            "CASCADE_DATA_DIR": str(tmp_path / "data")}


@pytest.mark.parametrize("args, extra, says", [
    (["--workers", "2"], {}, "2 server processes need a Qdrant server"),
    ([], {"CASCADE_BATCH_MODE": "distributed"}, "distributed batch jobs (Celery workers) need a Qdrant server"),
    (["--workers", "2"], {"CASCADE_QDRANT_URL": "http://127.0.0.1:6333"}, "need a shared database"),
])
def test_serve_refuses_what_local_qdrant_cannot_do(env, args, extra, says):
    result = CliRunner().invoke(app, ["serve", *args], env={**env, **extra})
    assert result.exit_code == 2 and says in " ".join(result.output.split())
    if "Qdrant" in says:
        assert "CASCADE_QDRANT_URL" in result.output


def test_keys_create_list_revoke(env):
    runner = CliRunner()
    created = json.loads(runner.invoke(app, ["keys", "create", "-s", "tasks", "-s", "audit", "--name", "etl",
                                             "--json"], env=env).output)
    assert created["key"].startswith(f"csk_{created['id']}_") and created["scopes"] == ["audit", "tasks"]
    listed = runner.invoke(app, ["keys", "list", "--json"], env=env).output
    assert created["id"] in listed and created["key"] not in listed and created["webhook_secret"] not in listed
    assert runner.invoke(app, ["keys", "revoke", created["id"]], env=env).exit_code == 0
    assert json.loads(runner.invoke(app, ["keys", "list", "--json"], env=env).output)[0]["revoked_at"]
    bad = runner.invoke(app, ["keys", "create", "-s", "everything"], env=env)
    assert bad.exit_code == 2 and "unknown scope" in bad.output
    assert runner.invoke(app, ["keys", "revoke", "nope"], env=env).exit_code == 2


@pytest.mark.slow
def test_log_lines_carry_the_request_id_and_no_key(service):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("service")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with service.client("tasks") as client:
            response = client.post("/v1/classify", json={"text": "log me", "labels": ["a", "b"]},
                                   headers={"X-Request-ID": "trace-me-1"})
            client.post("/v1/classify", json={"text": "x", "labels": ["a", "b"]},
                        headers={"Authorization": "Bearer csk_000000000000_not-a-real-key"})
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 200
    access = [r for r in records if r.name == "service.access"]
    assert any(r.request_id == "trace-me-1" and "/v1/classify" in r.getMessage() for r in access)
    assert all(service.keys["tasks"] not in r.getMessage() and "not-a-real-key" not in r.getMessage() for r in records)
    assert any(f"key={service.key_ids['tasks']}" in r.getMessage() for r in access)
