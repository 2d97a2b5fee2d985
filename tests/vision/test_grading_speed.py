"""Faster grading must grade the same (issue 33): each speed-up is checked against the code it replaced."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gemid.datasets.synth import random_spec, render
from gemid.vision.area_filter import LEVEL_STEP, area_open
from gemid.vision.clarity import _lightness


def area_open_reference(img: np.ndarray, areas: tuple[int, ...], lo: int, hi: int) -> list[np.ndarray]:
    """The area openings as first written: every level labelled on the whole image."""
    outs = [np.full(img.shape, lo, np.uint8) for _ in areas]
    for t in range(lo + LEVEL_STEP, hi + 1, LEVEL_STEP):
        b = (img >= t).astype(np.uint8)
        if int(cv2.countNonZero(b)) < min(areas):
            break
        _, lab, stats, _ = cv2.connectedComponentsWithStats(b, connectivity=4)
        sizes = stats[:, cv2.CC_STAT_AREA]
        n_big = 0
        for out, a_min in zip(outs, areas, strict=True):
            big = sizes >= a_min
            big[0] = False
            if big.any():
                out[big[lab]] = t
                n_big += 1
        if n_big == 0:
            break
    return [np.maximum(o, np.minimum(img, lo)) for o in outs]


def stone_levels(seed: int) -> np.ndarray:
    rgb, _mask, _truth = render(random_spec(seed, n_inclusions=3), size=160, seed=seed)
    return np.clip(_lightness(rgb) * 2.55, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_area_opening_of_the_stacked_level_sets_gives_the_same_image(seed):
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (90, 120)).astype(np.uint8), (0, 0), 2.0)
    for img in (stone_levels(seed), noise, 255 - stone_levels(seed)):
        lo, hi = int(img.min()), int(img.max())
        areas = (int(rng.integers(8, 40)), int(rng.integers(60, 300)))
        got, want = area_open(img, areas, lo, hi), area_open_reference(img, areas, lo, hi)
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
        assert not np.array_equal(got[1], img)  # the opening did remove something: the check is not vacuous
        # one area alone, and the larger area first (the two counts share one pass)
        assert np.array_equal(area_open(img, areas[1:], lo, hi)[0], want[1])
        assert all(np.array_equal(g, w) for g, w in zip(area_open(img, areas[::-1], lo, hi), want[::-1], strict=True))


def test_area_opening_of_a_flat_or_full_range_image():
    flat = np.full((20, 30), 77, np.uint8)
    assert all(np.array_equal(o, flat) for o in area_open(flat, (5, 50), 77, 77))
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))  # 63 levels: the most the counts hold
    got, want = area_open(ramp, (3, 40), 0, 255), area_open_reference(ramp, (3, 40), 0, 255)
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    with pytest.raises(ValueError):
        area_open(ramp, (3, 40, 90), 0, 255)


def test_the_stone_area_reuses_the_segmentations_small_image_bit_for_bit():
    from dataclasses import replace

    from gemid.vision.segment import segment
    from gemid.vision.stone_area import locate

    for seed in range(4):
        rgb, _mask, _truth = render(random_spec(seed), size=700, seed=seed)
        seg = segment(rgb)
        shared, own = locate(rgb, seg), locate(rgb, replace(seg, small=None))
        assert shared.small is seg.small  # one shrink of the frame, not two
        assert np.array_equal(shared.small, own.small) and np.array_equal(shared.stone, own.stone)
        assert (shared.scale, shared.found, shared.card_box) == (own.scale, own.found, own.card_box)
