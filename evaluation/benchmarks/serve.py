"""Load benchmark of the HTTP service, on loopback only, bounded in time and clients:

    cascade bench serve --clients 32 --seconds 60 [--database-url postgresql+psycopg://...]

Starts `cascade serve` as its own process on a free port of 127.0.0.1 over a fresh data directory
(and the given database, else SQLite in it), with the bundled SmolLM2 as the only tier (threshold
0: every item is answered by tier 1, so this measures the path every request takes) unless a config
is given. `clients` threads each POST /v1/classify in a loop for `seconds`; then every accepted
request's run is read back: it must be exactly one finished audit run of that key (no run missing,
none extra, none left running). Then the server's added latency: `pairs` items, each classified
once by the SDK in this process and once over HTTP (one client, server otherwise idle), in
alternating order; the median of the paired differences.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

from orchestrator import AuditStore, Cascade, KeyStore, load_settings

TEXTS = ["WINNER!! You have won a free prize worth $1000, call 09061701461 now to claim",
         "Are we still on for lunch tomorrow?", "URGENT: your account has been suspended, click the link",
         "Can you pick up some milk on your way home", "Free entry in a weekly competition, text WIN to 80086",
         "Sorry, I'll be late, the train is stuck", "You have been selected for a cash reward, reply YES",
         "Happy birthday! Hope you have a great day"]
LABELS = ["spam", "ham"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(config: Path, data_dir: Path, database_url: str | None, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "CASCADE_CONFIG": str(config), "CASCADE_DATA_DIR": str(data_dir),
           "CASCADE_SERVICE_RATE_LIMIT_PER_MIN": "0", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    if database_url:
        env["CASCADE_DATABASE_URL"] = database_url
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--port", str(port)], env=env,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the server did not start; see {log}")


def _load(url: str, token: str, clients: int, seconds: float) -> list[tuple[float, int, str | None]]:
    """(latency s, status, run id) of every request the clients sent."""
    results: list[tuple[float, int, str | None]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
            i = n
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    r = http.post("/v1/classify", json={"text": TEXTS[i % len(TEXTS)] + f" #{n}-{i}", "labels": LABELS})
                    row = (time.perf_counter() - started, r.status_code,
                           r.json().get("run_id") if r.status_code == 200 else None)
                except httpx.HTTPError:
                    row = (time.perf_counter() - started, 0, None)
                with lock:
                    results.append(row)
                i += clients

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def run_serve_bench(clients: int = 32, seconds: float = 60.0, pairs: int = 30, config: Path | None = None,
                    database_url: str | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    data_dir = work / "data"
    data_dir.mkdir()
    if config is None:
        config = work / "cascade.yaml"
        config.write_text(yaml.safe_dump({"tiers": [{"name": "smollm2-135m", "kind": "llama_cpp",
                                                     "model_path": "bundled:smollm2", "n_threads": 1}],
                                          "tasks": {"classify": {"threshold": 0.0}}}))
    settings = load_settings(config, data_dir=str(data_dir), database_url=database_url)
    keys = KeyStore(settings.audit_url)
    key = keys.create(["tasks"], name="bench")
    keys.close()
    port = _free_port()
    server = _start_server(config, data_dir, database_url, port, work / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key.token}"}, timeout=120) as http:
            http.post("/v1/classify", json={"text": "warm-up", "labels": LABELS})  # loads the model
        started = time.monotonic()
        rows = _load(url, key.token, clients, seconds)
        elapsed = time.monotonic() - started
        added = _paired_overhead(settings, url, key.token, pairs)
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies_ms = np.array([r[0] for r in rows]) * 1000
    ok = [r for r in rows if r[1] == 200]
    audit = AuditStore(settings.audit_url)
    runs = {r["id"]: r for r in audit.list_runs(limit=10 ** 7) if r.get("api_key_id") == key.key_id}
    audit.close()
    accepted_ids = [r[2] for r in ok]
    finished = [i for i in accepted_ids if runs.get(i, {}).get("status") in ("accepted", "needs_review")]
    return {
        "clients": clients, "seconds": round(elapsed, 1), "database": "postgresql" if database_url else "sqlite",
        "requests": len(rows), "ok": len(ok), "errors": len(rows) - len(ok),
        "error_statuses": sorted({r[1] for r in rows if r[1] != 200}),
        "requests_per_s": round(len(rows) / elapsed, 2),
        "latency_ms_p50": round(float(np.percentile(latencies_ms, 50)), 1) if rows else None,
        "latency_ms_p95": round(float(np.percentile(latencies_ms, 95)), 1) if rows else None,
        "latency_ms_p99": round(float(np.percentile(latencies_ms, 99)), 1) if rows else None,
        "accepted_with_one_finished_run": len(finished) == len(ok) == len(set(accepted_ids)),
        "runs_of_the_key": len(runs) - 1 - pairs,  # minus the warm-up and the paired HTTP calls
        **added,
    }


def _paired_overhead(settings, url: str, token: str, pairs: int) -> dict:
    """Median of (HTTP latency - SDK latency) over the same items, alternating which goes first."""
    diffs, sdk_ms, http_ms = [], [], []
    with Cascade(settings) as cascade, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                                    timeout=120) as http:
        cascade.classify("warm-up", labels=LABELS)
        for i in range(pairs):
            text = TEXTS[i % len(TEXTS)] + f" pair {i}"

            def sdk() -> float:
                t = time.perf_counter()
                cascade.classify(text, labels=LABELS)
                return (time.perf_counter() - t) * 1000

            def over_http() -> float:
                t = time.perf_counter()
                http.post("/v1/classify", json={"text": text, "labels": LABELS}).raise_for_status()
                return (time.perf_counter() - t) * 1000

            a, b = (sdk(), over_http()) if i % 2 == 0 else tuple(reversed((over_http(), sdk())))
            sdk_ms.append(a)
            http_ms.append(b)
            diffs.append(b - a)
    return {"pairs": pairs, "sdk_ms_median": round(statistics.median(sdk_ms), 2),
            "http_ms_median": round(statistics.median(http_ms), 2),
            "added_ms_median": round(statistics.median(diffs), 2)}
