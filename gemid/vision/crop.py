"""The square crop around the stone: what the model sees, and where quality and the graders measure.

The same `stone_crop` is used at training and at inference, so the model always sees what it was trained
on: its geometry and its resize filter are part of the shipped model's contract.
"""

from __future__ import annotations

import cv2
import numpy as np

from gemid.vision.arrays import border_pixels
from gemid.vision.segment import Segmentation


def square_box(bbox: tuple[int, int, int, int], margin: float, image_size: tuple[int, int]) -> tuple[int, int, int]:
    """Square (x0, y0, side) centred on bbox, grown by `margin` of its longer side; may exceed the image."""
    x, y, w, h = bbox
    side = max(w, h) * (1.0 + 2.0 * margin)
    side = max(side, 16.0)
    cx, cy = x + w / 2.0, y + h / 2.0
    return int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side))


def crop_square(rgb: np.ndarray, box: tuple[int, int, int], fill: tuple[int, int, int] | None = None) -> np.ndarray:
    """Cut the square box out of the image, padding outside with `fill` (default: border median colour)."""
    x0, y0, side = box
    h, w = rgb.shape[:2]
    if fill is None:
        fill = tuple(int(v) for v in np.median(border_pixels(rgb, max(1, min(h, w) // 50)), axis=0))
    out = np.empty((side, side, 3), np.uint8)
    out[:] = np.array(fill, np.uint8)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + side), min(h, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out


def stone_crop(rgb: np.ndarray, seg: Segmentation | None, *, margin: float, size: int | None = None) -> np.ndarray:
    """The model's view: a square around the stone (whole image when none was found), optionally resized."""
    h, w = rgb.shape[:2]
    bbox = seg.bbox if (seg is not None and seg.found) else (0, 0, w, h)
    margin = margin if (seg is not None and seg.found) else 0.0
    box = square_box(bbox, margin, (w, h))
    x0, y0, side = box
    if x0 >= 0 and y0 >= 0 and x0 + side <= w and y0 + side <= h:
        crop = rgb[y0 : y0 + side, x0 : x0 + side]  # inside the image: no padding, so no copy (same pixels)
        if size is None:
            return crop.copy()
    else:
        crop = crop_square(rgb, box)
    if size is not None:  # the plain area filter: this is the training contract (see segment)
        interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (size, size), interpolation=interp)
    return crop


def crop_mask(mask: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """`crop_square` for a 2-D mask: the square `box` (x0, y0, side), 0 (not stone) outside the photo."""
    x0, y0, side = box
    h, w = mask.shape
    out = np.zeros((side, side), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = mask[sy0:sy1, sx0:sx1]
    return out
