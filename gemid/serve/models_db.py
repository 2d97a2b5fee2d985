"""The database schema (SQLAlchemy 2, typed ORM). Alembic migrations in `migrations/` must match it;
`tests/serve/test_store.py` compares the two.

`reports` has one row per stone photo with the columns the history list filters on, copied from its
latest revision. `report_revisions` keeps every revision's full report JSON: revision 1 is the photo-only
report, each set of readings adds one; none is ever overwritten.

`signing_keys` holds the public half of every key the service has signed with (the private key lives in a
file, GEMID_SIGNING_KEY), so every replica publishes the same GET /v1/keys and old reports still verify after
a rotation. `photos` holds the original photos when the store is PostgreSQL (content-addressed: one row per
SHA-256), so replicas on different machines serve the same photos; on SQLite they stay files.

`accounts` holds the people (password hashes) and API keys (SHA-256 of the token: checking a key is one
indexed lookup) with their role and desk; `sessions` the web page's sign-ins and one-time sign-in links (also
by SHA-256). `audit_log` is the append-only trail, each entry hashing the one before it; `audit_head` is its
one-row tail, locked by whoever appends, so replicas on one database extend a single chain; `audit_seals`
holds the signing key's signature over the chain's head after each append, so a chain rewritten by someone
without the key no longer matches its seals (gemid.serve.audit).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, whatever the backend (SQLite keeps no zone, PostgreSQL does)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ReportRow(Base):
    __tablename__ = "reports"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reference: Mapped[str | None] = mapped_column(String(500), index=True)
    file: Mapped[str | None] = mapped_column(String(255))
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    image_ext: Mapped[str] = mapped_column(String(8))
    latest_revision: Mapped[int] = mapped_column(Integer)
    # the current answer (latest revision): filters of the history list
    decision: Mapped[str] = mapped_column(String(16), index=True)
    top1_label: Mapped[str] = mapped_column(String(100), index=True)
    top1_probability: Mapped[float] = mapped_column(Float)
    # the latest revision's confirmed label (None: not confirmed): field accuracy and the training export
    # read the confirmed reports through this index instead of every report's JSON
    confirmed_label: Mapped[str | None] = mapped_column(String(100), index=True)
    # the token of the public verification page /verify/{code} (printed as the QR code): unguessable, so a
    # printed report opens its own page and nothing else; null only while a migration backfills it
    verify_code: Mapped[str | None] = mapped_column(String(64), unique=True)
    # the desk that issued the report (its technicians see only their desk's reports); null before accounts
    desk: Mapped[str | None] = mapped_column(String(100), index=True)

    revisions: Mapped[list[RevisionRow]] = relationship(
        back_populates="report", order_by="RevisionRow.revision", cascade="all, delete-orphan"
    )


class RevisionRow(Base):
    __tablename__ = "report_revisions"

    report_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decision: Mapped[str] = mapped_column(String(16))
    top1_label: Mapped[str] = mapped_column(String(100))
    top1_probability: Mapped[float] = mapped_column(Float)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)

    report: Mapped[ReportRow] = relationship(back_populates="revisions")


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PhotoRow(Base):
    __tablename__ = "photos"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    ext: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class IntakeRow(Base):
    """What was recorded as a report's photo came in, outside the report (no client is shown it): the photo's
    capture statistics (gemid.vision.capture), compared with the training photos' for drift
    (gemid.serve.drift), and whether the store allowed the photo to be used for training then
    (GEMID_TRAINING_CONSENT; `gemid dataset from-store` exports only photos stored with it on).
    `created_at` repeats the report's so the weekly drift windows read this table alone."""

    __tablename__ = "report_intake"

    report_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    training_consent: Mapped[bool] = mapped_column(Boolean)
    brightness: Mapped[float | None] = mapped_column(Float)
    warmth: Mapped[float | None] = mapped_column(Float)
    tint: Mapped[float | None] = mapped_column(Float)
    stone_px: Mapped[float | None] = mapped_column(Float)
    sharpness: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    camera: Mapped[str | None] = mapped_column(String(100))


class ShadowRow(Base):
    """The candidate bundle's answer on a report's photo (shadow mode, gemid.serve.shadow): recorded, never
    shown, to compare with the served answer on confirmed reports before the candidate is promoted."""

    __tablename__ = "shadow_answers"

    report_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    bundle: Mapped[str] = mapped_column(String(200))  # "name version variant" of the candidate
    decision: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(100))  # the candidate's photo-only top-1
    probability: Mapped[float] = mapped_column(Float)
    served_label: Mapped[str] = mapped_column(String(100))  # the served model's photo-only top-1
    seconds: Mapped[float] = mapped_column(Float)


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # "user" (signs in with a password or link) | "key" (Bearer)
    role: Mapped[str] = mapped_column(String(16))
    desk: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2id, users only
    key_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)  # keys only
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SessionRow(Base):
    __tablename__ = "sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(Integer, ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # "session" (a signed-in browser) | "link" (one-time sign-in)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditRow(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str | None] = mapped_column(String(100))
    actor_kind: Mapped[str | None] = mapped_column(String(8))
    desk: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32), index=True)
    report_id: Mapped[str | None] = mapped_column(String(64), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditSealRow(Base):
    __tablename__ = "audit_seals"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))  # the chain's hash at `seq`
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(128))  # base64 Ed25519 over gemid.serve.audit.seal_bytes


class AuditHeadRow(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
