"""The audit store's tamper-evident ledger: an append-only hash chain over every write.

Each write to runs, attempts, reviews or workflow events appends, in the same transaction, one
`audit_log` entry per changed run whose body is the canonical JSON snapshot of that run (its row,
its attempts, its review, and for a workflow run its events) as read back after the write. Entry n's hash is

    sha256(prev_hash + canonical([seq, run_id, kind, body, created_at]))

and `audit_chain_head` (one row, id 1) holds the last seq and hash; its genesis row is seq 0 and
GENESIS_HASH. Writers take the head with an UPDATE before anything else in their transaction:
PostgreSQL holds that row lock to commit, and in SQLite the UPDATE takes the database write
lock before any read, so entries are appended one writer at a time, in commit order.

`verify` walks the chain (hashes, links, consecutive seqs, the head), then compares every run with
the body of its latest entry: an edited, deleted or reordered row is caught, and so is a run that
was written without the ledger.

Canonical snapshots: json.dumps(sort_keys=True, separators=(",", ":")), datetimes as UTC ISO
strings (a naive one, as SQLite gives back, is UTC), floats as Python repr, columns whose value is
NULL left out (so a nullable column added by a later migration leaves older bodies valid; a value
changed to or from NULL still changes the body). The same function snapshots rows when writing
and when verifying, always on rows as read back from the database.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy import Table, exists, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from orchestrator.audit.records import (
    AttemptRecord, AuditChainHead, AuditLogEntry, ReviewRecord, RunRecord, WorkflowEventRecord,
)

GENESIS_HASH = "0" * 64
RUNS, ATTEMPTS, REVIEWS = RunRecord.__table__, AttemptRecord.__table__, ReviewRecord.__table__
LOG, HEAD = AuditLogEntry.__table__, AuditChainHead.__table__
EVENTS = WorkflowEventRecord.__table__
_CHUNK = 500  # ids per IN (...) list


# -- canonical form -------------------------------------------------------------------------------

def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def utc_iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def _columns(row: Any, skip: tuple[str, ...]) -> dict[str, Any]:
    return {k: (utc_iso(v) if isinstance(v, datetime) else v)
            for k, v in row._mapping.items() if v is not None and k not in skip}


def snapshot(run: Any, attempts: Sequence[Any], review: Any | None, events: Sequence[Any] = ()) -> str:
    """The canonical body of one run: its row, its attempts in seq order, its review if any, its
    workflow events in seq order if any (left out when none, so bodies written before workflows
    existed stay valid)."""
    body: dict[str, Any] = {"run": _columns(run, ()), "attempts": [_columns(a, ("id", "run_id")) for a in attempts]}
    if review is not None:
        body["review"] = _columns(review, ("run_id",))
    if events:
        body["events"] = [_columns(e, ("id", "run_id")) for e in events]
    return canonical(body)


def entry_hash(prev_hash: str, seq: int, run_id: str | None, kind: str, body: str, created_at: datetime) -> str:
    payload = canonical([seq, run_id, kind, body, utc_iso(created_at)])
    return hashlib.sha256((prev_hash + payload).encode("utf-8")).hexdigest()


def load_snapshots(conn, run_ids: Sequence[str], tables: tuple[Table, ...] | None = None) -> dict[str, str]:
    """Canonical bodies of the given runs as stored now (runs missing from the table are absent).
    `tables` lets a migration pass the tables as reflected at its revision (runs, attempts,
    reviews, and workflow_events once it exists)."""
    runs_t, attempts_t, reviews_t, *rest = tables or (RUNS, ATTEMPTS, REVIEWS, EVENTS)
    events_t = rest[0] if rest else None
    bodies: dict[str, str] = {}
    for chunk in _chunks(list(run_ids), _CHUNK):
        runs = conn.execute(select(runs_t).where(runs_t.c.id.in_(chunk))).all()
        attempts: dict[str, list] = {}
        for a in conn.execute(select(attempts_t).where(attempts_t.c.run_id.in_(chunk))
                              .order_by(attempts_t.c.run_id, attempts_t.c.seq, attempts_t.c.id)):
            attempts.setdefault(a.run_id, []).append(a)
        reviews = {r.run_id: r for r in conn.execute(select(reviews_t).where(reviews_t.c.run_id.in_(chunk)))}
        events: dict[str, list] = {}
        if events_t is not None:
            for e in conn.execute(select(events_t).where(events_t.c.run_id.in_(chunk))
                                  .order_by(events_t.c.run_id, events_t.c.seq, events_t.c.id)):
                events.setdefault(e.run_id, []).append(e)
        for r in runs:
            bodies[r.id] = snapshot(r, attempts.get(r.id, []), reviews.get(r.id), events.get(r.id, []))
    return bodies


# -- appending ------------------------------------------------------------------------------------

def lock_head(conn) -> tuple[int, str]:
    """Take the chain head for this transaction (an UPDATE, so the write lock comes before any
    read) and return its (seq, hash). Call it first in a transaction that will append."""
    row = conn.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=HEAD.c.seq)
                       .returning(HEAD.c.seq, HEAD.c.hash)).one()
    return row.seq, row.hash


def append_run_entries(conn, run_ids: Iterable[str], kind: str, head: tuple[int, str] | None = None,
                       tables: tuple[Table, ...] | None = None) -> tuple[int, str]:
    """Append one entry per run (snapshot as it is now in this transaction) and return the new
    head (seq, hash). `head` is what `lock_head` returned earlier in the same transaction (taken
    here if None); `conn` is a Session or a Connection."""
    if hasattr(conn, "flush"):
        conn.flush()  # an ORM session: the changes must be in the database before the snapshot
    ids = list(dict.fromkeys(i for i in run_ids if i))
    seq, prev = head if head is not None else lock_head(conn)
    if not ids:
        return seq, prev
    bodies = load_snapshots(conn, ids, tables)
    now = datetime.now(timezone.utc)
    rows = []
    for run_id in ids:
        if run_id not in bodies:
            raise ValueError(f"cannot append a ledger entry for run {run_id}: it is not in the runs table")
        seq += 1
        digest = entry_hash(prev, seq, run_id, kind, bodies[run_id], now)
        rows.append({"seq": seq, "run_id": run_id, "kind": kind, "body": bodies[run_id], "prev_hash": prev,
                     "hash": digest, "created_at": now})
        prev = digest
    conn.execute(insert(LOG), rows)
    conn.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=seq, hash=prev))
    return seq, prev


# -- verifying ------------------------------------------------------------------------------------

@contextmanager
def _snapshot_connection(engine: Engine) -> Iterator[Connection]:
    """One read transaction for the whole walk, so concurrent writers do not show as tampering."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        elif engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")  # pysqlite would not open a transaction for reads
        try:
            yield conn
        finally:
            conn.rollback()


