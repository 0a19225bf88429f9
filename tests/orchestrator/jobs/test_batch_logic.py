"""The job layer's logic in isolation (fake tiers, SQLite, the embedded executor): two phases,
the escalation budget (share and spend caps), retries, idempotent re-delivery, an execution that
died mid-item (its audit run reused), cancel and retry-failed."""

from __future__ import annotations

import json
import math

import pytest

import litellm
from sqlalchemy import text as sql

from agents.backends import FakeScoringBackend
from agents.errors import InvalidInputError, ModelFileError, RunConflictError, TierUnreachableError
from orchestrator import Cascade, Jobs, load_settings
from orchestrator.core.config import LitellmTier, LlamaCppTier
from orchestrator.jobs.budget import Candidate, plan_admission, price_of
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

    def build(t0: list, t1: list | None = None, threshold: float = 0.8, t1_tier: dict | None = None, **overrides):
        tiers = [{"name": "t0", "kind": "llama_cpp", "model_path": "unused.gguf"}]
        backends = {"t0": FakeScoringBackend(t0)}
        if t1 is not None:
            tiers.append({"name": "t1", **(t1_tier or {"kind": "llama_cpp", "model_path": "unused.gguf"})})
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
        assert run["status"] == "needs_review" and "over budget" in run["reason"] and len(run["attempts"]) == 1
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


# -- an execution that died mid-item: the next delivery reuses its audit run ------------------------

def ledger_kinds(jobs, run_id: str) -> list[str]:
    with jobs.store.engine.connect() as conn:
        return list(conn.scalars(sql("SELECT kind FROM audit_log WHERE run_id = :r ORDER BY seq"), {"r": run_id}))


def test_killed_execution_leaves_its_run_to_the_next_delivery(make, tmp_path):
    jobs, backends = make([scores(0.9)])
    job_id = jobs.submit(write_jsonl(tmp_path / "in.jsonl", 1), "classify", labels=LABELS)
    [item] = jobs.store.iter_items(job_id)
    # An execution claims the item (its run id is fixed on the row), starts the run, and is SIGKILLed.
    run_id = jobs.store.start_item(item["id"], "queued")["run_id"]
    audit = jobs.cascade().audit
    audit.start_run("classify", "message 0", {"labels": LABELS}, "config", run_id=run_id)
    assert audit.get_run(run_id)["status"] == "running"

    summary = jobs.run(job_id)  # the re-delivery
    [row] = jobs.results(job_id)
    assert summary["done"] == 1 and row["run_id"] == run_id and row["answer"] == "spam"
    assert audit.get_run(run_id)["status"] == "accepted" and len(audit.get_run(run_id)["attempts"]) == 1
    assert ledger_kinds(jobs, run_id) == ["run.start", "run.restart", "run.finish"]
    assert [r["run_id"] for r in jobs.store.item_runs(item["id"])] == [run_id]
    assert audit.list_runs(status="running") == [] and audit.verify()["ok"]
    assert len(backends["t0"].calls) == 1


def test_run_finished_before_the_item_was_written_is_taken_as_is(make, tmp_path):
    jobs, backends = make([scores(0.9)])
    job_id = jobs.submit(write_jsonl(tmp_path / "in.jsonl", 1), "classify", labels=LABELS)
    [item] = jobs.store.iter_items(job_id)
    run_id = jobs.store.start_item(item["id"], "queued")["run_id"]
    # The execution finished its run and died before writing the item's result.
    jobs.cascade().run("classify", run_id=run_id, stop_after_tier=0, text="message 0", labels=LABELS)
    summary = jobs.run(job_id)
    [row] = jobs.results(job_id)
    assert summary["done"] == 1 and row["run_id"] == run_id and row["answer"] == "spam"
    assert len(backends["t0"].calls) == 1, "the model was not called again"
    assert ledger_kinds(jobs, run_id) == ["run.start", "run.finish"]


