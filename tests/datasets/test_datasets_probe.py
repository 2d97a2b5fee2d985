"""Decoding by content: formats from magic bytes, PNG named .jpg, truncated and empty files; the hash."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from datasets_support import drawing, write_jpeg

from gemid.datasets.phash import (
    DEFAULT_COLOUR_THRESHOLD,
    DEFAULT_THRESHOLD,
    colour_distance,
    colour_signature,
    group_near_duplicates,
    hamming,
    max_distance,
    near_pairs,
    phash,
    phash_variants,
)
from gemid.datasets.probe import load_bgr, load_rgb, probe, sniff_format
from gemid.vision.decode import decode


def _encoded(ext: str, img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("ext, fmt", [(".jpg", "jpeg"), (".png", "png"), (".webp", "webp"), (".bmp", "bmp"),
                                      (".tiff", "tiff")])
def test_sniff_names_the_format_from_bytes(ext, fmt):
    assert sniff_format(_encoded(ext, drawing(1, 32))[:32]) == fmt


def test_sniff_rejects_non_images():
    assert sniff_format(b"%PDF-1.7\n") is None
    assert sniff_format(b"") is None


def test_png_named_jpg_with_alpha_is_decoded_and_flagged(tmp_path):
    rgba = cv2.cvtColor(drawing(2), cv2.COLOR_BGR2BGRA)
    rgba[:, :30, 3] = 0  # transparent left band
    p = tmp_path / "stone.jpg"
    p.write_bytes(_encoded(".png", rgba))
    info = probe(p)
    assert info.ok and info.content_format == "png" and info.extension_format == "jpeg"
    assert info.extension_mismatch and info.has_alpha and info.channels == 4
    assert (info.width, info.height) == (128, 128)
    bgr = load_bgr(p)
    assert bgr.shape == (128, 128, 3) and bgr.dtype == np.uint8
    assert (bgr[:, :30] == 255).all()  # transparent pixels composited over white


def test_clean_jpeg_has_no_problem(tmp_path):
    write_jpeg(tmp_path / "a.jpeg", drawing(3))
    info = probe(tmp_path / "a.jpeg")
    assert info.ok and not info.extension_mismatch and info.phash is not None and info.colour.shape == (8, 8, 3)
    assert len(info.sha256) == 64 and info.n_bytes > 0


@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_jpeg_is_reported(tmp_path, keep):
    data = write_jpeg(tmp_path / "t.jpg", drawing(4))
    (tmp_path / "t.jpg").write_bytes(data[: int(len(data) * keep)])
    info = probe(tmp_path / "t.jpg")
    assert info.problem == "truncated" and info.phash is None
    with pytest.raises(ValueError, match="truncated"):
        load_bgr(tmp_path / "t.jpg")


def test_truncated_png_is_reported(tmp_path):
    data = _encoded(".png", drawing(5))
    (tmp_path / "t.png").write_bytes(data[: len(data) - 20])
    assert probe(tmp_path / "t.png").problem == "truncated"


@pytest.mark.parametrize("content, problem", [(b"", "empty"), (b"hello, not a photo", "not_an_image"),
                                              (b"\xff\xd8\xff" + b"\x00" * 200 + b"\xff\xd9", "undecodable")])
def test_bad_files_get_typed_problems(tmp_path, content, problem):
    p = tmp_path / "x.jpg"
    p.write_bytes(content)
    info = probe(p)
    assert info.problem == problem and not info.ok and info.message


def test_missing_file(tmp_path):
    assert probe(tmp_path / "nope.jpg").problem == "missing"


def test_sixteen_bit_grey_png_decodes(tmp_path):
    grey16 = (cv2.cvtColor(drawing(6), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)
    p = tmp_path / "deep.png"
    p.write_bytes(_encoded(".png", grey16))
    info = probe(p)
    assert info.ok and info.bit_depth == 16 and info.channels == 1
    assert load_bgr(p).shape == (128, 128, 3)


def test_phash_survives_resize_and_reencode_but_separates_different_photos():
    img = drawing(7)
    ok, buf = cv2.imencode(".jpg", cv2.resize(img, (77, 77), interpolation=cv2.INTER_AREA),
                           [cv2.IMWRITE_JPEG_QUALITY, 60])
    copy = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert hamming(phash(img), phash(copy)) <= DEFAULT_THRESHOLD // 2
    others = [phash(drawing(s)) for s in range(100, 140)]
    assert min(hamming(phash(img), h) for h in others) > 2 * DEFAULT_THRESHOLD


def test_colour_guard_keeps_same_shape_different_colour_apart():
    """Grey hashes cannot see colour: a red and a green stone of one shape must not be merged."""
    def stone(colour):
        img = np.full((128, 128, 3), 240, np.uint8)
        cv2.ellipse(img, (64, 64), (40, 28), 0, 0, 360, colour, -1)
        return img
    red, green = stone((200, 30, 30)), stone((40, 160, 40))  # RGB, as the decoder gives
    assert hamming(phash(red), phash(green)) <= DEFAULT_THRESHOLD  # the hash alone would merge them
    assert colour_distance(colour_signature(red), colour_signature(green)) > DEFAULT_COLOUR_THRESHOLD
    hashes = [phash(red), phash(green)]
    assert group_near_duplicates(hashes) == [[0, 1]]
    assert group_near_duplicates(hashes, colours=[colour_signature(red), colour_signature(green)]) == []


def test_groups_are_transitive_and_skip_missing_hashes():
    base = phash(drawing(8))
    a = base ^ 0b1111  # 4 bits from base
    b = a ^ (0b1111 << 100)  # 4 bits from a, 8 from base
    far = phash(drawing(9))
    assert [(i, j) for i, j, *_ in near_pairs([base, a, b, far], 4)] == [(0, 1), (1, 2)]
    assert group_near_duplicates([base, None, a, b, far], 4) == [[0, 2, 3]]
    assert group_near_duplicates([base, far, base ^ 1], 0, exact=["x", "y", "x"]) == [[0, 2]]


def test_exif_orientation_is_applied_to_jpegs(tmp_path):
    from PIL import Image

    rgb = np.zeros((40, 100, 3), np.uint8)  # landscape as stored
    rgb[:, :50] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    info = probe(tmp_path / "phone.jpg")
    assert info.ok and (info.width, info.height) == (40, 100)  # portrait, as the phone showed it
    top = load_bgr(tmp_path / "phone.jpg")[:45]
    assert top[..., 2].mean() > 200  # the red half is on top after rotation


def test_grey_jpeg_stays_one_channel(tmp_path):
    grey = cv2.cvtColor(drawing(10), cv2.COLOR_BGR2GRAY)
    (tmp_path / "g.jpg").write_bytes(_encoded(".jpg", grey))
    info = probe(tmp_path / "g.jpg")
    assert info.ok and info.channels == 1 and load_bgr(tmp_path / "g.jpg").shape == (128, 128, 3)


def test_turned_or_mirrored_copies_are_near_duplicates():
    """A copy turned by EXIF or an editor is the same photo; a different drawing stays apart."""
    img = drawing(11)
    copies = [np.rot90(img, 1), np.rot90(img, 2)[:, ::-1], cv2.resize(np.rot90(img, 3), (90, 90))]
    hashes = [phash(img)] + [phash(np.ascontiguousarray(c)) for c in copies] + [phash(drawing(12))]
    variants = [phash_variants(img)] + [phash_variants(np.ascontiguousarray(c)) for c in copies] \
        + [phash_variants(drawing(12))]
    colours = [colour_signature(img)] + [colour_signature(np.ascontiguousarray(c)) for c in copies] \
        + [colour_signature(drawing(12))]
    assert group_near_duplicates(hashes) == []  # plain pHash does not see through a rotation
    assert group_near_duplicates(hashes, variants=variants, colours=colours) == [[0, 1, 2, 3]]
    assert max_distance(hashes, [0, 1, 2, 3], variants) <= 12


def _swapped_primaries_icc() -> bytes:
    """sRGB's profile with its red and green primaries swapped: colour management visibly moves the pixels."""
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    n = int.from_bytes(icc[128:132], "big")
    entries = {bytes(icc[132 + 12 * k:136 + 12 * k]): 132 + 12 * k for k in range(n)}
    r, g = entries[b"rXYZ"], entries[b"gXYZ"]
    icc[r + 4:r + 12], icc[g + 4:g + 12] = icc[g + 4:g + 12], icc[r + 4:r + 12]
    return bytes(icc)


