"""The scale card: found in a photo (tilted, under a lamp, partly covered), painted out before segmentation,
and each stone on it measured in millimetres within its stated uncertainty, through the real pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from bundle_fixture import STONE_COLOURS, build_bundle, draw_stone, encode
from card_support import TRAY, card_photo

from gemid.report import Readings
from gemid.vision.pipeline import Identifier
from gemid.vision.scale import CARD, card_segmentation, clear_card, find_card
from gemid.vision.segment import segment
from gemid.vision.stones import find_stones

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import bench_size  # noqa: E402


@pytest.fixture(scope="module")
def identifier(tmp_path_factory) -> Identifier:
    return Identifier(build_bundle(tmp_path_factory.mktemp("bundle"), int8=False))


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


@pytest.mark.parametrize("where", [[], ["--ruler"]], ids=["card", "ruler"])
def test_the_size_bench_prints_figures_that_parse(tmp_path, capsys, where):
    bundle = build_bundle(tmp_path / "bundle", int8=False)
    assert bench_size.main(["--drawn", "--photos", "2", "--bundle", str(bundle), *where]) == 0
    out = capsys.readouterr().out
    import re

    stones = re.search(r"^stones (\d+): found ([\d.]+) %, measured ([\d.]+) %; (\d+) reported that are not "
                       r"stones$", out, re.M)
    err = re.search(r"median ([\d.]+) mm \(([\d.]+) %\), 95th pct ([\d.]+) mm", out, re.M)
    cover = re.search(r"holds both sides: ([\d.]+) % of measured", out, re.M)
    same = re.search(r"^same top-1 as the stone's own photo alone: ([\d.]+) % of stones$", out, re.M)
    assert stones and err and cover and same and "CPU: " in out
    assert 50.0 <= float(same[1]) <= float(stones[2])  # most drawn stones keep the tiny model's answer on the card
    # beside a ruler the camera is up to 250 mm away, where a 3 mm stone is ~5 px across in the working image
    # and below the finer segmentation's least area: lost, as beside a coin (seed 0 draws two such)
    least = 80.0 if where else 100.0
    assert int(stones[1]) >= 6 and float(stones[2]) >= least and stones[3] == stones[2] and stones[4] == "0"
    assert float(err[1]) < 0.2 and float(err[1]) <= float(err[3])
    assert float(cover[1]) >= 80.0


def test_the_table_row_and_the_manifest_carry_the_size(identifier):
    from gemid.report import table_row
    from gemid.serve.manifest import size_words

    photo, _, _ = card_photo(TRAY[:2], seed=6)
    reports = identifier.identify_stones(encode(photo, ".png"))
    for r in reports:
        row = table_row(r)
        assert row["size_status"] == "measured"
        assert float(row["length_mm"]) == pytest.approx(r.stone.size.length_mm, abs=0.005)
        assert float(row["size_uncertainty_mm"]) == pytest.approx(r.stone.size.uncertainty_mm, abs=0.005)
        assert row["weight_basis"] == (r.stone.weight.basis if r.stone.weight else "")
        assert f"{r.stone.size.length_mm:.2f} × {r.stone.size.width_mm:.2f} mm" in size_words("en", r)
        assert size_words("en", r).startswith(r.stone.shape.label.replace("_", " "))  # the cut shape first
        assert "ملی میٹر" in size_words("ur", r)
    revised = identifier.add_readings(reports[0], Readings(sg=4.0, weight_ct=1.25))
    row = table_row(revised)
    assert (row["weight_ct"], row["weight_low_ct"], row["weight_basis"]) == ("1.25", "", "scale")
    assert size_words("en", revised).endswith("1.25 ct")
    plain = table_row(identifier.identify(encode(draw_stone(STONE_COLOURS["Ruby"]), ".png")))
    assert all(plain[k] == "" for k in ("size_status", "length_mm", "weight_ct", "weight_basis"))


def measured_lengths(reports) -> list[float]:
    return sorted(r.stone.size.length_mm for r in reports if r.stone and r.stone.size and r.stone.size.length_mm)


def test_a_small_stone_beside_a_big_one_is_a_stone_of_its_own(identifier):
    photo, truths, _ = card_photo([("Ruby", 15.0, (50.0, 50.0)), ("Emerald", 2.6, (80.0, 50.0))], seed=7)
    reports = identifier.identify_stones(encode(photo, ".png"), grade=False)
    assert len(reports) == 2
    for got, (length, _) in zip(measured_lengths(reports), sorted(truths), strict=True):
        assert got == pytest.approx(length, abs=0.5)


def test_a_half_covered_marker_is_painted_out_not_taken_for_a_stone(identifier):
    # a fingertip over half of marker 2 (bottom right, 138-150 x 88-100 mm): the detector misses it
    photo, truths, _ = card_photo(TRAY, seed=8, blots=((136.0, 86.0, 152.0, 94.0),))
    ref = find_card(photo)
    assert ref is not None and 2 not in ref.markers
    reports = identifier.identify_stones(encode(photo, ".png"), grade=False)
    assert len(reports) == len(truths)


def test_a_stone_cut_by_the_painting_is_not_measured(identifier):
    # one touching marker 0's margin, one across the card's bottom edge, one well inside
    photo, truths, centres = card_photo([("Ruby", 7.0, (17.0, 6.0)), ("Emerald", 8.0, (75.0, 99.0)),
                                         ("Peridot", 6.0, (75.0, 50.0))], seed=9, tilt=0.02)
    reports = identifier.identify_stones(encode(photo, ".png"), grade=False)
    by_status = {}
    for r in reports:
        by_status.setdefault(r.stone.size.status, []).append(r.stone.size)
    assert len(by_status.get("measured", [])) == 1
    assert by_status["measured"][0].length_mm == pytest.approx(truths[2][0], abs=0.5)
    cut = by_status.get("cannot_measure", [])
    assert len(cut) == 2 and all("touches a marker or the card's edge" in s.reason for s in cut)


def test_a_card_small_in_a_big_photo_is_still_found_and_measured(identifier):
    photo, truths, _ = card_photo([("Sapphire Blue", 10.0, (75.0, 50.0))], seed=10, side=4000, fill=0.34, tilt=0.0)
    reports = identifier.identify_stones(encode(photo, ".jpg"), grade=False)
    assert len(reports) == 1
    size = reports[0].stone.size
    assert size is not None and size.status == "measured"
    assert abs(size.length_mm - truths[0][0]) <= size.uncertainty_mm


def test_an_empty_card_says_so_and_does_not_call_the_paper_blurry(identifier):
    photo, _, _ = card_photo([], seed=11)
    (report,) = identifier.identify_stones(encode(photo, ".png"), grade=False)
    codes = {w.code for w in report.quality.warnings}
    assert codes == {"no_stone"}
    assert "scale card was found but no stone" in report.quality.warnings[0].message
    assert report.decision == "rejected" and "blurry" not in report.species.reason


def test_markers_of_two_cards_are_not_taken_for_one(identifier):
    import numpy as np

    # two prints side by side, each with stones: markers 0 and 1 of the left card, 2 and 3 of the right one
    left, _, _ = card_photo(TRAY[:2], seed=12, tilt=0.0, cover=(2, 3))
    right, _, _ = card_photo(TRAY[2:3], seed=13, tilt=0.0, cover=(0, 1))
    photo = np.hstack([left, right])
    ref = find_card(photo)
    assert ref is not None and len(ref.markers) == 4 and not ref.consistent
    reports = identifier.identify_stones(encode(photo, ".png"), grade=False)
    sizes = [r.stone.size for r in reports if r.stone is not None]
    assert sizes and all(s.status == "cannot_measure" and "do not fit one flat card" in s.reason for s in sizes)
    assert all(r.stone.weight is None for r in reports if r.stone is not None)
    # one card, tilted and under a lamp, fits itself to a fraction of a pixel
    assert find_card(card_photo(TRAY, seed=14, tilt=0.07)[0]).consistent


def test_on_the_card_the_shape_is_read_on_the_full_resolution_view(identifier, monkeypatch):
    """A 10 mm stone on a card that fills a third of a 4,000 px photo is ~40 px in the working image: its
    shape is read where the card's full view holds it several times larger, segmented again there."""
    from gemid.vision import shape

    seen: list[tuple[int, int, bool]] = []  # (neighbourhood's width, stone's width, on the card) where it was read
    real = shape.ShapeModel.classify

    def spy(self, rgb, seg, *, card=False):
        seen.append((rgb.shape[1], seg.bbox[2], card))
        return real(self, rgb, seg, card=card)

    monkeypatch.setattr(shape.ShapeModel, "classify", spy)
    photo, _, _ = card_photo([("Sapphire Blue", 10.0, (75.0, 50.0))], seed=10, side=4000, fill=0.34, tilt=0.0)
    (report,) = identifier.identify_stones(encode(photo, ".jpg"), grade=False)
    assert report.stone.shape is not None and report.stone.size.status == "measured"
    ((_, read_px, on_card),) = seen
    assert on_card  # tempered for the card (`card_temperature`)
    in_photo = report.stone.bbox[2]  # in the photo's own pixels; the working image holds it about 4 times smaller
    assert read_px >= 0.8 * in_photo
