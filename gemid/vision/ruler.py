"""A millimetre ruler as the scale: a desk without the printed card lays a ruler beside the stones and says so
(`ruler`), and each stone's length and width come from its ticks (issue 32: "a printed card with a known
square, a ruler, or a coin size the user enters").

Why it is asked for rather than looked for in every photo: a row of equally spaced dark lines is also a striped
cloth, a tray's grid or a barcode, and a size taken from one of them unasked would be wrong without warning.
Asked for, the ruler is found by its millimetre pattern and nothing else:

- its ticks are thin dark lines (`gemid.vision.ruler_marks`: what is darker than its surroundings and
  narrower than a few pixels, opened by a short line along the ticks so that the ruler's edge, which joins
  them, is cut), elongated, within FAN_DEG of one direction (in perspective they fan out), and starting from
  one straight edge (their ends on one line within BASE_TOL_PX);
- their positions along that edge fit equal steps seen in perspective (`_Steps`: u = (a + b k) / (1 + c k) over
  the tick numbers k, a tick hidden under a stone simply skipped), at least MIN_TICKS of them over MIN_SPAN_MM
  steps, most of the ticks between the first and the last found (MIN_DENSITY) and few marks half way between
  them (HALF_STEPS: else the step fitted spans two ticks);
- every tenth tick is longer than the others (CM_LONGER), every fifth shorter than the tenth (HALF_SHORTER) and
  the ticks between are alike (PLAIN_ALIKE): the centimetre marks that make a step one millimetre. An inch
  scale's sixteenths fail this (its eighths and quarters stand out), so do stripes and grids, which have no long
  marks, and every other tick of a millimetre scale (its fifth is a centimetre too); a ruler in tenths of an
  inch would pass it and read 2.54 times too large (a limit stated in the README).

The map onto the ruler's plane is a homography: along the ruler the fitted steps (their perspective included),
across it the same scale as along it at the ruler's middle. Its uncertainty adds, in quadrature: the steps'
fit (its standard error), a ruler's print (RULER_TOLERANCE), the ticks' face above the stones' surface
(RULER_FACE_MM over the camera's distance Z, from the step and a phone's lens, FOCAL) and, per stone, the
perspective across the ruler the map leaves out: 2 y sin(a) / Z at y mm from its edge (a length along a slant
is seen as the inverse square of the distance), a the slant across the ruler that its ticks show (square to
it on the desk, in the photo they turn towards a vanishing point: by tan(a) / f a pixel along the ruler), at
least HANDHELD_TILT_DEG; and the foreshortening 1 - cos of the whole slant. A ruler seen more than
MAX_SLANT_DEG slanted is refused.

The ruler's own pieces in the segmentation (its ticks, numbers, body and other scale) are not stones
(`RulerReference.stones`), and the report asks for the stones 5 mm clear of it: nearer, a stone and a ruler
that stands out from the paper can be segmented as one object, which is then taken for the ruler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from gemid.vision.coin import FOCAL, HANDHELD_TILT_DEG
from gemid.vision.ruler_marks import Marks, dark_lines, directions, find_marks, opened
from gemid.vision.scale import MIN_STONE_MM, PlaneMap
from gemid.vision.segment import Segmentation

FAN_DEG = 15.0  # a ruler's ticks lie within this of their mean direction (in perspective they fan out)
EDGE_SLOPE = 0.3  # the ruler's edge is within this slope (~17°) of square to the ticks' mean direction
BASE_TOL_PX = 3.0  # the ticks start from one edge within this (plus 0.15 of their median length)
STEP_TOL = 0.22  # a tick further than this share of a step from its place in the fit is not one of them
MIN_TICKS = 15
HALF_STEPS = 0.3  # this share of marks half way between the fitted ticks: the step fitted spans two ticks
MIN_DENSITY = 0.6  # of the ticks between the first and the last fitted, at least this share are found
MIN_SPAN_MM = 20  # the ticks fitted span at least this many millimetre steps: two centimetre marks
MIN_PX_PER_MM = 3.5  # ticks closer than this in the photo are not resolved one from the next
PLAIN_ALIKE = 1.2  # the millimetre ticks' median lengths, tick by tick within a centimetre, differ at most this
HALF_SHORTER = 0.9  # the half-centimetre marks' median length over the centimetre marks', at most
CM_LONGER = 1.25  # the centimetre marks' median length over the millimetre marks', at least
RULER_TOLERANCE = 0.002  # a printed or etched ruler's scale, 1 sigma: 0.3 mm over 150 mm
RULER_FACE_MM = 2.0  # the ticks' face above the stones' surface, 1 sigma: a steel rule's ~1 mm to a wooden one's ~4
NUMBERS_MM = 8.0  # the numbers and the body beyond the longest tick that are part of the ruler, not stones
RULER_WIDE_MM = 45.0  # a ruler is at most this wide: parallel marks within it from the millimetre edge are its own
FAR_TICKS = 12  # marks ending on one line across the ruler: its other scale
QUIET_MM = 3.0  # past the far marks, the ruler's numbers and edge
RULER_LONG_MM = 40.0  # an object longer than this beside the ruler is the ruler's body (or an edge of it)

MAX_SLANT_DEG = 20.0  # a ruler seen more slanted than this is refused, as a coin is (~20°)
RULER_METHOD = "a millimetre ruler"  # a size's method when no ruler was found
NO_RULER = ("no millimetre ruler was found: lay it flat beside the stones, at least 5 mm from them, its millimetre "
            "edge in the photo with at least 2 cm of its ticks clear, and photograph it sharp, from above and "
            "near enough for its millimetre ticks to be seen apart")
NOT_METRIC = ("a row of ticks was found but not a millimetre scale (every tenth tick longer, every fifth between): "
              "photograph the ruler's millimetre edge, sharp and nearer (an inch scale cannot be used)")
TILTED = "the ruler looks tilted: photograph the stones and the ruler from straight above"
TOO_FINE = ("the ruler's millimetre ticks are too close together in the photo to be told apart: photograph the "
            "stones and the ruler from nearer")


@dataclass(frozen=True)
class RulerReference(PlaneMap):
    """The ruler found in one image: `to_card` maps the image's pixels to millimetres on its plane, the ruler's
    middle at the origin and its ticks along x."""

    to_card: np.ndarray  # 3x3 homography: the steps' perspective along the ruler
    px_per_mm: float  # the fitted step, in the image's pixels
    step_sigma: float  # the step's relative standard error from the fit
    ticks: int  # the ticks the step was fitted on
    slant: float  # sin of the slant along the ruler that the steps' change shows
    slant_across: float  # sin of the slant across the ruler that the ticks' turning shows
    band_px: np.ndarray  # (4, 2) the corners of the ticks and numbers in the image: the ruler, not a stone
    frame_px: float  # the image's long side: with FOCAL, how far the camera was

    @property
    def method(self) -> str:
        return (f"millimetre ruler: {self.ticks} ticks fitted, {self.px_per_mm:.2f} px per mm at its middle; the "
                "outline is mapped onto the ruler's plane (anything on or touching the ruler is taken for it)")

    @property
    def distance_mm(self) -> float:
        """How far the camera was, from the ticks' size in the frame and a phone's lens (FOCAL)."""
        return FOCAL * self.frame_px / self.px_per_mm

    @property
    def relative_sigma(self) -> float:
        """The step's fit, the ruler's print, and its face above the stones' surface (RULER_FACE_MM: nearer
        the camera, so the ticks read larger and the stones smaller, by the face's height over the distance)."""
        return math.hypot(self.step_sigma, RULER_TOLERANCE, RULER_FACE_MM / self.distance_mm)

    def scale_sigma_at(self, at: tuple[float, float]) -> float:
        """The scale's relative error at image point `at`: the ruler's own and the perspective across the ruler
        at the point's distance from its edge (the perspective along it is in the map; module docstring)."""
        floor = math.sin(math.radians(HANDHELD_TILT_DEG))
        tilt = max(self.slant_across, floor)  # the slant across the ruler, at least what a hand does not see
        across = abs(float(self.to_mm(np.array([at]))[0, 1]))
        # a length along the slant changes as the distance's inverse square: twice the distance's own change
        perspective = 2.0 * across * tilt / self.distance_mm
        whole = min(1.0, max(math.hypot(self.slant, self.slant_across), floor))  # the camera's whole slant
        return math.hypot(self.scale_sigma, perspective, 1.0 - math.sqrt(1.0 - whole * whole))

    def stones(self, stones: list[Segmentation], k: float = 1.0) -> tuple[list[Segmentation], list[Segmentation]]:
        """`stones` (found on an image `k` times smaller than this reference's) split into the stones beside the
        ruler, each at least a MIN_STONE_MM round at its scale, and the pieces of the ruler (`split_off`)."""
        return split_off(stones, self.band_px, k, self.px_per_mm)


