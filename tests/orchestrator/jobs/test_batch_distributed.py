"""Distributed batch jobs on real Celery worker processes, real Redis (or RabbitMQ) and real
PostgreSQL, with the real SmolLM2 as tier 1; and the faults a job must survive: a SIGKILLed worker
(on Redis and on RabbitMQ), a Redis restart, PostgreSQL refusing connections. Each ends with
exactly one result per row, and no audit run left `running`."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import typer
from kombu import Connection
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from agents.errors import StorageError
from cli.batch import batch_app
from orchestrator import Jobs
from orchestrator.audit.records import RunRecord
from orchestrator.jobs.records import JobItemRecord, JobItemRunRecord
from tests.conftest import PG_ADMIN, SMOL, write_config

# The model's speed dominates these; on a loaded 2-core machine an item can take seconds.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[3]
CELERY = str(Path(sys.executable).with_name("celery"))
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
               "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
TEXTS = ["WINNER! Claim your free prize now", "Lunch at noon?", "URGENT: account suspended, click here",
         "See you tomorrow", "Free ringtones, text GO now", "Pick up milk please"]


def redis_up() -> bool:
    ping = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"], capture_output=True, text=True)
    return ping.stdout.strip() == "PONG"


def ensure_redis() -> None:
    if not redis_up():
        subprocess.run(REDIS_START, check=True)
        for _ in range(50):
            if redis_up():
                return
            time.sleep(0.1)


def fresh_rabbitmq_queue() -> None:
    """The job queue on RabbitMQ's default vhost, emptied (.ci/run starts RabbitMQ)."""
    try:
        with Connection(RABBITMQ_URL, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
            try:
                conn.default_channel.queue_purge("cascade-batch")
            except conn.channel_errors:
                pass  # no queue yet: the first worker declares it
    except OSError as exc:
        pytest.fail(f"RabbitMQ must run on 127.0.0.1:5672 (.ci/run starts it): {exc}")


class Cluster:
    """Worker processes (each in its own process group) sharing one test's database and broker."""

    def __init__(self, tmp_path: Path, data_dir: Path, database_url: str, broker: str = "redis",
                 lease_s: float = 8) -> None:
        if broker == "rabbitmq":
            fresh_rabbitmq_queue()
            broker_url = RABBITMQ_URL
        else:
            ensure_redis()
            db = random.randint(1, 15)
            subprocess.run(["redis-cli", "-n", str(db), "flushdb"], check=True, capture_output=True)
            broker_url = f"redis://127.0.0.1:6379/{db}"
        self.config = write_config(tmp_path / "c.yaml", [{**SMOL, "n_threads": 1}], threshold=0.0)
        self.database_url = database_url
        self.env = {**os.environ, "CASCADE_CONFIG": str(self.config), "CASCADE_DATA_DIR": str(data_dir),
                    "CASCADE_DATABASE_URL": database_url, "CASCADE_BROKER_URL": broker_url,
                    "CASCADE_BATCH_MODE": "distributed", "CASCADE_BATCH_SWEEP_INTERVAL_S": "0.3",
                    "CASCADE_BATCH_ITEM_LEASE_S": str(lease_s), "CASCADE_BATCH_RETRY_BACKOFF_S": "0.3"}
        self.tmp_path = tmp_path
        self.workers: list[subprocess.Popen] = []
        # The test's own view of the store (created first: the workers find the schema migrated).
        self.jobs = Jobs.from_config(self.config, data_dir=str(data_dir), database_url=database_url,
                                     batch_mode="distributed")

    def start_worker(self, pool: str = "solo", concurrency: int = 1) -> subprocess.Popen:
        n = len(self.workers)
        log = (self.tmp_path / f"worker{n}.log").open("wb")
        worker = subprocess.Popen(
            [CELERY, "-A", "workers.app", "worker", f"--pool={pool}", f"--concurrency={concurrency}", "-n",
             f"w{n}@%h", "--loglevel=info", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen, sig=signal.SIGKILL) -> None:
        try:
            os.killpg(worker.pid, sig)
        except ProcessLookupError:
            pass

    def running_runs(self, job_id: str) -> list[str]:
        """Audit runs of the job's items in status `running` (an item mid-run)."""
        with self.jobs.store._tx() as s:
            return list(s.scalars(select(RunRecord.id).join(JobItemRecord, JobItemRecord.run_id == RunRecord.id)
                                  .where(JobItemRecord.job_id == job_id, RunRecord.status == "running")))

    def kill_mid_item(self, worker: subprocess.Popen, job_id: str) -> list[str]:
        """SIGKILL the worker while it is in the middle of an item: freeze it (SIGSTOP) until one of
        the job's runs is seen `running`, then kill it. Returns the runs it left running."""
        for _ in range(100):
            self.kill(worker, signal.SIGSTOP)
            time.sleep(0.3)  # a commit already sent lands before we look
            running = self.running_runs(job_id)
            if running:
                self.kill(worker)
                worker.wait()
                return running
            self.kill(worker, signal.SIGCONT)
            time.sleep(random.uniform(0.05, 0.3))
        raise AssertionError("the worker was never caught mid-item")

    def ledger_kinds(self, run_id: str) -> list[str]:
        with self.jobs.store.engine.connect() as conn:
            return list(conn.scalars(text("SELECT kind FROM audit_log WHERE run_id = :r ORDER BY seq"), {"r": run_id}))

    def stop(self) -> None:
        for w in self.workers:
            self.kill(w, signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(w)
                w.wait()
        self.jobs.close()

    def submit(self, n: int) -> str:
        path = self.tmp_path / "in.jsonl"
        with path.open("w") as f:
            for i in range(n):
                f.write(json.dumps({"id": f"m{i}", "text": f"{TEXTS[i % len(TEXTS)]} ({i})"}) + "\n")
        return self.jobs.submit(path, "classify", labels=["spam", "ham"])

    def wait_until(self, job_id: str, finished: int, timeout: float) -> dict:
        """Poll the job (riding out a database that refuses connections) until `finished` items are."""
        deadline = time.monotonic() + timeout
        progress: dict = {}
        while time.monotonic() < deadline:
            try:
                progress = self.jobs.progress(job_id)
            except StorageError:
                time.sleep(0.5)
                continue
            if progress["finished"] >= finished and (finished < progress["total"] or progress["status"] == "done"):
                return progress
            time.sleep(0.3)
        logs = "\n".join((self.tmp_path / f"worker{i}.log").read_text(errors="replace")[-3000:]
                         for i in range(len(self.workers)))
        raise AssertionError(f"job {job_id} stuck at {progress} after {timeout} s; worker logs:\n{logs}")

    def assert_one_result_per_row(self, job_id: str, n: int) -> dict:
        """Every row ended done, once, with an accepted audit run of its own, and no audit run is
        left `running` (a killed execution's run was restarted by the next delivery); returns some
        counts."""
        rows = list(self.jobs.results(job_id))
        assert [r["row"] for r in rows] == list(range(1, n + 1))
        assert all(r["status"] == "done" and r["answer"] in ("spam", "ham") for r in rows), \
            [r for r in rows if r["status"] != "done"][:3]
        assert len({r["run_id"] for r in rows}) == n
        with self.jobs.store._tx() as s:
            item_ids = select(JobItemRecord.id).where(JobItemRecord.job_id == job_id)
            items = s.scalar(select(func.count()).where(JobItemRecord.job_id == job_id))
            runs = s.execute(select(RunRecord.status, func.count()).join(
                JobItemRunRecord, JobItemRunRecord.run_id == RunRecord.id).where(
                JobItemRunRecord.item_id.in_(item_ids)).group_by(RunRecord.status)).all()
            final_runs = s.scalar(select(func.count()).select_from(RunRecord).where(
                RunRecord.id.in_([r["run_id"] for r in rows]), RunRecord.status == "accepted"))
            all_runs = dict(s.execute(select(RunRecord.status, func.count()).group_by(RunRecord.status)).all())
        assert items == n and final_runs == n
        assert all_runs.get("running", 0) == 0, all_runs
        summary = self.jobs.status(job_id)
        assert summary["done"] == n and summary["status"] == "done"
        return {"linked_runs": dict(runs), "all_runs": all_runs,
                "tries": sum(i["tries"] for i in self.jobs.store.iter_items(job_id))}


@pytest.fixture
def cluster(tmp_path, data_dir, postgres_url):
    c = Cluster(tmp_path, data_dir, postgres_url)
    yield c
    c.stop()


def test_distributed_job_through_the_cli(cluster):
    """prefork pool: the model loads in the pool process; `batch submit --wait` shows the bar."""
    cluster.start_worker(pool="prefork", concurrency=1)
    path = cluster.tmp_path / "in.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerows([("id", "text"), *((f"c{i}", TEXTS[i % len(TEXTS)]) for i in range(20)), ("c20", "")])
    app = typer.Typer()
    app.add_typer(batch_app, name="batch")
    result = CliRunner().invoke(app, ["batch", "submit", str(path), "-t", "classify", "-l", "spam", "-l", "ham",
                                      "--wait"], env=cluster.env)
    assert result.exit_code == 0, result.output
    job_id = result.output.split()[1].rstrip(":")
    assert "21/21" in result.output and "distributed" in result.output
    summary = cluster.jobs.status(job_id)
    assert summary["done"] == 20 and summary["invalid"] == 1 and summary["mode"] == "distributed"
    rows = list(cluster.jobs.results(job_id))
    assert rows[-1]["error"] == "line 22: text is empty; give the text to classify"
    log = (cluster.tmp_path / "worker0.log").read_text()
    assert log.count("llama.cpp threads per local tier") == 1, "the pool process builds its Cascade once"


@pytest.mark.timeout(2400)
def test_sigkilled_worker_mid_job_then_another_finishes_it(cluster):
    """The issue's test: SIGKILL a worker in the middle of a 500-item job, start another: every item
    ends with exactly one result, nothing is lost, and the item being processed at the kill reuses
    its audit run (restarted under the same id) instead of leaving it `running`."""
    n = 500
    started = time.monotonic()
    first = cluster.start_worker()
    job_id = cluster.submit(n)
    cluster.wait_until(job_id, 100, timeout=900)
    left_running = cluster.kill_mid_item(first, job_id)
    stranded = cluster.jobs.progress(job_id)["finished"]
    assert stranded < n and len(left_running) == 1
    cluster.start_worker()
    cluster.wait_until(job_id, n, timeout=1800)
    counts = cluster.assert_one_result_per_row(job_id, n)
    # One audit run per item, all finished: the killed item's run was restarted, not duplicated.
    assert counts["all_runs"] == {"accepted": n} and counts["linked_runs"] == {"accepted": n}, counts
    [killed] = left_running
    assert cluster.ledger_kinds(killed) == ["run.start", "run.restart", "run.finish"]
    assert [r["run_id"] for r in cluster.jobs.results(job_id)].count(killed) == 1
    assert counts["tries"] <= n + 2, counts
    print(f"\n500-item SIGKILL test: {time.monotonic() - started:.0f} s; killed at {stranded} finished; {counts}")


def test_redis_restart_mid_job(cluster):
    n = 60
    cluster.start_worker()
    job_id = cluster.submit(n)
    try:
        cluster.wait_until(job_id, 15, timeout=180)
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"], capture_output=True)
        time.sleep(3)  # queued messages are gone: Redis runs without persistence
        assert not redis_up()
    finally:
        ensure_redis()
    cluster.wait_until(job_id, n, timeout=900)
    cluster.assert_one_result_per_row(job_id, n)


def test_postgres_refusing_connections_mid_job(cluster):
    n = 40
    cluster.start_worker()
    job_id = cluster.submit(n)
    name = cluster.database_url.rsplit("/", 1)[1]
    cluster.wait_until(job_id, 10, timeout=180)
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        try:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            time.sleep(5)
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", connect_timeout=3)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    cluster.wait_until(job_id, n, timeout=900)
    cluster.assert_one_result_per_row(job_id, n)
    log = (cluster.tmp_path / "worker0.log").read_text()
    assert "StorageError" in log or "OperationalError" in log, "the outage was seen by the worker"


def test_rabbitmq_broker_with_a_sigkilled_worker(tmp_path, data_dir, postgres_url):
    """The same job code on RabbitMQ (amqp://): a 20-item job through real workers. The item lease
    is set far beyond the test's length, so the sweeper never re-sends: the item held by the
    SIGKILLed worker comes back only because RabbitMQ re-delivers an unacknowledged message when
    its consumer's connection drops (acks_late), and the next worker restarts its audit run."""
    cluster = Cluster(tmp_path, data_dir, postgres_url, broker="rabbitmq", lease_s=3600)
    try:
        n = 20
        first = cluster.start_worker()
        job_id = cluster.submit(n)
        cluster.wait_until(job_id, 3, timeout=300)
        [killed] = cluster.kill_mid_item(first, job_id)
        assert cluster.jobs.progress(job_id)["finished"] < n
        cluster.start_worker(pool="prefork", concurrency=1)
        cluster.wait_until(job_id, n, timeout=600)
        counts = cluster.assert_one_result_per_row(job_id, n)
        assert counts["all_runs"] == {"accepted": n}, counts
        assert cluster.ledger_kinds(killed) == ["run.start", "run.restart", "run.finish"]
        log = (cluster.tmp_path / "worker1.log").read_text()
        assert "amqp://guest:**@127.0.0.1:5672//" in log, "the worker used RabbitMQ"
    finally:
        cluster.stop()

