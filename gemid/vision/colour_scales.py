"""The one mapping from a CIELAB body colour to gemmological colour grades (hue, tone, saturation, D-Z).

Both the estimator (`gemid.vision.colour`) and the synthetic renderer's ground truth
(`gemid.datasets.synth`) call these functions, so "true grade" and "measured grade" can never drift apart.

Definitions (ours, documented; the GIA system defines grades visually against physical comparators, not
numerically, so any numeric mapping is an approximation chosen to be monotone and easy to audit):

- **Hue**: the 31 GIA hue names (purple ... violetish purple). Each has a centre CIELAB hue angle h_ab,
  placed so that typical gem colours fall where gemmologists name them (ruby ~0-30 deg, emerald ~150-170,
  sapphire ~275-300); a colour takes the name of the nearest centre. Stones with C*ab < 4 are "neutral".
- **Tone** 0..10: round((100 - L*) / 10). 0 colourless, 5 medium (L* = 50), 10 black. GIA uses 2..8 for
  transparent coloured stones; we report the full scale so a colourless or black stone is not forced in.
- **Saturation** 1..6 from chroma C*ab with cut points 10, 20, 32, 45, 60: 1 greyish/brownish ... 6 vivid.
  Low-saturation words depend on the hue: "brownish" for warm hues (purplish red through greenish
  yellow), "greyish" for cool ones.
- **D-Z band** for near-colourless stones, from yellowness b* against the white reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (code, name, centre h_ab in degrees); GIA's 31 hues in wheel order
HUES: tuple[tuple[str, str, float], ...] = (
    ("P", "purple", 327.0),
    ("rP", "reddish purple", 336.0),
    ("RP", "red-purple", 345.0),
    ("stpR", "strongly purplish red", 355.0),
    ("slpR", "slightly purplish red", 12.0),
    ("R", "red", 25.0),
    ("oR", "orangy red", 34.0),
    ("RO", "red-orange", 42.0),
    ("rO", "reddish orange", 50.0),
    ("O", "orange", 60.0),
    ("yO", "yellowish orange", 70.0),
    ("oY", "orangy yellow", 80.0),
    ("Y", "yellow", 92.0),
    ("gY", "greenish yellow", 102.0),
    ("YG", "yellow-green", 110.0),
    ("styG", "strongly yellowish green", 118.0),
    ("yG", "yellowish green", 126.0),
    ("slyG", "slightly yellowish green", 136.0),
    ("G", "green", 146.0),
    ("vslbG", "very slightly bluish green", 156.0),
    ("bG", "bluish green", 168.0),
    ("vstbG", "very strongly bluish green", 180.0),
    ("BG", "blue-green", 195.0),
    ("vstgB", "very strongly greenish blue", 212.0),
    ("gB", "greenish blue", 228.0),
    ("vslgB", "very slightly greenish blue", 248.0),
    ("B", "blue", 272.0),
    ("vB", "violetish blue", 288.0),
    ("bV", "bluish violet", 299.0),
    ("V", "violet", 308.0),
    ("vP", "violetish purple", 317.0),
)
NEUTRALS = ("colourless", "neutral grey", "black")  # the names of a colour too faint or dark for a hue
_CENTRES = np.array([h for _, _, h in HUES])
NEUTRAL_CHROMA = 4.0

TONE_NAMES = (
    "colourless", "extremely light", "very light", "light", "medium light", "medium",
    "medium dark", "dark", "very dark", "extremely dark", "black",
)
SATURATION_CUTS = (10.0, 20.0, 32.0, 45.0, 60.0)
_SAT_WARM = ("brownish", "slightly brownish", "very slightly brownish", "moderately strong", "strong", "vivid")
_SAT_COOL = ("greyish", "slightly greyish", "very slightly greyish", "moderately strong", "strong", "vivid")

# D-Z bands: (upper b* bound, band, letters)
DZ_BANDS: tuple[tuple[float, str, str], ...] = (
    (1.5, "colourless", "D-F"),
    (3.5, "near colourless", "G-J"),
    (6.0, "faint", "K-M"),
    (10.0, "very light", "N-R"),
    (16.0, "light", "S-Z"),
)


@dataclass(frozen=True)
class Grades:
    """Colour grades of one CIELAB colour."""

    hue_code: str
    hue: str
    hue_angle: float
    chroma: float
    tone: int
    tone_name: str
    saturation: int
    saturation_name: str

    @property
    def code(self) -> str:
        """Compact form used in manifests, e.g. 'bG 5/4' (hue tone/saturation)."""
        return f"{self.hue_code} {self.tone}/{self.saturation}"


def hue_index(h_ab: float) -> int:
    d = np.abs(_CENTRES - (h_ab % 360.0)) % 360.0
    return int(np.argmin(np.minimum(d, 360.0 - d)))


def is_warm(h_ab: float) -> bool:
    """Warm hues (purplish red through greenish yellow) read 'brownish' at low saturation."""
    h = h_ab % 360.0
    return h >= 348.0 or h < 106.0


def tone_of(L: float) -> int:
    return int(np.clip(np.round((100.0 - float(L)) / 10.0), 0, 10))


def saturation_of(chroma: float) -> int:
    return 1 + int(np.searchsorted(SATURATION_CUTS, float(chroma), side="right"))


def grade_lab(lab: tuple[float, float, float] | np.ndarray) -> Grades:
    """Hue, tone and saturation grades of a CIELAB (D65) body colour."""
    L, a, b = (float(v) for v in lab)
    c = float(np.hypot(a, b))
    h = float(np.degrees(np.arctan2(b, a)) % 360.0)
    tone = tone_of(L)
    sat = saturation_of(c)
    if c < NEUTRAL_CHROMA or tone in (0, 10):
        code, name = "N", (NEUTRALS[2] if tone >= 9 else NEUTRALS[0] if tone <= 1 else NEUTRALS[1])
        sat = 1
    else:
        code, name, _ = HUES[hue_index(h)]
    names = _SAT_WARM if is_warm(h) else _SAT_COOL
    return Grades(
        hue_code=code, hue=name, hue_angle=h, chroma=c, tone=tone, tone_name=TONE_NAMES[tone],
        saturation=sat, saturation_name=names[sat - 1],
    )


def dz_band(lab: tuple[float, float, float] | np.ndarray) -> tuple[str, str] | None:
    """(band, letters) for a near-colourless, light stone whose tint is yellow/brown or neutral; else None."""
    L, a, b = (float(v) for v in lab)
    c = float(np.hypot(a, b))
    if L < 55.0 or c >= 16.0:
        return None
    if c >= 4.0 and b < abs(a):  # a distinct pink/green/blue tint is a fancy colour, not a D-Z grade
        return None
    yellowness = max(0.0, b)
    for upper, band, letters in DZ_BANDS:
        if yellowness < upper:
            return band, letters
    return None
