"""Service settings, read from the environment (prefix `GEMID_`) so a desk PC is configured without code.

Each setting's meaning and default live in its field below, and only there: `gemid serve --help` lists
them from here (GEMID_DATA_DIR, GEMID_DB_URL, GEMID_MODEL_DIR, GEMID_MAX_BYTES, ...), and the limits a
report itself imposes (a reference's length) belong to the report schema, gemid.report, not here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gemid.vision.bundle import DEFAULT_BUNDLE_DIR
from gemid.vision.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS


def default_data_dir() -> Path:
    """The per-user data directory of the platform, so the store survives outside any checkout."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "gemid"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GEMID_", extra="ignore", protected_namespaces=())

    data_dir: Path = Field(default_factory=default_data_dir,
                           description="where the database and the photos live (the platform's user data folder)")
    db_url: str | None = Field(None, description=(
        "SQLAlchemy URL of the database; unset: SQLite in the data folder. PostgreSQL: postgresql://user:pw@host/db "
        "with the postgres extra (pip install 'gemid[postgres]')"))
    model_dir: Path = Field(DEFAULT_BUNDLE_DIR, description="the model bundle")
    model_variant: Literal["fp32", "int8"] = Field("fp32", description="which of the bundle's models: fp32 | int8")
    threads: int | None = Field(None, ge=1, le=256, description=(
        "threads one identification may use (ONNX Runtime and OpenCV); unset: the cores shared out among the "
        "identifications that run at once"))
    max_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1, description="largest photo accepted, in bytes")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description=(
        "largest photo accepted, in pixels (larger ones are refused before decoding: decompression bombs)"))
    max_files: int = Field(50, ge=1, le=1000, description="most photos in one request")
    public_url: str | None = Field(None, description=(
        "base URL printed on reports (QR codes, short links), e.g. https://lab.example/gemid; unset: the "
        "address each request came to"))
    signing_key: Path | None = Field(None, description=(
        "the Ed25519 key file reports are signed with; replicas of one service all read the same one (required "
        "with PostgreSQL); unset: signing-key.pem in the data folder, created at first start"))
    inference_concurrency: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1), ge=1,
        description="identifications run at once (this machine's cores); more only oversubscribes the CPU",
    )

    analysis: Literal["processes", "threads"] = Field(
        "processes", description="where photos are analysed: processes (one worker process per identification "
                                 "at once) | threads of the server (see gemid.serve.analysis)",
    )

    analysis_timeout: float = Field(
        120.0, gt=0, description="seconds one photo's analysis may take before its worker ends itself (the photo "
                                 "is retried once, then refused); worker processes only: a thread cannot be stopped",
    )

    max_revisions: int = Field(50, ge=1, le=10_000, description=(
        "most revisions one report may have (the photo-only report and each set of readings added); past it, 409"))
    max_store_bytes: int | None = Field(None, ge=1, description=(
        "most bytes the stored photos may use; a photo that would pass it is refused with 507 (unset: no limit)"))
    max_in_flight: int = Field(32, ge=1, le=10_000, description=(
        "most /v1 requests being received or analysed at once; more get 503 with Retry-After, so the server's "
        "memory stays bounded"))
    max_connections: int = Field(2000, ge=16, le=1_000_000, description=(
        "most open connections; at the cap, the connection idle longest is closed to make room, so health "
        "checks still answer during a flood of idle sockets"))
    header_timeout: float = Field(10.0, gt=0, le=3600, description=(
        "seconds a connection may take to send a complete request head; then it is closed"))
    keep_alive_timeout: float = Field(5.0, gt=0, le=3600, description=(
        "seconds an idle keep-alive connection is kept open between requests"))
    body_timeout: float = Field(30.0, gt=0, le=3600, description=(
        "seconds a request body may pause without sending anything; then the request is answered 408"))

    training_consent: bool = Field(False, description=(
        "whether the photos stored from now on may be used to train models (each report records it; "
        "`gemid dataset from-store` exports only photos stored with it on)"))
    training_consent_desks: str | None = Field(None, description=(
        "comma-separated desks that consented to training use of their photos (with accounts, each report records "
        "its desk's consent; GEMID_TRAINING_CONSENT=true consents for every desk)"))
    shadow_bundle: Path | None = Field(None, description=(
        "a candidate model bundle run beside the served one on each stored photo, off the request's path: its "
        "answers are recorded, never shown (`gemid field-report` compares them); unset: no shadow"))
    shadow_variant: Literal["fp32", "int8"] = Field("fp32", description="which of the shadow bundle's models")
    shadow_queue: int = Field(16, ge=1, le=10_000, description=(
        "most photos waiting for the shadow model; more are skipped (counted), so shadow mode never holds up "
        "the service"))
    drift_reference: Path | None = Field(None, description=(
        "the training photos' capture statistics for drift (`gemid drift-reference`); unset: the shipped one"))
    allowed_hosts: str | None = Field(None, description=(
        "host names this service answers to (Host and Origin), comma-separated, any port; * for any (behind a "
        "proxy that checks them); unset: localhost, 127.0.0.1, ::1, the --host address and GEMID_PUBLIC_URL's"))
    listen_host: str | None = Field(None, description="the address listened on (set by gemid serve --host)")
    rate_per_key: float = Field(400.0, gt=0, description=(
        "requests a second one API key or signed-in person may send (past it, 429 with Retry-After)"))
    rate_per_address: float = Field(800.0, gt=0, description=(
        "requests a second to /v1 from one network address, whoever signs them"))
    rate_burst_seconds: float = Field(2.0, gt=0, le=3600, description=(
        "seconds of the rate a client may send at once after being idle (the burst of the token bucket)"))

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, v: str | None) -> str | None:
        return v.rstrip("/") if v else None

    @property
    def threads_per_photo(self) -> int:
        """Threads one identification may use (ONNX Runtime and OpenCV): the cores shared out among the identifications that run at once
        (2 cores, 2 at once: 1 each). More would oversubscribe the CPU exactly when the desk is busiest."""
        if self.threads:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.inference_concurrency)

    @property
    def database_url(self) -> str:
        url = self.db_url or f"sqlite:///{self.data_dir.resolve() / 'gemid.db'}"
        # postgresql:// (and Heroku-style postgres://) would make SQLAlchemy look for psycopg2; the postgres
        # extra installs psycopg 3, so a plain PostgreSQL URL means that driver
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url.removeprefix(plain)
        return url

    def consents(self, desk: str | None) -> bool:
        """Whether photos stored now for `desk` may be used for training: every desk's with
        GEMID_TRAINING_CONSENT, else only the desks named in GEMID_TRAINING_CONSENT_DESKS (a photo without a
        desk, e.g. the first admin's, only with the store-wide consent)."""
        if self.training_consent:
            return True
        named = {d.strip() for d in (self.training_consent_desks or "").split(",") if d.strip()}
        return desk is not None and desk in named

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key or self.data_dir / "signing-key.pem"

    @property
    def shared_database(self) -> bool:
        """True when the store is a database server that several replicas may share (not a SQLite file)."""
        return not self.database_url.startswith("sqlite")

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def spool_dir(self) -> Path:
        """Where uploads are spooled while a request is read (the store's disk; emptied at start-up)."""
        return self.data_dir / "incoming"
