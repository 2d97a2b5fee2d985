"""What is this file really? Format by magic bytes, decode by content, and catch truncated or corrupt files.

Datasets lie about their files: gems68 holds PNGs (with alpha) named .jpg, and scraped sets hold zero-byte
and half-downloaded files. We never trust the extension: the first bytes name the format, the header gives
the size (a decompression bomb is refused before any pixel is decoded), and the end of the stream is checked
for its terminator because a decoder may quietly fill a truncated JPEG with grey.

Pixels come from `gemid.vision.decode`, the decoder training and the runtime use (ICC profiles to sRGB, EXIF
orientation, alpha over white), so the audit hashes and judges exactly the pixels the model sees, and a file
that decoder refuses (a GIF, a BMP, a 10-pixel thumbnail) is reported unusable rather than trained on.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageMode

from gemid.datasets.phash import colour_signature, phash_variants
from gemid.errors import GemidInputError, TooManyPixels, UnsupportedType
from gemid.vision.decode import SUPPORTED, decode, sniff

MAX_PIXELS = 100_000_000  # larger than any photo a desk takes; bigger is a decompression bomb or a scan

EXTENSION_FORMAT = {
    ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg",
    ".png": "png", ".gif": "gif", ".webp": "webp", ".bmp": "bmp", ".dib": "bmp",
    ".tif": "tiff", ".tiff": "tiff", ".heic": "heif", ".heif": "heif", ".avif": "avif",
}

# Problem codes, most serious first. A file with one of these is not fit to train on.
PROBLEMS = ("missing", "unreadable", "empty", "not_an_image", "unsupported_format", "undecodable", "truncated",
            "too_many_pixels", "too_small")

HEAD_BYTES = 64  # enough leading bytes for `sniff_format` (ISO-BMFF brands included)


def sniff_format(head: bytes) -> str | None:
    """Image format named by the leading bytes (lower case, as the decoder names it), or None when they name
    no image format. GIF and BMP are named so the audit can say gemid does not decode them."""
    try:
        return sniff(head).lower()
    except UnsupportedType:
        pass
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
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
    width: int = 0  # as decoded (EXIF orientation applied); from the header when the file is unusable
    height: int = 0
    channels: int = 0  # as stored: colour channels (palette: 3) plus alpha
    bit_depth: int = 0  # as stored, per channel
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


@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    channels: int
    bit_depth: int
    has_alpha: bool


def _header(data: bytes, fmt: str) -> _Header | None:
    """Size and layout of the file as stored, from its header without decoding (Pillow opens lazily);
    None when Pillow cannot tell (the decoder then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                mode = ImageMode.getmode(im.mode)
                alpha = any(b in ("A", "a") for b in mode.bands) or "transparency" in im.info
                colours = 3 if im.mode in ("P", "PA") else len(mode.bands) - sum(b in ("A", "a") for b in mode.bands)
                if fmt == "png" and im.mode not in ("P", "PA") and len(data) > 24:
                    bits = data[24]  # IHDR bit depth: Pillow reads 16-bit colour PNGs as 8-bit modes
                else:
                    bits = 1 if im.mode == "1" else np.dtype(mode.typestr).itemsize * 8
                return _Header(int(im.size[0]), int(im.size[1]), colours + int(alpha), int(bits), alpha)
    except Exception:
        return None


def decode_rgb(data: bytes) -> np.ndarray:
    """8-bit sRGB pixels by gemid's one decoder, with the audit's pixel limit; raises GemidInputError."""
    return decode(data, max_bytes=max(len(data), 1), max_pixels=MAX_PIXELS).rgb


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file by content as 8-bit sRGB, as training sees it; raises ValueError when unusable."""
    info, rgb = _probe(Path(path))
    if rgb is None or info.problem:
        raise ValueError(f"{path}: {info.problem}: {info.message}")
    return rgb


def load_bgr(path: str | Path) -> np.ndarray:
    """`load_rgb` in OpenCV's channel order."""
    return np.ascontiguousarray(load_rgb(path)[..., ::-1])


def probe(path: str | Path, *, with_hash: bool = True) -> ImageInfo:
    """Inspect one file: content format, size, alpha, problems and (when clean) its perceptual hash."""
    info, rgb = _probe(Path(path))
    if with_hash and rgb is not None and info.problem is None:
        variants = phash_variants(rgb)
        return replace(info, phash=variants[0], phash_variants=variants, colour=colour_signature(rgb))
    return info


def _refusal(exc: GemidInputError) -> str:
    if isinstance(exc, TooManyPixels):
        return "too_many_pixels"
    if isinstance(exc, UnsupportedType):
        return "unsupported_format"
    return "too_small" if exc.code == "too_small" else "undecodable"


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
    fmt = sniff_format(data[:HEAD_BYTES])
    base["content_format"] = fmt
    if fmt is None:
        return ImageInfo(**base, problem="not_an_image", message=f"no known image signature (starts {data[:8]!r})"), None
    header = _header(data, fmt)
    if header is not None:
        base.update(width=header.width, height=header.height, channels=header.channels,
                    bit_depth=header.bit_depth, has_alpha=header.has_alpha)
        if header.width * header.height > MAX_PIXELS:
            pixels = header.width * header.height
            return ImageInfo(**base, problem="too_many_pixels", message=f"{pixels} pixels > {MAX_PIXELS}"), None
    if fmt in ("gif", "bmp"):
        return ImageInfo(**base, problem="unsupported_format",
                         message=f"gemid does not decode {fmt.upper()} files ({SUPPORTED} only)"), None
    if is_truncated(data, fmt):
        return ImageInfo(**base, problem="truncated", message=f"{fmt} stream has no end marker"), None
    try:
        rgb = decode_rgb(data)
    except GemidInputError as exc:
        return ImageInfo(**base, problem=_refusal(exc), message=exc.message), None
    base.update(width=int(rgb.shape[1]), height=int(rgb.shape[0]))
    return ImageInfo(**base), rgb
