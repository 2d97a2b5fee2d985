"""The light a photo was taken in: its colour (white balance) and its level (exposure), so that colour grading
measures the stone and not the lamp.

**White reference.** A neutral reference card in the frame wins (it is there on purpose). Otherwise the
background when it could be a neutral surface: its chromaticity within 0.008 u'v' of the black-body (lamp)
or daylight locus between 2500 K and 12000 K, which white, grey or black-ish paper or cloth under a
household lamp, daylight or shade does and a coloured cloth does not. A background blown to white in all
three channels was made white by the camera: it is taken as D65. Accepting lamp light has a price: a
beige, tan or orange cloth under daylight looks like a grey under a warm lamp. So a background meaning a
lamp warmer than 4300 K (80 mired from D65) is believed only when it is a white at the sensor's limit (most
of it clipped in one or two channels) or the stone's glints do not contradict it: glints clipped in one or
two channels (a glint under daylight blows all three; under a warm lamp its blue may stay below the limit)
of the background's chromaticity (within 0.012 u'v') confirm it; mostly blown white glints rule it out;
with no glints, only a background within 0.003 u'v' of the lamp locus is believed (lamps are on it, most
coloured cloths are not). Otherwise the background is not used (white_balance "none", as before lamps
were accepted); a card needs no corroboration, it is there on purpose.

**Correction.** Two models of how a camera set to daylight records other light disagree for strong casts:
chromatic adaptation (Bradford, the synthetic renderer's model, which keeps daylight casts exact) and
per-channel gains on linear RGB (a camera's own white balance; issue 27's lamp benchmark). They agree
within about 1 dE76 for daylight casts and differ by up to ~13 for a 3500 K lamp, so the correction is
Bradford within 68 mired of D65 on the warm side (4500 K) and anywhere on the cool side, gains beyond
109 mired (3800 K), blended in between. Both keep the luminance of neutrals.

**Exposure.** Two pieces of evidence, both from the frame's brightest content (its 30th brightest pixel,
at most 384 px on a side, so a few hot pixels do not count but a facet's glint does):
- *headroom*: when nothing reaches the top of the 8-bit scale the photo is under-exposed by that margin
  (gems68 product photos: that level is at least 203/255, i.e. 60 % of full scale in linear light, in all
  794 of the train part). Only a clear shortfall is trusted (a factor 1.9, ramped in from 1.7, above the
  photos' 1.67; one stop under is 2): a
  grey background with no glint is otherwise indistinguishable from a dim white one, and such a scene
  (rendered stones without glints on mid-grey) is brightened by mistake.
- *white level*: a strongly cast light clips its strongest channel first, so after a luminance-keeping
  correction the sensor's white is darker than white (a 3500 K lamp: 64 % of it). When the cast makes more
  than 1.4x of difference (ramped in from 1.25) the photo is brightened so that the sensor's white is
  white again; smaller factors (daylight casts) keep the luminance, as the renderer assumes.
The correction never darkens (clipped light cannot be recovered). Beyond MAX_EXPOSURE (3 stops) the stone
is too dark to be graded.

**Strong cast without a reference.** On a black or coloured background with no card, the glints show
the lamp's colour. When they outnumber the fully blown ones twice, and their median lies within 0.006 u'v'
of the lamp/daylight locus between 2500 and 12000 K and at least 100 mired warmer than D65 (3900 K), the
colour is not graded (`cannot_judge`): a hue measured under that light without a reference would be the
lamp's. Redder or bluer "glints" are a vivid stone's own clipped facets, not a lamp; cool casts never go
that far from D65 (12000 K is 71 mired), and shade shifts hues little.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gemid.vision.colorimetry import (
    D65_XY,
    D65_XYZ,
    linear_rgb_adaptation,
    linear_to_xyz,
    luminance,
    mired_shift,
    nearest_white,
    srgb8_to_linear,
    xy_to_xyz,
    xyz_to_linear,
)
from gemid.vision.stone_area import CLIP, channel_max, channel_min, is_neutral, white_point

TOP_RANK = 30  # the brightest content: the 30th brightest pixel of the work copy
HEADROOM_RAMP = (1.7, 1.9)  # under-exposure factors trusted from headroom alone: none .. fully
WHITE_LEVEL_RAMP = (1.25, 1.4)  # cast brightening factors: none .. fully
BRADFORD_UNTIL, GAINS_FROM = 68.0, 109.0  # mired warmer than D65: Bradford .. blend .. channel gains
MAX_EXPOSURE = 8.0  # three stops
STRONG_CAST_MIRED = 80.0  # a reference this much warmer than D65 (4300 K) needs the glints to agree
UNREFERENCED_MIRED = 100.0  # glints this much warmer (3900 K) without a reference: cannot judge
LAMP_K = (2500.0, 12000.0)  # glints "coloured" beyond these are the stone's own colour, not a lamp's
HIGHLIGHT_DUV = 0.006  # the benchmark's lamp glints lie within 0.001 of the locus; a stone's colour rarely
AGREE_UV = 0.012  # glints and a warm reference seen under the same lamp
LAMP_DUV = 0.003  # a warm background with no glints to confirm it: this close to the lamp locus


@dataclass(frozen=True)
class Reference:
    """The neutral white reference used for white balance."""

    source: str  # "card" | "background"
    xy: tuple[float, float]  # measured chromaticity of the reference
    cct: float  # nearest lamp / daylight colour temperature (K)
    duv: float  # distance from that locus
    n_pixels: int
    box: tuple[int, int, int, int] | None = None  # card box (x, y, w, h) in original-image pixels


@dataclass(frozen=True)
class Lighting:
    reference: Reference | None
    matrix: np.ndarray  # 3x3 on linear sRGB: white balance and exposure together (apply as rgb @ matrix.T)
    exposure: float  # the exposure factor applied (1 = none)
    exposure_needed: float  # what the evidence asked for before the ramps and the cap
    headroom: float  # linear level (0..1) of the frame's brightest content before correction
    cast_mired: float  # the reference's (or the highlights') distance from D65 in mired, + warmer
    highlight_cct: float | None  # the lamp's temperature seen in the highlights (no reference only)
    unreferenced_cast: bool  # a strong cast shows in the highlights and nothing neutral corrects it

    @property
    def too_dark(self) -> bool:
        return self.exposure_needed > MAX_EXPOSURE


def find_reference(small: np.ndarray, card_inner: np.ndarray | None, card_box: tuple[int, int, int, int] | None,
                   bg_pixels: np.ndarray | None, stone: np.ndarray | None = None) -> Reference | None:
    """The card if usable, else the background if it could be neutral, else None.

    A background that would mean a strongly warm lamp (a grey under 4300 K or warmer looks like beige,
    tan or orange cloth under daylight) is believed only when it is itself a white at the sensor's limit
    (most of it clipped in one or two channels) or the stone's glints do not contradict it (`_lamp_plausible`)."""
    if card_inner is not None:
        white = white_point(small[card_inner])
        if white is not None:
            _, cct, duv = is_neutral(white[0])
            return Reference("card", white[0], cct, duv, white[1], card_box)
    if bg_pixels is None or len(bg_pixels) < 50:
        return None
    if (channel_min(bg_pixels) >= CLIP).mean() > 0.8:
        # a blown-out white background: the photo was exposed and balanced to make it pure white
        return Reference("background", D65_XY, 6500.0, 0.0, int(len(bg_pixels)))
    white = white_point(bg_pixels)
    if white is None:
        return None
    ok, cct, duv = is_neutral(white[0])
    if not ok:
        return None
    if mired_shift(cct) >= STRONG_CAST_MIRED:
        at_limit = float((channel_max(bg_pixels) >= CLIP).mean()) >= 0.5
        glints = small[stone] if stone is not None and stone.any() else small
        if not (at_limit or _lamp_plausible(glints, white[0], duv)):
            return None
    return Reference("background", white[0], cct, duv, white[1])


