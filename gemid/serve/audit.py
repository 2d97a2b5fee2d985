"""The audit trail: an append-only table of who did what, when, to which report, from where, each entry
carrying the hash of the one before it, so an entry edited, deleted or inserted in the database breaks the
chain where it happened (`gemid audit verify` says which).

A hash chain alone does not stop someone who can write the table: they recompute every hash after the entry
they changed. So each append also stores a seal (`audit_seals`): the signing key's Ed25519 signature over the
chain's new head, in the same transaction. Whoever lacks the key file cannot make a seal, and a seal covers
every entry before it, so a rewritten, inserted or deleted entry no longer matches the seals after it, and a
service entry without a seal at or after it means seals were removed. Console commands seal when they can read
the key file; the service seals whatever they left unsealed when it starts and with its next append. What
seals cannot show: entries cut from the end together with their seals (`verify` says through which entry the
trail is sealed, so an auditor who noted it last time sees it shrink), or a rewrite by someone holding the
key (`--key` checks against a public key kept outside the database, so a key added to the store is no help).

Appending must not serialise the service: every entry needs the previous hash, so appends take turns on one
row (`audit_head`, locked by an UPDATE first: a row lock on PostgreSQL, the write lock on SQLite, so several
HTTP processes or replicas on one database extend one chain). `AuditWriter` therefore groups entries: a
request queues its entry and the writer commits whatever has queued while the previous group was written,
in one transaction (group commit). A "view" does not wait for its entry; a change (create, readings,
confirmation, sign-in...) waits until its entry is committed, so no change is answered without its trace.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from anyio import to_thread
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, insert, select, update

from gemid.serve.models_db import AuditHeadRow, AuditRow, AuditSealRow

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


class Sealer(Protocol):
    """What seals the chain: the service's signer (gemid.serve.keys.Signer)."""

    def sign_bytes(self, data: bytes) -> tuple[str, str]: ...


def seal_bytes(seq: int, chain_hash: str) -> bytes:
    """The bytes a seal signs: the chain's hash at entry `seq` (which covers every entry up to it)."""
    return f"gemid audit seal\n{seq}\n{chain_hash}".encode()


def _lock_head(conn: Any) -> tuple[int, str]:
    # the UPDATE first: it takes the head's row lock (PostgreSQL) or the write lock (SQLite) before the read
    conn.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=AuditHeadRow.seq))
    seq, head = conn.execute(select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == 1)).one()
    return seq, head


def _seal(conn: Any, sealer: Sealer, seq: int, chain_hash: str) -> None:
    kid, value = sealer.sign_bytes(seal_bytes(seq, chain_hash))
    conn.execute(insert(AuditSealRow).values(seq=seq, hash=chain_hash, key_id=kid, signature=value))


def append(engine: Engine, entries: list[AuditEntry], sealer: Sealer | None = None) -> None:
    """Append `entries` in one transaction, chained on the current head, and seal the new head when given a
    sealer (without one, e.g. a console command on a machine without the key file, the next seal covers them)."""
    if not entries:
        return
    with engine.begin() as conn:
        seq, prev = _lock_head(conn)
        rows = []
        for entry in entries:
            seq += 1
            row = {**asdict(entry), "seq": seq, "prev_hash": prev}
            row["hash"] = prev = entry_hash(row["prev_hash"], row)
            rows.append(row)
        conn.execute(insert(AuditRow), rows)
        conn.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=seq, hash=prev))
        if sealer is not None:
            _seal(conn, sealer, seq, prev)


def seal_head(engine: Engine, sealer: Sealer) -> int | None:
    """Seal the chain's head if its last entry has no seal yet (entries from before seals existed, or left by a
    console command without the key): the entry sealed, or None."""
    with engine.begin() as conn:
        seq, head = _lock_head(conn)
        if seq == 0 or conn.execute(select(AuditSealRow.seq).where(AuditSealRow.seq == seq)).first() is not None:
            return None
        _seal(conn, sealer, seq, head)
    return seq


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


def _select() -> Any:
    """Entries with their seal, where one was made at that entry."""
    return (select(*AuditRow.__table__.c, AuditSealRow.key_id.label("seal_key_id"),
                   AuditSealRow.signature.label("seal_signature"))
            .outerjoin(AuditSealRow, AuditSealRow.seq == AuditRow.seq).order_by(AuditRow.seq))


def rows(engine: Engine, *, after: int = 0, limit: int | None = None, action: str | None = None,
         report_id: str | None = None) -> list[dict[str, Any]]:
    stmt = _select().where(AuditRow.seq > after)
    if action:
        stmt = stmt.where(AuditRow.action == action)
    if report_id:
        stmt = stmt.where(AuditRow.report_id == report_id)
    if limit:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [as_json(dict(r._mapping)) for r in conn.execute(stmt)]


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    seal = ({"algorithm": "Ed25519", "key_id": row["seal_key_id"], "value": row["seal_signature"]}
            if row.get("seal_key_id") else None)
    return {**_fields(row), "prev_hash": row["prev_hash"], "hash": row["hash"], "seal": seal}


