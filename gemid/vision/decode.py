"""Safe decoding of uploaded photos into 8-bit sRGB pixels.

Uploads come from phones, scanners and desk cameras, named anything. We trust the content, not the name:
the container is found from its magic bytes, the size is checked from the header before any pixel is
decoded (decompression bombs), the file is fully loaded so a truncated upload is refused rather than
silently padded with grey, and every refusal is a typed `GemidInputError` a technician can act on.
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from gemid.errors import (
    CorruptImage,
    EmptyFile,
    GemidInputError,
    TooLarge,
    TooManyPixels,
    UnsupportedType,
)
from gemid.vision.capture import exif_camera

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # a 48 MP phone JPEG is ~15 MB; anything bigger is not a photo of one stone
DEFAULT_MAX_PIXELS = 40_000_000  # ~120 MB of RGB once decoded; keeps a 16-worker service well inside RAM
MIN_SIDE = 16  # below this there is nothing to look at (and segmentation needs a border)

SUPPORTED = "JPEG, PNG, WebP, TIFF, HEIC/HEIF or AVIF"

# ISO-BMFF `ftyp` major/compatible brands that mean a HEIF-family still image.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # uint8 (H, W, 3), sRGB, EXIF orientation applied, alpha composited on white
    format: str  # container found by content: JPEG, PNG, WEBP, TIFF, HEIF, AVIF
    width: int
    height: int
    sha256: str  # of the bytes as uploaded (the stored original is addressed by it)
    bytes: int
    exif_rotated: bool
    camera: str = ""  # EXIF make and model (gemid.vision.capture); "" when the photo carries none


def sniff(head: bytes) -> str:
    """Container format from the first bytes; raises UnsupportedType for anything we do not decode."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp":
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(len(head), 64) - 3, 4)}
        if brands & _AVIF_BRANDS and head[8:12] in _AVIF_BRANDS:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
        if brands & _AVIF_BRANDS:
            return "AVIF"
        raise UnsupportedType("this is a video or other ISO media file, not a still photo; "
                              f"upload a {SUPPORTED} image")
    raise UnsupportedType(f"{_describe(head)}; upload a {SUPPORTED} image")


def _describe(head: bytes) -> str:
    """Name what a refused file looks like, so the message helps the person who sent it."""
    known = {
        b"%PDF": "this is a PDF document, not an image",
        b"PK\x03\x04": "this is a ZIP archive (or an Office document), not an image",
        b"GIF8": "GIF images are not supported",
        b"BM": "BMP images are not supported",
        b"\x1f\x8b": "this is a gzip archive, not an image",
        b"II+\x00": "BigTIFF files are not supported",
        b"MM\x00+": "BigTIFF files are not supported",
        b"<svg": "SVG drawings are not photos",
        b"\x00\x00\x00\x0cjP  ": "JPEG 2000 images are not supported",
    }
    for magic, text in known.items():
        if head.startswith(magic):
            return text
    sample = head[:512]
    if sample.lstrip().startswith((b"<?xml", b"<!DOCTYPE", b"<html", b"<HTML")):
        return "this is an HTML/XML document, not an image"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return "this file is not an image format we recognise"
    return "this is a text file, not an image"


