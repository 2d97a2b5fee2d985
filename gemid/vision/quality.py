"""Is the photo good enough to judge? Warnings a technician can act on before re-shooting.

Each measurement is taken where it matters: sharpness and exposure inside the stone, at the scale the
model sees it (the square stone crop resized to `MEASURE_SIDE`), so a 12 MP phone photo and a 600 px
product shot are judged alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gemid.report import Quality, QualityWarning, StoneRegion
from gemid.vision.arrays import border_pixels, ranked_u8, row_norm
from gemid.vision.colorimetry import cv2_lab, srgb8_to_linear
from gemid.vision.crop import crop_mask, crop_square, square_box
from gemid.vision.lighting import top_level
from gemid.vision.resample import shrink_to
from gemid.vision.segment import Segmentation

# The stone must cover at least this much of the frame: below it the model's 224 px crop of a phone photo
# is mostly upsampled noise and the background's colour dominates white balance.
MIN_AREA_FRACTION = 0.03
# The stone's square crop (with margin) must be at least this many pixels on a side: the model looks at
# 224 px; below ~96 px facets and inclusions are no longer resolved.
MIN_CROP_SIDE = 96
# Sharpness is measured on the stone crop resized to this side (about the model's input).
MEASURE_SIDE = 256
# Variance of the Laplacian (grey 0..255) inside the stone and its rim at MEASURE_SIDE. Measured on 120
# gems68 product photos: in focus, 5th percentile ~420, median ~3600; the same photos blurred with a
# Gaussian of sigma 2 px at this scale, median ~130 (5th pct ~23); sigma 4 px, median ~25. Smooth
# cabochons are the sharp photos that score lowest (~30), hence "very blurry" stays well below them.
BLUR_VARIANCE = 80.0
VERY_BLURRY_VARIANCE = 15.0
# The whole frame's Laplacian variance (grey, at most MEASURE_SIDE on its long side) above which the photo is
# sharp whatever was measured inside "the stone": gems68 photos 2,250-5,600 (ruby_0, emerald_0, pyrite_10,
# diaspore_34), the same blurred by a Gaussian of 0.5 % of their size 210-530, of 2 % 13-18. A very blurry
# stone in a sharp frame is a segmentation that took a shadow or a sliver for the stone (pyrite_10,
# diaspore_34: 2 of 2,042 gems68 photos, both rejected as "too blurry" before): not a reason to reject.
FRAME_SHARP = 1000.0
# Exposure, as fractions of the stone's pixels. Facets flash white and black by design (scintillation,
# extinction), and vivid stones legitimately clip one channel, so only a large share counts. Measured on
# 200 gems68 product photos vs the same kind of rendered stones brightened ×2.2 / darkened ×0.08:
# - blown: two or more channels ≥ CLIP_HIGH. Photos: max 14 % of the stone; brightened renders: median 78 %.
# - crushed: every channel ≤ CLIP_LOW. Photos: up to 44 % (black onyx); darkened renders: 100 %. A black
#   stone is dark by nature, so "underexposed" also needs the whole frame dark (its 95th percentile grey
#   below DARK_FRAME), which a properly lit black stone on a light background is not.
CLIP_HIGH = 250
CLIP_LOW = 25
OVEREXPOSED_FRACTION = 0.25
UNDEREXPOSED_FRACTION = 0.60
DARK_FRAME = 128
# Headroom: a photo whose brightest content (its 30th brightest pixel, so a few hot pixels do not count but a
# facet's glint does) stays below DIM_TOP is under-exposed whatever the stone: a faceted stone throws glints
# and a product photo's background is light. gems68 product photos: that level is >= 203 in every one of 794
# (train part); one stop under brings a white background to 188; 20 % of the light, to 124. DIM_TOP is
# 40 % of full scale in linear light, 1.3 stops under: one stop under is left to the colour grade's exposure
# normalisation, anything darker is worth re-shooting.
DIM_TOP = 170
# The image border should be plain background: at least this share of it within PLAIN_DELTA_E (CIELAB) of
# the background colour segmentation found. Measured: gems68 product photos 1st percentile 0.76, minimum
# 0.64 (200 photos); rendered stones that overflow the frame mostly fall below 0.6. Below it the stone fills
# the frame or sits on clutter: its outline, the stone count and white balance are unreliable.
MIN_PLAIN_BORDER = 0.60
PLAIN_DELTA_E = 10.0


@dataclass(frozen=True)
class QualityMeasures:
    sharpness: float  # variance of the Laplacian inside the stone at MEASURE_SIDE
    overexposed: float  # fraction of stone pixels blown to white
    underexposed: float  # fraction of stone pixels crushed to black
    crop_side: int  # side of the model's square crop in original pixels
    plain_border: float  # share of the image border that looks like the plain background
    frame_p95: float  # 95th percentile grey level of the whole photo
    frame_top: int = 255  # 8-bit level of the frame's brightest content (lighting.top_level)
    frame_sharpness: float | None = None  # the whole frame's, measured only when the stone looks very blurry


def measure(rgb: np.ndarray, seg: Segmentation, margin: float = 0.12, scale: float = 1.0) -> QualityMeasures:
    """Sharpness and clipping inside the stone (whole image when no stone was found). `scale`: `rgb`'s pixels
    per photo pixel (a reduced working image), so the crop's side is in the photo's own pixels."""
    h, w = rgb.shape[:2]
    thumb = _thumb(rgb)  # whole-frame statistics on a small copy
    if seg.found:
        box = square_box(seg.bbox, margin, (w, h))
        mask = seg.mask
    else:
        side = max(h, w)
        box = ((w - side) // 2, (h - side) // 2, side)
        mask = np.full((h, w), 255, np.uint8)
    x0, y0, side = box
    if x0 >= 0 and y0 >= 0 and x0 + side <= w and y0 + side <= h:  # inside the image: views, no copies
        crop, mcrop = rgb[y0 : y0 + side, x0 : x0 + side], mask[y0 : y0 + side, x0 : x0 + side]
    else:
        edge = border_pixels(thumb, max(1, min(thumb.shape[:2]) // 50))
        crop = crop_square(rgb, box, fill=tuple(int(v) for v in np.median(edge, axis=0)))
        mcrop = crop_mask(mask, box)
    # the plain area filter: the sharpness thresholds were measured through it, and the Laplacian sees
    # the kernel of gemid.vision.resample's faster one (up to 41 % lower variance on large photos)
    interp = cv2.INTER_AREA if crop.shape[0] > MEASURE_SIDE else cv2.INTER_LINEAR
    crop = cv2.resize(crop, (MEASURE_SIDE, MEASURE_SIDE), interpolation=interp)
    mcrop = cv2.resize(mcrop, (MEASURE_SIDE, MEASURE_SIDE), interpolation=cv2.INTER_NEAREST) > 0
    if not mcrop.any():
        mcrop[:] = True

    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    # include the rim: a few pixels outside the stone so its outline counts (cabochons, pale stones)
    rim = cv2.dilate(mcrop.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    sharpness = float(lap[rim].var())

    # per-plane masks rather than gathering the stone's pixels or reducing over the colour axis (numpy is
    # slow on a 3-long axis): the same fractions, ~10x faster
    n_inside = np.count_nonzero(mcrop)
    r, g, b = (plane >= CLIP_HIGH for plane in cv2.split(crop))
    blown = np.count_nonzero(((r & g) | (r & b) | (g & b)) & mcrop)  # two or more channels blown
    crushed = np.count_nonzero((cv2.inRange(crop, (0, 0, 0), (CLIP_LOW,) * 3) > 0) & mcrop)  # all channels dark
    over, under = blown / n_inside, crushed / n_inside
    thumb_grey = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY)
    frame_p95 = percentile_u8(thumb_grey, 95)
    frame_sharpness = (float(cv2.Laplacian(thumb_grey.astype(np.float32), cv2.CV_32F, ksize=3).var())
                       if sharpness < VERY_BLURRY_VARIANCE and seg.found else None)
    return QualityMeasures(sharpness=sharpness, overexposed=over, underexposed=under, crop_side=int(round(box[2] / scale)),
                           plain_border=plain_border(thumb, seg.background_lab), frame_p95=frame_p95,
                           frame_top=top_level(thumb), frame_sharpness=frame_sharpness)


def percentile_u8(a: np.ndarray, q: float) -> float:
    """`np.percentile(a, q)` (linear interpolation) of uint8 data from its histogram: the same value (to the
    last bit of the interpolation), ~10x faster."""
    pos = (a.size - 1) * q / 100.0
    lo, frac = int(pos), pos - int(pos)
    if frac == 0:
        return float(ranked_u8(a, [lo])[0])
    v_lo, v_hi = (int(v) for v in ranked_u8(a, [lo, lo + 1]))
    return float(v_lo + (v_hi - v_lo) * frac)


def _thumb(rgb: np.ndarray) -> np.ndarray:
    """The photo at most MEASURE_SIDE on its long side (cheap whole-frame statistics)."""
    return shrink_to(rgb, MEASURE_SIDE)[0]


def plain_border(rgb: np.ndarray, background_lab: tuple[float, float, float]) -> float:
    """Share of the image's border strip (3 % wide) within PLAIN_DELTA_E of the background colour."""
    small = cv2.GaussianBlur(_thumb(rgb), (3, 3), 0)
    bw = max(2, round(0.03 * min(small.shape[:2])))
    lab = cv2_lab(border_pixels(small, bw)[None])[0]  # the Lab segmentation reports background_lab in
    return float(np.mean(row_norm(lab - np.asarray(background_lab, np.float32)) < PLAIN_DELTA_E))