def test_a_finished_job_leaves_no_run_running(make, tmp_path):
    """Safety net: a run still `running` when its job finishes was abandoned; it is closed, audited."""
    jobs, _ = make([scores(0.9)] * 2)
    job_id = jobs.submit(write_jsonl(tmp_path / "in.jsonl", 2), "classify", labels=LABELS)
    first, _second = jobs.store.iter_items(job_id)
    run_id = jobs.store.start_item(first["id"], "queued")["run_id"]
    audit = jobs.cascade().audit
    audit.start_run("classify", "message 0", {"labels": LABELS}, "config", run_id=run_id)
    jobs.store.finish_item(first["id"], "queued", {"status": "failed", "outcome": "failed", "error": "lost"})
    assert jobs.run(job_id)["status"] == "done"
    run = audit.get_run(run_id)
    assert run["status"] == "failed" and "abandoned" in run["reason"]
    assert audit.list_runs(status="running") == [] and audit.verify()["ok"]


def test_caller_chosen_run_id_conflicts(make, tmp_path):
    jobs, _ = make([scores(0.9)])
    cascade, audit = jobs.cascade(), jobs.cascade().audit
    done = cascade.run("classify", run_id="00000000-0000-4000-8000-000000000001", text="a text", labels=LABELS)
    assert done.run_id == "00000000-0000-4000-8000-000000000001"
    with pytest.raises(RunConflictError, match="already accepted"):
        audit.start_run("classify", "a text", {}, "config", run_id=done.run_id)
    running = audit.start_run("classify", "a text", {}, "config", run_id="00000000-0000-4000-8000-000000000002")
    with pytest.raises(RunConflictError, match="another input"):
        audit.start_run("classify", "another text", {}, "config", run_id=running)
    with pytest.raises(InvalidInputError, match="not both"):
        cascade.run("classify", run_id=running, resume_run_id=running, text="a text", labels=LABELS)
    assert audit.verify()["ok"]


# -- the spend cap ---------------------------------------------------------------------------------

def test_escalation_prices():
    priced = LitellmTier(kind="litellm", name="p", locality="external", model="openai/anything", max_tokens=16,
                         prices={"input_per_1k": 1.0, "output_per_1k": 2.0})
    assert price_of(priced).estimate(3, 2) == pytest.approx((3 * 1.0 + 16 * 2.0) / 1000)
    mapped = price_of(LitellmTier(kind="litellm", name="m", locality="external", model="openai/gpt-4o-mini",
                                  max_tokens=16))
    prompt, completion = litellm.cost_per_token(model="openai/gpt-4o-mini", prompt_tokens=500, completion_tokens=16)
    assert mapped.known and "litellm's price map" in mapped.source
    assert mapped.estimate(500, 2) == pytest.approx(prompt + completion)
    local = LlamaCppTier(kind="llama_cpp", name="l", model_path="x.gguf")
    assert price_of(local).estimate(500, 2) == 0.0
    notional = LlamaCppTier(kind="llama_cpp", name="n", model_path="x.gguf",
                            prices={"input_per_1k": 0.5, "output_per_1k": 2.0})
    assert price_of(notional).estimate(500, 2) == pytest.approx((500 * 0.5 + 2 * 2.0) / 1000)  # scored tokens out
    served = LitellmTier(kind="litellm", name="s", locality="local", model="openai/gemma-3-270m",
                         api_base="http://127.0.0.1:1/v1")
    assert price_of(served).estimate(500, 2) == 0.0
    unknown = price_of(LitellmTier(kind="litellm", name="u", locality="external", model="openai/no-such-model-xyz"))
    assert not unknown.known and unknown.estimate(500, 2) is None


