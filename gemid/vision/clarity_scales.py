"""The one mapping from inclusion visibility to clarity severity and grade.

Shared by the estimator (`gemid.vision.clarity`) and the synthetic renderer's truth
(`gemid.datasets.synth`), so a rendered stone's true grade and its measured grade use one definition.

**Visibility** v = sum over inclusions of contrast x footprint, where footprint is the inclusion's area as
a fraction of the stone's face-up area and contrast is 0..1 (1 = black on a light stone or white on a dark
one). It is scale-free: the same stone photographed larger has the same v.

**Severity** = log10(1 + v / V0) / log10(1 + V1 / V0), clipped to 0..1: logarithmic because the eye grades
inclusions on a ratio scale (a pinpoint, a speck, an obvious crystal, a stone full of them). V0 = 1e-4 is
a full-contrast speck 1 % of the diameter across - about one pixel in a typical product photo, the
smallest thing a photo can show - and V1 = 0.1 is a tenth of the face covered by opaque inclusions.
VVS means nothing resolvable in the photo, VS a few specks; the finer steps of a loupe grade are beyond
what a photograph resolves.

**Grade** from severity, on the coloured-stone scale VVS < VS < SI1 < SI2 < I1 < I2 < I3; VVS and VS are
eye-clean.
"""

from __future__ import annotations

import math

V0 = 1e-4
V1 = 0.1
GRADES = ("VVS", "VS", "SI1", "SI2", "I1", "I2", "I3")
GRADE_CUTS = (0.10, 0.25, 0.40, 0.55, 0.70, 0.85)  # severity upper bounds of VVS..I2
EYE_CLEAN = frozenset({"VVS", "VS"})


def severity_from_visibility(v: float) -> float:
    v = max(0.0, float(v))
    return float(min(1.0, math.log10(1.0 + v / V0) / math.log10(1.0 + V1 / V0)))


def visibility_from_severity(s: float) -> float:
    s = min(1.0, max(0.0, float(s)))
    return V0 * (10.0 ** (s * math.log10(1.0 + V1 / V0)) - 1.0)


def grade_of(severity: float) -> str:
    for cut, grade in zip(GRADE_CUTS, GRADES, strict=False):
        if severity < cut:
            return grade
    return GRADES[-1]


def grade_index(grade: str) -> int:
    return GRADES.index(grade)


def is_eye_clean(grade: str) -> bool:
    return grade in EYE_CLEAN
