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
from pathlib import Path

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


def atomic_write(path: Path, data: bytes, *, durable: bool) -> None:
    """Write via a temp file in the same folder + rename: readers see the old file or the whole new one.

    `durable` adds the fsyncs (file, then folder) that make it survive a power cut: needed for stored
    originals, not for derived caches that can be rebuilt.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
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


class ImageStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

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

    def put(self, data: bytes, sha256: str, ext: str) -> Path:
        """Store `data` under its hash (checked); return the path. Idempotent."""
        if sha256_bytes(data) != sha256:
            raise ValueError("sha256 does not match the bytes given")
        path = self.path_for(sha256, ext)
        if path.is_file() and path.stat().st_size == len(data):
            return path
        self._makedirs(path.parent)
        atomic_write(path, data, durable=True)
        return path

    def get(self, sha256: str, ext: str) -> Path | None:
        path = self.path_for(sha256, ext)
        return path if path.is_file() else None

    def count(self) -> int:
        """Stored photos (temp files excluded)."""
        if not self.root.is_dir():
            return 0
        return sum(1 for p in self.root.glob("??/??/*") if p.is_file() and not p.name.startswith(".tmp-"))
