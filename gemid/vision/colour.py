"""Colour grade of the stone: white balance, robust body colour in CIELAB, hue / tone / saturation.

1. **White reference.** A neutral reference card in the frame wins (it is there on purpose). Otherwise the
   background is used when it is near-neutral: its chromaticity must lie within 0.008 u'v' of the daylight
   locus between 4000 K and 12000 K, which a white/grey/black-ish paper or cloth under daylight-like light
   does and a coloured cloth does not. Clipped (255) and very dark (L* < 15) pixels carry no chromaticity
   and are ignored. The correction is a Bradford adaptation from the measured white to D65; it preserves
   the luminance of neutrals, so tone is not shifted. With no usable reference the colour is reported
   uncorrected (white_balance "none") with a lower confidence.
2. **Body colour.** Stone pixels from the segmentation mask, eroded by 4 % of the stone's diameter (no
   background bleed at the girdle), minus clipped specular highlights (and a one-pixel halo). Face-up, a
   transparent stone shows its body colour in facets of middling brightness, with dark extinction facets
   and white reflections / scintillation on either side. We therefore take L* as the median over the stone
   and a*, b* as the medians over the central 40 % of pixels by lightness (ranks 30-70 %); whitish bright
   outliers (L* well above the median with half the chroma: reflections, windows) are removed first. The
   median has a 50 % breakdown point, so inclusions, reflections and extinction covering less than about
   a third of the face cannot move the estimate far.
3. **Grades** from `gemid.vision.colour_scales` (the one Lab -> grade mapping, shared with the renderer's
   truth).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gemid.report import ColourBand, ColourGrade, ScaleValue
from gemid.vision import colour_scales
from gemid.vision.colorimetry import (
    D65_XYZ,
    lab_to_rgb8,
    linear_rgb_adaptation,
    linear_to_lab,
    srgb8_to_linear,
    xy_to_xyz,
    xyz_to_xy,
)
from gemid.vision.segment import Segmentation
from gemid.vision.stone_area import CLIP, StoneArea, channel_max, channel_min, is_neutral, locate, white_point

DZ_CAVEAT = (
    "Preliminary band from a photo only: D-Z grading needs master stones under standard daylight, "
    "face down; white balance and surroundings shift yellowness by several grades."
)

__all__ = ["ColourMeasurement", "Reference", "grade_colour", "measure_colour"]


@dataclass(frozen=True)
class Reference:
    """The neutral white reference used for white balance."""

    source: str  # "card" | "background"
    xy: tuple[float, float]  # measured chromaticity of the reference
    cct: float  # nearest daylight colour temperature (K)
    duv: float  # distance from the daylight locus
    n_pixels: int
    box: tuple[int, int, int, int] | None = None  # card box (x, y, w, h) in original-image pixels


@dataclass(frozen=True)
class ColourMeasurement:
    lab: tuple[float, float, float]
    white_balance: str  # "card" | "background" | "none"
    reference: Reference | None
    n_pixels: int
    hue_spread: float  # circular spread of per-pixel hue around the body hue (degrees)
    clipped_fraction: float
    stone_found: bool
    background_visible: bool


def measure_colour(rgb: np.ndarray, seg: Segmentation, area: StoneArea | None = None) -> ColourMeasurement | None:
    """The body colour (CIELAB D65) and how it was white-balanced; None when there is nothing to measure.

    `area` is `locate(rgb, seg)` when the caller already has it (the pipeline shares it with clarity)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("grade_colour expects an RGB uint8 image of shape (H, W, 3)")
    if min(rgb.shape[:2]) < 16:
        return None
    area = area if area is not None else locate(rgb, seg)
    small, stone, stone_found = area.small, area.stone, area.found
    card_inner, card_box = area.card, area.card_box
    h, w = small.shape[:2]
    mask = stone.astype(np.uint8) * 255

    # the stone's pixels: eroded mask, or the image centre when no stone could be separated
    if stone_found:
        d = 2.0 * np.sqrt(stone.sum() / np.pi)
        k = max(1, int(round(0.04 * d)))
        core = cv2.erode(stone.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
        core = core > 0 if core.any() else stone
    else:
        core = np.zeros((h, w), bool)
        core[int(0.1 * h) : int(0.9 * h), int(0.1 * w) : int(0.9 * w)] = True

    # white reference: card first, then a neutral, visible background
    reference = None
    if card_inner is not None:
        white = white_point(small[card_inner])
        if white is not None:
            ok, cct, duv = is_neutral(white[0])
            reference = Reference("card", white[0], cct, duv, white[1], card_box)
    bg_pixels = None
    background_visible = False
    if stone_found:
        dil = max(2, int(0.02 * max(h, w)))
        around = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=dil) > 0
        if area.card_region is not None:
            around |= cv2.dilate(area.card_region.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=dil) > 0
        bg = ~around
        background_visible = bool(bg.mean() > 0.05 and seg.border_is_background >= 0.5)
        bg_pixels = small[bg] if background_visible else None
    if reference is None and bg_pixels is not None:
        white = white_point(bg_pixels)
        if white is not None:
            ok, cct, duv = is_neutral(white[0])
            if ok:
                reference = Reference("background", white[0], cct, duv, white[1])
        elif (channel_min(bg_pixels) >= CLIP).mean() > 0.8:
            # a blown-out white background: the photo was exposed/balanced to make it pure white
            reference = Reference("background", xyz_to_xy(D65_XYZ), 6500.0, 0.0, int(len(bg_pixels)))

    # stone pixels in linear light, white-balanced. Clipped pixels (and a one-pixel halo) have no reliable
    # chromaticity, but they are certainly light: they count in the lightness ranks, not in the hue.
    clipped = (channel_max(small) >= CLIP).astype(np.uint8)
    halo = cv2.dilate(clipped, np.ones((3, 3), np.uint8), iterations=1) > 0
    n_core = int(core.sum())
    if n_core < 5:
        return None
    clipped_fraction = float((core & halo).sum() / n_core)
    lin = srgb8_to_linear(small[core])
    if reference is not None:
        M = linear_rgb_adaptation(xy_to_xyz(reference.xy), D65_XYZ)
        lin = lin @ M.T
    lab = linear_to_lab(np.clip(lin, 0.0, None))
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    C = np.hypot(a, b)
    good = ~halo[core]
    if good.sum() < 10:
        good = np.ones_like(good)

    # whitish outliers (reflections, windows): much lighter than the body and with much less chroma
    L1, C1 = float(np.median(L)), float(np.median(C[good]))
    if C1 >= 6.0:
        keep = ~((L > L1 + 12.0) & (C < 0.5 * C1) & good)
        if keep.sum() >= 20:
            L, a, b, C, good = L[keep], a[keep], b[keep], C[keep], good[keep]
    Lm = float(np.median(L))
    lo, hi = np.percentile(L, [30, 70])
    band = (lo <= L) & (hi >= L) & good
    if band.sum() < 10:  # the middle is mostly clipped: use the unclipped pixels nearest the median
        order = np.argsort(np.abs(L - Lm) + 1000.0 * ~good)
        band = np.zeros_like(good)
        band[order[: max(10, int(good.sum()) // 3)]] = True
    am, bm = float(np.median(a[band])), float(np.median(b[band]))
    body_h = np.degrees(np.arctan2(bm, am))
    if np.hypot(am, bm) >= colour_scales.NEUTRAL_CHROMA:
        hh = np.degrees(np.arctan2(b[band], a[band]))
        dh = (hh - body_h + 180.0) % 360.0 - 180.0
        spread = float(np.median(np.abs(dh)))
    else:
        spread = 0.0
    return ColourMeasurement(
        lab=(Lm, am, bm), white_balance=reference.source if reference else "none", reference=reference,
        n_pixels=n_core, hue_spread=spread, clipped_fraction=clipped_fraction,
        stone_found=stone_found, background_visible=background_visible,
    )


def _confidence(m: ColourMeasurement) -> float:
    c = {"card": 0.9, "background": 0.85, "none": 0.45}[m.white_balance]
    if not m.stone_found:
        c *= 0.5
    if m.n_pixels < 300:
        c *= 0.7
    if m.hue_spread > 25.0:
        c *= 0.8
    if m.clipped_fraction > 0.3:
        c *= 0.8
    return float(np.clip(c, 0.05, 0.95))


def _description(g: colour_scales.Grades, m: ColourMeasurement) -> str:
    if g.hue_code == "N":
        colour = f"{g.tone_name.capitalize()} {g.hue}" if g.hue == "neutral grey" else g.hue.capitalize()
        core = f"{colour} (tone {g.tone}, no distinct hue)"
    else:
        core = f"{g.tone_name.capitalize()}, {g.saturation_name}, {g.hue} (tone {g.tone}, saturation {g.saturation})"
    if m.white_balance == "card":
        wb = f"white-balanced on the reference card (light about {m.reference.cct:.0f} K)"
    elif m.white_balance == "background":
        wb = f"white-balanced on the neutral background (light about {m.reference.cct:.0f} K)"
    elif not m.background_visible:
        wb = ("not white-balanced: no background or reference card is visible, so the hue and saturation "
              "may be shifted by the lighting")
    else:
        wb = ("not white-balanced: the background is not neutral and there is no reference card, so the hue "
              "and saturation may be shifted by the lighting")
    if not m.stone_found:
        wb += "; the stone could not be separated from its surroundings, the centre of the photo was measured"
    return f"{core}; {wb}."


def grade_colour(rgb: np.ndarray, seg: Segmentation, *, area: StoneArea | None = None) -> ColourGrade | None:
    """The colour section of the report, measured from the photo; None when nothing can be measured."""
    m = measure_colour(rgb, seg, area)
    if m is None:
        return None
    g = colour_scales.grade_lab(m.lab)
    band = colour_scales.dz_band(m.lab)
    d_to_z = None
    if band is not None:
        caveat = DZ_CAVEAT
        if m.white_balance == "none":
            caveat += " This photo had no white reference, so the band is unreliable."
        d_to_z = ColourBand(band=band[0], letters=band[1], caveat=caveat)
    rgb8 = lab_to_rgb8(np.array(m.lab))
    return ColourGrade(
        lab=tuple(round(float(v), 2) for v in m.lab),
        hex="#" + "".join(f"{int(v):02x}" for v in rgb8),
        hue=g.hue, hue_angle=round(g.hue_angle, 1),
        tone=ScaleValue(value=g.tone, name=g.tone_name),
        saturation=ScaleValue(value=g.saturation, name=g.saturation_name),
        description=_description(g, m), white_balance=m.white_balance, confidence=round(_confidence(m), 3),
        d_to_z=d_to_z,
    )
