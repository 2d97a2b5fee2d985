"""Safe decoding: every format a technician might upload, and every way an upload can be bad."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
from bundle_fixture import with_broken_exif
from PIL import Image, ImageCms

from gemid.errors import (
    CorruptImage,
    EmptyFile,
    GemidInputError,
    TooLarge,
    TooManyPixels,
    UnsupportedType,
)
from gemid.vision.decode import decode, sniff

RED, BLUE = (220, 20, 30), (20, 40, 200)


def half_and_half(w: int = 60, h: int = 40) -> np.ndarray:
    """Left half red, right half blue: orientation and colour are both easy to check."""
    a = np.empty((h, w, 3), np.uint8)
    a[:, : w // 2] = RED
    a[:, w // 2 :] = BLUE
    return a


def save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def near(a, b, tol: int = 12) -> bool:
    return bool(np.all(np.abs(np.asarray(a, int) - np.asarray(b, int)) <= tol))


def png_declaring(w: int, h: int) -> bytes:
    """A valid-looking PNG of a few hundred bytes whose header declares w × h pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_declaring(w: int, h: int) -> bytes:
    """A small real JPEG with its SOF0 frame header patched to declare w × h."""
    data = bytearray(save(Image.fromarray(half_and_half()), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


# --- formats -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, kw", [("PNG", {}), ("JPEG", {"quality": 95}), ("WEBP", {"lossless": True}),
                                     ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"})])
def test_common_formats_decode_by_content(fmt, kw):
    data = save(Image.fromarray(half_and_half()), fmt, **kw)
    img = decode(data)
    assert img.format == fmt
    assert (img.width, img.height) == (60, 40) and img.rgb.shape == (40, 60, 3) and img.rgb.dtype == np.uint8
    assert near(img.rgb[20, 5], RED) and near(img.rgb[20, 55], BLUE)
    assert img.sha256 == hashlib.sha256(data).hexdigest() and img.bytes == len(data)
    assert img.exif_rotated is False


def test_png_named_jpg_is_read_as_png(tmp_path):
    path = tmp_path / "stone.jpg"
    path.write_bytes(save(Image.fromarray(half_and_half()), "PNG"))
    img = decode(path)
    assert img.format == "PNG" and near(img.rgb[0, 0], RED, 0)


def test_heic_phone_photo():
    pillow_heif = pytest.importorskip("pillow_heif")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this libheif build has no HEIF encoder to make a test file")
    pillow_heif.register_heif_opener()
    data = save(Image.fromarray(half_and_half(64, 48)), "HEIF", quality=95)
    assert data[4:12] == b"ftypheic"
    img = decode(data)
    assert img.format == "HEIF" and (img.width, img.height) == (64, 48)
    assert near(img.rgb[24, 4], RED, 25) and near(img.rgb[24, 60], BLUE, 25)


def test_heic_orientation_is_applied():
    pillow_heif = pytest.importorskip("pillow_heif")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this libheif build has no HEIF encoder to make a test file")
    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = 6
    img = decode(save(Image.fromarray(half_and_half(64, 48)), "HEIF", quality=95, exif=exif.tobytes()))
    assert (img.width, img.height) == (48, 64) and img.exif_rotated
    assert near(img.rgb[4, 24], RED, 25) and near(img.rgb[60, 24], BLUE, 25)  # left half is now on top


def test_avif_when_pillow_supports_it():
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow build has no AVIF codec")
    img = decode(save(Image.fromarray(half_and_half()), "AVIF", quality=95))
    assert img.format == "AVIF" and near(img.rgb[20, 5], RED, 25)


# --- EXIF orientation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation, size, red_at, blue_at", [
    (1, (60, 40), (20, 5), (20, 55)),
    (3, (60, 40), (20, 55), (20, 5)),  # 180°: red moves to the right
    (6, (40, 60), (5, 20), (55, 20)),  # rotate 90° clockwise to view: left half goes to the top
    (8, (40, 60), (55, 20), (5, 20)),  # rotate 90° anticlockwise: left half goes to the bottom
    (2, (60, 40), (20, 55), (20, 5)),  # mirrored
])
def test_exif_orientation_applied(orientation, size, red_at, blue_at):
    exif = Image.Exif()
    exif[0x0112] = orientation
    img = decode(save(Image.fromarray(half_and_half()), "JPEG", quality=95, exif=exif.tobytes()))
    assert (img.width, img.height) == size
    assert near(img.rgb[red_at], RED) and near(img.rgb[blue_at], BLUE)
    assert img.exif_rotated is (orientation != 1)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow's note on the damage we made