def split_off(stones: list[Segmentation], band_px: np.ndarray, k: float = 1.0,
              px_per_mm: float | None = None) -> tuple[list[Segmentation], list[Segmentation]]:
    """`stones` (found on an image `k` times smaller than the ruler's) split into the stones and the ruler's
    pieces: a fifth of an object on the ticks' band `band_px` and, with the ruler's scale, an object longer
    than any stone (RULER_LONG_MM); with it too, the stones narrower than a MIN_STONE_MM round are specks."""
    found = [s for s in stones if s.found]
    if not found:
        return [], []
    band = np.zeros(found[0].mask.shape, np.uint8)
    cv2.fillConvexPoly(band, np.round(band_px / k).astype(np.int32), 1)
    least = math.pi * (MIN_STONE_MM / 2.0 * px_per_mm / k) ** 2 if px_per_mm else 0.0
    kept, ruler = [], []
    for s in found:
        mask = s.mask > 0
        n = int(np.count_nonzero(mask))
        if n == 0:
            continue
        (_, _), (a, b), _ = cv2.minAreaRect(cv2.findNonZero(mask.astype(np.uint8)).astype(np.float32))
        if np.count_nonzero(band[mask]) >= 0.2 * n or (px_per_mm and max(a, b) * k / px_per_mm > RULER_LONG_MM):
            ruler.append(s)
        elif n >= least:
            kept.append(s)
    return kept, ruler