@functools.cache
def _register_heif() -> None:
    """Teach Pillow to open HEIC/HEIF (phone photos). Done once, on the first HEIF upload."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def read_upload(source: bytes | bytearray | memoryview | Path | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The upload's bytes, refusing empty and oversize input before reading more than the limit."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.exists():
            raise GemidInputError(f"no such file: {path}", code="not_found", status=404)
        if not path.is_file():
            raise GemidInputError(f"not a file: {path}", code="not_a_file", status=400)
        size = path.stat().st_size
        if size > max_bytes:
            raise TooLarge(_too_large(size, max_bytes))
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    if not data:
        raise EmptyFile("the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise TooLarge(_too_large(len(data), max_bytes))
    return data


def _too_large(size: int, limit: int) -> str:
    from gemid.messages import size_text

    return f"the file is {size_text(size)}; the limit is {size_text(limit)}"


def decode(
    source: bytes | bytearray | memoryview | Path | str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> DecodedImage:
    """Decode an upload (bytes or a path) into 8-bit sRGB; every refusal is a GemidInputError."""
    data = read_upload(source, max_bytes=max_bytes)
    fmt = sniff(data[:64])
    if fmt == "HEIF":
        _register_heif()
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone flipped Pillow's global switch: truncation would go unseen
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; refusing to decode uploads with it")

    try:
        im = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"the image declares an enormous size and was refused before decoding ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise CorruptImage(f"the file starts like a {fmt} image but cannot be read: it is damaged "
                           "or an unusual variant") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as exc:
        raise CorruptImage(f"the {fmt} file is damaged and cannot be read: {exc}") from exc

    with im:
        width, height = im.size
        if width * height > max_pixels:
            raise TooManyPixels(f"the image is {width}×{height} = {width * height / 1e6:.0f} MP; "
                                f"the limit is {max_pixels / 1e6:.0f} MP — resize it and upload again")
        if min(width, height) < MIN_SIDE:
            raise GemidInputError(f"the image is only {width}×{height} pixels; too small to judge",
                                  code="too_small", status=422)
        try:
            im.load()  # full decode now: truncation and corrupt data surface here, not later
            camera = _camera(im)
            rotated, im2 = _apply_orientation(im)
            rgb = _to_srgb8(im2)
        except Image.DecompressionBombError as exc:
            raise TooManyPixels(str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as exc:
            raise CorruptImage(f"the {fmt} file is damaged or truncated and cannot be decoded: {exc}") from exc

    return DecodedImage(
        rgb=rgb, format=fmt, width=int(rgb.shape[1]), height=int(rgb.shape[0]),
        sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), exif_rotated=rotated, camera=camera,
    )


def _camera(im: Image.Image) -> str:
    """The camera named in the EXIF block, for drift statistics; '' when none or unreadable."""
    try:
        return exif_camera(im.getexif())
    except Exception:  # malformed EXIF: the pixels are still good
        return ""


def _apply_orientation(im: Image.Image) -> tuple[bool, Image.Image]:
    """Rotate/flip as the camera recorded; a broken EXIF block means 'as stored', not a refusal."""
    if im.info.get("original_orientation") in range(2, 9):  # pillow-heif already applied it while decoding
        return True, im
    try:
        orientation = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # malformed EXIF is common on edited photos; the pixels are still good
        return False, im
    if orientation not in range(2, 9):
        return False, im
    try:
        out = ImageOps.exif_transpose(im)
    except Exception:
        return False, im
    return True, (out if out is not None else im)


def _to_srgb8(im: Image.Image) -> np.ndarray:
    """Any Pillow mode → uint8 RGB in sRGB: 16-bit scaled (not clipped), alpha on white, ICC applied."""
    icc = im.info.get("icc_profile")
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im).astype(np.float64)
        # 16-bit greyscale; mode "I" from PNG/TIFF also holds 0..65535. Scale, don't clip.
        peak = 65535.0 if a.max(initial=0) > 255 or mode != "I" else 255.0
        grey = np.clip(np.rint(a * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1))
    if mode == "F":
        a = np.asarray(im).astype(np.float64)
        a = a * 255.0 if np.nanmax(a, initial=0) <= 1.0 else a
        grey = np.clip(np.rint(np.nan_to_num(a)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1))

    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in im.info) or (
        mode in ("L", "RGB") and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        colour_part = _icc_to_srgb(rgba.convert("RGB"), icc) if icc else rgba.convert("RGB")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(colour_part, mask=rgba.getchannel("A"))
        out = white
    elif mode == "CMYK" or icc:
        out = _icc_to_srgb(im, icc) if icc else im.convert("RGB")
    elif mode == "RGB":
        out = im  # already what we need: convert() would copy the whole photo once more
    else:
        out = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(out, dtype=np.uint8))


_SRGB = ImageCms.createProfile("sRGB")


def _icc_to_srgb(im: Image.Image, icc: bytes) -> Image.Image:
    """Colour-manage into sRGB (Display P3 phones, Adobe RGB cameras, CMYK prints): colour is evidence."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if im.mode not in ("RGB", "CMYK", "L"):
            im = im.convert("RGB")
        return ImageCms.profileToProfile(im, src, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return im.convert("RGB")  # a broken profile: fall back to the numbers as stored