def test_broken_exif_is_ignored_not_refused():
    img = decode(with_broken_exif(save(Image.fromarray(half_and_half()), "JPEG", quality=95)))
    assert (img.width, img.height) == (60, 40) and not img.exif_rotated


# --- modes ---------------------------------------------------------------------------------------------


def test_rgba_is_composited_on_white():
    a = np.zeros((40, 60, 4), np.uint8)
    a[..., :3] = RED
    a[:, :20, 3] = 0  # transparent
    a[:, 20:40, 3] = 128  # half
    a[:, 40:, 3] = 255  # opaque
    img = decode(save(Image.fromarray(a, "RGBA"), "PNG"))
    assert near(img.rgb[10, 5], (255, 255, 255), 0)
    assert near(img.rgb[10, 30], [(c * 128 + 255 * 127) // 255 for c in RED], 2)
    assert near(img.rgb[10, 50], RED, 0)


def test_greyscale_alpha_and_palette_transparency():
    la = Image.new("LA", (32, 32), (90, 0))
    la.paste((90, 255), (16, 0, 32, 32))
    img = decode(save(la, "PNG"))
    assert near(img.rgb[5, 5], (255, 255, 255), 0) and near(img.rgb[5, 25], (90, 90, 90), 0)

    p = Image.new("P", (32, 32), 0)
    p.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    p.paste(1, (16, 0, 32, 32))
    img = decode(save(p, "PNG", transparency=0))
    assert near(img.rgb[5, 5], (255, 255, 255), 0) and near(img.rgb[5, 25], (200, 30, 30), 0)


def test_palette_and_greyscale_become_rgb():
    p = Image.fromarray(half_and_half()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    img = decode(save(p, "PNG"))
    assert img.rgb.shape == (40, 60, 3) and near(img.rgb[20, 5], RED, 4)
    g = Image.fromarray(np.full((30, 30), 77, np.uint8), "L")
    img = decode(save(g, "PNG"))
    assert img.rgb.shape == (30, 30, 3) and np.all(img.rgb == 77)
    one = Image.new("1", (30, 30), 1)
    assert np.all(decode(save(one, "PNG")).rgb == 255)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.fromarray(half_and_half()).convert("CMYK")
    data = save(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    img = decode(data)
    assert img.rgb.shape == (40, 60, 3) and near(img.rgb[20, 5], RED, 20) and near(img.rgb[20, 55], BLUE, 20)


def test_16bit_png_and_tiff_are_scaled_not_clipped():
    import cv2

    grey16 = np.full((30, 40), 0x8080, np.uint16)  # 50 % grey in 16 bits
    ok, buf = cv2.imencode(".png", grey16)
    img = decode(buf.tobytes())
    assert np.all(img.rgb == 128), "16-bit must be scaled to 8-bit, not clipped to 255"
    rgb16 = np.zeros((30, 40, 3), np.uint16)
    rgb16[..., 2] = 0xC8C8  # OpenCV is BGR: red channel 200 << 8
    for ext in (".png", ".tiff"):
        ok, buf = cv2.imencode(ext, rgb16)
        img = decode(buf.tobytes())
        assert near(img.rgb[0, 0], (200, 0, 0), 1), ext
    ok, buf = cv2.imencode(".tiff", grey16)
    assert np.all(decode(buf.tobytes()).rgb == 128)


def test_embedded_srgb_profile_keeps_colours_and_broken_profile_is_ignored():
    im = Image.fromarray(half_and_half())
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert near(decode(save(im, "PNG", icc_profile=srgb)).rgb[20, 5], RED, 3)
    assert near(decode(save(im, "PNG", icc_profile=b"not a profile at all")).rgb[20, 5], RED, 0)


# --- refusals ------------------------------------------------------------------------------------------


def test_empty_input():
    with pytest.raises(EmptyFile) as e:
        decode(b"")
    assert e.value.code == "empty_file" and e.value.status == 400 and "empty" in e.value.message


def test_empty_file_on_disk(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(EmptyFile):
        decode(tmp_path / "x.jpg")


def test_missing_file(tmp_path):
    with pytest.raises(GemidInputError) as e:
        decode(tmp_path / "nope.jpg")
    assert e.value.code == "not_found"


def test_oversize_bytes_refused(tmp_path):
    data = save(Image.fromarray(half_and_half()), "PNG")
    with pytest.raises(TooLarge) as e:
        decode(data, max_bytes=len(data) - 1)
    assert e.value.status == 413 and e.value.message == f"the file is {len(data)} bytes; the limit is {len(data) - 1} bytes"
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(TooLarge):
        decode(path, max_bytes=100)
    assert decode(data, max_bytes=len(data)).width == 60  # exactly at the limit is fine


@pytest.mark.parametrize("w, h", [(100_000, 100_000), (8_000, 6_000)])  # beyond Pillow's own bomb limit; 48 MP
def test_decompression_bomb_png_refused_from_header(w, h):
    data = png_declaring(w, h)
    assert len(data) < 200
    with pytest.raises(TooManyPixels) as e:  # a full decode of this file would fail as corrupt instead
        decode(data)
    assert e.value.code == "too_many_pixels" and e.value.status == 413
    assert "40 MP" in e.value.message and "bomb" not in e.value.message  # our limit, not the library's words


@pytest.mark.parametrize("w, h", [(60_000, 60_000), (7_000, 7_000)])
def test_decompression_bomb_jpeg_refused_from_header(w, h):
    with pytest.raises(TooManyPixels):
        decode(jpeg_declaring(w, h))


def test_pixel_limit_is_configurable():
    data = save(Image.fromarray(half_and_half()), "PNG")
    with pytest.raises(TooManyPixels) as e:
        decode(data, max_pixels=60 * 40 - 1)
    assert "60×40" in e.value.message
    assert decode(data, max_pixels=60 * 40).width == 60


def test_truncated_jpeg_refused():
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    data = save(noisy, "JPEG", quality=90)
    with pytest.raises(CorruptImage) as e:
        decode(data[: len(data) // 2])
    assert e.value.status == 422 and "truncated" in e.value.message


def test_truncated_png_refused():
    rng = np.random.default_rng(0)
    data = save(Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(CorruptImage):
        decode(data[: len(data) // 2])


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow's note on the damage we made
@pytest.mark.parametrize("head", [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"RIFF\0\0\0\0WEBPVP8 ", b"II*\0"])
def test_right_magic_then_garbage_is_corrupt(head):
    garbage = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    with pytest.raises(CorruptImage):
        decode(head + garbage)


@pytest.mark.parametrize("data, words", [
    (b"Lot 42: three rubies, 4.1 ct\n" * 10, "text file"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "PDF"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\0" * 40, "ZIP"),
    (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "GIF"),
    (b"<html><body>not an image</body></html>", "HTML"),
    (b"\x00\x01\x02\x03\xfe\xfd\xfc" * 20, "not an image format"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video"),
])
def test_non_images_are_unsupported_type(data, words):
    with pytest.raises(UnsupportedType) as e:
        decode(data)
    assert e.value.code == "unsupported_type" and e.value.status == 415
    assert words in e.value.message and "JPEG" in e.value.message


@pytest.mark.parametrize("w, h", [(8, 8), (6000, 10)])
def test_tiny_image_refused(w, h):
    with pytest.raises(GemidInputError) as e:
        decode(save(Image.new("RGB", (w, h), RED), "PNG"))
    assert e.value.code == "too_small" and f"{w}×{h}" in e.value.message and "16 are needed on each side" in e.value.message


def test_sniff_recognises_containers():
    assert sniff(b"\xff\xd8\xff\xdb") == "JPEG"
    assert sniff(b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heic") == "HEIF"
    assert sniff(b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heic") == "HEIF"
    assert sniff(b"\x00\x00\x00\x20ftypavif\x00\x00\x00\x00avifmif1") == "AVIF"
    assert sniff(b"MM\0*\0\0\0\x08") == "TIFF"


def test_load_truncated_images_stays_off_after_importing_the_project():
    code = ("import gemid.vision.pipeline, gemid.vision.cli, gemid.cli, importlib.util\n"
            "from PIL import ImageFile\n"
            "if importlib.util.find_spec('gemid.serve.app'): import gemid.serve.app\n"
            "assert ImageFile.LOAD_TRUNCATED_IMAGES is False\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_size_limit_is_worded_in_the_units_it_is_set_in():
    """20 MiB is the limit the README and the settings state: never "21.0 MB" about it."""
    from gemid.messages import size_text
    from gemid.vision.decode import DEFAULT_MAX_BYTES

    assert size_text(DEFAULT_MAX_BYTES) == "20 MiB" and size_text(19 * 2**20 + 2**19) == "19.5 MiB"


# --- the working image (decode at the size the analysis needs) ----------------------------------------


def _swapped_primaries_icc() -> bytes:
    """sRGB's profile with its red and green primaries swapped: colour management visibly moves the pixels."""
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    n = int.from_bytes(icc[128:132], "big")
    entries = {bytes(icc[132 + 12 * k:136 + 12 * k]): 132 + 12 * k for k in range(n)}
    r, g = entries[b"rXYZ"], entries[b"gXYZ"]
    icc[r + 4:r + 12], icc[g + 4:g + 12] = icc[g + 4:g + 12], icc[r + 4:r + 12]
    return bytes(icc)


def test_reduction_keeps_the_working_side():
    from gemid.vision.decode import WORK_MIN, reduction

    assert reduction(512) == 1 and reduction(1400) == 1  # small photos are left whole
    assert reduction(4032) == 4 and WORK_MIN <= 4032 // 4  # a 12 MP phone photo: a quarter of its side
    assert reduction(2 * WORK_MIN) == 2 and reduction(2 * WORK_MIN - 1) == 1
    assert reduction(20000) == 8 and reduction(20000, limit=64) == 16


@pytest.mark.parametrize("orientation, shown", [(1, (2400, 1600)), (6, (1600, 2400)), (8, (1600, 2400))])
def test_working_jpeg_is_drafted_with_orientation_and_profile(orientation, shown):
    """A big JPEG is decoded at 1/2 (DCT scaling): EXIF turn and colour profile applied as in the full decode,
    the photo's own size reported, `scale` mapping the working pixels back to it."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = save(Image.fromarray(half_and_half(2400, 1600)), "JPEG", quality=95, exif=exif.tobytes(),
                icc_profile=_swapped_primaries_icc())
    full, work = decode(data), decode(data, working=True)
    assert (full.width, full.height) == shown and full.scale == 1.0
    assert (work.width, work.height) == shown and work.rgb.shape[:2] == (shown[1] // 2, shown[0] // 2)
    assert work.scale == 0.5 and work.to_photo(work.rgb.shape[1]) == shown[0]
    assert work.exif_rotated is full.exif_rotated is (orientation != 1)
    assert work.sha256 == full.sha256 and work.bytes == full.bytes
    managed = full.rgb[full.height // 4, full.width // 4]  # the profile moved red: it is not the stored 220, 20, 30
    assert not near(managed, RED, 30)
    assert near(work.rgb[work.rgb.shape[0] // 4, work.rgb.shape[1] // 4], managed, 2)
    small = cv2.resize(full.rgb, work.rgb.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - work.rgb).mean() < 1.0  # the same picture, pixel for pixel within a level


def test_working_image_is_bounded_for_formats_without_draft():
    """PNG has no reduced decode: it is decoded whole and shrunk once, by the same power of two."""
    from gemid.vision.decode import WORK_MAX, WORK_MIN

    data = save(Image.fromarray(half_and_half(3200, 2000)), "PNG")
    work = decode(data, working=True)
    assert (work.width, work.height) == (3200, 2000) and work.rgb.shape[:2] == (500, 800)
    assert WORK_MIN <= max(work.rgb.shape[:2]) <= WORK_MAX and work.scale == 0.25
    assert near(work.rgb[250, 10], RED, 2) and near(work.rgb[250, 790], BLUE, 2)
    small = decode(save(Image.fromarray(half_and_half(900, 600)), "JPEG", quality=95), working=True)
    assert small.scale == 1.0 and small.rgb.shape[:2] == (600, 900)  # already at working size: untouched


def test_working_heic_keeps_orientation():
    pillow_heif = pytest.importorskip("pillow_heif")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this libheif build has no HEIF encoder to make a test file")
    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = 6
    img = decode(save(Image.fromarray(half_and_half(1600, 1200)), "HEIF", quality=90, exif=exif.tobytes()),
                 working=True)
    assert img.format == "HEIF" and (img.width, img.height) == (1200, 1600) and img.exif_rotated
    assert img.rgb.shape[:2] == (800, 600) and img.scale == 0.5
    assert near(img.rgb[10, 300], RED, 25) and near(img.rgb[790, 300], BLUE, 25)  # left half is now on top
