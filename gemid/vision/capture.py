"""Capture statistics: how a photo was taken, in a few numbers that can be compared across months.

A model is only as good as the photos it sees resemble the ones it was trained on. A desk that changes its
lamp (a warm cast), its camera, or how close it shoots (smaller stones) moves these numbers before anyone
notices the answers getting worse; gemid.serve.drift compares them, week by week, with the same numbers
computed once on the training photos. They are cheap by design (the segmentation and quality stages already
ran; this adds one small thumbnail's mean), so every identification can record them:

- brightness: mean grey level (0-255, Rec. 601 luma) of the whole photo, on a <= 256 px copy.
- warmth / tint: CIELAB b* (yellow +, blue -) and a* (magenta +, green -) of the background's median border
  colour that segmentation measured: a lamp's cast shows on the plain background, not on the coloured stone.
- stone_px: the stone's size in the photo's own pixels, the side of a square of its area.
- sharpness: the quality stage's variance of the Laplacian inside the stone (at a fixed 256 px scale).
- confidence: the photo-only top-1 probability.
- camera: EXIF make and model ("" when the photo carries none, as product photos and screenshots do).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from gemid.vision.resample import shrink_to

THUMB_SIDE = 256
NUMERIC = ("brightness", "warmth", "tint", "stone_px", "sharpness", "confidence")


@dataclass(frozen=True)
class Capture:
    brightness: float
    warmth: float
    tint: float
    stone_px: float | None  # None when no stone was found
    sharpness: float | None
    confidence: float | None
    camera: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def capture_stats(rgb: np.ndarray, *, background_lab: tuple[float, float, float], area_fraction: float,
                  found: bool, sharpness: float | None, confidence: float | None, camera: str | None,
                  photo_size: tuple[int, int] | None = None) -> Capture:
    """The statistics of one decoded photo (uint8 RGB) and what the pipeline already measured of it.
    `photo_size` (width, height): the photo's own size when `rgb` is a reduced working image
    (`gemid.vision.decode`), so the stone's size is in the photo's pixels, as the training reference's."""
    thumb = shrink_to(rgb, THUMB_SIDE)[0]
    brightness = float(cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).mean())
    w, h = photo_size if photo_size is not None else (rgb.shape[1], rgb.shape[0])
    stone_px = math.sqrt(area_fraction * h * w) if found and area_fraction > 0 else None
    return Capture(brightness=round(brightness, 2), warmth=round(float(background_lab[2]), 2),
                   tint=round(float(background_lab[1]), 2),
                   stone_px=None if stone_px is None else round(stone_px, 1),
                   sharpness=None if sharpness is None else round(float(sharpness), 2),
                   confidence=None if confidence is None else round(float(confidence), 4),
                   camera=(camera or "")[:100])


def exif_camera(exif: Any) -> str:
    """'Make Model' from a Pillow Exif mapping, without the make repeated ('Canon Canon EOS R6' -> 'Canon EOS
    R6'); '' when absent or unreadable (malformed EXIF is common on edited photos)."""
    try:
        make = str(exif.get(0x010F, "") or "").strip("\x00 ").strip()
        model = str(exif.get(0x0110, "") or "").strip("\x00 ").strip()
    except Exception:
        return ""
    if make and model.lower().startswith(make.lower().split()[0]):
        return model[:100]
    return f"{make} {model}".strip()[:100]
