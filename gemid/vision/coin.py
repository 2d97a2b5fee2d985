"""A coin as the scale: a desk without the printed card lays a coin of known diameter beside the stones and
enters its diameter (`coin_mm`), and each stone's length and width come from it (issue 32: "a printed card
with a known square, a ruler, or a coin size the user enters").

The coin is the largest object in the photo, clearly larger than any other round one (COIN_LARGER); it is
round (its outline fits an ellipse within COIN_ROUND), not seen more slanted than COIN_SLANT allows, and
coloured like metal (COIN_CHROMA); otherwise the photo says why it found no coin and no stone is measured. A
colourless round stone larger than the coin could pass for it: the report's `size.method` gives the size in
pixels of the ellipse taken, for a desk to check.

A circle seen at a slant is an ellipse whose long axis keeps the true diameter; the affine map that turns the
ellipse back into a circle of the entered diameter maps the photo onto the plane the coin lies on, exactly at
the coin and less so away from it: a phone held over a desk sees the scale change across the frame (a true
perspective), which one ellipse cannot undo as the card's four markers do (`CoinReference.scale_sigma_at`
states it). The coin is then measured again on the photo at full resolution, as the stones are
(`gemid.vision.size`).

The scale's uncertainty adds, in quadrature: the coin's edge (EDGE_SIGMA_PX each side over its diameter), a
minted coin's tolerance (COIN_TOLERANCE), its face standing above the surface the stones lie on (COIN_RAISED:
nearer the camera, so it reads larger and the stones a little smaller) and, for each stone, the perspective at
its distance from the coin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from gemid.errors import GemidInputError
from gemid.vision.colorimetry import rgb8_to_lab
from gemid.vision.scale import MIN_STONE_MM, PlaneMap
from gemid.vision.segment import Segmentation
from gemid.vision.size import EDGE_SIGMA_PX  # the coin's blurred edge is placed as a stone's is

COIN_MM = (10.0, 40.0)  # diameters accepted: the world's circulating coins lie between
# the outline's RMS distance from its fitted ellipse, as a share of the radius: a drawn coin's is ~0.006, a round
# or oval stone's 0.005-0.02 (gems68 photos), a cabochon's up to 0.05; so roundness alone cannot tell a coin from
# a round stone, and the coin must be the largest object by a margin (COIN_LARGER)
COIN_ROUND = 0.025
COIN_LARGER = 1.3  # the coin's area over the next largest object's, when that one is round too
COIN_SECOND = 0.4  # a second round metal-coloured object this share of the coin's area (~63 % of its diameter) is a coin
# a coin is metal: grey, brass or copper, its median colour ~5-30 CIELAB units from the paper's (measured against
# the background, so a warm lamp tinting both does not count); a ruby, sapphire, emerald or citrine laid beside it
# is 45-75. A colourless round stone passes this, and only its size tells it from the coin
COIN_CHROMA = 38.0
COIN_SLANT = 0.94  # the ellipse's short axis over its long one: below it (~20° from above) the photo is refused
MIN_COIN_PX = 40.0  # the coin's diameter in the working image: below it, one pixel is 2.5 % of the scale
MIN_OUTLINE_POINTS = 20
COIN_TOLERANCE = 0.005  # a minted coin's diameter, 1 sigma: about 0.1 mm of 20 mm
COIN_RAISED = 0.005  # the coin's face ~1.5 mm above the stones' surface, seen from ~30 cm: it reads ~0.5 % larger
# a phone's main camera sees about 70° across its long side: its focal length is this share of that side, in
# pixels (a wider lens puts the camera nearer for the same coin, so this overstates the perspective, not hides it)
FOCAL = 0.7
# a slant the ellipse cannot show: its axes differ by 1 - cos(a), under 1 % up to 8°, no more than its edge's
# noise; a phone held "from above" by hand is rarely nearer the vertical than this. Chosen with the short axis's
# edge allowance on the train stones' composed photos (`python -m bench.bench_size --coin --split train`, seeds
# 2 and 3, 200 stones; the interval held both sides: no allowance and no floor 97.5 %, one edge and 6° 96.5 %,
# two edges and 6° 94.5 %, one edge and 8° 98.5 %)
HANDHELD_TILT_DEG = 6.0

COIN_METHOD = "a coin of the entered diameter"  # a size's method when no coin was found

TILTED = "the coin looks tilted"
TWO_COINS = ("more than one coin in the photo: which one has the diameter entered cannot be told; lay one coin "
             "beside the stones")
AMBIGUOUS = ("two round objects of about the same size: which is the coin cannot be told; use a coin clearly larger "
             "than the stones, or gemid's printed scale card")
NO_COIN = ("no coin was found: lay the coin flat beside the stones, not touching them, on a plain background that "
           "it stands out from (a silver coin on white paper may not: use a darker cloth), photographed from above; "
           "it must be the largest object in the photo")


def coin_diameter(value: float | str) -> float:
    """The diameter entered for a coin, in mm: a number within COIN_MM, else a GemidInputError (`invalid_coin`)
    naming the range, the one check of the CLI, the API and Python callers."""
    try:
        mm = float(value) if not (isinstance(value, str) and "_" in value) else math.nan  # float("1_0") is 10
    except (TypeError, ValueError):
        mm = math.nan
    if not COIN_MM[0] <= mm <= COIN_MM[1]:  # NaN fails this too
        shown = value[:20] if isinstance(value, str) else value
        raise GemidInputError(f"coin_mm: a coin's diameter in millimetres, {COIN_MM[0]:g}-{COIN_MM[1]:g}, not "
                              f"{shown!r}", code="invalid_coin", status=422)
    return mm


@dataclass(frozen=True)
class CoinReference(PlaneMap):
    """The coin found in one image: `to_card` maps the image's pixels to millimetres on its plane."""

    to_card: np.ndarray  # 3x3 affine: image pixels (pixel centres) -> mm, the coin's centre at the origin
    diameter_mm: float
    axes_px: tuple[float, float]  # the ellipse's full axes in the image, long then short
    roundness: float  # the outline's RMS distance from the ellipse, as a share of the radius
    frame_px: float  # the image's long side: with FOCAL, how far the camera was

    @property
    def method(self) -> str:
        long, short = self.axes_px
        return (f"coin of {self.diameter_mm:g} mm (entered): an ellipse of {long:.0f} × {short:.0f} px, mapped onto "
                "a circle of that diameter; the outline is mapped onto the coin's plane")

    @property
    def relative_sigma(self) -> float:
        """The scale's relative standard error: the coin's edge over its diameter, its minting tolerance and
        its face above the stones' surface."""
        edge = EDGE_SIGMA_PX * math.sqrt(2.0) / max(sum(self.axes_px) / 2.0, 1.0)
        return math.hypot(edge, COIN_TOLERANCE, COIN_RAISED)

    def scale_sigma_at(self, at: tuple[float, float]) -> float:
        """The scale's relative error at image point `at`: the coin's own, and the perspective. One ellipse fixes
        the scale where the coin lies; a camera slanted by a from the vertical at distance Z sees a point r mm
        away at a scale different by about r sin(a) / Z. The slant comes from the ellipse (its axes' ratio, the
        short one allowed an edge's error), at least HANDHELD_TILT_DEG; Z from the coin's size in the frame and
        FOCAL."""
        long, short = self.axes_px
        ratio = min(1.0, (short + EDGE_SIGMA_PX) / long)  # the short axis read one edge's error short
        slant = max(math.sqrt(1.0 - ratio * ratio), math.sin(math.radians(HANDHELD_TILT_DEG)))
        distance = FOCAL * self.frame_px * self.diameter_mm / long
        r = float(np.linalg.norm(self.to_mm(np.array([at]))[0]))
        return math.hypot(self.scale_sigma, r * slant / distance)

    def scaled(self, k: float) -> CoinReference:
        """The same coin in an image `k` times larger."""
        shrink = np.diag([1.0 / k, 1.0 / k, 1.0])
        return CoinReference(to_card=self.to_card @ shrink, diameter_mm=self.diameter_mm,
                             axes_px=(self.axes_px[0] * k, self.axes_px[1] * k), roundness=self.roundness,
                             frame_px=self.frame_px * k)


