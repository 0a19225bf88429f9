"""Keys and scopes through the real server: the scope matrix (each endpoint with each scope:
allowed, or 403), 401 for a missing, wrong or revoked key, 429 with Retry-After past the rate
limit; and a hypothesis property test: generated bodies to every endpoint get 4xx, never 5xx."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from orchestrator import KeyStore
from orchestrator.access import SCOPES
from tests.service.conftest import serve

pytestmark = pytest.mark.slow  # a real server

# (method, path, the scope it needs). POST bodies in the matrix are empty: an allowed call gets
# its 422, a refused one its 403 first (the key is checked before the body).
ENDPOINTS = [
    ("POST", "/v1/classify", "tasks"), ("POST", "/v1/fraud", "tasks"), ("POST", "/v1/contract", "tasks"),
    ("POST", "/v1/ask", "tasks"), ("GET", "/v1/documents", "tasks"), ("POST", "/v1/documents", "admin"),
    ("POST", "/v1/jobs", "jobs"), ("POST", "/v1/jobs/upload", "jobs"), ("GET", "/v1/jobs/nope", "jobs"),
    ("GET", "/v1/jobs/nope/results", "jobs"), ("POST", "/v1/jobs/nope/cancel", "jobs"),
    ("POST", "/v1/jobs/nope/retry-failed", "jobs"), ("GET", "/v1/review", "review"),
    ("POST", "/v1/review/nope", "review"), ("GET", "/v1/audit/runs", "audit"), ("GET", "/v1/audit/runs/nope", "audit"),
    ("GET", "/v1/audit/verify", "audit"), ("GET", "/v1/audit/export", "audit"), ("GET", "/metrics", "admin"),
]


def call(client, method, path, **kwargs):
    if method == "POST" and "json" not in kwargs and "content" not in kwargs:
        kwargs["json"] = {}
    return client.request(method, path, **kwargs)


def test_scope_matrix(service):
    seen = {}
    for scope in SCOPES:
        with service.client(scope) as client:
            for method, path, needed in ENDPOINTS:
                status = call(client, method, path).status_code
                allowed = scope == needed or scope == "admin"
                seen[(scope, method, path)] = status
                assert (status not in (401, 403)) if allowed else (status == 403), (scope, method, path, status)
    assert len(seen) == len(SCOPES) * len(ENDPOINTS)


def test_no_wrong_or_revoked_key_gets_401(service, tmp_path):
    store = KeyStore(service.settings.audit_url)
    revoked = store.create(["tasks"], name="soon revoked")
    with service.client(None) as client:
        for method, path, _ in ENDPOINTS:
            assert call(client, method, path).status_code == 401
        body = {"text": "x", "labels": ["a", "b"]}
        wrong = client.post("/v1/classify", json=body, headers={"Authorization": "Bearer csk_000000000000_nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert client.post("/v1/classify", json=body, headers={"X-API-Key": revoked.token}).status_code == 200
        store.revoke(revoked.key_id)
        assert client.post("/v1/classify", json=body, headers={"X-API-Key": revoked.token}).status_code == 401
        tampered = revoked.token[:-2] + "xx"
        assert client.post("/v1/classify", json=body, headers={"X-API-Key": tampered}).status_code == 401
    assert revoked.key_id in [k["id"] for k in store.list() if k["revoked_at"]]
    assert all("secret" not in k and revoked.token not in str(k) for k in store.list())
    store.close()


def test_rate_limit_answers_429_with_retry_after(tmp_path):
    served, server, thread = serve(tmp_path, service_rate_limit_per_min=3)
    try:
        with served.client("tasks") as client:
            statuses = [client.get("/v1/documents").status_code for _ in range(4)]
            limited = client.get("/v1/documents")
        with served.client("audit") as other:  # per key: another key still passes
            assert other.get("/v1/audit/verify").status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"] == "rate_limited"


# JSON has no NaN or infinity (httpx refuses to encode them)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6)
                           | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(max_size=20), lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=10)
FIELDS = ["text", "labels", "question", "k", "categories", "confidential", "documents", "task", "items",
          "answer", "reviewer", "note", "callback_url", "max_spend", "max_escalation_share", "name"]
bodies = st.one_of(json_values, st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5))
raw = st.binary(max_size=64)


QUERY = st.dictionaries(st.sampled_from(["limit", "task", "status", "since", "format"]),
                        st.text(max_size=12) | st.integers(-5, 10**6).map(str), max_size=3)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(endpoint=st.sampled_from(ENDPOINTS), body=bodies, junk=raw, as_raw=st.booleans(), query=QUERY)
def test_generated_bodies_never_get_a_5xx(service, endpoint, body, junk, as_raw, query):
    """POSTs get generated JSON or raw bytes; GETs generated query parameters."""
    method, path, _ = endpoint
    with service.client("admin") as client:
        if method == "GET":
            response = client.get(path, params=query)
        elif as_raw:
            response = client.request(method, path, content=junk, headers={"Content-Type": "application/json"})
        else:
            response = client.request(method, path, json=body)
    assert response.status_code < 500, (method, path, body, query, response.text)
    assert response.headers["x-request-id"]
