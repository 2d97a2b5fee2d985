"""Colour grade of the stone: white balance and exposure, robust body colour in CIELAB, hue / tone / saturation,
and a confidence that follows the evidence.

1. **Light.** `gemid.vision.lighting` finds the white reference (a card, else a neutral background, under
   lamp light 2500 K up to shade 12000 K), the white-balance correction and the exposure normalisation.
   With no usable reference the colour is measured uncorrected (white_balance "none", lower confidence),
   unless the stone's reflections show a strong cast: then the colour is `cannot_judge`, with the reason,
   rather than the lamp's hue. A photo more than three stops under is `cannot_judge` too, as is a stone
   blown to white nearly everywhere (glare).
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
4. **Confidence** is a product of factors, each from one piece of evidence: the reference (card > neutral
   background > none, and how far it lies from the lamp/daylight locus), the size of the cast it corrected,
   the exposure correction, the share of the stone clipped, the stone's size in pixels, whether the stone
   was separated from its surroundings and how uniform its hue is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from gemid.report import ColourBand, ColourGrade, ScaleValue
from gemid.vision import colour_scales, lighting
from gemid.vision.colorimetry import lab_to_rgb8, linear_to_lab, srgb8_to_linear
from gemid.vision.lighting import Lighting, Reference
from gemid.vision.segment import Segmentation
from gemid.vision.stone_area import CLIP, StoneArea, channel_max, locate

DZ_CAVEAT = (
    "Preliminary band from a photo only: D-Z grading needs master stones under standard daylight, "
    "face down; white balance and surroundings shift yellowness by several grades."
)
GLARE_FRACTION = 0.9  # a stone clipped over more than this share shows no body colour
COLOURLESS_TONE = 3  # a neutral stone this light with a colourless / near-colourless D-Z band reads "colourless"

__all__ = ["ColourMeasurement", "Reference", "confidence", "grade_colour", "measure_colour"]


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
    light: Lighting | None = None
    diameter: float = 0.0  # the stone's diameter in original-image pixels (0 when not found)
    plain_surround: float = 1.0  # segmentation's share of the border that is background


def measure_colour(rgb: np.ndarray, seg: Segmentation, area: StoneArea | None = None) -> ColourMeasurement | None:
    """The body colour (CIELAB D65) and how it was white-balanced; None when there is nothing to measure.

    `area` is `locate(rgb, seg)` when the caller already has it (the pipeline shares it with clarity)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("grade_colour expects an RGB uint8 image of shape (H, W, 3)")
    if min(rgb.shape[:2]) < 16:
        return None
    area = area if area is not None else locate(rgb, seg)
    small, stone, stone_found = area.small, area.stone, area.found
    h, w = small.shape[:2]
    mask = stone.astype(np.uint8) * 255

    # the stone's pixels: eroded mask, or the image centre when no stone could be separated
    diameter = 0.0
    if stone_found:
        d = 2.0 * np.sqrt(stone.sum() / np.pi)
        diameter = float(d / (area.scale * area.photo_scale))  # in the photo's own pixels
        k = max(1, int(round(0.04 * d)))
        core = cv2.erode(stone.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
        core = core > 0 if core.any() else stone
    else:
        core = np.zeros((h, w), bool)
        core[int(0.1 * h) : int(0.9 * h), int(0.1 * w) : int(0.9 * w)] = True

    # the background around the stone (and the card), when enough of it shows
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
    reference = lighting.find_reference(small, area.card, area.card_box, bg_pixels, stone if stone_found else None)
    light = lighting.estimate(small, reference)

    # stone pixels in linear light, corrected. Clipped pixels (and a one-pixel halo) have no reliable
    # chromaticity, but they are certainly light: they count in the lightness ranks, not in the hue.
    clipped = (channel_max(small) >= CLIP).astype(np.uint8)
    halo = cv2.dilate(clipped, np.ones((3, 3), np.uint8), iterations=1) > 0
    n_core = int(core.sum())
    if n_core < 5:
        return None
    clipped_fraction = float((core & halo).sum() / n_core)
    lin = srgb8_to_linear(small[core]) @ light.matrix.T
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
        stone_found=stone_found, background_visible=background_visible, light=light, diameter=diameter,
        plain_surround=float(seg.border_is_background),
    )