@dataclass(frozen=True)
class CoinSearch:
    """The photo's objects that are coins (left out of the stones, whether or not one gives the scale), the
    reference, or why none was taken."""

    coins: tuple[int, ...]
    ref: CoinReference | None
    reason: str | None = None


def fit_coin(points_px: np.ndarray, diameter_mm: float, frame_px: float) -> CoinReference | str:
    """The reference from a coin's outline points (n, 2) in an image whose long side is `frame_px`, or why they
    are not a coin seen from above."""
    pts = np.asarray(points_px, np.float32).reshape(-1, 2)
    if len(pts) < MIN_OUTLINE_POINTS:
        return NO_COIN
    (cx, cy), (d1, d2), angle = cv2.fitEllipse(pts)
    if min(d1, d2) <= 0:
        return NO_COIN
    t = math.radians(angle)
    e1, e2 = np.array([math.cos(t), math.sin(t)]), np.array([-math.sin(t), math.cos(t)])
    rel = pts.astype(np.float64) - (cx, cy)
    r = np.hypot(rel @ e1 / (d1 / 2.0), rel @ e2 / (d2 / 2.0))
    roundness = float(np.sqrt(np.mean((r - 1.0) ** 2)))
    if roundness > COIN_ROUND:
        return NO_COIN
    long, short = max(d1, d2), min(d1, d2)
    if short / long < COIN_SLANT:
        return (f"{TILTED} (its outline is {short / long:.0%} as wide as it is long): photograph the stones and the "
                "coin from straight above")
    radius = diameter_mm / 2.0
    m = np.stack([e1 * radius / (d1 / 2.0), e2 * radius / (d2 / 2.0)])  # to the ellipse's axes, then to a circle
    to_card = np.eye(3)
    to_card[:2, :2] = m
    to_card[:2, 2] = -m @ np.array([cx, cy])
    return CoinReference(to_card=to_card, diameter_mm=float(diameter_mm), axes_px=(float(long), float(short)),
                         roundness=roundness, frame_px=float(frame_px))


