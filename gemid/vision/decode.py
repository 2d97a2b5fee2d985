"""Safe decoding of uploaded photos into 8-bit sRGB pixels.

Uploads come from phones, scanners and desk cameras, named anything. We trust the content, not the name:
the container is found from its magic bytes, the size is checked from the header before any pixel is
decoded (decompression bombs), the file is fully loaded so a truncated upload is refused rather than
silently padded with grey, and every refusal is a typed `GemidInputError` a technician can act on.

`decode(..., working=True)` (what identification uses) decodes at the size the analysis needs instead of
every pixel: a 12 MP phone photo costs ~80 ms to decode whole on one core, ~10 ms at a quarter of its side,
which JPEG decodes in the DCT domain (Pillow's `draft`) without ever producing the full frame. The result is
the *working image*: its long side at least WORK_MIN pixels (a stone in the middle third of the frame is then
~250 px across, more than the model's 224 px crop and clarity's 128 px stone need) and at most WORK_MAX.
Other formats (PNG, HEIC without a big enough embedded thumbnail) are decoded whole and shrunk once by the
same power of two. Every stage then runs on that one image; `DecodedImage.scale` maps its pixels back to the
photo's, so boxes, outlines and sizes in the report stay in the photo's own pixels.
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass, field
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

WORK_MIN = 768  # a reduced working image keeps at least this many pixels on its long side
WORK_MAX = 1536  # and at most this many (only photos over 12,288 px need more than JPEG's 1/8 to get there)

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
    scale: float = 1.0  # working pixels per photo pixel (`working=True` may reduce; width/height are the photo's)
    data: bytes | None = field(default=None, repr=False, compare=False)  # a reduced image's upload, for `finer`

    def to_photo(self, v: float) -> int:
        """A length or coordinate in working pixels, in the photo's own pixels."""
        return int(round(v / self.scale))


def reduction(long_side: int, *, limit: int = 8) -> int:
    """The power of two (at most `limit`) by which a photo of this long side can shrink and keep WORK_MIN."""
    s = 1
    while s < limit and long_side // (2 * s) >= WORK_MIN:
        s *= 2
    return s


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
    working: bool = False,
    step: int | None = None,
) -> DecodedImage:
    """Decode an upload (bytes or a path) into 8-bit sRGB; every refusal is a GemidInputError.

    working=True: the working image (see the module's docstring), not every pixel; `scale` says how much
    smaller it is; `step` forces the reduction (a power of two). The checks (size, truncation, orientation,
    colour profile) are the same either way."""
    data = read_upload(source, max_bytes=max_bytes)
    fmt = sniff(data[:64])
    if fmt == "HEIF":
        _register_heif()
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone flipped Pillow's global switch: truncation would go unseen
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; refusing to decode uploads with it")

    try:
        im = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"the image declares a size far above the limit of {max_pixels / 1e6:.0f} MP and was refused "
                            "before decoding — resize it and upload again") from exc
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
            raise GemidInputError(f"the image is {width}×{height} pixels; at least {MIN_SIDE} are needed on each side "
                                  "to see a stone", code="too_small", status=422)
        try:
            if working:
                _draft(im, step)
            im.load()  # full decode now: truncation and corrupt data surface here, not later
            camera = _camera(im)
            rotated, im2 = _apply_orientation(im)
            rgb = _to_srgb8(im2)
        except Image.DecompressionBombError as exc:
            raise TooManyPixels(f"the image decodes to more pixels than the limit of {max_pixels / 1e6:.0f} MP allows "
                                "— resize it and upload again") from exc
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as exc:
            raise CorruptImage(f"the {fmt} file is damaged or truncated and cannot be decoded: {exc}") from exc

    if not working:
        width, height = int(rgb.shape[1]), int(rgb.shape[0])
    else:  # the photo's own size as shown (an EXIF turn swaps the stored sides): long side to long side
        long, short = max(width, height), min(width, height)
        width, height = (long, short) if rgb.shape[1] >= rgb.shape[0] else (short, long)
        rgb = _bound(rgb, None if step is None else max(1, round(step * max(rgb.shape[:2]) / max(width, height))))
    scale = float(rgb.shape[1]) / float(width) if working else 1.0
    return DecodedImage(
        rgb=rgb, format=fmt, width=int(width), height=int(height),
        sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), exif_rotated=rotated, camera=camera,
        scale=scale, data=data if scale < 1.0 else None,
    )


def finer(image: DecodedImage, step: int, **limits: int) -> DecodedImage:
    """The same photo decoded again at 1/`step` of its side (a power of two, finer than the working image):
    for a stone too small in the working image for the model's crop. Only a reduced image can be refined."""
    if image.data is None:
        raise ValueError("only a reduced working image can be decoded finer")
    return decode(image.data, working=True, step=step, **limits)


def _draft(im: Image.Image, step: int | None) -> None:
    """Ask the decoder for a reduced image: JPEG scales by 1/2, 1/4 or 1/8 in the DCT domain (no full frame
    is ever made); HEIF uses an embedded thumbnail when one is big enough. Mode and profile are untouched."""
    s = reduction(max(im.size)) if step is None else min(step, 8)
    if s > 1:
        im.draft(im.mode, (-(-im.size[0] // s), -(-im.size[1] // s)))


def _bound(rgb: np.ndarray, left: int | None) -> np.ndarray:
    """The working image: a frame the decoder could not reduce enough shrinks once, by an area filter
    (`left`: the reduction still to make, when a step was asked for)."""
    from gemid.vision.resample import fit

    h, w = rgb.shape[:2]
    s = reduction(max(h, w), limit=1 << 30) if left is None else left
    side = max(h, w) // s
    if side > WORK_MAX and left is None:
        side = WORK_MAX
    if side >= max(h, w):
        return rgb
    f = side / max(h, w)
    return np.ascontiguousarray(fit(rgb, (max(1, round(w * f)), max(1, round(h * f)))))


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
