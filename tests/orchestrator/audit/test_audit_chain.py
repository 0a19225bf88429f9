"""The tamper-evident audit ledger, export and the review store, on SQLite and PostgreSQL.

Runs are built through AuditStore with hand-made results (no models); tampering is raw SQL."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

import migrations
from agents.errors import InvalidInputError
from agents.results import Attempt, CascadeResult
from cli.main import app
from orchestrator.audit.store import AuditStore
from orchestrator.jobs.store import JobStore
from tests.conftest import SMOL, write_config

LABELS = ["spam", "ham"]
runner = CliRunner()


def attempts(i: int) -> list[Attempt]:
    return [
        Attempt(tier_index=0, tier_name="t0", model_id="smol", model_file_hash="a" * 64, prompt_version="p1",
                answer="ham", label_probs={"spam": 0.4, "ham": 0.6}, confidence=0.6 + i / 1000, raw_confidence=0.61,
                calibration="none", threshold=0.8, decision="escalate", reason="below threshold", tokens_in=40,
                tokens_out=1, latency_ms=12.25, cost=0.0, redactions={"EMAIL": 1}),
        Attempt(tier_index=1, tier_name="t1", model_id="big", model_file_hash=None, prompt_version="p1",
                answer="spam", label_probs={"spam": 0.97, "ham": 0.03}, confidence=0.97, threshold=0.8,
                decision="accept", reason="confident", tokens_in=40, tokens_out=1, latency_ms=80.5, cost=1.5e-05),
    ]


def make_run(store: AuditStore, i: int, outcome: str = "accepted") -> str:
    run_id = store.start_run("classify", f"message {i}", {"labels": LABELS}, "cfg")
    tries = attempts(i)
    answer = None if outcome != "accepted" else "spam"
    store.finish_run(CascadeResult(run_id=run_id, task="classify", outcome=outcome, answer=answer,
                                   confidence=0.97 if answer else None, tier_name="t1" if answer else None,
                                   reason=f"run {i}", attempts=tries if outcome != "pending" else tries[:1],
                                   latency_ms=100.0 + i, cost=1.5e-05))
    return run_id


@pytest.fixture
def store(database_url):
    s = AuditStore(database_url)
    yield s
    s.close()


@pytest.fixture
def runs(store):
    """4 runs (seq 1-8: start+finish each), a failed one (9-10), a resolved review (11), a note (12)."""
    ids = [make_run(store, i, outcome="needs_review" if i == 2 else "accepted") for i in range(4)]
    failed = store.start_run("classify", "boom", {"labels": LABELS}, "cfg")
    store.fail_run(failed, RuntimeError("provider down"), attempts(9)[:1], 5.0)
    store.resolve_review(ids[2], "ham", "ann", "checked by hand")
    store.note_params(ids[0], learned_example="ex-1")
    return ids + [failed]


def sql(store: AuditStore, *statements: str, **params) -> None:
    with store.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params)


def test_untouched_store_verifies(store, runs):
    result = store.verify()
    assert result["ok"] and result["broken"] is None
    assert result["entries_checked"] == 12 and result["head_seq"] == 12 and result["runs_checked"] == 5
    run = store.get_run(runs[2])
    assert run["review"]["answer"] == "ham" and run["review"]["reviewer"] == "ann" and run["status"] == "needs_review"
    assert run["attempts"][0]["redactions"] == {"EMAIL": 1}


def test_small_batches_stream_the_same_result(store, runs):
    assert store.verify(batch=2)["ok"] and store.verify(batch=2)["entries_checked"] == 12


TAMPERING = {
    "edit runs.answer": (["UPDATE runs SET answer = 'ham' WHERE id = :r1"], {"table": "runs", "run_id": 1}, "answer"),
    "edit attempts.confidence": (["UPDATE attempts SET confidence = 0.99 WHERE run_id = :r3 AND seq = 0"],
                                 {"table": "attempts", "run_id": 3}, "confidence"),
    "delete an attempt": (["DELETE FROM attempts WHERE run_id = :r1 AND seq = 1"],
                          {"table": "attempts", "run_id": 1}, "deleted"),
    "swap two attempts' seq": (["UPDATE attempts SET seq = -1 WHERE run_id = :r0 AND seq = 0",
                                "UPDATE attempts SET seq = 0 WHERE run_id = :r0 AND seq = 1",
                                "UPDATE attempts SET seq = 1 WHERE run_id = :r0 AND seq = -1"],
                               {"table": "attempts", "run_id": 0}, "reordered"),
    "edit a review": (["UPDATE reviews SET answer = 'spam' WHERE run_id = :r2"], {"table": "reviews", "run_id": 2},
                      "answer"),
    "delete a run": (["DELETE FROM attempts WHERE run_id = :r1", "DELETE FROM runs WHERE id = :r1"],
                     {"table": "runs", "run_id": 1}, "not in the runs table"),
    "delete a middle entry": (["DELETE FROM audit_log WHERE seq = 5"], {"table": "audit_log", "seq": 5}, "missing"),
    "delete the last entry": (["DELETE FROM audit_log WHERE seq = 12"], {"table": "audit_log", "seq": 12}, "deleted"),
    "edit an entry's body": (["UPDATE audit_log SET body = replace(body, '\"spam\"', '\"ham\"') WHERE seq = 4"],
                             {"table": "audit_log", "seq": 4}, "hash does not match"),
    "swap two entries' seq": (["UPDATE audit_log SET seq = -1 WHERE seq = 6", "UPDATE audit_log SET seq = 6 WHERE seq = 7",
                               "UPDATE audit_log SET seq = 7 WHERE seq = -1"], {"table": "audit_log", "seq": 6}, "prev_hash"),
    "rewrite the last entry and the head": (
        ["UPDATE audit_log SET hash = :fake WHERE seq = 12", "UPDATE audit_chain_head SET hash = :fake"],
        {"table": "audit_log", "seq": 12}, "hash does not match"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_caught_with_the_first_broken_record(store, runs, case):
    statements, expected, words = TAMPERING[case]
    sql(store, *statements, fake="f" * 64, **{f"r{i}": r for i, r in enumerate(runs)})
    result = store.verify()
    assert not result["ok"]
    broken = result["broken"]
    assert broken["table"] == expected["table"], broken
    if "run_id" in expected:
        assert broken["run_id"] == runs[expected["run_id"]], broken
    if "seq" in expected:
        assert broken["seq"] == expected["seq"], broken
    assert words in broken["problem"], broken


def test_a_run_written_without_the_store_is_caught(store, runs):
    sql(store, "INSERT INTO runs (id, task, status, input_hash, input_chars, params, reason, config_hash, started_at, "
               "cost) VALUES ('zzzz-forged', 'classify', 'accepted', 'h', 1, '{}', '', 'cfg', :t, 0.0)",
        t=datetime.now(timezone.utc))
    broken = store.verify()["broken"]
    assert broken["run_id"] == "zzzz-forged" and broken["table"] == "runs" and "no entry" in broken["problem"]


def test_review_queue_and_resolve(store):
    waiting = [make_run(store, i, outcome="needs_review") for i in range(3)]
    accepted = make_run(store, 9)
    assert [r["id"] for r in store.review_queue()] == waiting  # oldest first
    assert store.review_queue(task="other") == []
    review = store.resolve_review(waiting[0], "spam", "bob", note="obvious")
    assert review["answer"] == "spam" and review["reviewer"] == "bob" and review["note"] == "obvious"
    assert [r["id"] for r in store.review_queue()] == waiting[1:]
    with pytest.raises(InvalidInputError, match="already resolved by bob"):
        store.resolve_review(waiting[0], "ham", "carol")
    with pytest.raises(InvalidInputError, match="not needs_review"):
        store.resolve_review(accepted, "ham", "carol")
    with pytest.raises(InvalidInputError, match="no run nope"):
        store.resolve_review("nope", "ham", "carol")
    with pytest.raises(InvalidInputError, match="non-empty answer"):
        store.resolve_review(waiting[1], " ", "carol")
    with pytest.raises(InvalidInputError, match="reviewer's name"):
        store.resolve_review(waiting[1], "ham", "")
    with pytest.raises(InvalidInputError, match="not one of"):
        store.resolve_review(waiting[1], "eggs", "carol")
    assert store.get_run(waiting[1])["review"] is None
    result = store.verify()
    assert result["ok"] and result["head_seq"] == 2 * 4 + 1  # the refused resolves appended nothing


def test_export_since(store):
    early = [make_run(store, i) for i in range(2)]
    time.sleep(0.01)
    cut = datetime.now(timezone.utc)
    late = [make_run(store, i, outcome="needs_review") for i in range(2, 5)]
    store.resolve_review(late[0], "ham", "ann")
    assert [r["id"] for r in store.export()] == early + late
    rows = list(store.export(since=cut, batch=2))  # keyset pages of 2
    assert [r["id"] for r in rows] == late
    assert rows[0]["review"]["answer"] == "ham" and rows[1]["review"] is None
    assert len(rows[1]["attempts"]) == 2 and "text" not in json.dumps(rows[1]["params"])
    assert rows[0]["ledger_hash"] == store.verify()["head_hash"]  # the review was the last write
    # an aware datetime in another zone is the same instant; a naive one is read as UTC
    assert [r["id"] for r in store.export(since=cut.astimezone(timezone(timedelta(hours=-5))))] == late
    assert [r["id"] for r in store.export(since=cut.replace(tzinfo=None))] == late


def test_batch_job_status_changes_are_in_the_ledger(store, database_url):
    jobs = JobStore(database_url)
    try:
        for action in ("cancel", "admit"):
            paused = [make_run(store, i, outcome="pending") for i in range(3)]
            job_id = jobs.create_job("classify", "embedded", "in.jsonl", {"labels": LABELS}, share=0.0)
            jobs.add_items(job_id, [{"seq": i + 1, "payload": {"text": "x"}, "status": "pending", "run_id": r,
                                     "tier1_confidence": 0.5} for i, r in enumerate(paused)])
            jobs.finish_loading(job_id, 3, 0)
            if action == "cancel":
                assert jobs.cancel(job_id) == 3
            else:
                assert "0 admitted, 3 over budget" in jobs.admit(job_id)
            assert {store.get_run(r)["status"] for r in paused} == {"needs_review"}
        result = store.verify()
        assert result["ok"], result["broken"]
        assert result["head_seq"] == 6 * 2 + 6  # start+finish per run, one run.status entry per closed run
        with store.engine.connect() as conn:
            kinds = conn.execute(text("SELECT kind, count(*) FROM audit_log GROUP BY kind ORDER BY kind")).all()
        assert dict(kinds) == {"run.finish": 6, "run.start": 6, "run.status": 6}
    finally:
        jobs.close()


def test_concurrent_writers_leave_a_chain_that_verifies(database_url):
    # One store (engine, connection pool) per writer, opened here: Alembic's upgrade is not thread-safe.
    stores = [AuditStore(database_url) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(w: int) -> None:
        s = stores[w]
        try:
            start.wait()
            for i in range(25):
                make_run(s, w * 100 + i, outcome="needs_review" if i % 5 == 0 else "accepted")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = AuditStore(database_url)
    try:
        result = store.verify()
        assert result["ok"], result["broken"]
        assert result["entries_checked"] == 200 and result["runs_checked"] == 100 and result["head_seq"] == 200
    finally:
        store.close()


def test_sqlite_write_waits_out_a_writer_that_holds_the_lock_past_pysqlites_default(data_dir):
    # Another process holds SQLite's write lock for 6 s (longer than pysqlite's default 5 s busy
    # wait, which failed writes under a loaded disk): the store's write waits and lands.
    import sqlite3

    url = f"sqlite:///{data_dir / 'audit.db'}"
    store = AuditStore(url)
    holder = sqlite3.connect(data_dir / "audit.db", isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(6.0, holder.execute, args=("COMMIT",))
        release.start()
        started = time.monotonic()
        run_id = make_run(store, 1)
        assert time.monotonic() - started >= 5.5  # it did wait for the lock
        release.join()
        assert store.get_run(run_id)["status"] == "accepted"
        assert store.verify()["ok"]
    finally:
        holder.close()
        store.close()


def test_upgrade_imports_runs_written_before_the_ledger(database_url):
    migrations.upgrade(database_url, "0003")
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO runs (id, task, status, input_hash, input_chars, params, answer, confidence, "
                          "reason, config_hash, started_at, cost) VALUES ('old-run', 'classify', 'accepted', 'h', 3, "
                          "'{\"labels\": [\"a\", \"b\"]}', 'a', 0.91, 'ok', 'cfg', :t, 0.25)"),
                     {"t": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)})
        conn.execute(text("INSERT INTO attempts (run_id, seq, tier_index, tier_name, model_id, prompt_version, "
                          "label_probs, confidence, decision, reason, tokens_in, tokens_out, latency_ms, cost) VALUES "
                          "('old-run', 0, 0, 't0', 'm', 'p', '{\"a\": 0.91, \"b\": 0.09}', 0.91, 'accept', 'ok', "
                          "5, 1, 3.5, 0.25)"))
    engine.dispose()
    store = AuditStore(database_url)  # upgrades to head
    try:
        result = store.verify()
        assert result["ok"] and result["runs_checked"] == 1 and result["head_seq"] == 1, result
        assert store.get_run("old-run")["attempts"][0]["redactions"] == {}
        sql(store, "UPDATE attempts SET confidence = 0.5 WHERE run_id = 'old-run'")
        assert store.verify()["broken"]["table"] == "attempts"
    finally:
        store.close()


# -- the CLI ----------------------------------------------------------------------------------------

@pytest.fixture
def env(tmp_path, database_url):
    config = write_config(tmp_path / "c.yaml", [SMOL])
    return {"CASCADE_DATA_DIR": str(tmp_path / "cli-data"), "CASCADE_CONFIG": str(config),
            "CASCADE_DATABASE_URL": database_url}


def cascade(env, *args):
    return runner.invoke(app, list(args), env=env)


def test_cli_audit_verify(env, store, runs):
    ok = cascade(env, "audit", "verify")
    assert ok.exit_code == 0 and ok.output.startswith("OK: 12 ledger entries and 5 runs verified"), ok.output
    assert json.loads(cascade(env, "audit", "verify", "--json").stdout)["ok"] is True
    sql(store, "UPDATE attempts SET confidence = 0.01 WHERE run_id = :r AND seq = 1", r=runs[3])
    broken = cascade(env, "audit", "verify")
    assert broken.exit_code == 1, broken.output
    assert "BROKEN" in broken.output and runs[3] in broken.output and "confidence" in broken.output
    as_json = cascade(env, "audit", "verify", "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["broken"]["run_id"] == runs[3]


def test_cli_audit_export(env, store, tmp_path):
    early = make_run(store, 0)
    time.sleep(0.01)
    cut = datetime.now(timezone.utc)
    late = [make_run(store, i) for i in (1, 2)]
    result = cascade(env, "audit", "export", "--since", cut.isoformat(), "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == late and all(r["ledger_hash"] and len(r["attempts"]) == 2 for r in rows)
    out = tmp_path / "export.jsonl"
    for since in ("24h", "7d", (cut - timedelta(days=1)).date().isoformat()):
        result = cascade(env, "audit", "export", "--since", since, "--out", str(out))
        assert result.exit_code == 0 and "exported 3 run(s)" in result.output, result.output
        assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [early] + late
    assert cascade(env, "audit", "export", "--since", "2999-01-01").stdout == ""
    bad = cascade(env, "audit", "export", "--format", "csv")
    assert bad.exit_code == 2 and "only jsonl" in bad.output
    bad = cascade(env, "audit", "export", "--since", "last tuesday")
    assert bad.exit_code == 2 and "duration" in bad.output


def test_cli_review_list_and_resolve(env, store):
    waiting = make_run(store, 1, outcome="needs_review")
    make_run(store, 2)
    listed = cascade(env, "review", "list", "--json")
    assert listed.exit_code == 0 and [r["id"] for r in json.loads(listed.stdout)] == [waiting]
    assert waiting[:8] in cascade(env, "review", "list").output
    done = cascade(env, "review", "resolve", waiting, "--answer", "ham", "--reviewer", "ann", "--note", "clear",
                   "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["answer"] == "ham"
    assert json.loads(cascade(env, "review", "list", "--json").stdout) == []
    again = cascade(env, "review", "resolve", waiting, "--answer", "spam", "--reviewer", "bob")
    assert again.exit_code == 2 and "already resolved by ann" in again.output
    assert cascade(env, "audit", "verify").exit_code == 0
