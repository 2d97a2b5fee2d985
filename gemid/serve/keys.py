"""The service's signing key: the private key in a file (0600), its public half in the database.

Why this split: every replica of one service must sign with the same key, so the private key is one file
they all read (GEMID_SIGNING_KEY), never a row anyone with database access could copy; the public keys are
rows, so every replica publishes the same GET /v1/keys and a report signed before a rotation still verifies.

Start-up rules (`open_signer`), each refusal a `SigningKeyError` with one line saying what to do:
- PostgreSQL (replicas) without GEMID_SIGNING_KEY: refused: each replica would make its own key.
- No key file: when the store has never signed, a new key is made (first start, 0600) and registered;
  when it has, refused: signing with a new key silently would hide a lost file (`gemid keys rotate-signing`
  makes the new key on purpose).
- A key file whose key the store does not list as its current key (another store's, or retired): refused.
`rotate` retires the current key and makes a new one; the running service picks the new file up at its next
signature (it looks at the file's identity, a stat, before each).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, delete, insert, select, update

from gemid import signing
from gemid.serve.models_db import SigningKeyRow
from gemid.serve.settings import Settings

log = logging.getLogger(__name__)


class SigningKeyError(RuntimeError):
    """The service cannot sign reports as configured; the message says why and what to do."""


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    algorithm: str
    public_pem: str
    created_at: datetime
    retired_at: datetime | None


def _named_right(row: Any) -> bool:
    """A row's key id is its public key's (`signing.key_id`): a PEM swapped under a genuine key's id (an outside
    try) would otherwise be published and trusted under that id."""
    try:
        ok = signing.key_id(signing.load_public_pem(row.public_pem)) == row.key_id
    except ValueError:
        ok = False
    if not ok:
        log.error("signing key row %s: its public key does not match its id; ignored (the key table was edited)",
                  row.key_id)
    return ok


def public_keys(engine: Engine | Connection) -> list[PublicKey]:
    """Every key the store has signed with, current first, then newest retired first (a row whose id is not
    its key's is left out). A connection is read in its own transaction (the audit's sealer holds one)."""
    if isinstance(engine, Connection):
        rows = engine.execute(select(SigningKeyRow)).all()
    else:
        with engine.connect() as conn:
            rows = conn.execute(select(SigningKeyRow)).all()
    keys = [PublicKey(r.key_id, r.algorithm, r.public_pem, r.created_at, r.retired_at) for r in rows
            if _named_right(r)]
    return sorted(keys, key=lambda k: (k.retired_at is not None, -(k.created_at.timestamp())))


def verification_keys(engine: Engine | Connection) -> tuple[dict[str, Ed25519PublicKey], dict[str, datetime]]:
    """Every key the store has signed with, and when each retired one stopped signing (`signing.verify_revisions`'
    `keys` and `retired`), from one read of the key table."""
    known = public_keys(engine)
    return ({k.key_id: signing.load_public_pem(k.public_pem) for k in known},
            {k.key_id: k.retired_at for k in known if k.retired_at is not None})


def _register(engine: Engine, public: Ed25519PublicKey, *, retire_others: bool) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if retire_others:
            conn.execute(update(SigningKeyRow).where(SigningKeyRow.retired_at.is_(None)).values(retired_at=now))
        conn.execute(insert(SigningKeyRow).values(key_id=signing.key_id(public), algorithm=signing.ALGORITHM,
                                                  public_pem=signing.public_pem(public), created_at=now,
                                                  retired_at=None))


class Signer:
    """Signs revision bodies with the key in `path`, re-reading the file when it was replaced (a rotation)."""

    def __init__(self, path: Path, key: Ed25519PrivateKey) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._key = key
        self.key_id = signing.key_id(key.public_key())
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _current(self) -> tuple[Ed25519PrivateKey, str]:
        stamp = self._file_stamp()
        if stamp is not None and stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        key = signing.load_private_key(self.path)
                    except (OSError, ValueError) as exc:  # half-copied by hand: keep signing with the last key
                        log.error("signing key file %s unreadable (%s); still signing with key %s",
                                  self.path, exc, self.key_id)
                    else:
                        self._key, self.key_id = key, signing.key_id(key.public_key())
                        log.info("signing key file %s replaced: now signing with key %s", self.path, self.key_id)
                    self._stamp = stamp
        return self._key, self.key_id

    def sign(self, body: dict[str, Any]) -> dict[str, str]:
        key, kid = self._current()
        return signing.sign(body, key, kid)

    def public_key(self) -> tuple[str, Ed25519PublicKey]:
        """(key id, public key) of the key it signs with now."""
        key, kid = self._current()
        return kid, key.public_key()

    def sign_bytes(self, data: bytes) -> tuple[str, str]:
        """(key id, base64 Ed25519 signature) over raw bytes: the audit trail's seals (gemid.serve.audit)."""
        key, kid = self._current()
        return kid, base64.b64encode(key.sign(data)).decode("ascii")