@dataclass(frozen=True)
class _Steps:
    """Ticks at equal steps on the ruler seen in perspective: u = (a + b k) / (1 + c k) along it, k the tick
    number (a straight line's points under a camera's projection)."""

    k: np.ndarray  # each mark's tick number
    on: np.ndarray  # whether the mark sits on its tick (within STEP_TOL of a step)
    a: float
    b: float
    c: float
    sigma: float  # the residual of the fit, pixels

    def at(self, k: np.ndarray | float) -> np.ndarray:
        return (self.a + self.b * np.asarray(k, np.float64)) / (1.0 + self.c * np.asarray(k, np.float64))

    def step(self, k: np.ndarray | float) -> np.ndarray:
        """The step in pixels at tick k: du/dk."""
        return (self.b - self.a * self.c) / (1.0 + self.c * np.asarray(k, np.float64)) ** 2

    def number(self, u: np.ndarray) -> np.ndarray:
        """Tick number (real) at position u."""
        return (u - self.a) / (self.b - self.c * u)


@dataclass(frozen=True)
class RulerSearch:
    """What a photo said to hold a ruler shows: the reference, or why none (`reason`) and, when a row of ticks
    was found that is not a millimetre scale's (an inch scale, a ruler seen too slanted), where it lies
    (`band_px`: its pieces are still not stones)."""

    ref: RulerReference | None
    reason: str | None = None
    band_px: np.ndarray | None = None


def find_ruler(rgb: np.ndarray) -> RulerReference | str:
    """The millimetre ruler in `rgb`, or why none can be used (`search_ruler`'s reference or reason)."""
    found = search_ruler(rgb)
    return found.ref if found.ref is not None else str(found.reason)


def search_ruler(rgb: np.ndarray) -> RulerSearch:
    """The millimetre ruler in `rgb` (the photo at its finest: ticks need ~4 pixels a millimetre), or why none
    can be used (a sentence for the report's size reason) and where a row of other ticks lies.

    The ruler's own edge (a shadow, a bevel) is a line the ticks start from, joining them into one dark
    component; so each direction the dark marks suggest (and the one across it: the joined ticks' own) is
    tried, commonest first, with the marks opened by a line along it (`ruler_marks.opened`), which keeps the
    ticks and cuts the edge, until one holds a millimetre scale."""
    on = dark_lines(rgb)
    first = find_marks(on)
    if first is None:
        return RulerSearch(None, NO_RULER)
    best: tuple[int, RulerSearch] = (0, RulerSearch(None, NO_RULER))
    for angle in directions(first.angle, first.length):
        marks = find_marks(opened(on, angle))
        if marks is None:
            continue
        for side in (1.0, -1.0):
            found = _ruler_along(marks, angle, side, rgb.shape)
            if found is None:
                continue
            n, ref, band = found
            if isinstance(ref, RulerReference):
                n += 1 << 20  # a metric ruler wins over any count of ticks without centimetre marks
            if n > best[0]:
                best = (n, RulerSearch(ref, None, band) if isinstance(ref, RulerReference) else
                        RulerSearch(None, ref, band))
        if best[1].ref is not None:  # the commonest direction first: a millimetre scale found there is the ruler
            break
    return best[1]


