"""Find the stone: its mask, box and outline. Nothing else: the square crop the model sees is
gemid.vision.crop, the CIELAB helpers are gemid.vision.colorimetry.

Product and desk photos show the stone on a fairly plain background. We model the background from the
image border (median colour in CIELAB), threshold the colour distance to it (Otsu, floored so a flat
background never yields noise), clean up with morphology and keep the large connected components.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from gemid.vision.arrays import border_pixels, row_norm
from gemid.vision.colorimetry import lab8_distance, median_lab8, scaled_lab

WORK_SIDE = 384  # segmentation runs on a downscaled copy; plenty for a mask, fast on 2 cores
# A frame-filling close-up: the border varies this much (its 95th percentile distance to its median, dE) and
# what was found covers under FILLING_AREA of the frame. The stone makes most of the border, the floor set from
# it passes only the stone's most extreme facets, and a speck or a few facets were taken for the stone. The
# corner rule below finds 22 of the 2,042 gems68 photos whole that were found so (a contact sheet of the 22
# checked by eye; every other photo keeps its mask bit for bit).
FILLING_SPREAD = 20.0
FILLING_AREA = 0.25
CORNER = 0.08  # side of the corner squares read for the background, as a share of the frame's shorter side
CORNER_PLAIN = 8.0  # a corner is plain background when its 95th percentile distance to its median is under this
CORNER_AGREE = 10.0  # plain corners are the same background when their medians are this close (dE)


@dataclass(frozen=True)
class Segmentation:
    mask: np.ndarray  # uint8 {0,255}, full resolution of the input image
    bbox: tuple[int, int, int, int]  # x, y, w, h of the kept stone(s); whole image when none found
    outline: list[tuple[int, int]]  # simplified contour of the largest stone
    area_fraction: float  # stone pixels / image pixels
    n_stones: int  # significant separate objects
    found: bool  # False when no stone could be told from the background
    background_lab: tuple[float, float, float]  # median border colour (OpenCV 8-bit Lab scaled to CIELAB)
    border_is_background: float  # fraction of border pixels that look like background (0..1)
    # the image at WORK_SIDE (area filter, before the blur): the stone area (`gemid.vision.stone_area`) works
    # at the same size and takes it from here rather than shrinking the whole frame a second time
    small: np.ndarray | None = field(default=None, repr=False, compare=False)
    # how much the border itself varies (95th percentile of its pixels' CIELAB distance to its median): about
    # 1 on a plain background, above 20 where a stone fills the frame and its facets make the border, so the
    # pieces found are facets, not stones (`gemid.vision.stones` then keeps the photo whole)
    border_spread: float = 0.0


def _foreground(dist: np.ndarray, border_dist: np.ndarray, floor: float, min_area: float = 0.002,
                max_kernel: int | None = None) -> tuple[float, float, list[np.ndarray]]:
    """Threshold the colour distance (Otsu, floored), clean up, and return the significant contours."""
    sh, sw = dist.shape
    d8 = np.clip(dist * (255.0 / max(1.0, dist.max())), 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(d8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    thr = max(floor, otsu * max(1.0, dist.max()) / 255.0 * 0.6)
    fg = (dist > thr).astype(np.uint8) * 255
    border_is_bg = float(np.mean(border_dist <= thr))

    k = max(3, (min(sh, sw) // 60) | 1)
    if max_kernel is not None:
        k = max(3, min(k, max_kernel | 1))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel, iterations=2)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, kernel, iterations=1)

    contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    areas = np.array([cv2.contourArea(c) for c in contours], dtype=np.float64)
    total = float(sh * sw)
    keep = [c for c, a in zip(contours, areas, strict=True) if a >= min_area * total] if len(contours) else []
    return thr, border_is_bg, keep


def _area(contours: list[np.ndarray], total: int) -> float:
    """The share of the frame that the kept components cover."""
    return float(sum(cv2.contourArea(c) for c in contours)) / total


def _corner_background(lab8: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The background as the plain corners of the frame show it, or None when they do not agree.

    A stone cut round or oval that fills the frame still leaves its corners to the background. Each corner
    square is plain or not; two or more plain corners that all agree give the background (their pixels'
    median) and its spread. A plain corner that disagrees (a gradient, a shadow, a stand) means the corners
    cannot be trusted, and the photo keeps the border's estimate."""
    n = max(3, round(CORNER * min(lab8.shape[:2])))
    plain = []
    for patch in (lab8[:n, :n], lab8[:n, -n:], lab8[-n:, :n], lab8[-n:, -n:]):
        px = patch.reshape(-1, 3)
        med = median_lab8(px)
        if float(np.percentile(row_norm(scaled_lab(px) - med), 95)) < CORNER_PLAIN:
            plain.append((med, px))
    if len(plain) < 2 or any(np.linalg.norm(a - b) >= CORNER_AGREE for a, _ in plain for b, _ in plain):
        return None
    px = np.concatenate([p for _, p in plain])
    med = median_lab8(px)
    return med, float(np.percentile(row_norm(scaled_lab(px) - med), 95))


