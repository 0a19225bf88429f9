"""Batch benchmark: items per second of a classification job on 1 and 2 worker processes, and the
resident memory of the worker processes over the job (sampled; it must stay flat).

    cascade bench batch --items 1000 -p 1 -p 2 [--ladder encoder] [--plot memory.png]

Each run uses a fresh PostgreSQL database and Redis database, a worker started as
`celery -A workers.app worker --pool prefork --concurrency P`, the bundled SmolLM2 as the only
tier (threshold 0: no escalation, so this measures the phase every item goes through) and two
labels; or, with `--ladder encoder`, the default ladder's encoder tier alone on the fraud task
(its bundled SMS head, torch on the worker's share of the cores). A warm-up job of 2*P items loads the model in every pool process first; the timed job
runs from submission to its last item. Workers are started as commands, not imported.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import yaml

from orchestrator.jobs.runner import Jobs

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TEXTS = ["WINNER!! You have won a free prize worth $1000, call 09061701461 now to claim",
         "Are we still on for lunch tomorrow?", "URGENT: your account has been suspended, click the link",
         "Can you pick up some milk on your way home", "Free entry in a weekly competition, text WIN to 80086",
         "Sorry, I'll be late, the train is stuck", "You have been selected for a cash reward, reply YES",
         "Happy birthday! Hope you have a great day"]


def _rss_kb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in kB, from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def _pool_pids(worker_pid: int) -> list[int]:
    try:
        with open(f"/proc/{worker_pid}/task/{worker_pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _write_items(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"b{i}", "text": f"{rng.choice(TEXTS)} #{i}"}) + "\n")
    return path


LADDERS = {  # name -> (the one tier, the task, the job's labels)
    "smollm2": ({"name": "smollm2-135m", "kind": "llama_cpp", "model_path": "bundled:smollm2"}, "classify",
                ["spam", "ham"]),
    "encoder": ({"name": "encoder", "kind": "encoder", "heads": {"fraud": "bundled:fraud-sms"}, "use_store": False},
                "fraud", None),
}


def run_once(items: int, processes: int, workdir: Path, threads: int | None, broker_db: int,
             sample_every_s: float = 2.0, ladder: str = "smollm2") -> dict:
    name = f"cascade_bench_{uuid.uuid4().hex[:10]}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    tier, task, labels = LADDERS[ladder]
    tier = dict(tier)
    if threads and tier["kind"] == "llama_cpp":
        tier["n_threads"] = threads
    config = workdir / f"bench-{processes}.yaml"
    thresholds = {task: {"threshold": 0.0, "class_thresholds": {}, "review_below_threshold": []} if task == "fraud"
                  else {"threshold": 0.0}}
    config.write_text(yaml.safe_dump({"tiers": [tier], "tasks": thresholds}))
    env = {**os.environ, "CASCADE_CONFIG": str(config), "CASCADE_DATA_DIR": str(workdir / "data"),
           "CASCADE_DATABASE_URL": url, "CASCADE_BROKER_URL": f"redis://127.0.0.1:6379/{broker_db}",
           "CASCADE_BATCH_MODE": "distributed", "CASCADE_BATCH_SWEEP_INTERVAL_S": "0.2",
           "CASCADE_BATCH_WINDOW": str(16 * processes), "HF_HUB_OFFLINE": "1"}
    subprocess.run(["redis-cli", "-n", str(broker_db), "flushdb"], check=True, capture_output=True)
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    jobs = Jobs.from_config(config, data_dir=str(workdir / "data"), database_url=url, batch_mode="distributed")
    log = (workdir / f"worker-{processes}.log").open("wb")
    celery = str(Path(sys.executable).with_name("celery"))
    worker = subprocess.Popen([celery, "-A", "workers.app", "worker", "--pool=prefork", f"--concurrency={processes}",
                               "--loglevel=warning", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                              cwd=Path(__file__).resolve().parent.parent, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        warm = jobs.submit(_write_items(workdir / "warm.jsonl", 2 * processes, 1), task, labels=labels)
        jobs.wait(warm, timeout_s=600)
        path = _write_items(workdir / f"items-{items}.jsonl", items, 2)
        samples: list[tuple[float, int, list[int]]] = []
        started = time.perf_counter()
        job = jobs.submit(path, task, labels=labels)
        last = 0.0
        while True:
            progress = jobs.progress(job)
            now = time.perf_counter()
            if now - last >= sample_every_s:
                rss = [_rss_kb(p)[0] for p in _pool_pids(worker.pid)]
                samples.append((round(now - started, 1), progress["finished"], rss))
                last = now
            if progress["status"] == "done":
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        summary = jobs.status(job)
        peaks = [_rss_kb(p)[1] for p in _pool_pids(worker.pid)]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        jobs.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    # RSS of the pool processes after the first 10% of the job and at its end: flat means no growth per item.
    steady = [s for s in samples if s[1] >= items * 0.1] or samples
    first_rss, last_rss = (sum(steady[0][2]) if steady else 0), (sum(steady[-1][2]) if steady else 0)
    return {"ladder": ladder, "items": items, "processes": processes, "threads_per_process": threads or "auto",
            "elapsed_s": round(elapsed, 1), "items_per_s": round(items / elapsed, 2),
            "done": summary["done"], "latency_ms_p50": summary["latency_ms_p50"],
            "latency_ms_p95": summary["latency_ms_p95"],
            "pool_rss_mb_after_10pct": round(first_rss / 1024, 1), "pool_rss_mb_at_end": round(last_rss / 1024, 1),
            "pool_peak_rss_mb_per_process": [round(p / 1024, 1) for p in peaks],
            "rss_samples": [(t, done, [round(r / 1024, 1) for r in rss]) for t, done, rss in samples]}


def throughput(items: int = 1000, processes: tuple[int, ...] = (1, 2), threads: int | None = 1,
               ladder: str = "smollm2") -> dict:
    """Run the job once per worker-process count; the ratio is items/s of the last over the first."""
    with tempfile.TemporaryDirectory(prefix="cascade-bench-") as tmp:
        runs = [run_once(items, p, Path(tmp), threads, broker_db=14, ladder=ladder) for p in processes]
    result = {"runs": runs, "load_average_after": os.getloadavg()}
    if len(runs) > 1:
        result["ratio"] = round(runs[-1]["items_per_s"] / runs[0]["items_per_s"], 2)
    return result


def plot_memory(result: dict, path: str | Path) -> Path:
    """RSS of each pool process against items finished, one line per process and run: flat lines
    mean the workers do not grow with the job."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.8))
    ax = fig.add_subplot()
    for run in result["runs"]:
        samples = run["rss_samples"]
        for i in range(max((len(rss) for _, _, rss in samples), default=0)):
            points = [(done, rss[i]) for _, done, rss in samples if len(rss) > i]
            ax.plot(*zip(*points), label=f"{run['processes']} process(es), {run['items']} items: process {i + 1}")
    ax.set_xlabel("items finished")
    ax.set_ylabel("resident set size (MB)")
    peak = max((r for run in result["runs"] for _, _, rss in run["rss_samples"] for r in rss), default=1.0)
    ax.set_ylim(0, peak * 1.25)  # from zero, so that growth would show at its true size
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("batch worker memory over the job")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    return path
