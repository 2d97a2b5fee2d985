"""A stone's length and width in millimetres, from its outline on a scale reference: gemid's printed card
(gemid.vision.scale), a coin of entered diameter beside the stones (gemid.vision.coin) or a millimetre ruler
(gemid.vision.ruler).

Each stone is measured on the photo at its finest: a reduced working image (a 12 MP photo is analysed at a
quarter of its side) would put a 5 mm stone at about 25 pixels, where one pixel of edge is 4 % of its size.
So when a reference is found, the photo is decoded again at full resolution (at most 4096 px on its long side:
a 40 MP photo at half its side; gemid.vision.reference), the reference is found there, and each stone's
neighbourhood is segmented again (`gemid.vision.segment` on a crop is at its native resolution, so its mask is
not the working image's 384-pixel one). The outline's pixels are mapped onto the reference's plane (the card's
homography, the coin's affine map, the ruler's homography) and the minimum-area rectangle around them gives
length and width.

The stated uncertainty is a 95 % interval (1.96 standard errors) that adds, in quadrature: the outline's edge
(EDGE_SIGMA_PX on each side, in the photo's pixels), the reference's scale at the stone (`scale_sigma_at`: the
card's corners and print; a coin's edge, minting, height and the perspective at the stone's distance from it; a
ruler's steps, print, height and the perspective across it) and the stone's girdle standing above the paper
(PARALLAX: it is nearer the camera, so it reads larger, by its height over the camera's distance). `python -m
bench.bench_size` (`--coin`, `--ruler`) measures how often the interval holds the true size on composed photos
of real stones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from gemid.report import StoneSize
from gemid.vision.scale import PlaneMap
from gemid.vision.segment import Segmentation, segment
from gemid.vision.stones import HALO_PX

# where the segmentation puts a blurred, transparent edge, in the photo's pixels, either side. With 1.25 the
# stated interval held both sides of 95.8 % of 166 stones (train split, `bench.bench_size --split train
# --seed 1`; 1.0: 94.6 %, 1.5: 97.0 %). The outline runs through its boundary pixels' centres, half a pixel
# inside the stone's edge, but segment's threshold (0.6 of Otsu's) sits about that far outside the edge's
# midpoint: uncorrected, the mean signed error there was -0.004 mm (+0.5 px added: +0.03 mm), so none is added.
# (Chosen before the bench simulated the print's scale and parallax; with them the same run holds 96.1 %.)
EDGE_SIGMA_PX = 1.25
PARALLAX = 0.012  # a girdle ~3 mm above the card, photographed from ~25 cm: 1.2 % larger
Z95 = 1.96
CUT_BY_CARD = ("the stone touches a marker or the card's edge, where the card is painted out before the stones are "
               "found: lay it at least 3 mm inside the markers")
NOT_ONE_CARD = ("the card's markers do not fit one flat card (two cards in the photo, or a bent or creased card): "
                "photograph the stones on one flat card")
MIN_STONE_PX = 20.0  # a stone narrower than this in the photo is not measured: one pixel is 5 % of it
PAD = 0.35  # the neighbourhood segmented again around a stone, as a share of its longer side
OWN_SLACK = 9  # pixels: a piece of the fine outline may reach this far past the coarse mask and still be the stone's


@dataclass(frozen=True)
class Measured:
    """One stone's outline on the card's plane."""

    length_mm: float
    width_mm: float
    uncertainty_mm: float
    width_px: float


def _neighbourhood(bbox: tuple[int, int, int, int], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) segmented again around a stone's box, inside the image."""
    x, y, w, h = bbox
    pad = max(6, int(PAD * max(w, h)))
    return max(0, x - pad), max(0, y - pad), min(shape[1], x + w + pad), min(shape[0], y + h + pad)