def confidence(m: ColourMeasurement) -> float:
    """How far the measured colour can be trusted, from the evidence (see the module's docstring)."""
    ref = m.reference
    c = {"card": 0.95, "background": 0.88, "none": 0.5}[m.white_balance]
    if ref is not None:
        c *= 1.0 - 0.15 * min(1.0, ref.duv / 0.008)  # the further from any light's colour, the less sure
    if m.light is not None:
        c *= 1.0 - 0.3 * min(1.0, abs(m.light.cast_mired) / 200.0)  # a 3500 K lamp: x0.80; 7500 K: x0.97
        c /= 1.0 + 0.25 * np.log2(max(1.0, m.light.exposure))  # one stop brightened: x0.8
    c *= 1.0 - 0.4 * min(1.0, m.clipped_fraction / 0.5)
    if m.stone_found:
        c *= float(np.clip(0.5 + 0.5 * (m.diameter - 20.0) / 130.0, 0.5, 1.0))  # 150 px across and up: x1
        c *= 0.7 + 0.3 * float(np.clip(m.plain_surround, 0.0, 1.0))
    else:
        c *= 0.5
    c *= 1.0 - 0.3 * min(1.0, m.hue_spread / 45.0)
    return float(np.clip(c, 0.05, 0.97))


def _exposure_words(m: ColourMeasurement) -> str:
    if m.light is None or m.light.exposure <= 1.05:
        return ""
    stops = np.log2(m.light.exposure)
    return f"; brightened by {stops:.1f} stop{'s' if stops >= 1.05 else ''} to undo under-exposure"


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
    wb += _exposure_words(m)
    if not m.stone_found:
        wb += "; the stone could not be separated from its surroundings, the centre of the photo was measured"
    return f"{core}; {wb}."


def _cannot_judge(m: ColourMeasurement) -> str | None:
    """Why this photo cannot show the stone's colour, or None."""
    light = m.light
    if light is not None and light.unreferenced_cast:
        return (f"the light has a strong colour cast (about {light.highlight_cct:.0f} K, seen in the stone's "
                "reflections) and no white or grey reference is visible to correct it, so the hue would be the "
                "lamp's; photograph the stone on white or grey paper, or with a grey card in the frame")
    if light is not None and light.too_dark:
        return (f"the photo is too dark to show the colour (about {np.log2(light.exposure_needed):.0f} stops "
                "under-exposed); add light or increase the exposure")
    if m.stone_found and m.clipped_fraction > GLARE_FRACTION:
        return "glare blows the stone out to white almost everywhere; reduce the light or the exposure"
    return None


def grade_colour(rgb: np.ndarray, seg: Segmentation, *, area: StoneArea | None = None) -> ColourGrade | None:
    """The colour section of the report, measured from the photo; None when nothing can be measured;
    `status="cannot_judge"` with the reason when the photo cannot show the stone's own colour."""
    m = measure_colour(rgb, seg, area)
    if m is None:
        return None
    why = _cannot_judge(m)
    if why is not None:
        return ColourGrade(status="cannot_judge", reason=why, description=f"Colour not graded: {why}.",
                           white_balance=m.white_balance, confidence=0.0)
    g = colour_scales.grade_lab(m.lab)
    band = colour_scales.dz_band(m.lab)
    if (band is not None and g.hue_code == "N" and g.tone <= COLOURLESS_TONE
            and band[0] in ("colourless", "near colourless")):
        # a colourless stone photographed is light grey (it shows what is around it): "neutral grey" misled an
        # outside try on a D-F diamond; its D-Z band is what a grader reads
        g = replace(g, hue=colour_scales.NEUTRALS[0])
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
        description=_description(g, m), white_balance=m.white_balance, confidence=round(confidence(m), 3),
        d_to_z=d_to_z,
    )
