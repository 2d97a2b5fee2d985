"""The audit trail: an append-only table of who did what, when, to which report, from where, each entry
carrying the hash of the one before it, so an entry edited, deleted or inserted in the database breaks the
chain where it happened (`gemid audit verify` says which). The module is longer than 500 lines because the
chain, its seals and the checks of both are one security argument: what `append` refuses to seal and what
`verify` refuses to pass must be read side by side.

A hash chain alone does not stop someone who can write the table: they recompute every hash after the entry
they changed. So each append also stores a seal (`audit_seals`): the signing key's Ed25519 signature over the
chain's new head, in the same transaction. Whoever lacks the key file cannot make a seal, and a seal covers
every entry before it, so a rewritten, inserted or deleted entry no longer matches the seals after it, and a
service entry without a seal at or after it means seals were removed. Console commands seal when they can read
the key file; the service seals whatever they left unsealed when it starts and with its next append. What
seals cannot show: entries cut from the end together with their seals (`verify` says through which entry the
trail is sealed, so an auditor who noted it last time sees it shrink), or a rewrite by someone holding the
key (`--key` checks against a public key kept outside the database, so a key added to the store is no help).

A seal must never bless what someone else wrote. Before sealing, the sealer checks the trail since the last
seal (`Sealing.problem`): only console entries may be unsealed there, chained on the sealed hash, and the last
seal must match its entry. It also keeps, outside the database, the last head it sealed (`audit-anchor.json`
in the data directory): the trail must still hold that entry with that hash, so a trail rewritten wholesale
with its seals deleted, or cut back, is refused too. What fails the check is appended unsealed (and logged), so
the trail stays broken where it was tampered with, for `gemid audit verify` (which checks the anchor too) to
name. A machine with no anchor yet (a new replica, a store upgraded from before seals) seals what it finds.

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
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from anyio import to_thread
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, insert, select, update

from gemid.serve.models_db import AuditHeadRow, AuditRow, AuditSealRow

log = logging.getLogger(__name__)

GENESIS = "0" * 64  # the "previous hash" of the first entry
MAX_GROUP = 500  # entries per transaction at most
MAX_UNSEALED = 10_000  # console entries a sealer accepts since the last seal (the service seals at its start)
RETIRED_GRACE = timedelta(minutes=5)  # a rotation's moment: the old key may seal entries dated just after it
ANCHOR_FILE = "audit-anchor.json"  # in the data directory: the last head this machine sealed


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

    def public_key(self) -> tuple[str, Ed25519PublicKey]: ...


def seal_bytes(seq: int, chain_hash: str) -> bytes:
    """The bytes a seal signs: the chain's hash at entry `seq` (which covers every entry up to it)."""
    return f"gemid audit seal\n{seq}\n{chain_hash}".encode()


def _lock_head(conn: Any) -> tuple[int, str]:
    # the UPDATE first: it takes the head's row lock (PostgreSQL) or the write lock (SQLite) before the read
    conn.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=AuditHeadRow.seq))
    seq, head = conn.execute(select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == 1)).one()
    return seq, head


@dataclass(frozen=True)
class Anchor:
    """The last head this machine sealed: (entry, chain hash), and the public keys it has sealed with (key id ->
    PEM), kept in a file outside the database."""

    seq: int
    hash: str
    keys: tuple[tuple[str, str], ...] = ()


class AnchorUnreadable(ValueError):
    """The anchor file exists but cannot be read: sealing stops rather than act as if nothing were sealed."""


