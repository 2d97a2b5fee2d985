"""The scale card: found in a photo (tilted, under a lamp, partly covered), painted out before segmentation,
and each stone on it measured in millimetres within its stated uncertainty, through the real pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from bundle_fixture import STONE_COLOURS, build_bundle, draw_stone, encode

from gemid.datasets.card import camera, draw_card, lay_stone
from gemid.report import Readings
from gemid.vision.pipeline import Identifier
from gemid.vision.scale import CARD, card_segmentation, clear_card, find_card
from gemid.vision.segment import segment
from gemid.vision.stones import find_stones

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import bench_size  # noqa: E402

PPM = 12.0


@pytest.fixture(scope="module")
def identifier(tmp_path_factory) -> Identifier:
    return Identifier(build_bundle(tmp_path_factory.mktemp("bundle"), int8=False))


def stone_cutout(label: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rgb = draw_stone(STONE_COLOURS[label], seed=seed)
    seg = segment(rgb)
    x, y, w, h = seg.bbox
    return rgb[y:y + h, x:x + w].copy(), seg.mask[y:y + h, x:x + w].copy()


def card_photo(stones: list[tuple[str, float, tuple[float, float]]], *, seed: int = 0, tilt: float = 0.05,
               lamp=(1.0, 1.0, 1.0), cover: tuple[int, ...] = (), side: int = 1600):
    """A photo of drawn stones laid on the card: (label, true length mm, centre mm) each; returns the RGB
    photo, the true (length, width) in mm and each stone's centre in the photo."""
    rng = np.random.default_rng(seed)
    card, origin = draw_card(PPM)
    truths = []
    for i, (label, length, (cx, cy)) in enumerate(stones):
        rgb, mask = stone_cutout(label, seed + i)
        centre = (origin[0] + cx * PPM, origin[1] + cy * PPM)
        lp, wp = lay_stone(card, rgb, mask, centre, length * PPM, angle_deg=25.0 * i)
        truths.append((lp / PPM, wp / PPM, centre))
    for marker in cover:  # a marker hidden under a hand or a tray's edge
        x, y = origin + np.array(CARD.origin(marker)) * PPM
        side_px = int(CARD.marker_mm * PPM) + 4
        card[int(y) - 2:int(y) + side_px, int(x) - 2:int(x) + side_px] = (246, 246, 242)
    photo, hmat = camera(card, rng, tilt=tilt, out_side=side, lamp=lamp, blur=0.7, noise=0.008, jpeg=92)
    centres = [tuple(cv2.perspectiveTransform(np.array([[c]], np.float64), hmat).reshape(2)) for _, _, c in truths]
    return photo, [(t[0], t[1]) for t in truths], centres


TRAY = [("Ruby", 8.0, (40.0, 40.0)), ("Emerald", 5.0, (80.0, 35.0)), ("Sapphire Blue", 11.0, (110.0, 60.0)),
        ("Peridot", 3.5, (50.0, 75.0))]


def test_the_card_is_found_tilted_and_under_a_warm_lamp():
    photo, _, _ = card_photo(TRAY, tilt=0.07, lamp=(1.0, 0.84, 0.62))
    ref = find_card(photo)
    assert ref is not None and ref.markers == (0, 1, 2, 3)
    assert ref.residual_px < 1.0
    # the card's corners map back onto the card's plane: marker 0's outer corner is the origin
    corner = ref.to_mm(ref.corners_px[0, :1])[0]
    assert np.allclose(corner, (0.0, 0.0), atol=0.1)
    far = ref.to_mm(ref.corners_px[2, 2:3])[0]
    assert np.allclose(far, (CARD.width_mm, CARD.height_mm), atol=0.15)


def test_no_card_in_a_plain_photo_or_a_black_square():
    assert find_card(draw_stone(STONE_COLOURS["Ruby"])) is None
    square = np.full((600, 800, 3), 240, np.uint8)
    square[200:320, 300:420] = 15  # a dark square is not a marker: it carries no code
    assert find_card(square) is None


def test_clearing_the_card_leaves_only_the_stones():
    photo, truths, _ = card_photo(TRAY)
    ref = find_card(photo)
    clean = clear_card(photo, ref)
    stones = find_stones(clean, segment(clean, **card_segmentation(ref, clean.shape)))
    assert len(stones) == len(truths)  # no marker, no desk edge, the 3.5 mm stone kept
    assert len(find_stones(photo, segment(photo))) != len(truths)  # uncleared: the markers and desk confuse it


