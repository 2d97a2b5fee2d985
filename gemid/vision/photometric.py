"""One photometric front end for the colour grader and the classifier: the light's white balance and exposure,
estimated once per photo, and applied to whatever pixels a stage looks at.

The estimate is the colour grader's (`gemid.vision.lighting`): a neutral reference card if one is in the frame,
else the background around the stone when it could be a neutral surface under a lamp or daylight, else none
(identity). `light_for` is the single place that picks the reference pixels, so the grader and the
classifier never disagree about the light; `normalise` applies the correction to an 8-bit crop in linear
light (decode sRGB, 3x3 matrix, clip, encode), which is what training applies to its augmented photos too.
"""

from __future__ import annotations

import cv2
import numpy as np

from gemid.vision import lighting
from gemid.vision.colorimetry import linear_to_srgb, srgb8_to_linear
from gemid.vision.lighting import Lighting
from gemid.vision.segment import Segmentation
from gemid.vision.stone_area import StoneArea, locate

_EYE = np.eye(3)


def background_pixels(area: StoneArea, seg: Segmentation) -> tuple[np.ndarray | None, bool]:
    """(the background's pixels at work resolution, or None when too little of it shows; whether it shows):
    everything but the stone and the card, each grown by 2 % of the frame so that no girdle or card edge
    bleeds in, and only when most of the photo's border is background."""
    if not area.found:
        return None, False
    small, stone = area.small, area.stone
    h, w = small.shape[:2]
    dil = max(2, int(0.02 * max(h, w)))
    around = cv2.dilate(stone.astype(np.uint8) * 255, np.ones((3, 3), np.uint8), iterations=dil) > 0
    if area.card_region is not None:
        around |= cv2.dilate(area.card_region.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=dil) > 0
    bg = ~around
    visible = bool(bg.mean() > 0.05 and seg.border_is_background >= 0.5)
    return (small[bg] if visible else None), visible


def light_for(rgb: np.ndarray, seg: Segmentation, area: StoneArea | None = None) -> Lighting:
    """The light of the photo (reference, white balance and exposure), as the colour grader measures it."""
    area = area if area is not None else locate(rgb, seg)
    bg_pixels, _ = background_pixels(area, seg)
    reference = lighting.find_reference(area.small, area.card, area.card_box, bg_pixels,
                                        area.stone if area.found else None)
    return lighting.estimate(area.small, reference)


def normalise(crop: np.ndarray, light: Lighting | np.ndarray | None) -> np.ndarray:
    """The 8-bit sRGB crop as seen under D65 at the reference's exposure: `light.matrix` on linear sRGB.

    No correction (None, or an identity matrix) returns the crop itself, bit for bit."""
    if light is None:
        return crop
    m = np.asarray(light.matrix if isinstance(light, Lighting) else light, np.float64)
    if np.allclose(m, _EYE, atol=1e-9):
        return crop
    lin = srgb8_to_linear(crop).reshape(-1, 3) @ m.T.astype(np.float32)
    out = linear_to_srgb(np.clip(lin, 0.0, 1.0)) * 255.0
    return np.round(out).astype(np.uint8).reshape(crop.shape)
