"""Signed report revisions: the rules, in one place that the service (signing) and `gemid verify` (checking
offline, without the service) share.

The rules (also in `../shared/design/report-schema.md`, "Signed revisions"):
- The signed bytes are the canonical JSON (RFC 8785: sorted keys, no spaces, ECMAScript number form) of the
  revision as stored and served, without its `signature` member. They include `image.sha256` (so a swapped
  photo shows) and `previous_signature`, the previous revision's `signature.value` (null for revision 1), so
  the revisions of a report form a chain: removing, reordering or editing one breaks the next.
- Ed25519 (RFC 8032) over those bytes; `signature` = {algorithm: "Ed25519", key_id, value: base64}.
- `key_id` = the first 16 hex digits of SHA-256 of the raw 32-byte public key, so anyone holding the public
  key (GET /v1/keys, or a PEM file) computes the same name.
- A checker recomputes the canonical form from the JSON it received: nothing of the signer's serialisation
  (key order, spacing, `1.0` against `1`) matters, but any change of a value does.

This module imports only `cryptography` and `rfc8785` (both small), so any layer may use it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "Ed25519"


def key_id(public: Ed25519PublicKey) -> str:
    """The key's name: first 16 hex of SHA-256 of its raw public bytes (64 bits: a name, not a secret)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_pem(data: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; ValueError for anything else."""
    key = serialization.load_pem_public_key(data.encode() if isinstance(data, str) else data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The private key in a PEM file; ValueError when the file holds something else."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write the key file with 0600 permissions from its first byte (never readable by others, not even
    briefly), atomically: a reader sees the old key or the new one, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, private_pem(key))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)  # the umask cannot have widened it, but a pre-existing tmp might have other bits
    os.replace(tmp, path)


def canonical_bytes(body: Mapping[str, Any]) -> bytes:
    """The signed bytes of a revision: RFC 8785 canonical JSON of it without `signature`."""
    return rfc8785.dumps({k: v for k, v in body.items() if k != "signature"})


def sign(body: Mapping[str, Any], key: Ed25519PrivateKey, kid: str) -> dict[str, str]:
    """The `signature` member for `body` (a revision as JSON: `model_dump(mode="json")`)."""
    value = key.sign(canonical_bytes(body))
    return {"algorithm": ALGORITHM, "key_id": kid, "value": base64.b64encode(value).decode("ascii")}


# --- checking ---------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What checking a report's revisions found: `problems` empty means every one verified."""

    report_id: str | None = None
    checked: list[int] = field(default_factory=list)  # revisions whose signature verified
    problems: list[str] = field(default_factory=list)
    key_ids: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.checked)


def revisions_of(document: Any) -> list[dict[str, Any]]:
    """The revisions in what a user hands to `gemid verify`: one revision (GET /v1/reports/{id}), the
    revisions response ({"report_id", "revisions": [...]}) or a plain list of revisions."""
    if isinstance(document, list):
        items = document
    elif isinstance(document, dict) and isinstance(document.get("revisions"), list):
        items = document["revisions"]
    elif isinstance(document, dict) and "report_id" in document:
        items = [document]
    else:
        raise ValueError("not a report: expected a report revision, the revisions list of "
                         "GET /v1/reports/{id}/revisions, or a JSON list of revisions")
    if not items or not all(isinstance(i, dict) for i in items):
        raise ValueError("no report revisions in it")
    return items


def _check_one(body: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey],
               retired: Mapping[str, datetime]) -> str | None:
    """Why this revision's signature does not verify, or None when it does."""
    sig = body.get("signature")
    if not isinstance(sig, dict):
        return "it carries no signature (not stored by a signing gemid service, or the signature was removed)"
    if sig.get("algorithm") != ALGORITHM:
        return f"unknown signature algorithm {sig.get('algorithm')!r}"
    kid = sig.get("key_id")
    public = keys.get(kid) if isinstance(kid, str) else None
    if public is None:
        known = ", ".join(sorted(keys)) or "none"
        return f"it is signed by key {kid!r}, which is not among the public keys given ({known})"
    try:
        raw = base64.b64decode(str(sig.get("value", "")), validate=True)
        public.verify(raw, canonical_bytes(body))
    except (binascii.Error, InvalidSignature, ValueError):
        return (f"the signature (key {kid}) does not match the content: a signed field was changed "
                "after signing, or the signature value was altered")
    made = _when(body.get("created_at"))
    if kid in retired and (made is None or made > retired[kid]):
        # a retired key signs nothing new: a leaked old key must not sign after its rotation (an outside try
        # forged a revision dated after it with the retired key, and it verified)
        return (f"it is signed by key {kid}, retired at {retired[kid].isoformat(timespec='seconds')}, and dated "
                f"{body.get('created_at')!s}: after that key stopped signing")
    return None


def _when(value: Any) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def verify_revisions(revisions: Iterable[Mapping[str, Any]], keys: Mapping[str, Ed25519PublicKey], *,
                     photo_sha256: str | None = None, retired: Mapping[str, datetime] | None = None) -> Verdict:
    """Check each revision's signature, the chain between consecutive ones, and (given the photo's SHA-256)
    that every revision describes that photo; a revision dated after its key's retirement (`retired`: key id
    -> when) does not verify. Messages name the revision and say why."""
    verdict = Verdict()
    previous: Mapping[str, Any] | None = None
    for body in revisions:
        rev = body.get("revision")
        rid = body.get("report_id")
        where = f"revision {rev}"
        if verdict.report_id is None:
            verdict.report_id = rid if isinstance(rid, str) else None
        elif rid != verdict.report_id:
            verdict.problems.append(f"{where}: belongs to report {rid}, not {verdict.report_id}")
        why = _check_one(body, keys, retired or {})
        if why:
            verdict.problems.append(f"{where}: {why}")
        else:
            verdict.checked.append(rev if isinstance(rev, int) else -1)
            verdict.key_ids.add(body["signature"]["key_id"])
        prev_sig = body.get("previous_signature")
        if previous is not None:
            expected = (previous.get("signature") or {}).get("value")
            if previous.get("revision") != (rev - 1 if isinstance(rev, int) else None):
                verdict.problems.append(f"{where}: follows revision {previous.get('revision')}; the chain has a gap "
                                        "or is out of order")
            elif prev_sig != expected:
                verdict.problems.append(f"{where}: previous_signature is not revision {previous.get('revision')}'s "
                                        "signature: the chain is broken (a revision was replaced or altered)")
        elif rev == 1 and prev_sig is not None:
            verdict.problems.append(f"{where}: revision 1 must have previous_signature null")
        if photo_sha256 is not None:
            image = body.get("image")
            claimed = image.get("sha256") if isinstance(image, dict) else None
            if claimed != photo_sha256:
                verdict.problems.append(f"{where}: the photo's SHA-256 is {photo_sha256}, but the report was "
                                        f"made from {claimed}: not this photo, or the photo was changed")
        previous = body
    return verdict