def _outline(rgb: np.ndarray, box: tuple[int, int, int, int], own: np.ndarray,
             others: np.ndarray) -> np.ndarray | None:
    """The stone's outline points, in `rgb`'s pixels, from its neighbourhood `box` segmented again, the
    neighbouring stones (`others`) painted out with the paper. A pale or glinting stone may come out in
    pieces: every piece that lies mostly on the stone's coarse mask `own` is kept (its length and width are
    those of the pieces' hull), a neighbour's edge or a shadow is not."""
    x0, y0, x1, y1 = box
    sub = rgb[y0:y1, x0:x1].copy()
    if min(sub.shape[:2]) < 16:
        return None
    if others.any():
        rest = ~others & (own == 0)
        if rest.any():
            sub[others] = np.median(sub[rest], axis=0).astype(np.uint8)
    seg = segment(sub, min_component=0.0, side=max(sub.shape[:2]), min_area=0.0005, frame_filling=False)
    if not seg.found:
        return None
    near = cv2.dilate(own, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (OWN_SLACK, OWN_SLACK))) > 0
    contours, _ = cv2.findContours(seg.mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    kept = []
    for c in contours:
        piece = cv2.drawContours(np.zeros_like(seg.mask), [c], -1, 255, cv2.FILLED) > 0
        if np.count_nonzero(piece & near) >= 0.5 * np.count_nonzero(piece):
            kept.append(c.reshape(-1, 2))
    if not kept:
        return None
    return np.concatenate(kept).astype(np.float64) + (x0, y0)


def measure_outline(points_px: np.ndarray, ref: PlaneMap) -> Measured:
    """Length and width (mm) of an outline of pixel centres on the card, with its 95 % uncertainty."""
    mm = ref.to_mm(points_px).astype(np.float32)
    (_, _), (a, b), _ = cv2.minAreaRect(mm)
    centre = points_px.mean(axis=0)
    px_mm = ref.mm_per_px((float(centre[0]), float(centre[1])))
    length, width = max(a, b), min(a, b)
    edge = EDGE_SIGMA_PX * math.sqrt(2.0) * px_mm
    rel = math.hypot(ref.scale_sigma_at((float(centre[0]), float(centre[1]))), PARALLAX)
    u = Z95 * math.hypot(edge, rel * length)
    return Measured(length_mm=float(length), width_mm=float(width), uncertainty_mm=float(u),
                    width_px=float(width / px_mm))


def size_of(measured: Measured | None, ref: PlaneMap, why: str | None = None) -> StoneSize:
    """The report's `size` for one stone (measured, or why not)."""
    if measured is None:
        return StoneSize(status="cannot_measure", reason=why or "the stone's outline could not be found on the card",
                         method=ref.method)
    if measured.width_px < MIN_STONE_PX:
        return StoneSize(status="cannot_measure", method=ref.method, reason=(
            f"the stone spans only {measured.width_px:.0f} pixels across: photograph the card from nearer"))
    return StoneSize(status="measured", length_mm=round(measured.length_mm, 2), width_mm=round(measured.width_mm, 2),
                     uncertainty_mm=round(measured.uncertainty_mm, 2), method=ref.method)


def fine_outline(rgb: np.ndarray, seg: Segmentation, stones: Sequence[Segmentation], k: float,
                 also: Sequence[Segmentation] = ()) -> np.ndarray | None:
    """Stone `seg`'s outline points in `rgb`, the photo `k` times finer than the working image `stones` were
    found on: its neighbourhood segmented again there, the other stones (and `also`: a coin) painted out."""
    x, y, w, h = seg.bbox
    box = _neighbourhood((int(x * k), int(y * k), max(1, math.ceil(w * k)), max(1, math.ceil(h * k))), rgb.shape)
    x0, y0, x1, y1 = box
    # the stone's own coarse mask in the neighbourhood: picks it out of the neighbours cut by the crop
    mh, mw = seg.mask.shape
    sx0, sy0 = min(mw - 1, int(x0 / k)), min(mh - 1, int(y0 / k))
    sx1, sy1 = min(mw, max(sx0 + 1, math.ceil(x1 / k))), min(mh, max(sy0 + 1, math.ceil(y1 / k)))
    size = (x1 - x0, y1 - y0)
    own = cv2.resize(seg.mask[sy0:sy1, sx0:sx1], size, interpolation=cv2.INTER_NEAREST)
    theirs = np.zeros((sy1 - sy0, sx1 - sx0), np.uint8)
    for other in (*stones, *also):
        if other is not seg and other.found:
            theirs |= other.mask[sy0:sy1, sx0:sx1]
    theirs = cv2.dilate(theirs, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (HALO_PX, HALO_PX)))  # and their rims
    others = (cv2.resize(theirs, size, interpolation=cv2.INTER_NEAREST) > 0) & (own == 0)
    return _outline(rgb, box, own, others)


def measure_stones(rgb: np.ndarray, ref: PlaneMap, stones: Sequence[Segmentation], k: float,
                   also: Sequence[Segmentation] = ()) -> list[StoneSize]:
    """Every stone's size on the reference's plane (the scale card, or a coin beside the stones). `stones` were
    found on a working image `k` times smaller than `rgb` (the photo at full resolution, where the reference
    `ref` was found); `also` are objects that are not stones (a coin), painted out like the neighbours."""
    if not ref.consistent:
        return [size_of(None, ref, NOT_ONE_CARD) for _ in stones]
    out = []
    for seg in stones:
        if not seg.found:
            out.append(size_of(None, ref, "no stone was found"))
            continue
        points = fine_outline(rgb, seg, stones, k, also)
        if points is not None and ref.cleared(points):
            out.append(size_of(None, ref, CUT_BY_CARD))
            continue
        out.append(size_of(measure_outline(points, ref) if points is not None and len(points) >= 5 else None, ref))
    return out