def verify(engine: Engine, batch: int = 1000) -> dict[str, Any]:
    """Check the chain, then every run against its latest entry. Streams in batches."""
    with _snapshot_connection(engine) as conn:
        head_seq, head_hash = conn.execute(select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1)).one()
        result: dict[str, Any] = {"ok": False, "entries_checked": 0, "runs_checked": 0, "head_seq": head_seq,
                                  "head_hash": head_hash, "broken": None}
        broken = _verify_chain(conn, head_seq, head_hash, batch, result)
        if broken is None:
            broken = _verify_runs(conn, head_seq, batch, result)
        if broken is None:
            broken = _verify_no_deleted_runs(conn)
        result["ok"], result["broken"] = broken is None, broken
        return result


def _verify_chain(conn, head_seq: int, head_hash: str, batch: int, result: dict) -> dict | None:
    expected, prev = 1, GENESIS_HASH
    while True:
        entries = conn.execute(select(LOG).where(LOG.c.seq >= expected).order_by(LOG.c.seq).limit(batch)).all()
        for e in entries:
            if e.seq != expected:
                return _broken_seq(expected, f"entry {expected} is missing: the log jumps from seq {expected - 1} "
                                             f"to seq {e.seq}")
            if e.prev_hash != prev:
                return _broken_seq(e.seq, f"entry {e.seq}'s prev_hash does not match the hash of entry {e.seq - 1}: "
                                          "the entries were reordered, replaced or re-hashed")
            if entry_hash(prev, e.seq, e.run_id, e.kind, e.body, e.created_at) != e.hash:
                return _broken_seq(e.seq, f"entry {e.seq}'s hash does not match its contents: its body, kind, "
                                          "run_id, seq or time was edited")
            prev, expected = e.hash, expected + 1
            result["entries_checked"] += 1
        if len(entries) < batch:
            break
    last = expected - 1
    if last < head_seq:
        return _broken_seq(last + 1, f"the chain head says the log ends at seq {head_seq} but it ends at seq {last}: "
                                     f"entries {last + 1}..{head_seq} were deleted")
    if last > head_seq:
        return _broken_seq(head_seq + 1, f"the log has entries past the chain head (seq {head_seq}), up to "
                                         f"seq {last}: they were appended without the audit store")
    if prev != head_hash:
        return _broken_seq(last, f"the chain head's hash does not match entry {last}'s hash: the head or the last "
                                 "entry was replaced")
    return None