def segment(rgb: np.ndarray, *, min_component: float = 0.12, side: int = WORK_SIDE,
            min_area: float = 0.002, max_kernel: int | None = None, frame_filling: bool = True) -> Segmentation:
    """Segment the stone(s) in an RGB uint8 image (H, W, 3).

    `side`, `min_area` (a component's least share of the frame) and `max_kernel` (the clean-up's largest
    structuring element, pixels at `side`) are for photos of stones on the scale card (gemid.vision.scale),
    where a 3 mm stone is a speck of a frame that holds the whole card: they are segmented finer, keep smaller
    components and are not opened away; they also pass `frame_filling=False`, since a card's rulings at the
    border are not a stone filling the frame. Every other photo keeps the defaults."""
    h, w = rgb.shape[:2]
    # the plain area filter, not gemid.vision.resample's faster one: training cut its crops from these
    # masks, so they must stay bit for bit what the shipped model was trained and measured on
    scale = min(1.0, side / max(h, w))
    shrunk = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(shrunk, (3, 3), 0)
    sh, sw = small.shape[:2]
    bw = max(2, round(0.03 * min(sh, sw)))

    lab8 = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)  # converted once; the border's Lab is a slice of it
    border8 = border_pixels(lab8, bw)
    border = scaled_lab(border8)
    bg = median_lab8(border8)
    dist = lab8_distance(lab8, bg)
    border_dist = row_norm(border - bg)
    # Floor: what the background itself varies by (gradients, noise, JPEG), with a minimum of 8 dE.
    spread = float(np.percentile(border_dist, 95))
    floor = max(8.0, spread * 1.5)
    _, border_is_bg, keep = _foreground(dist, border_dist, floor, min_area, max_kernel)
    if not keep:
        # A stone that reaches the image border (a frame-filling close-up) inflates the border's 95th
        # percentile until nothing passes. Retry once with a floor from the border's median, which the
        # background still owns. Only photos that found no stone change.
        relaxed = max(8.0, float(np.percentile(border_dist, 50)) * 5.0)
        if relaxed < floor:
            _, border_is_bg, keep = _foreground(dist, border_dist, relaxed, min_area, max_kernel)
    if frame_filling and spread > FILLING_SPREAD and _area(keep, sh * sw) < FILLING_AREA:
        corners = _corner_background(lab8)
        if corners is not None:
            c_bg, c_spread = corners
            c_dist = row_norm(border - c_bg)
            _, c_is_bg, c_keep = _foreground(lab8_distance(lab8, c_bg), c_dist, max(8.0, c_spread * 1.5),
                                             min_area, max_kernel)
            if _area(c_keep, sh * sw) > _area(keep, sh * sw):
                bg, border_is_bg, keep = c_bg, c_is_bg, c_keep
    if not keep:
        return Segmentation(
            mask=np.zeros((h, w), np.uint8), bbox=(0, 0, w, h), outline=[], area_fraction=0.0, n_stones=0,
            found=False, background_lab=tuple(float(v) for v in bg), border_is_background=border_is_bg, small=shrunk,
            border_spread=spread,
        )
    keep.sort(key=cv2.contourArea, reverse=True)
    largest = cv2.contourArea(keep[0])
    stones = [c for c in keep if cv2.contourArea(c) >= min_component * largest]

    filled = np.zeros((sh, sw), np.uint8)
    cv2.drawContours(filled, stones, -1, 255, thickness=cv2.FILLED)  # fills holes (table windows)
    mask = cv2.resize(filled, (w, h), interpolation=cv2.INTER_NEAREST)
    x, y, bw_, bh_ = cv2.boundingRect(np.concatenate(stones))
    inv = 1.0 / scale
    bbox = (int(x * inv), int(y * inv), min(w, int(np.ceil(bw_ * inv))), min(h, int(np.ceil(bh_ * inv))))
    eps = 0.01 * cv2.arcLength(stones[0], True)
    poly = cv2.approxPolyDP(stones[0], eps, True).reshape(-1, 2)
    outline = [(int(px * inv), int(py * inv)) for px, py in poly]
    return Segmentation(
        mask=mask, bbox=bbox, outline=outline, area_fraction=float((filled > 0).mean()),
        n_stones=len(stones), found=True, background_lab=tuple(float(v) for v in bg),
        border_is_background=border_is_bg, small=shrunk, border_spread=spread,
    )
