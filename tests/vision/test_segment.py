"""Segmentation of a stone that fills the frame (a close-up): the border is mostly stone, so a background read
from the whole border is wrong; the plain corners that are left give it instead."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gemid.datasets.synth import StoneSpec, render
from gemid.vision.colorimetry import scaled_lab
from gemid.vision.segment import FILLING_SPREAD, segment


def _close_up(cut: str, scale: float, seed: int, background: str = "white") -> tuple[np.ndarray, np.ndarray]:
    spec = StoneSpec(cut=cut, lab=(40.0, 30.0, -30.0), scale=scale, extinction=0.15, facet_contrast=0.35,
                     background=background, shadow=0.0)
    rgb, mask, _ = render(spec, size=384, seed=seed)
    return rgb, mask > 0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.mark.parametrize(("cut", "scale", "seed"), [("round", 1.15, 0), ("round", 1.15, 1), ("oval", 1.2, 2)])
def test_a_stone_touching_the_frame_is_segmented_whole(cut, scale, seed):
    rgb, truth = _close_up(cut, scale, seed)
    seg = segment(rgb)
    assert seg.border_spread > FILLING_SPREAD  # the trap: the border is stone, its spread passes only specks
    assert _iou(segment(rgb, frame_filling=False).mask > 0, truth) < 0.1
    assert _iou(seg.mask > 0, truth) > 0.95
    assert seg.n_stones == 1
    corner = scaled_lab(cv2.cvtColor(rgb[:1, :1], cv2.COLOR_RGB2LAB)).reshape(3)
    assert np.linalg.norm(np.array(seg.background_lab) - corner) < 2.0  # the corners' white, not a facet mix


def test_corners_covered_by_the_stone_keep_the_border_estimate():
    """A cushion at this scale covers the corners too: nothing plain is left to read, nothing changes."""
    rgb, _ = _close_up("cushion", 1.15, 0)
    a, b = segment(rgb), segment(rgb, frame_filling=False)
    assert np.array_equal(a.mask, b.mask) and a.background_lab == b.background_lab


def test_a_plain_photo_is_segmented_as_before():
    """A stone well inside a plain frame never reaches the corner rule (its border varies by a few dE)."""
    rgb, truth = _close_up("oval", 0.7, 3)
    a, b = segment(rgb), segment(rgb, frame_filling=False)
    assert a.border_spread < FILLING_SPREAD
    assert np.array_equal(a.mask, b.mask) and _iou(a.mask > 0, truth) > 0.9
