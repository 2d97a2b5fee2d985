"""The thin dark marks of a photo, for `gemid.vision.ruler`: what a ruler's ticks are among, each with its
centre, direction, length and width from its second moments, and the directions they run in most."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

TICK_KERNEL_PX = 7  # the black-hat square: ticks up to ~6 px wide; a wider shadow along the edge is not kept
TICK_CONTRAST = 40  # a tick's darkness below its surroundings (8-bit): printed ink on a ruler is 100-200
ELONGATED = 2.5  # a tick's length over its width, at least
MIN_TICK_PX = 5.0  # a tick shorter than this is a speck of noise
ANGLE_TOL_DEG = 4.0  # the directions looked in are at least twice this apart
TICK_OPEN_PX = 9  # the line the marks are opened by: a tick is at least 3 mm at 3.5 px a mm
MAX_COMPONENTS = 20000  # a photo with more dark specks than this is texture, not a ruler on a desk


@dataclass(frozen=True)
class Marks:
    """The elongated dark marks of an image: centre, direction (radians in [0, pi)), length and width, in pixels."""

    centre: np.ndarray  # (n, 2)
    angle: np.ndarray
    length: np.ndarray
    width: np.ndarray


def dark_lines(rgb: np.ndarray) -> np.ndarray:
    """What is darker than its surroundings by TICK_CONTRAST and narrower than TICK_KERNEL_PX (0/1)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (TICK_KERNEL_PX, TICK_KERNEL_PX))
    return (cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel) >= TICK_CONTRAST).astype(np.uint8)


def opened(on: np.ndarray, angle: float) -> np.ndarray:
    """`on` opened by a line of TICK_OPEN_PX in direction `angle`: what holds such a line survives."""
    r = TICK_OPEN_PX // 2
    kernel = np.zeros((2 * r + 1, 2 * r + 1), np.uint8)
    dx, dy = r * math.cos(angle), r * math.sin(angle)
    cv2.line(kernel, (round(r - dx), round(r - dy)), (round(r + dx), round(r + dy)), 1, 1)
    return cv2.morphologyEx(on, cv2.MORPH_OPEN, kernel)


def find_marks(on: np.ndarray) -> Marks | None:
    """The elongated components of `on`, with their second moments (each from its own box: the image is mostly
    empty paper, and its few hundred marks are cheaper one by one than the whole frame at once)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(on, connectivity=8)
    if n <= 1 or n > MAX_COMPONENTS:
        return None
    x, y, w, h, area = (stats[:, i] for i in range(5))
    # a mark at least MIN_TICK_PX long has a box at least MIN_TICK_PX / sqrt(2) on its longer side
    candidates = np.nonzero((area >= 3) & (np.maximum(w, h) >= MIN_TICK_PX / math.sqrt(2.0)))[0]
    candidates = candidates[candidates > 0]
    if not len(candidates):
        return None
    rows = []
    for i in candidates:
        m = cv2.moments((labels[y[i]:y[i] + h[i], x[i]:x[i] + w[i]] == i).astype(np.uint8), binaryImage=True)
        rows.append((x[i] + m["m10"] / m["m00"], y[i] + m["m01"] / m["m00"], m["mu20"] / m["m00"] + 1.0 / 12.0,
                     m["mu02"] / m["m00"] + 1.0 / 12.0, m["mu11"] / m["m00"]))  # + a pixel's own extent
    mx, my, sxx, syy, sxy = np.array(rows, np.float64).T
    half = np.sqrt(((sxx - syy) / 2.0) ** 2 + sxy**2)
    big_var, small_var = (sxx + syy) / 2.0 + half, np.maximum((sxx + syy) / 2.0 - half, 1e-6)
    length, width = np.sqrt(12.0 * big_var), np.sqrt(12.0 * small_var)
    keep = (length >= MIN_TICK_PX) & (length >= ELONGATED * width)
    if not keep.any():
        return None
    angle = np.mod(0.5 * np.arctan2(2.0 * sxy, sxx - syy), np.pi)
    return Marks(centre=np.stack([mx, my], axis=1)[keep], angle=angle[keep], length=length[keep], width=width[keep])


def directions(angles: np.ndarray, length: np.ndarray, most: int = 2) -> list[float]:
    """The directions to look for ticks in (radians): the `most` commonest directions of the marks, each
    weighted by its length, and the direction across each (ticks joined by the ruler's edge run across it)."""
    degrees = np.round(np.degrees(angles)).astype(int) % 180
    bins = np.bincount(degrees, weights=length, minlength=180)
    spread = int(ANGLE_TOL_DEG)
    smooth = sum(np.roll(bins, s) for s in range(-spread, spread + 1))
    peaks: list[int] = []
    for peak in np.argsort(-smooth):
        if smooth[peak] <= 0 or len(peaks) == most:
            break
        if all(min(abs(peak - q), 180 - abs(peak - q)) >= 2 * ANGLE_TOL_DEG for q in peaks):
            peaks.append(int(peak))
    out: list[float] = []
    for peak in peaks:
        for deg in (peak, (peak + 90) % 180):
            if all(min(abs(deg - q), 180 - abs(deg - q)) >= ANGLE_TOL_DEG for q in (np.degrees(out) if out else [])):
                out.append(math.radians(deg))
    return out