def console_signer(settings: Settings, engine: Engine) -> Signer | None:
    """The signer a console command seals its audit entries with: the key file when it is readable here and
    holds the store's current key; None otherwise (a desk PC without the key file). Never makes a key: the
    service seals what a console command left unsealed at its next append."""
    path = settings.signing_key_path
    try:
        key = signing.load_private_key(path)
    except (OSError, ValueError):
        return None
    current = {k.key_id for k in public_keys(engine) if k.retired_at is None}
    return Signer(path, key) if signing.key_id(key.public_key()) in current else None


def open_signer(settings: Settings, engine: Engine) -> Signer:
    """The signer the service uses, after the start-up rules of this module's docstring."""
    path = settings.signing_key_path
    if settings.shared_database and settings.signing_key is None:
        raise SigningKeyError(
            "GEMID_SIGNING_KEY is not set: on PostgreSQL every replica must sign with the same key, so set it to "
            "the key file they all read (the first replica creates it; copy it to the others with mode 0600)")
    known = public_keys(engine)
    current = [k for k in known if k.retired_at is None]
    if not path.exists():
        if known:
            raise SigningKeyError(
                f"the signing key file {path} is missing, but this store signs with key "
                f"{current[0].key_id if current else known[0].key_id}: give this replica that key file "
                f"(GEMID_SIGNING_KEY), or run `gemid keys rotate-signing` to start a new key (reports signed so far "
                f"still verify)")
        key = signing.new_private_key()
        signing.write_private_key(path, key)
        _register(engine, key.public_key(), retire_others=False)
        _first_start_race(engine, path, signing.key_id(key.public_key()))
        log.info("created signing key %s in %s", signing.key_id(key.public_key()), path)
        return Signer(path, key)
    try:
        key = signing.load_private_key(path)
    except (OSError, ValueError) as exc:
        raise SigningKeyError(f"cannot read the signing key file {path}: {exc}") from exc
    if path.stat().st_mode & 0o077:
        log.warning("signing key file %s is readable by other users; chmod 600 it", path)
    kid = signing.key_id(key.public_key())
    with engine.connect() as conn:
        listed = conn.execute(select(SigningKeyRow.key_id).where(SigningKeyRow.key_id == kid)).first() is not None
    if listed and kid not in {k.key_id for k in known}:
        # the row under this key's id holds another public key (edited; an outside try got a raw IntegrityError)
        raise SigningKeyError(
            f"the store's row for signing key {kid} holds a different public key: the key table was edited. Restore "
            "the store from a backup, or have an administrator investigate before serving")
    if not known:
        _register(engine, key.public_key(), retire_others=False)
        return Signer(path, key)
    if kid not in {k.key_id for k in current}:
        state = "a retired key" if kid in {k.key_id for k in known} else "a key this store does not know"
        now = ", ".join(k.key_id for k in current) or "none (all retired)"
        raise SigningKeyError(
            f"the signing key file {path} holds {state} ({kid}); this store signs with {now}: give this replica "
            f"the current key file, or run `gemid keys rotate-signing`")
    return Signer(path, key)


def _first_start_race(engine: Engine, path: Path, kid: str) -> None:
    """Two replicas started at the same moment on an empty store each made a key: the first registered wins,
    the other withdraws its key (row and file) and refuses, so the replicas never sign with different keys."""
    current = sorted((k for k in public_keys(engine) if k.retired_at is None), key=lambda k: (k.created_at, k.key_id))
    if current and current[0].key_id != kid:
        with engine.begin() as conn:
            conn.execute(delete(SigningKeyRow).where(SigningKeyRow.key_id == kid))
        path.unlink(missing_ok=True)
        raise SigningKeyError(
            f"another replica created this store's signing key ({current[0].key_id}) at the same moment: give this "
            f"replica that key file ({path}) and start it again")


def rotate(settings: Settings, engine: Engine) -> tuple[list[str], str]:
    """Retire the current key(s), make a new one in the key file: (retired key ids, new key id).

    The new public key is registered before the file is replaced, so there is no moment at which a server
    signs with a key /v1/keys does not list."""
    if settings.shared_database and settings.signing_key is None:
        raise SigningKeyError("GEMID_SIGNING_KEY is not set: name the key file the replicas share")
    retired = [k.key_id for k in public_keys(engine) if k.retired_at is None]
    key = signing.new_private_key()
    _register(engine, key.public_key(), retire_others=True)
    signing.write_private_key(settings.signing_key_path, key)
    return retired, signing.key_id(key.public_key())