def assess(rgb: np.ndarray, seg: Segmentation, margin: float = 0.12, *, scale: float = 1.0,
           reference: str | None = None, tray: bool = False) -> Quality:
    """The report's `quality` section: warnings, sharpness and where the stone is (in `rgb`'s pixels;
    `scale` is rgb's pixels per photo pixel, for the size the low-resolution warning quotes).

    `reference`: "card", "coin" or "ruler", the stones lie on the scale card (gemid.vision.scale) or beside a
    coin (gemid.vision.coin) or a ruler (gemid.vision.ruler), photographed whole, so a stone is small in the
    frame by design: its pixels (`low_resolution`) matter, not its share of the frame; and a photo of the
    reference without a stone says so rather than judging the focus of plain paper. `tray`: one stone of a
    photo of several, small in the frame by design too (an outside try was told to "move closer" to each)."""
    small_by_design = reference is not None or tray
    m = measure(rgb, seg, margin, scale)
    warnings: list[QualityWarning] = []

    def warn(code: str, message: str) -> None:
        warnings.append(QualityWarning(code=code, message=message))  # type: ignore[arg-type]

    framed = m.plain_border >= MIN_PLAIN_BORDER
    if not framed:
        warn("no_background", "Little plain background is visible around the stone: it seems to fill the frame "
                              "or lie on a busy surface, so its outline and colour may be misjudged. Leave a "
                              "margin of plain white or grey background around it.")
    if not seg.found:
        if reference == "card":
            warn("no_stone", "The scale card was found but no stone on it: lay the stones inside its four markers, "
                             "apart from each other and at least 3 mm from the markers.")
            return Quality(warnings=warnings, sharpness=None, stone=None)
        if reference in ("coin", "ruler"):
            warn("no_stone", f"No stone was found beside the {reference}: lay the stones next to it, apart from it "
                             "and from each other, on the same plain background.")
            return Quality(warnings=warnings, sharpness=None, stone=None)
        if framed:
            warn("no_stone", "No stone could be told apart from the background; the whole photo was judged. "
                             "Photograph the stone alone on a plain white or grey background.")
    elif framed:  # without a plain background, "pieces" may be facets of one stone filling the frame
        if seg.area_fraction < MIN_AREA_FRACTION and not small_by_design:
            warn("stone_too_small", f"The stone fills only {seg.area_fraction:.1%} of the photo; "
                                    "move closer or zoom so it fills at least a third of the frame.")
        if seg.n_stones > 1:
            warn("several_stones", f"{seg.n_stones} separate objects were found; "
                                   "photograph one stone at a time.")
    sharp_frame = m.frame_sharpness is not None and m.frame_sharpness >= FRAME_SHARP  # the stone found is not it
    if m.sharpness < BLUR_VARIANCE and not sharp_frame:
        how = "very blurry" if m.sharpness < VERY_BLURRY_VARIANCE else "soft (out of focus or moved)"
        warn("blurry", f"The stone looks {how}; facets and inclusions cannot be seen. "
                       "Hold still, tap to focus on the stone and photograph again.")
    if m.overexposed > OVEREXPOSED_FRACTION:
        warn("overexposed", f"{m.overexposed:.0%} of the stone is blown to white; "
                            "reduce the light or the exposure.")
    if m.underexposed > UNDEREXPOSED_FRACTION and m.frame_p95 < DARK_FRAME:
        warn("underexposed", f"{m.underexposed:.0%} of the stone is crushed to black; add light.")
    elif m.frame_top < DIM_TOP:
        stops = np.log2(1.0 / max(float(srgb8_to_linear(np.array([m.frame_top], np.uint8))[0]), 1e-4))
        warn("underexposed", f"Nothing in the photo comes near white (its brightest part is at {m.frame_top / 255:.0%} "
                             f"of full scale, about {stops:.1f} stops under-exposed): colour and inclusions are "
                             "hard to see. Add light or increase the exposure.")
    if m.crop_side < MIN_CROP_SIDE:
        warn("low_resolution", f"The stone is only about {m.crop_side} pixels across; "
                               f"use a photo where it is at least {MIN_CROP_SIDE} pixels across.")

    stone = None
    if seg.found:
        stone = StoneRegion(bbox=seg.bbox, outline=seg.outline, area_fraction=seg.area_fraction,
                            n_stones=seg.n_stones)
    return Quality(warnings=warnings, sharpness=round(m.sharpness, 2), stone=stone)


def too_poor_to_judge(quality: Quality) -> str | None:
    """Why the photo cannot support any species answer, or None. Used to reject rather than guess."""
    codes = {w.code for w in quality.warnings}
    # very blurry, unless the frame was sharp (assess then gives no blur warning: the region measured was not the
    # stone)
    very_blurry = quality.sharpness is not None and quality.sharpness < VERY_BLURRY_VARIANCE and "blurry" in codes
    if "no_stone" in codes and ("blurry" in codes or "overexposed" in codes or "underexposed" in codes):
        problem = "blurry" if "blurry" in codes else "badly exposed"
        return f"no stone could be found and the photo is {problem}"
    if very_blurry:
        return "the photo is too blurry to see the stone's facets"
    if "overexposed" in codes and "underexposed" in codes:
        return "the photo is badly exposed (both blown highlights and crushed shadows)"
    return None