def _verify_runs(conn, head_seq: int, batch: int, result: dict) -> dict | None:
    last_id = ""
    while True:
        ids = list(conn.scalars(select(RUNS.c.id).where(RUNS.c.id > last_id).order_by(RUNS.c.id).limit(batch)))
        if not ids:
            return None
        current = load_snapshots(conn, ids)
        latest: dict[str, Any] = {}
        for chunk in _chunks(ids, _CHUNK):
            newest = select(func.max(LOG.c.seq)).where(LOG.c.run_id.in_(chunk)).group_by(LOG.c.run_id)
            for e in conn.execute(select(LOG.c.seq, LOG.c.run_id, LOG.c.body).where(LOG.c.seq.in_(newest))):
                latest[e.run_id] = e
        for run_id in ids:
            entry = latest.get(run_id)
            if entry is None:
                return {"run_id": run_id, "table": "runs", "problem": f"run {run_id} has no entry in the audit ledger: "
                        "it was written without the audit store"}
            if entry.body != current[run_id]:
                table, problem = explain(run_id, entry.seq, entry.body, current[run_id])
                return {"run_id": run_id, "seq": entry.seq, "table": table, "problem": problem}
            result["runs_checked"] += 1
        last_id = ids[-1]


def _verify_no_deleted_runs(conn) -> dict | None:
    orphan = conn.execute(
        select(LOG.c.run_id, func.max(LOG.c.seq).label("seq"))
        .where(LOG.c.run_id.is_not(None), ~exists().where(RUNS.c.id == LOG.c.run_id))
        .group_by(LOG.c.run_id).order_by(func.min(LOG.c.seq)).limit(1)).first()
    if orphan is None:
        return None
    return {"run_id": orphan.run_id, "seq": orphan.seq, "table": "runs",
            "problem": f"run {orphan.run_id} is in the audit ledger (latest entry seq {orphan.seq}) but not in the "
                       "runs table: the row was deleted"}


def explain(run_id: str, seq: int, stored_body: str, current_body: str) -> tuple[str, str]:
    """Which table and field differ between a run's latest ledger entry and its rows now."""
    stored, now = json.loads(stored_body), json.loads(current_body)
    where = f"its latest ledger entry (seq {seq})"
    field = _first_difference(stored["run"], now["run"])
    if field:
        return "runs", (f"run {run_id}'s {field} is {_show(now['run'].get(field))} in the runs table but "
                        f"{_show(stored['run'].get(field))} in {where}")
    a_stored, a_now = stored["attempts"], now["attempts"]
    if len(a_stored) != len(a_now):
        change = "deleted" if len(a_now) < len(a_stored) else "added"
        return "attempts", (f"run {run_id} has {len(a_now)} attempts rows but {where} records {len(a_stored)}: "
                            f"an attempts row was {change}")
    for i, (old, new) in enumerate(zip(a_stored, a_now)):
        field = _first_difference(old, new)
        if field:
            return "attempts", (f"run {run_id}'s attempt #{i} (by seq) has {field} {_show(new.get(field))} in the "
                                f"attempts table but {_show(old.get(field))} in {where}: the row was edited or "
                                "the attempts were reordered")
    e_stored, e_now = stored.get("events", []), now.get("events", [])
    if canonical(e_stored) != canonical(e_now):
        return "workflow_events", (f"workflow run {run_id} has {len(e_now)} workflow_events rows that differ from "
                                   f"the {len(e_stored)} in {where}: an event was edited, added or deleted")
    r_stored, r_now = stored.get("review"), now.get("review")
    if (r_stored is None) != (r_now is None):
        state = "has a review row" if r_now is not None else "has no review row"
        return "reviews", f"run {run_id} {state}, unlike {where}"
    field = _first_difference(r_stored or {}, r_now or {})
    if field:
        return "reviews", (f"run {run_id}'s review has {field} {_show((r_now or {}).get(field))} but "
                           f"{_show((r_stored or {}).get(field))} in {where}")
    return "runs", f"run {run_id}'s rows differ from {where}"


def _first_difference(old: dict, new: dict) -> str | None:
    for key in sorted(set(old) | set(new)):
        if canonical(old.get(key)) != canonical(new.get(key)):
            return key
    return None


def _show(value: Any) -> str:
    text = "NULL" if value is None else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _broken_seq(seq: int, problem: str) -> dict[str, Any]:
    return {"seq": seq, "table": "audit_log", "problem": problem}


def _chunks(values: list, size: int) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
