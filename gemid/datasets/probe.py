"""What is this file really? Format by magic bytes, decode by content, and catch truncated or corrupt files.

Datasets lie about their files: gems68 holds PNGs (with alpha) named .jpg, and scraped sets hold zero-byte
and half-downloaded files. We never trust the extension: the first bytes name the format, OpenCV decodes the
bytes (Pillow only for what OpenCV cannot read), and the end of the stream is checked for its terminator
because a decoder may quietly fill a truncated JPEG with grey.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from gemid.datasets.phash import colour_signature, phash_variants

MAX_PIXELS = 100_000_000  # larger than any photo a desk takes; bigger is a decompression bomb or a scan

EXTENSION_FORMAT = {
    ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg",
    ".png": "png", ".gif": "gif", ".webp": "webp", ".bmp": "bmp", ".dib": "bmp",
    ".tif": "tiff", ".tiff": "tiff", ".heic": "heif", ".heif": "heif", ".avif": "avif",
}

# Problem codes, most serious first. A file with one of these is not fit to train on.
PROBLEMS = ("missing", "unreadable", "empty", "not_an_image", "undecodable", "truncated", "too_many_pixels")


def sniff_format(head: bytes) -> str | None:
    """Image format named by the leading bytes, or None when they name no image format we know."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"):
            return "heif"
    return None


def extension_format(path: str | Path) -> str | None:
    return EXTENSION_FORMAT.get(Path(path).suffix.lower())


def is_truncated(data: bytes, fmt: str) -> bool:
    """True when the stream stops before its format's terminator (a half-copied or half-downloaded file)."""
    if fmt == "jpeg":
        # The end-of-image marker must follow the last start-of-scan; trailing padding after it is allowed.
        return data.rfind(b"\xff\xd9") < max(data.rfind(b"\xff\xda"), 2)
    if fmt == "png":
        return b"IEND" not in data[-64:]
    if fmt == "gif":
        return not data.rstrip(b"\x00").endswith(b";")
    if fmt == "webp":
        return len(data) < 8 + int.from_bytes(data[4:8], "little")
    if fmt == "bmp":
        return len(data) < int.from_bytes(data[2:6], "little")
    return False


@dataclass(frozen=True)
class ImageInfo:
    """Everything the audit needs about one file; `problem` is None for a clean, decodable image."""

    path: str
    n_bytes: int = 0
    sha256: str = ""
    content_format: str | None = None
    extension_format: str | None = None
    width: int = 0
    height: int = 0
    channels: int = 0
    bit_depth: int = 0
    has_alpha: bool = False
    phash: int | None = None
    colour: np.ndarray | None = field(default=None, compare=False, repr=False)  # 8x8 Lab signature
    phash_variants: tuple[int, ...] | None = field(default=None, compare=False, repr=False)  # turned/mirrored
    problem: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def extension_mismatch(self) -> bool:
        """Content is an image whose format differs from what the name says (PNG named .jpg)."""
        return self.content_format is not None and self.content_format != self.extension_format


def _decode_pillow(data: bytes) -> np.ndarray | None:
    """Fallback for what OpenCV cannot read (GIF, HEIF/AVIF via pillow-heif when installed)."""
    from PIL import Image

    try:
        import pillow_heif  # type: ignore[import-not-found]

        pillow_heif.register_heif_opener()
    except Exception:  # optional: without it HEIF is simply reported undecodable
        pass
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
            arr = np.asarray(im)
    except Exception:
        return None
    return cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[-1] == 4 else cv2.COLOR_RGB2BGR)


def _header_pixels(data: bytes) -> int | None:
    """Width x height from the header without decoding (Pillow reads lazily); None if Pillow can't tell."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return int(im.size[0]) * int(im.size[1])
    except Exception:
        return None


_MAY_HAVE_ALPHA = {"png", "webp", "tiff", "gif", "bmp"}


def decode_bytes(data: bytes, fmt: str | None = None) -> np.ndarray | None:
    """Decode by content into an OpenCV array (BGR, BGRA or grey; 8 or 16 bit), or None.

    JPEGs are decoded with EXIF orientation applied (a phone photo stands the way it was taken); formats
    that may carry alpha are decoded unchanged so the alpha is seen (OpenCV then ignores orientation).
    """
    fmt = fmt or sniff_format(data[:32])
    flags = cv2.IMREAD_UNCHANGED if fmt in _MAY_HAVE_ALPHA else cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if arr is None and data:
        arr = _decode_pillow(data)
    return arr


def to_bgr8(arr: np.ndarray, background: int = 255) -> np.ndarray:
    """Any decoded array as 8-bit BGR; alpha is composited over a plain background (white by default)."""
    if arr.dtype == np.uint16:
        arr = (arr / 257.0).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = cv2.normalize(arr, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    if arr.shape[2] == 4:
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        return (arr[..., :3].astype(np.float32) * alpha + background * (1.0 - alpha)).round().astype(np.uint8)
    if arr.shape[2] == 1:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    return arr


def load_bgr(path: str | Path) -> np.ndarray:
    """Read an image file by content as 8-bit BGR (alpha over white); raises ValueError when unusable."""
    info, arr = _probe(Path(path))
    if arr is None or info.problem:
        raise ValueError(f"{path}: {info.problem}: {info.message}")
    return to_bgr8(arr)


def probe(path: str | Path, *, with_hash: bool = True) -> ImageInfo:
    """Inspect one file: content format, size, alpha, problems and (when clean) its perceptual hash."""
    info, arr = _probe(Path(path))
    if with_hash and arr is not None and info.problem is None:
        bgr = to_bgr8(arr)
        variants = phash_variants(bgr)
        return replace(info, phash=variants[0], phash_variants=variants, colour=colour_signature(bgr))
    return info


def _probe(path: Path) -> tuple[ImageInfo, np.ndarray | None]:
    ext = extension_format(path)
    base = {"path": str(path), "extension_format": ext}
    if not path.exists():
        return ImageInfo(**base, problem="missing", message="file does not exist"), None
    try:
        data = path.read_bytes()
    except OSError as exc:
        return ImageInfo(**base, problem="unreadable", message=str(exc)), None
    base.update(n_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    if not data:
        return ImageInfo(**base, problem="empty", message="zero-byte file"), None
    fmt = sniff_format(data[:32])
    base["content_format"] = fmt
    if fmt is None:
        return ImageInfo(**base, problem="not_an_image", message=f"no known image signature (starts {data[:8]!r})"), None
    pixels = _header_pixels(data)
    if pixels is not None and pixels > MAX_PIXELS:
        return ImageInfo(**base, problem="too_many_pixels", message=f"{pixels} pixels > {MAX_PIXELS}"), None
    truncated = is_truncated(data, fmt)
    arr = decode_bytes(data, fmt)
    if arr is None:
        why = "stream ends early" if truncated else "decoder refused the data"
        return ImageInfo(**base, problem="truncated" if truncated else "undecodable", message=why), None
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else int(arr.shape[2])
    base.update(width=int(w), height=int(h), channels=channels, bit_depth=int(arr.dtype.itemsize * 8),
                has_alpha=channels == 4)
    if truncated:
        return ImageInfo(**base, problem="truncated", message=f"{fmt} stream has no end marker"), arr
    return ImageInfo(**base), arr
