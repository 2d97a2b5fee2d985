"""The fast shrink used for whole-frame statistics: the plain area filter below 2x, close to it above."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gemid.vision.resample import fit, shrink_to


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8), (1040, 780), interpolation=cv2.INTER_CUBIC)
    return np.clip(base.astype(int) + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)


def test_below_twice_the_target_it_is_the_plain_area_filter(photo):
    for size in ((600, 500), (1000, 700), (519, 391)):
        assert np.array_equal(fit(photo, size), cv2.resize(photo, size, interpolation=cv2.INTER_AREA))


def test_far_above_the_target_it_halves_first_and_keeps_the_frame_statistics(photo):
    smooth = cv2.GaussianBlur(photo, (0, 0), 3)  # a photo's content: the difference is then in rounding
    for size in ((256, 192), (384, 288), (100, 100)):
        fast, plain = fit(photo, size), cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        assert fast.shape == plain.shape == (size[1], size[0], 3)
        # with pixel noise a half-pixel shift shows per pixel, never in what the thumbnail is for
        assert abs(float(fast.mean()) - float(plain.mean())) < 0.5
        assert abs(float(np.percentile(fast, 95)) - float(np.percentile(plain, 95))) <= 2
        diff = np.abs(fit(smooth, size).astype(int) - cv2.resize(smooth, size, interpolation=cv2.INTER_AREA))
        assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 6  # a slightly wider kernel, on steep texture


def test_enlarging_is_bilinear_and_small_photos_are_left_alone(photo):
    small = photo[:50, :60]
    assert np.array_equal(fit(small, (120, 100)), cv2.resize(small, (120, 100), interpolation=cv2.INTER_LINEAR))
    same, scale = shrink_to(small, 256)
    assert same is small and scale == 1.0
    thumb, scale = shrink_to(photo, 256)
    assert thumb.shape[:2] == (192, 256) and scale == pytest.approx(256 / 1040)
    odd = photo[:777, :1035]  # odd sides: never halved, so exactly the plain area filter
    assert np.array_equal(fit(odd, (256, 192)), cv2.resize(odd, (256, 192), interpolation=cv2.INTER_AREA))