def _ruler_along(marks: Marks, angle: float, side: float,
                 shape: tuple[int, ...]) -> tuple[int, RulerReference | str, np.ndarray | None] | None:
    """The ruler whose ticks run in direction `angle`, their bases on the `side` end (+1: the end towards
    -direction): the count of ticks fitted, the reference (or why not) and the band of the ticks' row (None
    when too fine to tell); None when there is no row of ticks."""
    near = np.abs(np.angle(np.exp(2j * (marks.angle - angle)))) <= np.radians(FAN_DEG)
    if np.count_nonzero(near) < MIN_TICKS:
        return None
    angle = float(np.angle(np.mean(np.exp(2j * marks.angle[near]))) / 2.0)  # their mean direction
    d = np.array([math.cos(angle), math.sin(angle)])
    c, length = marks.centre[near], marks.length[near]
    own = np.stack([np.cos(marks.angle[near]), np.sin(marks.angle[near])], axis=1)
    own *= np.sign(own @ d)[:, None]  # each mark's own direction, the same way as d
    # each mark's end on the ruler's edge, along its own direction: in perspective the ticks fan out
    end = c - side * (length / 2.0)[:, None] * own
    found = _base_line(end, d, length)
    if found is None:
        return None
    group, along = found
    d = np.array([along[1], -along[0]]) * np.sign(along[1] * d[0] - along[0] * d[1])  # across the edge, as d
    u, base = end @ along, end @ d
    everything = (c @ along, c @ d, length)  # every mark in this direction: the ruler's other scale is among them
    turn = np.angle(np.exp(2j * (marks.angle[near] - angle)))[group] / 2.0  # each mark's direction, from the mean
    u, base, length = u[group], base[group], length[group]
    fit = _fit_steps(u)
    if fit is None:
        return None
    ticks = fit.k[fit.on]
    n = len(np.unique(ticks))
    lo, hi = float(ticks.min()), float(ticks.max())
    mid = (lo + hi) / 2.0
    step = float(fit.step(mid))
    if step <= 0.0:
        return None
    if step < MIN_PX_PER_MM:
        return n, TOO_FINE, None
    between = np.abs(np.mod(fit.number(u), 1.0) - 0.5) <= STEP_TOL  # marks half way between the fitted ticks
    if np.count_nonzero(between & (u >= fit.at(lo)) & (u <= fit.at(hi))) >= HALF_STEPS * n:
        return None  # the steps fitted are two of the ruler's: not its scale
    if hi - lo < MIN_SPAN_MM or n < MIN_DENSITY * (hi - lo + 1):  # a ruler's ticks are seen one after another
        return None
    edge = float(np.median(base[fit.on]))
    ends = (float(fit.at(lo - 1.0)), float(fit.at(hi + 1.0)))
    reach = _reach(everything, ends, edge, side, step, float(np.max(length[fit.on])))
    ends = _extent(everything, ends, edge, side, reach, step)
    outer, inner = edge - side * 2.0, edge + side * reach
    band = np.array([ends[0] * along + outer * d, ends[1] * along + outer * d,
                     ends[1] * along + inner * d, ends[0] * along + inner * d])
    if not _metric(ticks, length[fit.on]):
        return n, NOT_METRIC, band
    # the step's relative change per millimetre along the ruler is 2 sin(slant) / Z, Z = the camera's distance
    # (a length along the slant is seen at the distance's inverse square: nearer, and less foreshortened)
    change = abs(2.0 * fit.c / (1.0 + fit.c * mid))
    focal = FOCAL * float(max(shape[:2]))
    slant = min(1.0, change * focal / step / 2.0)
    # slanted across the ruler, its ticks (square to it on the desk) run towards a vanishing point f / tan(a) away:
    # their direction turns by tan(a) / f radians a pixel along the ruler
    tan_across = abs(float(np.polyfit(u[fit.on], turn[fit.on], 1)[0])) * focal
    across = tan_across / math.hypot(1.0, tan_across)
    if math.hypot(slant, across) > math.sin(math.radians(MAX_SLANT_DEG)):
        return n, TILTED, band
    spread = float(np.sum((ticks - ticks.mean()) ** 2)) if n > 1 else 1.0
    return n, RulerReference(to_card=_plane(fit, mid, edge, side, along, d), px_per_mm=step,
                             step_sigma=fit.sigma / math.sqrt(spread) / step, ticks=n, slant=slant,
                             slant_across=across, band_px=band, frame_px=float(max(shape[:2]))), band


