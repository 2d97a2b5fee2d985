"""Service settings, read from the environment (prefix `GEMID_`) so a desk PC is configured without code.

    GEMID_DATA_DIR       where the database and the photos live (default: the platform's user data dir)
    GEMID_DB_URL         SQLAlchemy URL; default sqlite:///{DATA_DIR}/gemid.db (PostgreSQL: postgresql://…, with
                         the postgres extra: pip install 'gemid[postgres]')
    GEMID_MODEL_DIR      the model bundle (default: the shipped models/gemid-species)
    GEMID_MODEL_VARIANT  fp32 | int8
    GEMID_THREADS        ONNX Runtime intra-op threads per identification (default: cores / concurrent ones)
    GEMID_INFERENCE_CONCURRENCY  identifications run at once (default: the number of cores)
    GEMID_ANALYSIS       processes (default: one worker process per identification at once) | threads
    GEMID_ANALYSIS_TIMEOUT  seconds one photo may take before its worker ends itself (120; processes only)
    GEMID_MAX_BYTES      largest photo accepted, bytes (20 MB)
    GEMID_MAX_PIXELS     largest photo accepted, pixels (40 MP)
    GEMID_MAX_FILES      most photos in one request (50)
    GEMID_PUBLIC_URL     base URL printed on reports (QR codes, short links), e.g. https://lab.example/gemid
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gemid.vision.bundle import DEFAULT_BUNDLE_DIR


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

    data_dir: Path = Field(default_factory=default_data_dir)
    db_url: str | None = Field(None, description="SQLAlchemy URL; None means SQLite in data_dir")
    model_dir: Path = DEFAULT_BUNDLE_DIR
    model_variant: Literal["fp32", "int8"] = "fp32"
    threads: int | None = Field(None, ge=1, le=256)
    max_bytes: int = Field(20 * 1024 * 1024, ge=1)
    max_pixels: int = Field(40_000_000, ge=1)
    max_files: int = Field(50, ge=1, le=1000)
    max_reference_chars: int = Field(200, ge=1)
    public_url: str | None = None
    inference_concurrency: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1), ge=1,
        description="identifications run at once; more only oversubscribes the CPU",
    )

    analysis: Literal["processes", "threads"] = Field(
        "processes", description="where photos are analysed: worker processes, or threads of the server "
                                 "(see gemid.serve.analysis)",
    )

    analysis_timeout: float = Field(
        120.0, gt=0, description="seconds one photo's analysis may take before its worker ends itself (the photo "
                                 "is retried once, then refused); worker processes only: a thread cannot be stopped",
    )

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

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"
