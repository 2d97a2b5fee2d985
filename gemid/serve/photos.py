"""Photos in the database, for a store that several replicas share (PostgreSQL).

Why: replicas on different machines have different disks. With the photos as rows of `photos` (one per
SHA-256: content-addressed, so a photo sent twice, or by two desks, is stored once), a report created
through one replica shows its photo through any other. Each replica keeps a local copy of the photos it
has served under its data folder (`images/`, the same layout as on SQLite), because responses, previews and
the analysis read files; that copy is a cache, rebuilt from the database whenever it is missing, and checked
against its hash when it is rebuilt.

The store's invariant holds: `put` commits the photo row before it returns, so a report row (committed
after) always has its photo in the database.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from gemid.serve.images import ImageStore, atomic_write, sha256_bytes
from gemid.serve.models_db import PhotoRow

log = logging.getLogger(__name__)


class DatabaseImageStore(ImageStore):
    """An ImageStore whose photos live in the database; `root` is this replica's cache of them."""

    def __init__(self, root: Path | str, engine: Engine, max_bytes: int | None = None) -> None:
        super().__init__(root, max_bytes)
        self.engine = engine

    def _measure(self) -> int:
        """Bytes of all photos of the shared store (what GEMID_MAX_STORE_BYTES limits), not of this cache."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.sum(PhotoRow.size), 0))).scalar_one())

    def put(self, data: bytes | Path, sha256: str, ext: str) -> Path:
        path = super().put(data, sha256, ext)  # hash checked, quota reserved, cached on this replica's disk
        raw = data.read_bytes() if isinstance(data, Path) else data
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(PhotoRow).values(sha256=sha256, ext=ext, size=len(raw), data=raw)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["sha256"]))
        return path

    def get(self, sha256: str, ext: str) -> Path | None:
        path = self.path_for(sha256, ext)
        if path.is_file():
            return path
        with self.engine.connect() as conn:
            raw = conn.execute(select(PhotoRow.data).where(PhotoRow.sha256 == sha256)).scalar_one_or_none()
        if raw is None:
            return None
        raw = bytes(raw)
        if sha256_bytes(raw) != sha256:  # never cache (and serve) bytes that are not the photo named
            log.error("photo %s in the database does not hold the bytes its name says", sha256)
            return None
        self._makedirs(path.parent)
        atomic_write(path, raw, durable=False)  # a cache: rebuilt from the database if lost
        return path

    def holds(self, sha256: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(PhotoRow.sha256).where(PhotoRow.sha256 == sha256)).first() is not None


def open_images(settings: Any, engine: Engine) -> ImageStore:
    """The photo store for these settings: files in the data folder on SQLite, the database on PostgreSQL."""
    if settings.shared_database:
        return DatabaseImageStore(settings.images_dir, engine, settings.max_store_bytes)
    return ImageStore(settings.images_dir, settings.max_store_bytes)
