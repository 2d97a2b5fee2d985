"""The scale reference: gemid's printed scale card, found in a photo, gives millimetres per pixel.

Why a card of ArUco markers rather than a ruler or a plain square: a marker is found and told from everything
else in the photo by its own code (a black square on the desk, a tray's corner or a dark stone is not one), its
four corners are located to a fraction of a pixel, and the card's four markers at known places give a
homography from the photo to the card's plane, so a card photographed at a slant still measures true. With one
marker (the others covered by stones) the homography comes from its four corners alone.

The card (`CARD`, printed by `gemid scale-card` or GET /v1/scale-card.pdf) is white paper with four markers of
the ArUco 4x4 dictionary, ids 0-3 clockwise from the top left, 12 mm square, their outer corners on a 150 x 100 mm
rectangle. Stones lie inside it, 3 mm clear of the markers. Before segmentation `clear_card` paints all four
markers with their 2 mm margins (where the homography puts them, found or not: a half-covered marker would be
a dark "stone") and everything outside the card with the card's own paper colour, so the stones are found on
plain paper whatever the desk under it; a stone whose outline reaches what was painted is not measured.

Limits, stated on every size (gemid.vision.size): the markers' print scale (the card says how to check it
with a ruler), the stone's girdle standing above the paper (parallax), and the outline's edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

MARKER_MM = 12.0  # side of each marker's black square, as printed
CARD_W_MM, CARD_H_MM = 150.0, 100.0  # the markers' outer corners span this rectangle
MARKER_IDS = (0, 1, 2, 3)  # top left, top right, bottom right, bottom left
MODULES = 6  # a 4x4 code and its one-module black border: a module is MARKER_MM / 6 = 2 mm
# corner location error after sub-pixel refinement, in pixels: what a single marker's homography rests on
# (with several markers the fit's own residual is used when it is larger)
CORNER_SIGMA_PX = 0.3
MIN_MARKER_PX = 24.0  # a marker smaller than this in the photo measures too coarsely to be used
QUIET_MM = MARKER_MM / MODULES  # the white margin around a marker, painted out with it (one module)
PRINT = 0.005  # the card's printed scale, 1 sigma: checked against its ruler to 0.5 mm over 100 mm
MAX_RESIDUAL = 0.05  # a corner further than this share of a marker's side from the card's homography: not one card
EDGE_MARGIN_MM = 0.3  # an outline this near a painted-out part was cut by the painting: not measured
MIN_STONE_MM = 2.0  # on the card, a component narrower than this (a round of this diameter) is a speck, not a stone
GATE_SIDE = 800  # from this long side the card is first looked for at half the side
CARD_SEGMENT_SIDE = 1024  # the card's photos are segmented this fine: a 3 mm stone is then ~15 pixels across


@dataclass(frozen=True)
class CardLayout:
    """Where each marker of the card lies on the card's plane, in millimetres (origin: marker 0's outer corner)."""

    marker_mm: float = MARKER_MM
    width_mm: float = CARD_W_MM
    height_mm: float = CARD_H_MM

    def origin(self, marker_id: int) -> tuple[float, float]:
        """The top-left corner of marker `marker_id` on the card."""
        m, w, h = self.marker_mm, self.width_mm, self.height_mm
        return {0: (0.0, 0.0), 1: (w - m, 0.0), 2: (w - m, h - m), 3: (0.0, h - m)}[marker_id]

    def corners(self, marker_id: int) -> np.ndarray:
        """The marker's four corners in ArUco's order (top left, top right, bottom right, bottom left)."""
        x, y = self.origin(marker_id)
        m = self.marker_mm
        return np.array([(x, y), (x + m, y), (x + m, y + m), (x, y + m)], np.float64)


CARD = CardLayout()


class PlaneMap:
    """A scale reference's map from an image's pixels to millimetres on the plane the stones lie on (`to_card`,
    a 3x3 homography): the card's (`ScaleReference`), a coin's (`gemid.vision.coin.CoinReference`) or a
    ruler's (`gemid.vision.ruler.RulerReference`)."""

    to_card: np.ndarray

    @property
    def method(self) -> str:
        """How the scale was found, in words (the report's `size.method`)."""
        raise NotImplementedError

    @property
    def consistent(self) -> bool:
        """Whether what was found can be one reference (else no stone is measured); a single object (a coin,
        a ruler) always is."""
        return True

    @property
    def relative_sigma(self) -> float:
        """The scale's relative standard error from locating the reference in the photo."""
        raise NotImplementedError

    @property
    def scale_sigma(self) -> float:
        """The scale's whole relative standard error: locating it, and how true the reference itself is (a
        coin's or a ruler's `relative_sigma` holds both)."""
        return self.relative_sigma

    def cleared(self, points_px: np.ndarray, margin_mm: float = EDGE_MARGIN_MM) -> bool:
        """Whether an outline touches what was painted out before the stones were found (then not measured);
        only the card paints anything out."""
        return False

    def scale_sigma_at(self, at: tuple[float, float]) -> float:
        """`scale_sigma` at image point `at` (the same everywhere, unless the map holds only near the reference)."""
        return self.scale_sigma

    def to_mm(self, points: np.ndarray) -> np.ndarray:
        """Image points (n, 2), in pixels, on the plane in millimetres."""
        pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(pts, self.to_card).reshape(-1, 2)

    def mm_per_px(self, at: tuple[float, float]) -> float:
        """Millimetres per image pixel near point `at` (the mean of the two axes' local scales)."""
        x, y = at
        p = self.to_mm(np.array([(x, y), (x + 1.0, y), (x, y + 1.0)]))
        return float((np.linalg.norm(p[1] - p[0]) + np.linalg.norm(p[2] - p[0])) / 2.0)

    def to_image(self, points_mm: np.ndarray) -> np.ndarray:
        """Points on the plane (n, 2), in mm, in the image's pixels."""
        pts = np.asarray(points_mm, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(pts, np.linalg.inv(self.to_card)).reshape(-1, 2)


@dataclass(frozen=True)
class ScaleReference(PlaneMap):
    """The card found in one image: `to_card` maps the image's pixels to the card's millimetres."""

    to_card: np.ndarray  # 3x3 homography, image pixels (pixel centres) -> card mm
    markers: tuple[int, ...]  # ids found
    corners_px: np.ndarray  # (n, 4, 2) the markers' corners in the image
    marker_px: float  # the markers' mean side in the image, in pixels
    residual_px: float  # RMS distance of the markers' corners from the fitted homography (0 with one marker)
    layout: CardLayout = CARD

    @property
    def method(self) -> str:
        n = len(self.markers)
        return (f"gemid scale card: {n} marker{'s' if n != 1 else ''} of {self.layout.marker_mm:g} mm found, "
                f"{self.marker_px:.0f} px each; the outline is mapped onto the card's plane")

    @property
    def consistent(self) -> bool:
        """The markers found fit one flat card: their corners lie within MAX_RESIDUAL of the marker's side of
        where the fitted homography puts them. Two cards in one photo, or a bent card, do not (a lens's own
        distortion stays well under it)."""
        return self.residual_px <= MAX_RESIDUAL * self.marker_px

    @property
    def relative_sigma(self) -> float:
        """The scale's relative standard error from locating the corners: the corner error over the span the
        homography rests on (one marker's side, or the distance between markers)."""
        sigma = max(CORNER_SIGMA_PX, self.residual_px)
        if len(self.markers) == 1:
            span = self.marker_px
        else:
            centres = self.corners_px.mean(axis=1)
            span = float(np.max(np.linalg.norm(centres[:, None] - centres[None], axis=-1)))
        return sigma * math.sqrt(2.0) / max(span, 1.0)

    @property
    def scale_sigma(self) -> float:
        """The corners' error and the print's scale (PRINT: the card tells the user to check it with a ruler)."""
        return math.hypot(self.relative_sigma, PRINT)

    def scaled(self, k: float) -> ScaleReference:
        """The same card in an image `k` times larger (the photo decoded again at full resolution)."""
        shrink = np.diag([1.0 / k, 1.0 / k, 1.0])
        return ScaleReference(to_card=self.to_card @ shrink, markers=self.markers, corners_px=self.corners_px * k,
                              marker_px=self.marker_px * k, residual_px=self.residual_px * k, layout=self.layout)

    def marker_polygon(self, marker_id: int, grow_mm: float = 0.0) -> np.ndarray:
        """Marker `marker_id`'s square grown by `grow_mm` on each side, in image pixels (4, 2): where the
        homography puts it, found in this photo or not (covered by a finger, half out of the frame)."""
        c = self.layout.corners(marker_id) + np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)]) * grow_mm
        return self.to_image(c)

    def cleared(self, points_px: np.ndarray, margin_mm: float = EDGE_MARGIN_MM) -> bool:
        """Whether any of these image points lies within `margin_mm` of what `clear_card` paints out (outside
        the card, or a marker and its margin): an outline there was cut by the painting."""
        mm = self.to_mm(points_px)
        lay = self.layout
        x, y = mm[:, 0], mm[:, 1]
        if ((x < margin_mm) | (y < margin_mm) | (x > lay.width_mm - margin_mm) | (y > lay.height_mm - margin_mm)).any():
            return True
        grow = QUIET_MM + margin_mm
        for marker in MARKER_IDS:
            ox, oy = lay.origin(marker)
            if ((x > ox - grow) & (x < ox + lay.marker_mm + grow) & (y > oy - grow)
                    & (y < oy + lay.marker_mm + grow)).any():
                return True
        return False

    def card_polygon(self) -> np.ndarray:
        """The card's marker rectangle in image pixels (4, 2), clockwise from marker 0's outer corner."""
        lay = self.layout
        rect = np.array([(0, 0), (lay.width_mm, 0), (lay.width_mm, lay.height_mm), (0, lay.height_mm)], np.float64)
        inv = np.linalg.inv(self.to_card)
        return cv2.perspectiveTransform(rect.reshape(-1, 1, 2), inv).reshape(-1, 2)