def read_anchor(path: Path | None) -> Anchor | None:
    """This machine's anchor; None when it has none; AnchorUnreadable when the file exists but is not one (an
    outside try replaced it with garbage, and the service then sealed a rewritten trail)."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = tuple(sorted((str(k), str(v)) for k, v in dict(data.get("keys") or {}).items()))
        return Anchor(int(data["seq"]), str(data["hash"]), keys)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AnchorUnreadable(f"the audit anchor {path} is unreadable ({exc}); if this data directory's store was "
                               "replaced on purpose, delete the file") from exc


def write_anchor(path: Path, anchor: Anchor) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps({"seq": anchor.seq, "hash": anchor.hash, "keys": dict(anchor.keys)}))
    os.replace(tmp, path)


CONSOLE_ACTIONS = frozenset({
    "user_added", "user_disabled", "user_enabled", "password_set", "sign_in_link", "key_created", "key_revoked",
    "signing_key_rotated", "store_backed_up", "store_restored",
})  # what console commands write (accounts_cli, trust_cli, backup, the first start's administrator)


def _console_entry(row: dict[str, Any]) -> bool:
    """An entry a console command could have written: its kind, actor, address and action (an outside try
    passed "desk1 confirmation from 10.0.0.9" off as a console entry, and the service sealed it)."""
    return (row["actor_kind"] == "cli" and row["address"] == "console" and row["action"] in CONSOLE_ACTIONS
            and bool(row["actor"]) and (row["actor"].startswith("cli:") or row["actor"] == "gemid serve"))


class Sealing:
    """Who seals (the signer) and what this machine last sealed (its anchor file): see the module's docstring.
    One per process; `append` calls `problem` before sealing and `sealed` after the commit."""

    def __init__(self, sealer: Sealer, anchor_path: Path | None = None) -> None:
        self.sealer = sealer
        self.anchor_path = anchor_path
        self.unreadable: str | None = None
        try:
            self.anchor = read_anchor(anchor_path)
        except AnchorUnreadable as exc:
            self.anchor, self.unreadable = None, str(exc)
        self._lock = threading.Lock()
        self._warned_at = -math.inf

    def _trusted(self) -> dict[str, Ed25519PublicKey]:
        """The public keys this machine has sealed with: its anchor's, and its signer's own."""
        from gemid import signing

        keys = {kid: signing.load_public_pem(pem) for kid, pem in (self.anchor.keys if self.anchor else ())}
        kid, public = self.sealer.public_key()
        keys[kid] = public
        return keys

    def problem(self, conn: Any, head_seq: int, head_hash: str) -> str | None:
        """Why the trail as found (head `head_seq`, `head_hash`) must not be sealed, or None."""
        if self.unreadable:
            return self.unreadable
        anchor = self.anchor
        if anchor is not None and anchor.seq > 0:
            if anchor.seq > head_seq:
                return f"this machine sealed through entry {anchor.seq}, but the trail ends at {head_seq}"
            found = conn.execute(select(AuditRow.hash).where(AuditRow.seq == anchor.seq)).scalar_one_or_none()
            if found != anchor.hash:
                return f"entry {anchor.seq} is not the one this machine sealed (rewritten)"
        last = conn.execute(select(AuditSealRow).order_by(AuditSealRow.seq.desc()).limit(1)).first()
        start, prev = (last.seq, last.hash) if last is not None else (0, GENESIS)
        if last is not None:
            found = conn.execute(select(AuditRow.hash).where(AuditRow.seq == last.seq)).scalar_one_or_none()
            if found != last.hash:
                return f"the seal at entry {last.seq} does not match that entry"
            # its signature too, unless it is the seal this machine made last: a bogus seal row on a forged entry
            # had the service seal on top of it (an outside try). Against the keys this machine sealed with; one
            # that never sealed trusts the store's keys
            if anchor is None or (anchor.seq, anchor.hash) != (last.seq, last.hash):
                if anchor is not None:
                    trusted = self._trusted()
                else:
                    from gemid.serve.keys import verification_keys

                    trusted = verification_keys(conn)[0]
                why = _seal_problem(last, {"seq": last.seq, "hash": found}, trusted)
                if why:
                    return f"the seal at entry {last.seq}: {why}"
        elif anchor is None:
            return None  # nothing sealed here or anywhere yet: a new store, or one from before seals
        if head_seq - start > MAX_UNSEALED:
            return f"{head_seq - start} entries since the last seal (entry {start}): more than console commands leave"
        for found_row in conn.execute(select(*AuditRow.__table__.c).where(AuditRow.seq > start)
                                      .order_by(AuditRow.seq)):
            row = dict(found_row._mapping)
            if not _console_entry(row):
                return f"entry {row['seq']} after the last seal was not written by a console command"
            if row["prev_hash"] != prev or entry_hash(prev, row) != row["hash"]:
                return f"entry {row['seq']} after the last seal does not chain on it"
            prev = row["hash"]
        if prev != head_hash:
            return "the head does not match the last entry"
        return None

    def sealed(self, seq: int, chain_hash: str) -> None:
        """Record the head just sealed, and the key it was sealed with, in this machine's anchor."""
        from gemid import signing

        keys = dict(self.anchor.keys) if self.anchor else {}
        kid, public = self.sealer.public_key()
        keys[kid] = signing.public_pem(public)
        anchor = Anchor(seq, chain_hash, tuple(sorted(keys.items())))
        with self._lock:
            if self.anchor is not None and self.anchor.seq >= anchor.seq and self.anchor.keys == anchor.keys:
                return
            self.anchor = anchor
            if self.anchor_path is not None:
                try:
                    write_anchor(self.anchor_path, anchor)
                except OSError as exc:
                    log.error("cannot write the audit anchor %s: %s", self.anchor_path, exc)

    def refused(self, why: str) -> None:
        """Logged at most once a minute: every append finds the same tampering until someone looks."""
        now = time.monotonic()
        if now - self._warned_at >= 60.0:
            self._warned_at = now
            log.error("audit trail NOT sealed: %s; the entries are appended unsealed. Run `gemid audit verify`.",
                      why)