def _reach(marks: tuple[np.ndarray, np.ndarray, np.ndarray], ends: tuple[float, float], edge: float, side: float,
           step: float, longest: float) -> float:
    """How far the ruler reaches from its millimetre edge, in pixels: past its longest tick and numbers
    (NUMBERS_MM), and past another scale along its other edge (an inch scale's ticks: at least FAR_TICKS
    parallel marks ending on one line within RULER_WIDE_MM; a stone's parallel facet edges beside the ruler
    are not so many, nor so aligned)."""
    u, v, length = marks
    far = side * (v - edge) + length / 2.0  # each mark's end away from the millimetre edge
    beside = (u >= min(ends)) & (u <= max(ends)) & (far > longest) & (far <= RULER_WIDE_MM * step)
    reach = longest + NUMBERS_MM * step
    ends_far = np.sort(far[beside])
    if len(ends_far) >= FAR_TICKS:
        tol = BASE_TOL_PX + 0.5 * step
        j = np.searchsorted(ends_far, ends_far + 2.0 * tol, side="right")
        rows = np.nonzero(j - np.arange(len(ends_far)) >= FAR_TICKS)[0]
        if len(rows):
            reach = max(reach, float(ends_far[j[rows[-1]] - 1]) + QUIET_MM * step)
    return reach


def _extent(marks: tuple[np.ndarray, np.ndarray, np.ndarray], ends: tuple[float, float], edge: float, side: float,
            reach: float, step: float) -> tuple[float, float]:
    """The ruler's ends along it, in pixels: past the ticks fitted, as far as its marks go on without a gap of
    QUIET_MM (ticks not fitted, numbers, the other scale), and QUIET_MM more."""
    u, v, _ = marks
    into = side * (v - edge)
    on = np.sort(u[(into > -QUIET_MM * step) & (into <= reach)])
    lo, hi = min(ends), max(ends)
    gap = QUIET_MM * step
    for x in on[on > hi]:
        if x - hi > gap:
            break
        hi = float(x)
    for x in on[on < lo][::-1]:
        if lo - x > gap:
            break
        lo = float(x)
    return lo - gap, hi + gap


