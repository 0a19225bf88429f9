"""Reading a batch job: its summary, and one result per input row (as JSON lines or CSV)."""

from __future__ import annotations

import csv
import json
from typing import Any, Iterable, Iterator, TextIO

import numpy as np

from agents.errors import InvalidInputError

from orchestrator.jobs.records import FINAL_ITEM_STATUSES
from orchestrator.jobs.store import JobStore

RESULT_FIELDS = ("row", "id", "status", "outcome", "answer", "confidence", "tier", "escalated", "reason", "error",
                 "run_id", "cost", "latency_ms")


def job_status(store: JobStore, job: dict[str, Any]) -> dict[str, Any]:
    """The job summary: counts per item status, escalation rate, cost, spend (the cap, the
    estimate of the admitted escalations, their actual cost), latency p50/p95."""
    job_id = job["id"]
    counts = store.counts(job_id)
    cost, spend, latencies = store.cost_and_latencies(job_id)
    statuses = {s: counts.get(s, 0) for s in ("queued", "pending", "escalating", *FINAL_ITEM_STATUSES)}
    finished = sum(statuses[s] for s in FINAL_ITEM_STATUSES)
    through_tier1 = statuses["done"] + statuses["over_budget"] + statuses["pending"] + statuses["escalating"]
    needed = counts["escalated"] + statuses["over_budget"] + statuses["pending"]
    return {
        "id": job_id, "task": job["task"], "mode": job["mode"], "status": job["status"], "phase": job["phase"],
        "source": job["source"], "total": job["total_items"], "finished": finished, **statuses,
        "escalated": counts["escalated"],
        "escalation_rate": counts["escalated"] / through_tier1 if through_tier1 else 0.0,
        "needed_escalation": needed, "max_escalation_share": job["max_escalation_share"],
        "cost": cost, "max_spend": job["max_spend"], "estimated_spend": job["estimated_spend"], "spend": spend,
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
        "budget": job["note"],
        "created_at": _iso(job["created_at"]), "started_at": _iso(job["started_at"]),
        "finished_at": _iso(job["finished_at"]),
    }


def item_results(store: JobStore, job_id: str) -> Iterator[dict[str, Any]]:
    """One result per row of the input, in row order (streamed from the store)."""
    for item in store.iter_items(job_id):
        yield {"row": item["seq"], "id": item["external_id"], "status": item["status"],
               "outcome": item["outcome"], "answer": item["answer"], "confidence": item["confidence"],
               "tier": item["tier_name"], "escalated": item["escalated"], "reason": item["reason"],
               "error": item["error"], "run_id": item["run_id"], "cost": item["cost"],
               "latency_ms": item["latency_ms"]}


def write_rows(rows: Iterable[dict[str, Any]], out: TextIO, fmt: str = "jsonl") -> int:
    if fmt not in ("jsonl", "csv"):
        raise InvalidInputError(f"unknown results format {fmt!r}; use jsonl or csv")
    writer = csv.DictWriter(out, RESULT_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    n = 0
    for n, row in enumerate(rows, 1):
        if writer:
            writer.writerow(row)
        else:
            out.write(json.dumps(row) + "\n")
    return n


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None