def test_every_stone_on_the_card_is_measured_within_its_uncertainty(identifier):
    photo, truths, centres = card_photo(TRAY, seed=1)
    reports = identifier.identify_stones(encode(photo, ".jpg"), grade=False)
    assert len(reports) == len(truths)
    for (length, width), (cx, cy) in zip(truths, centres, strict=True):
        (r,) = [r for r in reports if r.stone.bbox[0] <= cx <= r.stone.bbox[0] + r.stone.bbox[2]
                and r.stone.bbox[1] <= cy <= r.stone.bbox[1] + r.stone.bbox[3]]
        size = r.stone.size
        assert size is not None and size.status == "measured", size
        assert 0.1 < size.uncertainty_mm < 0.7  # ~7 px/mm: 1.96 x 1.25 px x sqrt 2 is about 0.5 mm
        assert abs(size.length_mm - length) <= size.uncertainty_mm, (size, length)
        assert abs(size.width_mm - width) <= size.uncertainty_mm, (size, width)
        assert "scale card: 4 markers" in size.method


def test_one_marker_is_enough(identifier):
    photo, truths, _ = card_photo(TRAY[:1], seed=2, tilt=0.0, cover=(1, 2, 3))
    ref = find_card(photo)
    assert ref is not None and ref.markers == (0,)
    (report,) = identifier.identify_stones(encode(photo, ".png"), grade=False)
    size = report.stone.size
    assert size.status == "measured" and "1 marker of 12 mm" in size.method
    assert abs(size.length_mm - truths[0][0]) <= size.uncertainty_mm
    whole = find_card(card_photo(TRAY[:1], seed=2, tilt=0.0)[0])
    # one marker's 12 mm span measures the scale less surely than the card's 150 mm between markers
    assert ref.relative_sigma > 5 * whole.relative_sigma


def test_identify_measures_a_single_stone_and_plain_photos_carry_no_size(identifier):
    photo, truths, _ = card_photo(TRAY[2:3], seed=3)
    report = identifier.identify(encode(photo, ".png"))
    assert report.stone.size.status == "measured"
    assert abs(report.stone.size.length_mm - truths[0][0]) <= report.stone.size.uncertainty_mm
    plain = identifier.identify(encode(draw_stone(STONE_COLOURS["Ruby"]), ".png"))
    assert plain.stone.size is None and plain.stone.weight is None


def test_a_stone_too_small_in_the_photo_is_not_measured(identifier):
    photo, _, _ = card_photo([("Ruby", 2.6, (75.0, 50.0))], seed=4, side=700)
    reports = identifier.identify_stones(encode(photo, ".png"), grade=False)
    sizes = [r.stone.size for r in reports if r.stone is not None]
    assert sizes and all(s.status == "cannot_measure" and "pixels across" in s.reason for s in sizes)


def test_a_scale_reading_replaces_the_estimate(identifier):
    photo, _, _ = card_photo(TRAY[:1], seed=5)
    report = identifier.identify(encode(photo, ".png"))
    revised = identifier.add_readings(report, Readings(ri=1.762, ri_high=1.770, weight_ct=2.41))
    assert revised.stone.size == report.stone.size
    assert revised.stone.weight.basis == "scale" and revised.stone.weight.carats == 2.41
    assert revised.stone.weight.low is None


def test_the_size_bench_prints_figures_that_parse(tmp_path, capsys):
    bundle = build_bundle(tmp_path / "bundle", int8=False)
    assert bench_size.main(["--drawn", "--photos", "2", "--bundle", str(bundle)]) == 0
    out = capsys.readouterr().out
    import re

    stones = re.search(r"^stones (\d+): found ([\d.]+) %, measured ([\d.]+) %$", out, re.M)
    err = re.search(r"median ([\d.]+) mm \(([\d.]+) %\), 95th pct ([\d.]+) mm", out, re.M)
    cover = re.search(r"holds both sides: ([\d.]+) % of measured", out, re.M)
    assert stones and err and cover and "CPU: " in out
    assert int(stones[1]) >= 10 and float(stones[2]) == 100.0 and float(stones[3]) == 100.0
    assert float(err[1]) < 0.2 and float(err[1]) <= float(err[3])
    assert float(cover[1]) >= 80.0
