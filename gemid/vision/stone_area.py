"""Where exactly the stone is, for grading: the segmentation mask made convex, with a reference card removed.

Grading needs the stone's own pixels and nothing else. The segmentation (`gemid.vision.segment`) keeps a
neutral reference card as a second 'stone', and a light stone on a light background often comes out in
pieces (its bright facets look like background). Cut outlines are convex, so the convex hull of the
stone's pieces restores it, once a card (a uniform, near-neutral rectangle) has been taken out.
Work happens on a copy at most WORK_SIDE pixels on its longer side.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gemid.vision.colorimetry import (
    lab_distance,
    lightness,
    linear_to_xyz,
    luminance,
    nearest_white,
    srgb8_to_linear,
    xyz_to_xy,
    y_of_lightness,
)
from gemid.vision.segment import WORK_SIDE as SEG_SIDE
from gemid.vision.segment import Segmentation

WORK_SIDE = 384
MAX_DUV = 0.008  # distance from the lamp or daylight locus a neutral reference may have (CIE 1976 u'v')
# a grey surface under a 2700 K household lamp up to blue shade: what a camera set to daylight can record
CCT_RANGE = (2500.0, 12000.0)
CLIP = 250  # 8-bit value from which a pixel counts as clipped
_Y_L15 = y_of_lightness(15.0)  # pixels darker than L* 15 carry no usable chromaticity


@dataclass(frozen=True)
class StoneArea:
    small: np.ndarray  # RGB uint8 at work resolution
    scale: float  # work / original
    stone: np.ndarray  # bool, the stone (convex, card removed); all False when not found
    card: np.ndarray | None  # bool, the card's interior (uniform part) at work resolution
    card_box: tuple[int, int, int, int] | None  # card (x, y, w, h) in original pixels
    found: bool
    card_region: np.ndarray | None = None  # bool, the whole card at work resolution
    photo_scale: float = 1.0  # pixels of the image given to `locate` per pixel of the photo (a working image: < 1)


def channel_max(px: np.ndarray) -> np.ndarray:
    """Largest of the three channels per pixel (..., 3) -> (...): elementwise, far faster than .max(axis=-1)."""
    return np.maximum(np.maximum(px[..., 0], px[..., 1]), px[..., 2])


def channel_min(px: np.ndarray) -> np.ndarray:
    return np.minimum(np.minimum(px[..., 0], px[..., 1]), px[..., 2])


def downscale(rgb: np.ndarray, mask: np.ndarray, side: int = WORK_SIDE,
              shrunk: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """`rgb` and its mask at most `side` on the long side; `shrunk`: that image already made (the
    segmentation's, the same area filter to the same size), used as it is."""
    h, w = rgb.shape[:2]
    s = min(1.0, side / max(h, w))
    if s < 1.0:
        size = (max(1, round(w * s)), max(1, round(h * s)))
        same = shrunk is not None and shrunk.shape[:2] == (size[1], size[0])
        rgb = shrunk if same else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    return rgb, mask, s


def white_point(rgb8: np.ndarray) -> tuple[tuple[float, float], int] | None:
    """Chromaticity xy of (supposedly neutral) pixels: the median linear RGB of the unclipped, not too dark
    ones (L* >= 15), with how many were used; None when fewer than 50 are usable.

    A white background exposed to the clip point and then lit by a coloured lamp keeps its strongest channel
    clipped (255, 199, 140 under 3500 K): when fewer than 50 pixels are unclipped, the pixels with one or
    two channels clipped are used as they are. Their clipped channel is a lower bound, so the cast they
    show is, if anything, too small; pixels clipped in all three channels carry no colour and never count."""
    px = rgb8.reshape(-1, 3)
    px = px[channel_min(px) >= 2]
    unclipped = channel_max(px) < CLIP
    px = px[unclipped] if int(unclipped.sum()) >= 50 else px[channel_min(px) < CLIP]
    if px.shape[0] < 50:
        return None
    px = px[luminance(srgb8_to_linear(px)) >= _Y_L15]
    if px.shape[0] < 50:
        return None
    med = np.array([_median_linear(px[:, c]) for c in range(3)])
    if med.min() <= 0:
        return None
    return xyz_to_xy(linear_to_xyz(med)), int(px.shape[0])


def _median_linear(codes: np.ndarray) -> float:
    """np.median(srgb8_to_linear(codes)) of 8-bit codes, from their histogram: the transfer curve is
    monotonic, so the middle order statistics are those of the codes (O(n), no sort of floats)."""
    n = codes.size
    cdf = np.cumsum(np.bincount(codes, minlength=256))
    lo, hi = np.searchsorted(cdf, [(n - 1) // 2, n // 2], side="right")
    table = srgb8_to_linear(np.array([lo, hi], np.uint8))
    return float((table[0] + table[1]) / 2.0)


def is_neutral(xy: tuple[float, float]) -> tuple[bool, float, float]:
    """(a neutral surface under a lamp or daylight could look like this, nearest CCT, distance)."""
    cct, duv = nearest_white(xy)
    return (duv <= MAX_DUV and CCT_RANGE[0] <= cct <= CCT_RANGE[1]), cct, duv


def find_card(rgb: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray] | None:
    """A grey/white reference card: a uniform, near-neutral rectangle among the candidate regions.

    Returns (interior mask, box (x, y, w, h), whole component mask) at the image's resolution, or None.
    """
    h, w = rgb.shape[:2]
    n, labels, stats, _ = cv2.connectedComponentsWithStats((candidates > 0).astype(np.uint8), connectivity=8)
    best = None
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if not (0.003 * h * w <= area <= 0.25 * h * w) or min(bw, bh) < 8:
            continue
        comp = (labels == i).astype(np.uint8)
        contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        (_, (rw, rh), _) = cv2.minAreaRect(max(contours, key=cv2.contourArea))
        if rw * rh <= 0 or area / (rw * rh) < 0.9 or max(rw, rh) / max(1.0, min(rw, rh)) > 3.0:
            continue
        k = max(3, int(0.25 * min(bw, bh)) | 1)
        inner = cv2.erode(comp, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))) > 0
        if inner.sum() < 30:
            continue
        px = rgb[inner]
        L = lightness(luminance(srgb8_to_linear(px)))
        if np.std(L) > 3.0 or np.median(L) < 35.0:
            continue
        white = white_point(px)
        if white is None or not is_neutral(white[0])[0]:
            continue
        if best is None or area > best[2]:
            best = (inner, (x, y, bw, bh), area, comp > 0)
    if best is None:
        return None
    return best[0], best[1], best[3]


def convex_stone(stone: np.ndarray) -> np.ndarray:
    """The convex hull of the stone's pieces (pieces under 12 % of the largest are left out)."""
    contours, _ = cv2.findContours(stone.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return stone
    areas = [cv2.contourArea(c) for c in contours]
    big = [c for c, a in zip(contours, areas, strict=True) if a >= 0.12 * max(areas)]
    hull = cv2.convexHull(np.concatenate(big))
    out = np.zeros(stone.shape, np.uint8)
    cv2.fillPoly(out, [hull], 1)
    return out > 0


def locate(rgb: np.ndarray, seg: Segmentation, side: int = WORK_SIDE, *, photo_scale: float = 1.0) -> StoneArea:
    """The stone (and a reference card, if any) at work resolution. `photo_scale`: `rgb`'s pixels per photo
    pixel when `rgb` is a reduced working image (`gemid.vision.decode`), so sizes and boxes reach the report
    in the photo's own pixels."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("expected an RGB uint8 image of shape (H, W, 3)")
    small, mask, scale = downscale(rgb, seg.mask, side, seg.small if side == SEG_SIDE else None)
    stone = mask > 0
    found = bool(seg.found and stone.any())
    card = card_box = comp = None
    if found:
        # OpenCV's 8-bit Lab, as the segmentation measured background_lab: a 12 dE threshold needs no more
        diff = lab_distance(small, seg.background_lab)
        hit = find_card(small, ((diff > 12.0) | stone).astype(np.uint8))
        if hit is not None:
            card, (x, y, bw, bh), comp = hit
            grow = cv2.dilate(comp.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
            stone = stone & (grow == 0)
            inv = 1.0 / (scale * photo_scale)
            card_box = (int(x * inv), int(y * inv), int(round(bw * inv)), int(round(bh * inv)))
        found = bool(stone.sum() >= 20)
        if found and (channel_min(small[stone]) >= CLIP).mean() > 0.5:
            found = False  # the 'stone' is a blown-out reflection: the stone itself fills the frame
        stone = convex_stone(stone) if found else np.zeros_like(stone)
    return StoneArea(small=small, scale=scale, stone=stone, card=card, card_box=card_box, found=found,
                     card_region=comp, photo_scale=photo_scale)