def _uv(xy: np.ndarray | tuple[float, float]) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64)
    x, y = xy[..., 0], xy[..., 1]
    d = -2.0 * x + 12.0 * y + 3.0
    return np.stack([4.0 * x / d, 9.0 * y / d], axis=-1)


def _partial(px: np.ndarray) -> tuple[int, np.ndarray]:
    """(how many pixels are blown in all three channels, the pixels clipped in one or two).

    A glint is the lamp reflected at the sensor's limit: under daylight-balanced light it blows all three
    channels; under a strongly coloured lamp its weakest channel may stay below the limit and show the lamp."""
    px = px.reshape(-1, 3)
    top, low = channel_max(px), channel_min(px)
    return int((low >= CLIP).sum()), px[(top >= CLIP) & (low < CLIP) & (low >= 2)]


def _chromaticity(px: np.ndarray) -> np.ndarray:
    xyz = linear_to_xyz(srgb8_to_linear(px))
    return xyz[..., :2] / np.maximum(xyz.sum(axis=-1, keepdims=True), 1e-9)


def _glints(px: np.ndarray) -> tuple[int, tuple[float, float] | None, int]:
    """(fully blown pixels, median chromaticity of the partly clipped ones, how many of those)."""
    blown, part = _partial(px)
    if len(part) < 20:
        return blown, None, len(part)
    lin = srgb8_to_linear(part)
    med = np.array([float(np.median(lin[:, c])) for c in range(3)])
    xyz = linear_to_xyz(med)
    if xyz.sum() <= 0:
        return blown, None, len(part)
    return blown, (float(xyz[0] / xyz.sum()), float(xyz[1] / xyz.sum())), len(part)