def test_admission_plan_stops_at_the_first_cap_that_does_not_hold():
    price = price_of(LitellmTier(kind="litellm", name="p", locality="external", model="openai/x", max_tokens=10,
                                 prices={"input_per_1k": 1.0, "output_per_1k": 1.0}))
    # estimates 0.1, 0.1, 0.1, 0.02 (prompt tokens + 10 output tokens, 1.0 per 1k each)
    items = [Candidate(i, f"r{i}", "low", tokens_in, 2) for i, tokens_in in enumerate([90, 90, 90, 10])]
    plan = plan_admission(items, room=10, price=price, max_spend=0.25)
    # item 3 would fit the rest of the cap, but a more confident item never goes ahead of a less confident one
    assert [c.id for c in plan.admitted] == [0, 1] and [c.id for c in plan.over] == [2, 3]
    assert plan.stopped_by == "spend" and plan.estimated == pytest.approx(0.2)
    assert "over the spend cap: the job may spend 0.25" in plan.over_reason(items[2], "share", 0.25, 0.0, price)
    plan = plan_admission(items, room=1, price=price, max_spend=0.25)
    assert [c.id for c in plan.admitted] == [0] and plan.stopped_by == "share"
    assert plan.over_reason(items[1], "the job may escalate 0.1", 0.25, 0.0, price).endswith("escalate 0.1")
    plan = plan_admission(items, room=10, price=price, max_spend=0.25, spent=0.2)  # earlier admissions count
    assert plan.admitted == [] and plan.stopped_by == "spend"
    plan = plan_admission(items, room=10, price=price)  # no spend cap
    assert len(plan.admitted) == 4 and plan.estimated == pytest.approx(0.32)
    unknown = price_of(LitellmTier(kind="litellm", name="u", locality="external", model="openai/no-such-model-xyz"))
    plan = plan_admission(items, room=10, price=unknown, max_spend=100.0)
    assert plan.admitted == [] and "price of tier u is unknown" in plan.over_reason(items[0], "", 100.0, 0.0, unknown)


PRICED_T1 = {"kind": "litellm", "locality": "local", "model": "openai/priced", "max_tokens": 16,
             "prices": {"input_per_1k": 1.0, "output_per_1k": 2.0}}


def test_spend_cap_admits_least_confident_first_within_both_caps(make, tmp_path):
    # 6 items need escalation (0.5..0.75); each escalation to t1 is estimated at (3 prompt tokens * 1.0
    # + 16 output tokens * 2.0) / 1000 = 0.035, so max spend 0.1 admits 2 (the share cap would allow 5).
    t0 = [scores(0.95)] * 4 + [scores(p) for p in (0.75, 0.5, 0.7, 0.55, 0.65, 0.6)]
    jobs, backends = make(t0, [scores(0.99)] * 2, t1_tier=PRICED_T1)
    job_id = jobs.submit(write_jsonl(tmp_path / "in.jsonl", 10), "classify", labels=LABELS,
                         max_escalation_share=0.5, max_spend=0.1)
    summary = jobs.run(job_id)
    assert summary["escalated"] == 2 and summary["over_budget"] == 4 and summary["done"] == 6
    assert "2 admitted, 4 over budget (stopped by the spend cap)" in summary["budget"]
    assert summary["max_spend"] == 0.1 and summary["estimated_spend"] == pytest.approx(0.07)
    rows = {r["id"]: r for r in jobs.results(job_id)}
    assert {k for k, r in rows.items() if r["escalated"]} == {"r5", "r7"}  # the two least confident
    # actual: what t1's attempts cost at its prices (the fake scores prompt and label tokens)
    t1_costs = [a["cost"] for k in ("r5", "r7") for a in jobs.cascade().audit.get_run(rows[k]["run_id"])["attempts"]
                if a["tier_name"] == "t1"]
    assert len(t1_costs) == 2 and all(c > 0 for c in t1_costs) and summary["spend"] == pytest.approx(sum(t1_costs))
    for k in ("r4", "r6", "r8", "r9"):
        assert rows[k]["status"] == "over_budget"
        assert rows[k]["reason"].startswith("needs escalation, over the spend cap: the job may spend 0.1 on escalation")
        run = jobs.cascade().audit.get_run(rows[k]["run_id"])
        assert run["status"] == "needs_review" and "spend cap 0.1" in run["reason"]
    assert len(backends["t1"].calls) == 2 and jobs.cascade().audit.verify()["ok"]


def test_spend_cap_needs_a_priced_next_tier(make, tmp_path):
    unpriced = {"kind": "litellm", "locality": "external", "model": "openai/no-such-model-xyz"}
    jobs, _ = make([scores(0.5)], [scores(0.9)], t1_tier=unpriced)
    with pytest.raises(InvalidInputError, match="a spend cap needs the price of tier t1"):
        jobs.submit(write_jsonl(tmp_path / "in.jsonl", 1), "classify", labels=LABELS, max_spend=1.0)
    job_id = jobs.submit(write_jsonl(tmp_path / "in.jsonl", 1), "classify", labels=LABELS)  # no cap: fine
    assert jobs.status(job_id)["max_spend"] is None