def _seal(conn: Any, sealer: Sealer, seq: int, chain_hash: str) -> None:
    kid, value = sealer.sign_bytes(seal_bytes(seq, chain_hash))
    conn.execute(insert(AuditSealRow).values(seq=seq, hash=chain_hash, key_id=kid, signature=value))


def append(engine: Engine, entries: list[AuditEntry], sealing: Sealing | None = None) -> None:
    """Append `entries` in one transaction, chained on the current head, and seal the new head when given a
    sealing and the trail as found passes its check (without one, e.g. a console command on a machine without
    the key file, the next seal covers them)."""
    if not entries:
        return
    sealed_at: tuple[int, str] | None = None
    why: str | None = None
    with engine.begin() as conn:
        seq, prev = _lock_head(conn)
        if sealing is not None:
            why = sealing.problem(conn, seq, prev)
        rows = []
        for entry in entries:
            seq += 1
            row = {**asdict(entry), "seq": seq, "prev_hash": prev}
            row["hash"] = prev = entry_hash(row["prev_hash"], row)
            rows.append(row)
        conn.execute(insert(AuditRow), rows)
        conn.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=seq, hash=prev))
        if sealing is not None and why is None:
            _seal(conn, sealing.sealer, seq, prev)
            sealed_at = (seq, prev)
    if sealing is not None:
        if sealed_at is not None:
            sealing.sealed(*sealed_at)
        elif why is not None:
            sealing.refused(why)


def seal_head(engine: Engine, sealing: Sealing) -> int | None:
    """Seal the chain's head if its last entry has no seal yet (entries from before seals existed, or left by a
    console command without the key) and the trail passes the check: the entry sealed, or None."""
    with engine.begin() as conn:
        seq, head = _lock_head(conn)
        if seq == 0 or conn.execute(select(AuditSealRow.seq).where(AuditSealRow.seq == seq)).first() is not None:
            return None
        why = sealing.problem(conn, seq, head)
        if why is None:
            _seal(conn, sealing.sealer, seq, head)
    if why is not None:
        sealing.refused(why)
        return None
    sealing.sealed(seq, head)
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


def verify(engine: Engine, keys: Mapping[str, Ed25519PublicKey] | None = None, *,
           retired: Mapping[str, datetime] | None = None, anchor: Anchor | None = None) -> TrailCheck:
    """Check the chain and its seals against `keys` (key id -> public key; default: the store's own, with
    `retired`: key id -> when it retired), and that it still holds this machine's `anchor`."""
    if keys is None:
        from gemid.serve.keys import verification_keys

        keys, retired = verification_keys(engine)
    retired = retired or {}
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
        if anchor is not None and seq == anchor.seq and row["hash"] != anchor.hash:
            return broken(seq, "it is not the entry this machine sealed (its record in the data directory, "
                               f"{ANCHOR_FILE}): the trail was rewritten")
        seal = seals.pop(seq, None)
        if seal is not None:
            why = _seal_problem(seal, row, keys)
            if why is None and seal.key_id in retired:
                at = row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=UTC)
                if at > retired[seal.key_id] + RETIRED_GRACE:
                    why = (f"its seal is by key {seal.key_id}, retired at "
                           f"{retired[seal.key_id].isoformat(timespec='seconds')}, but the entry is dated after it")
            if why:
                return broken(seq, why)
            check.sealed_through, unsealed_service = seq, None
            check.key_ids.add(seal.key_id)
        elif not _console_entry(row) and unsealed_service is None:
            unsealed_service = seq
        prev, expected_seq, check.entries = row["hash"], seq + 1, seq
    n = check.entries
    with engine.connect() as conn:
        head = conn.execute(select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == 1)).first()
    if head is not None and head[0] != n:
        return broken(n + 1, f"the trail ends at entry {n} but its head says {head[0]} (entries removed from the end)")
    if head is not None and head[1] != prev:
        return broken(n, "the head's hash is not this entry's (the head was edited)")
    if anchor is not None and anchor.seq > n:
        return broken(n + 1, f"the trail ends at entry {n}, but this machine sealed through entry {anchor.seq} "
                             f"(its record in the data directory, {ANCHOR_FILE}): entries removed from the end "
                             f"(if this directory's store was replaced on purpose, delete {ANCHOR_FILE})")
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

    def __init__(self, engine: Engine, sealing: Sealing | None = None) -> None:
        self.engine = engine
        self.sealing = sealing
        self._queue: list[tuple[AuditEntry, asyncio.Future[None] | None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        await to_thread.run_sync(ensure_head, self.engine)
        if self.sealing is not None:  # what console commands or an older version left unsealed
            await to_thread.run_sync(seal_head, self.engine, self.sealing)
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
                    await to_thread.run_sync(append, self.engine, [e for e, _ in group], self.sealing)
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
