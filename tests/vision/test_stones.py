"""Many stones in one photo: found, separated where they touch, numbered in reading order, one report each."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from bundle_fixture import (
    STONE_COLOURS,
    TRAY_CENTRES,
    TRAY_LABELS,
    build_bundle,
    draw_stone,
    draw_tray,
    encode,
)

from gemid.vision.pipeline import Identifier
from gemid.vision.segment import segment
from gemid.vision.stones import find_stones


def tray(centres: list[tuple[float, float]], labels: list[str], radius: float = 40) -> np.ndarray:
    return draw_tray(centres, labels, radius)


def centre_of(box: tuple[int, int, int, int]) -> tuple[float, float]:
    x, y, w, h = box
    return x + w / 2, y + h / 2


@pytest.fixture(scope="module")
def identifier(tmp_path_factory) -> Identifier:
    return Identifier(build_bundle(tmp_path_factory.mktemp("bundle")))


APART = TRAY_CENTRES
APART_LABELS = TRAY_LABELS


def test_stones_apart_are_found_in_reading_order():
    rgb = tray(APART, APART_LABELS)
    stones = find_stones(rgb, segment(rgb))
    assert len(stones) == 6
    centres = [centre_of(s.bbox) for s in stones]
    expected = [(100, 100), (250, 100), (400, 110), (120, 300), (300, 290), (480, 300)]  # rows, then columns
    for (cx, cy), (ex, ey) in zip(centres, expected, strict=True):
        assert abs(cx - ex) < 6 and abs(cy - ey) < 6
    for s in stones:
        assert s.found and s.n_stones == 1 and s.mask.shape == rgb.shape[:2]
        x, y, w, h = s.bbox
        assert s.mask[y : y + h, x : x + w].any() and not s.mask[:, : max(0, x - 2)].any()


def test_touching_stones_are_separated():
    # corner to corner and overlapping by a few pixels: one blob to the segmentation, three stones here
    centres = [(150, 150), (224, 183), (298, 150)]
    rgb = tray(centres, ["Ruby", "Emerald", "Sapphire Blue"])
    seg = segment(rgb)
    assert seg.n_stones == 1  # the segmentation alone sees one object
    stones = find_stones(rgb, seg)
    assert len(stones) == 3
    got = sorted(centre_of(s.bbox) for s in stones)
    for (cx, cy), (ex, ey) in zip(got, sorted(centres), strict=True):
        assert abs(cx - ex) < 12 and abs(cy - ey) < 12
    masks = np.stack([s.mask > 0 for s in stones])
    assert masks.sum(0).max() == 1  # no pixel belongs to two stones


def test_single_stone_is_the_segmentation_itself():
    rgb = draw_stone()
    seg = segment(rgb)
    stones = find_stones(rgb, seg)
    assert stones == [seg] and stones[0] is seg


def test_one_report_per_stone_sharing_the_photo(identifier):
    data = encode(tray(APART, APART_LABELS))
    reports = identifier.identify_stones(data, filename="tray.png", reference="LOT 9")
    assert len(reports) == 6
    assert [r.stone.index for r in reports] == [1, 2, 3, 4, 5, 6]
    assert {r.stone.count for r in reports} == {6}
    assert {r.image.sha256 for r in reports} == {hashlib.sha256(data).hexdigest()}
    assert len({r.report_id for r in reports}) == 6 and {r.reference for r in reports} == {"LOT 9"}
    # each stone's species from its own crop: reading order is Emerald, Peridot, Amethyst / Citrine, Sapphire, Ruby
    assert [r.species.top[0].label for r in reports] == [
        "Emerald", "Peridot", "Amethyst", "Citrine", "Sapphire Blue", "Ruby"]
    for r in reports:
        assert "several_stones" not in {w.code for w in r.quality.warnings}
        assert r.colour is not None and r.conclusion is not None
        assert r.stone.shape is not None and 0.0 <= r.stone.shape.probability <= 1.0
        x, y, w, h = r.stone.bbox
        assert 60 <= w <= 100 and 60 <= h <= 100


def test_identify_keeps_the_photo_whole_and_says_how_many_stones(identifier):
    """`identify` analyses the photo as the shipped model was trained and measured (pale faceted stones
    segment as several pieces, so splitting them would report a reflection); `identify_stones` splits."""
    data = encode(tray(APART, APART_LABELS))
    r = identifier.identify(data)
    assert r.stone.index == 1 and r.stone.count == 6
    assert r.quality.stone.n_stones == 6 and "several_stones" in {w.code for w in r.quality.warnings}
    (many,) = identifier.identify_many([("tray.png", data)])
    assert many.stone.count == 6 and many.species.top == r.species.top
    first = identifier.identify_stones(data)[0]
    assert first.species.top[0].label == "Emerald"  # the top-left stone alone, not a blend of six


def test_single_stone_photo_is_index_1_of_1(identifier):
    data = encode(draw_stone(STONE_COLOURS["Peridot"]))
    r = identifier.identify(data)
    (only,) = identifier.identify_stones(data)
    for rep in (r, only):
        assert rep.stone.index == 1 and rep.stone.count == 1
        assert rep.species.top == r.species.top and rep.stone.bbox == r.quality.stone.bbox


def test_photo_without_a_stone_has_no_stone(identifier):
    blank = np.full((200, 300, 3), 240, np.uint8)
    (r,) = identifier.identify_stones(encode(blank))
    assert r.stone is None and "no_stone" in {w.code for w in r.quality.warnings}


def test_a_shape_that_cannot_be_classified_costs_only_the_shape(identifier, monkeypatch, caplog):
    import gemid.vision.stones as stones

    def broken(*_args):
        raise ValueError("odd outline")

    monkeypatch.setattr(stones, "classify_shape", broken)
    r = identifier.identify(encode(draw_stone(STONE_COLOURS["Peridot"])))
    assert r.species.top and r.stone.count == 1 and r.stone.shape is None
    assert "cut shape could not be classified" in caplog.text