def find_coin(rgb: np.ndarray, stones: list[Segmentation], diameter_mm: float) -> CoinSearch:
    """The coin among the objects segmented in the working image `rgb`: the largest, if it is coloured like metal
    (not like a coloured stone), round, seen from above, big enough, the only metal-coloured round object of a
    coin's size (COIN_SECOND) and clearly larger than any other round one (COIN_LARGER). An object that is a coin
    but cannot be the scale (slanted, too small, one of two coins) is still left out of the stones."""
    found = [(i, int(np.count_nonzero(s.mask))) for i, s in enumerate(stones) if s.found]
    if not found:
        return CoinSearch((), None, NO_COIN)
    found.sort(key=lambda ia: -ia[1])
    (i, area), rest = found[0], found[1:]
    points = _outline_points(stones[i])
    if points is None or not _metal(rgb, stones[i]):
        return CoinSearch((), None, NO_COIN)  # the largest object is a coloured stone, not a coin
    coin = fit_coin(points, diameter_mm, float(max(stones[i].mask.shape)))
    if isinstance(coin, str):  # a metal disc seen too slanted is still the coin: not reported as a stone
        return CoinSearch((i,) if coin.startswith(TILTED) else (), None, coin)
    if coin.axes_px[0] < MIN_COIN_PX:
        return CoinSearch((i,), None, f"the coin spans only {coin.axes_px[0]:.0f} pixels: photograph the stones and "
                                      "the coin from nearer")
    coins = [j for j, a in rest if a >= COIN_SECOND * area and _round(stones[j]) and _metal(rgb, stones[j])]
    if coins:
        return CoinSearch((i, *coins), None, TWO_COINS)
    if any(a * COIN_LARGER > area and _round(stones[j]) for j, a in rest):
        return CoinSearch((), None, AMBIGUOUS)
    return CoinSearch((i,), coin)


def _metal(rgb: np.ndarray, seg: Segmentation) -> bool:
    """Coloured like a coin against the paper (COIN_CHROMA), not like a ruby or a sapphire."""
    lab = rgb8_to_lab(rgb[seg.mask > 0])
    return bool(np.hypot(*(np.median(lab[:, 1:], axis=0) - np.array(seg.background_lab[1:]))) <= COIN_CHROMA)


def _outline_points(seg: Segmentation) -> np.ndarray | None:
    """Every edge pixel of the object's largest piece (the segmentation's own outline is a polygon)."""
    contours, _ = cv2.findContours((seg.mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return max(contours, key=cv2.contourArea).reshape(-1, 2) if contours else None


def _round(seg: Segmentation) -> bool:
    points = _outline_points(seg)
    return points is not None and not isinstance(fit_coin(points, 20.0, float(max(seg.mask.shape))), str)


def stones_beside(stones: list[Segmentation], coin: CoinReference) -> list[Segmentation]:
    """The objects beside the coin that can be stones: at least a MIN_STONE_MM round at the coin's scale (the
    finer segmentation also keeps specks of dust and the paper's grain)."""
    mm_per_px = coin.diameter_mm / coin.axes_px[0]
    least = math.pi * (MIN_STONE_MM / 2.0 / mm_per_px) ** 2
    return [s for s in stones if np.count_nonzero(s.mask) >= least]