@cache
def _detector() -> cv2.aruco.ArucoDetector:
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    return cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), params)


def marker_image(marker_id: int, module_px: int = 1) -> np.ndarray:
    """The marker's black-and-white pattern, MODULES x MODULES modules of `module_px` pixels (255 white)."""
    return cv2.aruco.generateImageMarker(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50),
                                         marker_id, MODULES * module_px, borderBits=1)


def find_card(rgb: np.ndarray, layout: CardLayout = CARD, *, min_marker_px: float = MIN_MARKER_PX) -> ScaleReference | None:
    """The scale card in an RGB image, or None when none of its markers is found clearly enough. A marker
    narrower than `min_marker_px` is not used (the pipeline passes MIN_MARKER_PX in the photo's own pixels:
    a reduced working image's small marker is measured again at full resolution)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if max(grey.shape) >= GATE_SIDE:
        # a first look at half the side, where a noisy phone frame costs the detector a tenth (1.8 instead of
        # 17.8 ms at 1008 x 756 with noise 10/255): most photos hold no card, and end here
        half = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2), interpolation=cv2.INTER_AREA)
        _, quick, _ = _detector().detectMarkers(half)
        if quick is None or not set(quick.ravel().tolist()) & set(MARKER_IDS):
            return None
    corners, ids, _ = _detector().detectMarkers(grey)
    if ids is None:
        return None
    found: dict[int, np.ndarray] = {}
    for c, i in zip(corners, ids.ravel(), strict=True):
        c = c.reshape(4, 2).astype(np.float64)
        side = float(np.mean(np.linalg.norm(c - np.roll(c, 1, axis=0), axis=1)))
        if int(i) in MARKER_IDS and int(i) not in found and side >= min_marker_px:
            found[int(i)] = c
    if not found:
        return None
    keys = tuple(sorted(found))
    img = np.concatenate([found[k] for k in keys])
    card = np.concatenate([layout.corners(k) for k in keys])
    if len(keys) == 1:
        h = cv2.getPerspectiveTransform(img.astype(np.float32), card.astype(np.float32)).astype(np.float64)
        residual = 0.0
    else:
        h, _ = cv2.findHomography(img, card, 0)
        if h is None:
            return None
        back = cv2.perspectiveTransform(card.reshape(-1, 1, 2), np.linalg.inv(h)).reshape(-1, 2)
        residual = float(np.sqrt(np.mean(np.sum((back - img) ** 2, axis=1))))
    stack = np.stack([found[k] for k in keys])
    side_px = float(np.mean(np.linalg.norm(stack - np.roll(stack, 1, axis=1), axis=2)))
    return ScaleReference(to_card=h, markers=keys, corners_px=stack, marker_px=side_px, residual_px=residual,
                          layout=layout)


CARD_SPLITTING = {"side": CARD_SEGMENT_SIDE, "min_share": 0.0}  # gemid.vision.stones.find_stones on the card
# how a photo with a coin or a ruler beside the stones is segmented: as finely as the card's, every component kept
# down to 0.005 % of the frame (a 3 mm stone 25 cm under a phone is ~15 px across in the working image); once the
# reference gives the scale, the pieces narrower than a MIN_STONE_MM round are dropped as specks
BESIDE_SEGMENTATION = {"side": CARD_SEGMENT_SIDE, "min_component": 0.0, "min_area": 0.00005, "frame_filling": False}


def card_segmentation(ref: ScaleReference, shape: tuple[int, ...]) -> dict[str, float | int | bool]:
    """`gemid.vision.segment`'s settings for a photo of the card: finer, keeping every component of at least
    a MIN_STONE_MM round (a tray's 3 mm stone beside a 15 mm one is a stone, not a fleck)."""
    h, w = shape[:2]
    side = min(CARD_SEGMENT_SIDE, max(h, w))
    mm = ref.mm_per_px((w / 2.0, h / 2.0))
    stone_px = math.pi * (MIN_STONE_MM / 2.0 / mm) ** 2
    # the clean-up's opening must not erase the smallest stone: at most half its diameter, at segment's side
    kernel = int(MIN_STONE_MM / 2.0 / mm * side / max(h, w))
    return {"side": side, "min_area": stone_px / float(h * w), "min_component": 0.0, "max_kernel": kernel,
            "frame_filling": False}


def paper_rgb(rgb: np.ndarray, ref: ScaleReference) -> tuple[int, int, int]:
    """The card's paper colour: the median of a ring just outside each marker found (its white margin), read
    in each marker's own box of pixels only (a 12 MP frame needs no full-size mask)."""
    h, w = rgb.shape[:2]
    pixels = []
    for marker in ref.markers:
        outer = ref.marker_polygon(marker, 1.5 * QUIET_MM)
        inner = ref.marker_polygon(marker, 0.5 * QUIET_MM)
        x0, y0 = np.floor(outer.min(axis=0)).astype(int).clip(0, (w - 1, h - 1))
        x1, y1 = np.ceil(outer.max(axis=0)).astype(int).clip(0, (w - 1, h - 1)) + 1
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        ring = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(ring, np.round(outer - (x0, y0)).astype(np.int32), 255)
        cv2.fillConvexPoly(ring, np.round(inner - (x0, y0)).astype(np.int32), 0)
        pixels.append(rgb[y0:y1, x0:x1][ring > 0])
    if not pixels or not sum(len(p) for p in pixels):
        return 255, 255, 255
    return tuple(int(v) for v in np.median(np.concatenate(pixels), axis=0))  # type: ignore[return-value]


def clear_card(rgb: np.ndarray, ref: ScaleReference) -> np.ndarray:
    """A copy of the image with everything outside the card's marker rectangle and all four markers with their
    margins (found or not: a half-covered marker would be a dark "stone") painted in the paper's colour: the
    stones on the card are then all that stands out from a plain background."""
    out = rgb.copy()
    fill = paper_rgb(rgb, ref)
    keep = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillConvexPoly(keep, np.round(ref.card_polygon()).astype(np.int32), 255)
    for marker in MARKER_IDS:
        cv2.fillConvexPoly(keep, np.round(ref.marker_polygon(marker, QUIET_MM)).astype(np.int32), 0)
    grow = 1.0 + 2.0 / MODULES  # the markers found, as found, with a module of margin (where the fit is off)
    for quad in ref.corners_px:
        centre = quad.mean(axis=0)
        cv2.fillConvexPoly(keep, np.round(centre + (quad - centre) * grow).astype(np.int32), 0)
    out[keep == 0] = fill
    return out
