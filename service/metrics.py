"""Prometheus metrics of one server process, on a registry of its own (several apps in one process,
as in tests, do not collide): requests and latency per endpoint, escalations per tier, cost, queue depth."""

from __future__ import annotations

from typing import Any, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from orchestrator.jobs.records import JobItemRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WAITING = ("queued", "pending", "escalating")


class _QueueDepth:
    """Job items not finished yet, per status, read from the job store at scrape time."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("cascade_queue_depth", "batch job items waiting, by status", labels=["status"])
        counts = dict.fromkeys(WAITING, 0)
        try:
            with self.store._tx() as s:
                counts.update(dict(s.execute(select(JobItemRecord.status, func.count())
                                             .where(JobItemRecord.status.in_(WAITING))
                                             .group_by(JobItemRecord.status)).all()))
        except Exception:  # noqa: BLE001  (a scrape must not fail because the database is down)
            return []
        for status, n in counts.items():
            gauge.add_metric([status], n)
        return [gauge]


class Metrics:
    def __init__(self, job_store: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("cascade_http_requests", "HTTP requests", ["endpoint", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("cascade_http_request_seconds", "HTTP request latency", ["endpoint", "method"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.escalations = Counter("cascade_escalations", "attempts on a tier past the first, per task and tier",
                                   ["task", "tier"], registry=self.registry)
        self.attempts = Counter("cascade_attempts", "attempts per task and tier", ["task", "tier"],
                                registry=self.registry)
        self.cost = Counter("cascade_cost", "cost of the runs served, in the tiers' price currency", ["task"],
                            registry=self.registry)
        self.runs = Counter("cascade_runs", "runs served, per task and outcome", ["task", "outcome"],
                            registry=self.registry)
        self.registry.register(_QueueDepth(job_store))

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint, method).observe(seconds)

    def observe_result(self, result: Any) -> None:
        """One CascadeResult (or subclass) served by a task endpoint."""
        for attempt in result.attempts:
            self.attempts.labels(result.task, attempt.tier_name).inc()
            if attempt.tier_index > 0:
                self.escalations.labels(result.task, attempt.tier_name).inc()
        self.cost.labels(result.task).inc(max(0.0, result.cost or 0.0))
        self.runs.labels(result.task, result.outcome).inc()
