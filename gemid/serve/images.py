"""Original photos on disk, content-addressed: images/ab/cd/<sha256>.<ext>.

The bytes are kept exactly as uploaded (the report's image sha256 verifies them). A write is atomic and
durable: temp file in the target directory, fsync, os.replace, fsync of the directory, so a crash leaves
either no file or the whole file, never a torn one. The service commits a report row only after `put`
returned. If that commit then fails, the photo stays as an orphan: harmless, because the name is its
content hash; the next upload of the same photo simply reuses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from pathlib import Path

from gemid.errors import GemidInputError

# container format (as the decoder names it) -> (file extension, content type)
FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "TIFF": ("tif", "image/tiff"),
    "HEIF": ("heic", "image/heif"),
    "HEIC": ("heic", "image/heic"),
    "AVIF": ("avif", "image/avif"),
    "BMP": ("bmp", "image/bmp"),
    "GIF": ("gif", "image/gif"),
}
_CONTENT_TYPES = {ext: ctype for ext, ctype in FORMATS.values()}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def extension_for(fmt: str) -> str:
    return FORMATS.get(fmt.upper(), ("bin", ""))[0]


def content_type_for(ext: str) -> str:
    return _CONTENT_TYPES.get(ext, "application/octet-stream")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StoreFull(GemidInputError):
    """507: storing this photo would pass GEMID_MAX_STORE_BYTES. The photo is fine; the store is full."""

    code, status = "store_full", 507


def atomic_write(path: Path, data: bytes | Path, *, durable: bool) -> None:
    """Write via a temp file in the same folder + rename: readers see the old file or the whole new one.

    `durable` adds the fsyncs (file, then folder) that make it survive a power cut: needed for stored
    originals, not for derived caches that can be rebuilt.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, Path):  # copied in chunks: a photo is never held whole in memory
                with open(data, "rb") as src:
                    while chunk := src.read(1 << 20):
                        f.write(chunk)
            else:
                f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable (POSIX; Windows has no directory fsync)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class ImageStore:
    """The photos, and the bytes they use on disk against `max_bytes` (GEMID_MAX_STORE_BYTES; None: no quota).

    The bytes used are counted once when the store opens and kept up to date by `put`, so a quota check
    costs nothing per photo."""

    def __init__(self, root: Path | str, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._used: int | None = None

    def used(self) -> int:
        """Bytes of the stored photos (temp files excluded)."""
        with self._lock:
            if self._used is None:
                self._used = self._measure()
            return self._used

    def _measure(self) -> int:
        """The bytes the photos use, counted once (a subclass may keep its photos elsewhere)."""
        return sum(p.stat().st_size for p in self._photos())

    def write_problem(self, room: int) -> str | None:
        """Why a photo of `room` bytes could not be stored now (None: it could): a read-only or full disk,
        found by writing, syncing and deleting a small probe file, and by the space the disk has left."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".tmp-probe-")
            try:
                os.write(fd, b"gemid")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
            free = os.statvfs(self.root).f_bavail * os.statvfs(self.root).f_frsize if hasattr(os, "statvfs") else None
        except OSError as exc:
            return f"{exc.strerror or type(exc).__name__} ({self.root})"
        if free is not None and free < room:
            return f"{free / 2**20:.1f} MiB free on its disk, less than one photo may take ({room / 2**20:.1f} MiB)"
        return None

    def check_room(self, size: int, source: Path | None = None) -> None:
        """`StoreFull` when a photo of `size` bytes would pass the quota (unless `source`, the photo's file,
        holds a photo already stored: it takes no room)."""
        if self.max_bytes is not None and self.used() + size > self.max_bytes:
            if source is not None and self.holds(sha256_file(source)):
                return
            raise StoreFull(f"the photo store is full: {self.used() / 2**20:.1f} MiB used of the "
                            f"{self.max_bytes / 2**20:.1f} MiB allowed (GEMID_MAX_STORE_BYTES); nothing was stored. "
                            "Ask the administrator to raise the limit or archive old photos")

    def _photos(self):
        if not self.root.is_dir():
            return
        yield from (p for p in self.root.glob("??/??/*") if p.is_file() and not p.name.startswith(".tmp-"))

    def path_for(self, sha256: str, ext: str) -> Path:
        if not _SHA256.match(sha256) or not re.fullmatch(r"[a-z0-9]{1,8}", ext):
            raise ValueError(f"not a content address: {sha256!r}.{ext!r}")
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.{ext}"

    def _makedirs(self, directory: Path) -> None:
        """Create missing directories and fsync each parent, so the new entries survive a crash."""
        missing = []
        d = directory
        while not d.exists():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another writer made it meanwhile
                d.mkdir()
            _fsync_dir(d.parent)

    def put(self, data: bytes | Path, sha256: str, ext: str) -> Path:
        """Store `data` (bytes, or a file's contents) under its hash (checked); return the path. Idempotent.
        `StoreFull` when a new photo would pass the quota."""
        actual = sha256_file(data) if isinstance(data, Path) else sha256_bytes(data)
        if actual != sha256:
            raise ValueError("sha256 does not match the bytes given")
        size = data.stat().st_size if isinstance(data, Path) else len(data)
        path = self.path_for(sha256, ext)
        if path.is_file() and path.stat().st_size == size:
            return path
        self.used()
        with self._lock:  # reserved before writing: two requests cannot both take the last room
            assert self._used is not None
            if self.max_bytes is not None and self._used + size > self.max_bytes:
                reserved = False
            else:
                self._used += size
                reserved = True
        if not reserved:
            self.check_room(size)
        try:
            self._makedirs(path.parent)
            atomic_write(path, data, durable=True)
        except BaseException:
            with self._lock:
                self._used -= size
            raise
        return path

    def holds(self, sha256: str) -> bool:
        """Whether a photo with this content is stored (under any extension)."""
        return _SHA256.match(sha256) is not None and any((self.root / sha256[:2] / sha256[2:4]).glob(f"{sha256}.*"))

    def get(self, sha256: str, ext: str) -> Path | None:
        path = self.path_for(sha256, ext)
        return path if path.is_file() else None

    def count(self) -> int:
        """Stored photos (temp files excluded)."""
        return sum(1 for _ in self._photos())
