"""Area openings: remove bright connected structures smaller than an area, whatever their shape.

The clarity grader's candidate inclusions are what an area opening (of L*, and of its negative) takes
away: a crystal, a needle or a cloud goes; a facet, or a network of facet-junction lines, stays. A
median or top-hat filter would flag every thin junction line and facet corner.
"""

from __future__ import annotations

import cv2
import numpy as np

LEVEL_STEP = 4  # grey-level step of the threshold decomposition (8-bit L* x 2.55)
assert 255 // LEVEL_STEP < 64, "area_open counts at most 63 levels in 6 bits"

__all__ = ["LEVEL_STEP", "area_open"]


def area_open(img: np.ndarray, areas: tuple[int, ...], lo: int, hi: int) -> list[np.ndarray]:
    """Area openings of a uint8 image for one or two minimum areas (threshold decomposition, LEVEL_STEP).

    Removes bright connected structures smaller than the area, whatever their shape. Levels outside
    lo..hi (the stone's own range) are not examined. The level sets (at most 63) are stacked into one
    image, a blank row between them, and labelled in one call: a pixel's opening is lo plus LEVEL_STEP
    times the number of levels at which its component is big enough (the level sets are nested, so those
    levels are the lowest ones). The same values as labelling each level in turn, at ~0.5x its time.
    """
    if not 1 <= len(areas) <= 2:
        raise ValueError("one or two areas")
    h, w = img.shape
    base = np.maximum(np.full(img.shape, lo, np.uint8), np.minimum(img, lo))
    levels = np.arange(lo + LEVEL_STEP, hi + 1, LEVEL_STEP)
    if len(levels) == 0:
        return [base.copy() for _ in areas]
    sets = np.zeros((len(levels), h + 1, w), np.uint8)
    np.greater_equal(img[None], levels[:, None, None].astype(np.uint8), out=sets[:, :h].view(bool))
    flat = sets.reshape(-1, w)
    n, lab = cv2.connectedComponents(flat, connectivity=4, ltype=cv2.CV_32S)
    sizes = np.bincount(lab[flat.view(bool)], minlength=n)
    # both counts in one pass: 1 per level big for the first area, 64 more for the second (<= 63 levels)
    weight = np.zeros(n, np.uint16)
    for a_min, unit in zip(areas, (1, 64), strict=False):
        weight[sizes >= a_min] += unit
    weight[0] = 0
    total = np.take(weight, lab).reshape(len(levels), h + 1, w).sum(axis=0, dtype=np.uint16)[:h]
    counts = (total & 63, total >> 6)
    return [np.maximum(base, (lo + LEVEL_STEP * c).astype(np.uint8)) for c in counts[:len(areas)]]