def _all(engine: Engine, batch: int = 5000) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        with engine.connect() as conn:
            chunk = [dict(r._mapping) for r in conn.execute(_select().where(AuditRow.seq > after).limit(batch))]
        yield from chunk
        if len(chunk) < batch:
            return
        after = chunk[-1]["seq"]


@dataclass
class TrailCheck:
    """What `verify` found: `problem` None means intact."""

    entries: int = 0
    sealed_through: int = 0  # the last entry a valid seal covers (0: none)
    key_ids: set[str] = field(default_factory=set)  # the keys the valid seals are by
    broken_at: int | None = None
    problem: str | None = None

    @property
    def unsealed(self) -> int:
        """Entries after the last seal: console entries the service has not sealed yet."""
        return self.entries - self.sealed_through


def _seal_problem(seal: Any, row: dict[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    if seal.hash != row["hash"]:
        return "its seal was made over a different chain (entries up to it were rewritten)"
    public = keys.get(seal.key_id)
    if public is None:
        return f"its seal is by key {seal.key_id}, which is not among the public keys given ({', '.join(keys)})"
    try:
        public.verify(base64.b64decode(seal.signature, validate=True), seal_bytes(row["seq"], seal.hash))
    except (binascii.Error, InvalidSignature, ValueError):
        return f"its seal (key {seal.key_id}) does not verify: it was not made with the signing key"
    return None


def verify(engine: Engine, keys: Mapping[str, Ed25519PublicKey] | None = None) -> TrailCheck:
    """Check the chain and its seals against `keys` (key id -> public key; default: the store's own)."""
    if keys is None:
        from gemid.serve.keys import verification_keys

        keys = verification_keys(engine)[0]
    with engine.connect() as conn:
        seals = {r.seq: r for r in conn.execute(select(AuditSealRow))}
    check = TrailCheck()

    def broken(seq: int, why: str) -> TrailCheck:
        check.broken_at, check.problem = seq, why
        return check

    prev, expected_seq = GENESIS, 1
    unsealed_service: int | None = None  # the first service entry no seal covers yet
    for row in _all(engine):
        seq = row["seq"]
        if seq != expected_seq:
            return broken(seq, f"entries {expected_seq}..{seq - 1} are missing (deleted)")
        if row["prev_hash"] != prev:
            return broken(seq, "its previous hash does not match the entry before it")
        if entry_hash(prev, row) != row["hash"]:
            return broken(seq, "its content does not match its hash (edited)")
        seal = seals.pop(seq, None)
        if seal is not None:
            why = _seal_problem(seal, row, keys)
            if why:
                return broken(seq, why)
            check.sealed_through, unsealed_service = seq, None
            check.key_ids.add(seal.key_id)
        elif row["actor_kind"] != "cli" and unsealed_service is None:
            unsealed_service = seq
        prev, expected_seq, check.entries = row["hash"], seq + 1, seq
    n = check.entries
    with engine.connect() as conn:
        head = conn.execute(select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == 1)).first()
    if head is not None and (head[0], head[1]) != (n, prev):
        return broken(n + 1, f"the trail ends at entry {n} but its head says {head[0]} (entries removed from the end)")
    if seals:
        return broken(n + 1, f"a seal covers entry {min(seals)} but the trail ends at entry {n} "
                             "(entries removed from the end)")
    if unsealed_service is not None:
        return broken(unsealed_service,
                      "it was written by the service, which seals every entry it writes, but no seal covers it "
                      "(seals removed, or entries added without the signing key; a store upgraded from a "
                      "version without seals is sealed when the service next starts)")
    return check


def export(engine: Engine) -> Iterator[str]:
    """Every entry as one JSON line, oldest first."""
    for row in _all(engine):
        yield json.dumps(as_json(row), ensure_ascii=False)


class AuditWriter:
    """Group commit of audit entries from one process (see the module's docstring)."""

    def __init__(self, engine: Engine, sealer: Sealer | None = None) -> None:
        self.engine = engine
        self.sealer = sealer
        self._queue: list[tuple[AuditEntry, asyncio.Future[None] | None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        await to_thread.run_sync(ensure_head, self.engine)
        if self.sealer is not None:  # what console commands or an older version left unsealed
            await to_thread.run_sync(seal_head, self.engine, self.sealer)
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
                    await to_thread.run_sync(append, self.engine, [e for e, _ in group], self.sealer)
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