def test_audit_sees_the_pixels_training_sees(tmp_path):
    """Colour profile, EXIF rotation, alpha: the audit hashes exactly what gemid.vision.decode gives the model."""
    from PIL import Image

    rgb = cv2.cvtColor(drawing(13, 96), cv2.COLOR_BGR2RGB)
    rgb = np.ascontiguousarray(rgb[:, :60])  # not square, so a rotation shows in the size
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    Image.fromarray(rgb).save(tmp_path / "managed.jpg", quality=95, exif=exif.tobytes(),
                              icc_profile=_swapped_primaries_icc())
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:10, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    for name in ("managed.jpg", "alpha.png"):
        want = decode(tmp_path / name).rgb
        got = load_rgb(tmp_path / name)
        assert got.shape == want.shape and np.array_equal(got, want)
        info = probe(tmp_path / name)
        assert (info.width, info.height) == (want.shape[1], want.shape[0])
        assert info.phash_variants == phash_variants(want)
        assert np.array_equal(info.colour, colour_signature(want))
    assert (probe(tmp_path / "managed.jpg").width, probe(tmp_path / "managed.jpg").height) == (96, 60)
    as_stored = cv2.cvtColor(cv2.imread(str(tmp_path / "managed.jpg"), cv2.IMREAD_IGNORE_ORIENTATION | cv2.IMREAD_COLOR),
                             cv2.COLOR_BGR2RGB)
    assert np.abs(np.rot90(as_stored).astype(int) - load_rgb(tmp_path / "managed.jpg")).mean() > 3  # profile applied


@pytest.mark.parametrize("ext", [".bmp", ".gif"])
def test_formats_gemid_cannot_decode_are_unusable(tmp_path, ext):
    from PIL import Image

    p = tmp_path / f"stone{ext}"
    Image.fromarray(cv2.cvtColor(drawing(14), cv2.COLOR_BGR2RGB)).save(p)
    info = probe(p)
    assert info.problem == "unsupported_format" and info.content_format == ext[1:] and info.phash is None
    assert (info.width, info.height) == (128, 128) and ext[1:].upper() in info.message
    with pytest.raises(ValueError, match="unsupported_format"):
        load_bgr(p)


def test_a_thumbnail_too_small_to_judge_is_unusable(tmp_path):
    write_jpeg(tmp_path / "tiny.jpg", cv2.resize(drawing(15), (12, 12), interpolation=cv2.INTER_AREA))
    info = probe(tmp_path / "tiny.jpg")
    assert info.problem == "too_small" and (info.width, info.height) == (12, 12)


def test_sixteen_bit_colour_png_reports_its_depth(tmp_path):
    p = tmp_path / "deep.png"
    p.write_bytes(_encoded(".png", drawing(16).astype(np.uint16) * 257))
    info = probe(p)
    assert info.ok and info.bit_depth == 16 and info.channels == 3 and not info.has_alpha