def _lamp_plausible(px: np.ndarray, white_xy: tuple[float, float], duv: float) -> bool:
    """Could a background of this warm colour be a grey under a lamp, given the stone's pixels `px`?

    Partly clipped glints of the background's colour (within AGREE_UV; at least 10, and more than the
    blown ones) confirm it, whatever a vivid stone's own clipped facets show; mostly blown, white glints
    say the light is not that warm; with no glints either way, only a surface right on the lamp locus
    (within LAMP_DUV) is believed."""
    blown, part = _partial(px)
    if len(part):
        near = np.linalg.norm(_uv(_chromaticity(part)) - _uv(white_xy), axis=-1) <= AGREE_UV
        agree = int(near.sum())
        if agree >= 10 and agree > blown:
            return True
    if blown >= 20:
        return False
    return duv <= LAMP_DUV


def correction_matrix(white_xy: tuple[float, float], cct: float) -> np.ndarray:
    """White balance from a measured white to D65 on linear sRGB, keeping the luminance of neutrals."""
    white = xy_to_xyz(white_xy)  # Y = 1
    bradford = linear_rgb_adaptation(white, D65_XYZ)
    rgb = xyz_to_linear(white)
    gains = np.diag(float(luminance(rgb)) / np.maximum(rgb, 1e-6))
    w = float(np.clip((mired_shift(cct) - BRADFORD_UNTIL) / (GAINS_FROM - BRADFORD_UNTIL), 0.0, 1.0))
    return (1.0 - w) * bradford + w * gains


def _ramp(factor: float, ramp: tuple[float, float]) -> float:
    """`factor` (>= 1) applied fully above ramp[1], not at all below ramp[0], log-linearly in between."""
    if factor <= ramp[0]:
        return 1.0
    if factor >= ramp[1]:
        return factor
    t = (np.log(factor) - np.log(ramp[0])) / (np.log(ramp[1]) - np.log(ramp[0]))
    return float(np.exp(t * np.log(factor)))


def top_level(small: np.ndarray) -> int:
    """8-bit code of the frame's brightest content: the TOP_RANK-th brightest channel maximum."""
    hist = np.bincount(channel_max(small).ravel(), minlength=256)
    above = np.cumsum(hist[::-1])
    return int(255 - np.searchsorted(above, min(TOP_RANK, int(above[-1]))))


def highlight_cast(small: np.ndarray) -> float | None:
    """The lamp's temperature as the glints show it (no reference needed), or None when they show none:
    pixels clipped in one or two channels, at least twice as many as fully blown ones, whose median lies
    on the lamp/daylight locus (within HIGHLIGHT_DUV) between LAMP_K. A vivid stone's own clipped facets
    (a red one clips only red) lie far from the locus."""
    blown, xy, n = _glints(small)
    if xy is None or n < 2 * blown:
        return None
    cct, duv = nearest_white(xy)
    return cct if duv <= HIGHLIGHT_DUV and LAMP_K[0] <= cct <= LAMP_K[1] else None


def estimate(small: np.ndarray, reference: Reference | None) -> Lighting:
    """White balance and exposure for the work copy `small`, from the reference (or None) and the frame."""
    top = top_level(small)
    headroom = float(srgb8_to_linear(np.array([top], np.uint8))[0])
    highlight_cct = None
    if reference is not None:
        M = correction_matrix(reference.xy, reference.cct)
        rgb_white = xyz_to_linear(xy_to_xyz(reference.xy))
        white_level = float(luminance(rgb_white) / max(float(rgb_white.max()), 1e-6))
        cast = mired_shift(reference.cct)
    else:
        M = np.eye(3)
        white_level = 1.0
        highlight_cct = highlight_cast(small)
        cast = mired_shift(highlight_cct) if highlight_cct is not None else 0.0
    # headroom only against a reference, as the photo's white or grey: without one, a dark scene and a dim
    # photo look the same
    under = 1.0 / max(headroom, 1e-3) if top < CLIP and reference is not None else 1.0
    needed = under / white_level
    exposure = min(MAX_EXPOSURE, _ramp(under, HEADROOM_RAMP) * _ramp(1.0 / white_level, WHITE_LEVEL_RAMP))
    strong = highlight_cct is not None and cast >= UNREFERENCED_MIRED
    return Lighting(reference=reference, matrix=M * exposure, exposure=float(exposure),
                    exposure_needed=float(needed), headroom=headroom, cast_mired=float(cast),
                    highlight_cct=highlight_cct, unreferenced_cast=bool(strong))
