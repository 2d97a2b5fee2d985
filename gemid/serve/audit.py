"""The audit trail: an append-only table of who did what, when, to which report, from where, each entry
carrying the hash of the one before it, so an entry edited, deleted or inserted in the database breaks the
chain where it happened (`gemid audit verify` says which).

Appending must not serialise the service: every entry needs the previous hash, so appends take turns on one
row (`audit_head`, locked by an UPDATE first: a row lock on PostgreSQL, the write lock on SQLite, so several
HTTP processes or replicas on one database extend one chain). `AuditWriter` therefore groups entries: a
request queues its entry and the writer commits whatever has queued while the previous group was written,
in one transaction (group commit). A "view" does not wait for its entry; a change (create, readings,
confirmation, sign-in...) waits until its entry is committed, so no change is answered without its trace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from anyio import to_thread
from sqlalchemy import Engine, insert, select, update

from gemid.serve.models_db import AuditHeadRow, AuditRow

log = logging.getLogger(__name__)

GENESIS = "0" * 64  # the "previous hash" of the first entry
MAX_GROUP = 500  # entries per transaction at most


@dataclass
class AuditEntry:
    action: str
    actor: str | None = None
    actor_kind: str | None = None
    desk: str | None = None
    report_id: str | None = None
    address: str | None = None
    detail: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _fields(entry: dict[str, Any]) -> dict[str, Any]:
    at = entry["at"]
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return {"seq": entry["seq"], "at": at.isoformat(timespec="microseconds"), "actor": entry["actor"],
            "actor_kind": entry["actor_kind"], "desk": entry["desk"], "action": entry["action"],
            "report_id": entry["report_id"], "address": entry["address"], "detail": entry["detail"]}


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    """SHA-256 of the previous hash and the entry's fields as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(_fields(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + "\n" + text).encode()).hexdigest()


def append(engine: Engine, entries: list[AuditEntry]) -> None:
    """Append `entries` in one transaction, chained on the current head."""
    if not entries:
        return
    with engine.begin() as conn:
        # the UPDATE first: it takes the head's row lock (PostgreSQL) or the write lock (SQLite) before the read
        conn.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=AuditHeadRow.seq))
        seq, prev = conn.execute(select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == 1)).one()
        rows = []
        for entry in entries:
            seq += 1
            row = {**asdict(entry), "seq": seq, "prev_hash": prev}
            row["hash"] = prev = entry_hash(row["prev_hash"], row)
            rows.append(row)
        conn.execute(insert(AuditRow), rows)
        conn.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=seq, hash=prev))


def ensure_head(engine: Engine) -> None:
    """The head row, made once (the migration leaves the table empty; two makers race harmlessly)."""
    from sqlalchemy.exc import IntegrityError

    with engine.connect() as conn:
        if conn.execute(select(AuditHeadRow.id).where(AuditHeadRow.id == 1)).first() is not None:
            return
    try:
        with engine.begin() as conn:
            conn.execute(insert(AuditHeadRow).values(id=1, seq=0, hash=GENESIS))
    except IntegrityError:
        pass


def rows(engine: Engine, *, after: int = 0, limit: int | None = None, action: str | None = None,
         report_id: str | None = None) -> list[dict[str, Any]]:
    stmt = select(AuditRow).where(AuditRow.seq > after).order_by(AuditRow.seq)
    if action:
        stmt = stmt.where(AuditRow.action == action)
    if report_id:
        stmt = stmt.where(AuditRow.report_id == report_id)
    if limit:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [as_json(dict(r._mapping)) for r in conn.execute(stmt.with_only_columns(*AuditRow.__table__.c))]


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    return {**_fields(row), "prev_hash": row["prev_hash"], "hash": row["hash"]}


def _all(engine: Engine, batch: int = 5000) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        with engine.connect() as conn:
            chunk = [dict(r._mapping) for r in conn.execute(
                select(*AuditRow.__table__.c).where(AuditRow.seq > after).order_by(AuditRow.seq).limit(batch))]
        yield from chunk
        if len(chunk) < batch:
            return
        after = chunk[-1]["seq"]


def verify(engine: Engine) -> tuple[int, str | None]:
    """(entries checked, None) for an intact chain; else (the entry where it breaks, why)."""
    prev, expected_seq, n = GENESIS, 1, 0
    for row in _all(engine):
        seq = row["seq"]
        if seq != expected_seq:
            return seq, f"entries {expected_seq}..{seq - 1} are missing (deleted)"
        if row["prev_hash"] != prev:
            return seq, "its previous hash does not match the entry before it"
        if entry_hash(prev, row) != row["hash"]:
            return seq, "its content does not match its hash (edited)"
        prev, expected_seq, n = row["hash"], seq + 1, n + 1
    with engine.connect() as conn:
        head = conn.execute(select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == 1)).first()
    if head is not None and (head[0], head[1]) != (n, prev):
        return n + 1, f"the trail ends at entry {n} but its head says {head[0]} (entries removed from the end)"
    return n, None


def export(engine: Engine) -> Iterator[str]:
    """Every entry as one JSON line, oldest first."""
    for row in _all(engine):
        yield json.dumps(as_json(row), ensure_ascii=False)


class AuditWriter:
    """Group commit of audit entries from one process (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: list[tuple[AuditEntry, asyncio.Future[None] | None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        await to_thread.run_sync(ensure_head, self.engine)
        self._task = asyncio.create_task(self._run())

    def add(self, entry: AuditEntry) -> None:
        """Queue an entry without waiting for it (views)."""
        self._queue.append((entry, None))
        self._wake.set()

    async def write(self, *entries: AuditEntry) -> None:
        """Queue entries and wait until they are committed (changes)."""
        loop = asyncio.get_running_loop()
        waiting = []
        for entry in entries:
            done: asyncio.Future[None] = loop.create_future()
            self._queue.append((entry, done))
            waiting.append(done)
        self._wake.set()
        await asyncio.gather(*waiting)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
                try:
                    await to_thread.run_sync(append, self.engine, [e for e, _ in group])
                except Exception as exc:  # the database is down: the requests waiting are told, views logged
                    log.error("could not append %d audit entries: %s", len(group), exc)
                    for _, done in group:
                        if done is not None and not done.done():
                            done.set_exception(exc)
                    continue
                for _, done in group:
                    if done is not None and not done.done():
                        done.set_result(None)
            if self._closing:
                return

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._task, timeout=30)
        except (TimeoutError, asyncio.CancelledError):
            log.error("audit entries still queued at shutdown: %d", len(self._queue))
        self._task = None