def _plane(fit: _Steps, mid: float, edge: float, side: float, along: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The homography from the image to the ruler's plane in mm: x the tick number from the ticks' middle
    (the perspective along the ruler that the steps show), y from the ticks' edge into the ruler, at the same
    scale as x there (the perspective across the ruler is in the uncertainty)."""
    a, b, c = fit.a, fit.b, fit.c
    lam = 1.0 + c * mid  # across the ruler, x's scale at the middle: (b - c a) / (b - c u), u = (a + b mid) / lam
    in_ruler = np.array([[lam, 0.0, -a - mid * b],
                         [0.0, side * lam, -side * lam * edge],
                         [-c, 0.0, b]])
    rotate = np.eye(3)
    rotate[0, :2], rotate[1, :2] = along, d
    h = in_ruler @ rotate
    return h / h[2, 2]


def _base_line(end: np.ndarray, d: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The marks whose ends `end` lie on one straight line (the ruler's edge), and that line's unit direction.
    In perspective the edge need not be square to the ticks' mean direction `d`: every slope up to EDGE_SLOPE
    is tried, the one whose band (2 tol wide) holds the most ends kept, and the line refitted through them."""
    if len(end) < MIN_TICKS:
        return None
    across = np.array([-d[1], d[0]])
    u, base = end @ across, end @ d
    tol = BASE_TOL_PX + 0.15 * float(np.median(length))
    best = (0, 0.0, 0.0)
    for slope in np.linspace(-EDGE_SLOPE, EDGE_SLOPE, 121):
        b = np.sort(base - slope * u)
        j = np.searchsorted(b, b + 2.0 * tol, side="right")
        i = int(np.argmax(j - np.arange(len(b))))
        if j[i] - i > best[0]:
            best = (int(j[i] - i), float(slope), float(np.median(b[i:j[i]])))
    count, slope, offset = best
    if count < MIN_TICKS:
        return None
    group = np.nonzero(np.abs(base - slope * u - offset) <= tol)[0]
    for _ in range(2):
        slope, offset = np.polyfit(u[group], base[group], 1)
        group = np.nonzero(np.abs(base - (offset + slope * u)) <= tol)[0]
        if len(group) < MIN_TICKS:
            return None
    along = across + slope * d
    return group, along / np.linalg.norm(along)


def _fit_steps(u: np.ndarray) -> _Steps | None:
    """Equal steps through the marks' positions `u`, seen in perspective (`_Steps`): started from the median gap
    near the marks' middle and widened, refitted each time on one mark per tick."""
    gaps = np.diff(np.sort(u))
    gaps = gaps[gaps > 1.0]
    if len(gaps) < MIN_TICKS - 1:
        return None
    middle = float(u[np.argmin(np.abs(u - np.median(u)))])  # a mark near the middle: tick 0
    fit = _Steps(k=np.zeros(0), on=np.zeros(0, bool), a=middle, b=float(np.median(gaps)), c=0.0, sigma=0.0)
    window = 10.0
    for _ in range(8):
        k = np.round(fit.number(u))
        on = (np.abs(u - fit.at(k)) <= STEP_TOL * np.abs(fit.step(k))) & (np.abs(k) <= window)
        ks, first = np.unique(k[on], return_index=True)  # one mark per tick
        us = u[on][first]
        if len(ks) < (MIN_TICKS if window > 40 else 5):  # the first, narrow windows hold a few ticks
            return None
        if len(ks) >= 10:  # u (1 + c k) = a + b k: linear in a, b, c
            (a, b, c), *_ = np.linalg.lstsq(np.stack([np.ones_like(ks), ks, -ks * us], axis=1), us, rcond=None)
        else:
            (a, b), *_ = np.linalg.lstsq(np.stack([np.ones_like(ks), ks], axis=1), us, rcond=None)
            c = 0.0
        if b <= 1.0 or np.any(1.0 + c * ks <= 0.1):
            return None
        fit = _Steps(k=k, on=on, a=float(a), b=float(b), c=float(c), sigma=0.0)
        window *= 2.0
    k = np.round(fit.number(u))
    on = np.abs(u - fit.at(k)) <= STEP_TOL * np.abs(fit.step(k))
    ks, first = np.unique(k[on], return_index=True)
    if len(ks) < MIN_TICKS:
        return None
    resid = u[on][first] - fit.at(ks)
    sigma = float(np.sqrt(np.sum(resid**2) / max(1, len(ks) - 3)))
    keep = np.zeros(len(u), bool)
    keep[np.nonzero(on)[0][first]] = True  # one mark per tick: a tick's second edge or its number is not counted
    return _Steps(k=k, on=keep, a=fit.a, b=fit.b, c=fit.c, sigma=sigma)


def _metric(k: np.ndarray, length: np.ndarray) -> bool:
    """Whether every tenth tick is clearly longer than the millimetre ticks (CM_LONGER), at least two of them,
    the millimetre ticks between are alike (PLAIN_ALIKE) and the fifth between is shorter than the tenth: the
    centimetre marks. An inch scale's sixteenths fail the second (its eighths and quarters are longer than the
    sixteenths between them); every other tick of a millimetre scale (a step of 2 mm) fails the third, its
    fifth being a centimetre mark too."""
    residue = np.mod(k, 10).astype(int)
    medians = np.array([np.median(length[residue == r]) if np.any(residue == r) else np.nan for r in range(10)])
    cm = int(np.nanargmax(medians))
    plain = ~np.isin(residue, (cm, (cm + 5) % 10))
    if np.count_nonzero(residue == cm) < 2 or not plain.any():
        return False
    spread = medians[[r for r in range(10) if r not in (cm, (cm + 5) % 10)]]
    spread = spread[~np.isnan(spread)]
    half = medians[(cm + 5) % 10]  # the half centimetre: shorter than the centimetre (a step of 2 mm has two cms)
    return bool(medians[cm] >= CM_LONGER * float(np.median(length[plain]))
                and spread.max() <= PLAIN_ALIKE * spread.min()
                and (np.isnan(half) or half <= HALF_SHORTER * medians[cm]))
