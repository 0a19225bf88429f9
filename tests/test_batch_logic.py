"""The job layer's logic in isolation (fake tiers, SQLite, the embedded executor): two phases,
the escalation budget, retries, idempotent re-delivery, cancel and retry-failed."""

from __future__ import annotations

import json
import math

import pytest

from agents.backends import FakeScoringBackend
from agents.errors import ModelFileError, TierUnreachableError
from orchestrator import Cascade, Jobs, load_settings
from tests.conftest import write_config

LABELS = ["spam", "ham"]


def scores(p_spam: float) -> dict[str, float]:
    return {"spam": math.log(p_spam), "ham": math.log(1 - p_spam)}


def write_jsonl(path, n: int):
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"r{i}", "text": f"message {i}"}) + "\n")
    return path


@pytest.fixture
def make(tmp_path):
    opened = []

    def build(t0: list, t1: list | None = None, threshold: float = 0.8, **overrides):
        tiers = [{"name": "t0", "kind": "llama_cpp", "model_path": "unused.gguf"}]
        backends = {"t0": FakeScoringBackend(t0)}
        if t1 is not None:
            tiers.append({"name": "t1", "kind": "llama_cpp", "model_path": "unused.gguf"})
            backends["t1"] = FakeScoringBackend(t1)
        settings = load_settings(write_config(tmp_path / "c.yaml", tiers, threshold=threshold),
                                 data_dir=str(tmp_path / "data"), batch_retry_backoff_s=0.0, **overrides)
        cascade = Cascade(settings, backends=backends)
        jobs = Jobs(settings, cascade=cascade)
        opened.append((jobs, cascade))
        return jobs, backends

    yield build
    for jobs, cascade in opened:
        jobs.close()
        cascade.close()


def test_two_phases_and_budget(make, tmp_path):
    # 10 items: 4 confident, 6 below the threshold with confidences 0.5..0.75; budget 30% = 3 escalations.
    t0 = [scores(0.95)] * 4 + [scores(p) for p in (0.75, 0.5, 0.7, 0.55, 0.65, 0.6)]
    jobs, backends = make(t0, [scores(0.99)] * 3)
    job_id = jobs.submit(write_jsonl(tmp_path / "in.jsonl", 10), "classify", labels=LABELS, max_escalation_share=0.3)
    summary = jobs.run(job_id)

    assert summary["status"] == "done" and summary["done"] == 7 and summary["over_budget"] == 3
    assert summary["escalated"] == 3 and summary["needed_escalation"] == 6
    assert "6 item(s) needed escalation, 3 admitted, 3 over budget" in summary["budget"]
    rows = {r["id"]: r for r in jobs.results(job_id)}
    # The least confident pending items were escalated (0.5, 0.55, 0.6 -> r5, r7, r9), after every tier-1 call.
    assert {k for k, r in rows.items() if r["escalated"]} == {"r5", "r7", "r9"}
    assert all(rows[k]["tier"] == "t1" and rows[k]["answer"] == "spam" for k in ("r5", "r7", "r9"))
    for k in ("r4", "r6", "r8"):
        assert rows[k]["status"] == "over_budget" and rows[k]["answer"] is None
        assert rows[k]["reason"].startswith("needs escalation, over budget: the job may escalate 0.3 of its 10 items (3)")
        run = jobs.cascade().audit.get_run(rows[k]["run_id"])
        assert run["status"] == "unresolved" and "over budget" in run["reason"] and len(run["attempts"]) == 1
    escalated_run = jobs.cascade().audit.get_run(rows["r5"]["run_id"])
    assert [a["tier_name"] for a in escalated_run["attempts"]] == ["t0", "t1"]  # one audit run, resumed
    assert len(backends["t0"].calls) == 10 and len(backends["t1"].calls) == 3


def test_provider_errors_retry_then_fail_with_reason(make, tmp_path):
    down = TierUnreachableError("provider down")
    # item 1: two errors then success; item 2: errors until its retries run out (1 + 2 retries).
    jobs, _ = make([down, down, scores(0.9), down, down, down], batch_max_retries=2)
    job_id = jobs.submit(write_jsonl(tmp_path / "in.jsonl", 2), "classify", labels=LABELS)
    summary = jobs.run(job_id)
    first, second = jobs.results(job_id)
    assert first["status"] == "done" and first["answer"] == "spam"
    assert second["status"] == "failed" and second["error"] == "TierUnreachableError: provider down (gave up after 3 tries)"
    assert summary["failed"] == 1 and summary["done"] == 1
    # every try left an audit run linked to its item
    items = list(jobs.store.iter_items(job_id))
    assert [len(jobs.store.item_runs(i["id"])) for i in items] == [3, 3]
    assert {r["status"] for r in map(jobs.cascade().audit.get_run, [r["run_id"] for r in jobs.store.item_runs(items[1]["id"])])} == {"failed"}


def test_configuration_errors_fail_at_once(make, tmp_path):
    jobs, backends = make([ModelFileError("no such model file"), scores(0.9)])
    job_id = jobs.submit(write_jsonl(tmp_path / "in.jsonl", 2), "classify", labels=LABELS)
    jobs.run(job_id)
    first, second = jobs.results(job_id)
    assert first["status"] == "failed" and "gave up" not in first["error"] and second["status"] == "done"


def test_redelivered_item_leaves_one_result(make, tmp_path):
    jobs, backends = make([scores(0.9), scores(0.1)])
    job_id = jobs.submit(write_jsonl(tmp_path / "in.jsonl", 1), "classify", labels=LABELS)
    [item] = jobs.store.iter_items(job_id)
    assert jobs.process_item(item["id"], "queued") == "done"
    assert jobs.process_item(item["id"], "queued") == "skipped"  # the same message delivered again
    assert len(backends["t0"].calls) == 1
    # Two executions racing: the second result write finds the item already done and is dropped.
    assert not jobs.store.finish_item(item["id"], "queued", {"status": "done", "answer": "ham"})
    [row] = jobs.results(job_id)
    assert row["answer"] == "spam"


def test_retry_failed_requeues_and_reruns(make, tmp_path):
    down = TierUnreachableError("provider down")
    jobs, _ = make([scores(0.9), down, scores(0.2)], batch_max_retries=0)
    job_id = jobs.submit(write_jsonl(tmp_path / "in.jsonl", 2), "classify", labels=LABELS)
    assert jobs.run(job_id)["failed"] == 1
    assert jobs.retry_failed(job_id) == 1
    summary = jobs.run(job_id)
    assert summary["failed"] == 0 and summary["done"] == 2
    assert [r["answer"] for r in jobs.results(job_id)] == ["spam", "ham"]


def test_cancel_stops_unfinished_items(make, tmp_path):
    jobs, backends = make([scores(0.9)] * 5)
    job_id = jobs.submit(write_jsonl(tmp_path / "in.jsonl", 5), "classify", labels=LABELS)
    [first, *_] = jobs.store.iter_items(job_id)
    jobs.process_item(first["id"], "queued")
    assert jobs.cancel(job_id) == 4
    summary = jobs.run(job_id)
    assert summary["status"] == "cancelled" and summary["cancelled"] == 4 and summary["done"] == 1
    assert len(backends["t0"].calls) == 1
