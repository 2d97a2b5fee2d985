"""Learned grade heads: when the bundle's model was trained on graded photos, its answer wins.

`gemid train` adds `colour_grade` / `clarity_grade` heads when a manifest carries those columns (a lab's
own graded photos); `gemid export` writes them as extra ONNX outputs named in `bundle.heads`. The runtime
prefers such a head over the measured estimate and keeps the measurement for what a head cannot give
(body colour Lab and swatch, inclusion boxes). Without a head, or with classes it does not recognise, the
measured grade stands.
"""

from __future__ import annotations

import re

import numpy as np

from gemid.report import ClarityGrade, ColourGrade, ScaleValue
from gemid.vision import clarity_scales, colour_scales

_COLOUR_CODE = re.compile(r"^\s*([A-Za-z]+)\s+(\d{1,2})\s*/\s*(\d)\s*$")  # 'bG 5/4': hue tone/saturation
_HUE_NAMES = {code: name for code, name, _ in colour_scales.HUES}


def _top(probs: np.ndarray, classes: list[str]) -> tuple[str, float]:
    i = int(np.argmax(probs))
    return classes[i], float(probs[i])


def learned_clarity(measured: ClarityGrade | None, probs: np.ndarray, classes: list[str]) -> ClarityGrade | None:
    grade, p = _top(probs, classes)
    if grade not in clarity_scales.GRADES or (measured is not None and measured.status != "graded"):
        return measured  # a photo that cannot show clarity (or an opaque stone) gets no grade from a head either
    base = measured or ClarityGrade(
        grade=grade, eye_clean=False, confidence=0.0,
        severity=clarity_scales.grade_index(grade) / (len(clarity_scales.GRADES) - 1),
    )
    return base.model_copy(update={"grade": grade, "eye_clean": clarity_scales.is_eye_clean(grade),
                                   "confidence": round(p, 3), "source": "learned"})


def learned_colour(measured: ColourGrade | None, probs: np.ndarray, classes: list[str]) -> ColourGrade | None:
    """Hue, tone and saturation from the head; Lab, swatch and white balance stay measured."""
    code, p = _top(probs, classes)
    m = _COLOUR_CODE.match(code)
    if measured is None or not m or not (0 <= int(m[2]) <= 10 and 1 <= int(m[3]) <= 6):
        return measured
    hue_code, tone, sat = m[1], int(m[2]), int(m[3])
    hue = _HUE_NAMES.get(hue_code, measured.hue) if hue_code != "N" else "neutral"
    names = colour_scales._SAT_WARM if colour_scales.is_warm(measured.hue_angle) else colour_scales._SAT_COOL
    tone_v = ScaleValue(value=tone, name=colour_scales.TONE_NAMES[tone])
    sat_v = ScaleValue(value=sat, name=names[sat - 1])
    text = (f"{tone_v.name.capitalize()}, {sat_v.name}, {hue} (tone {tone}, saturation {sat}); "
            f"graded by the model's learned colour head ({p:.0%}).")
    return measured.model_copy(update={"hue": hue, "tone": tone_v, "saturation": sat_v, "description": text,
                                       "confidence": round(p, 3), "source": "learned"})


def apply_heads(colour: ColourGrade | None, clarity: ClarityGrade | None, heads: dict[str, np.ndarray],
                classes: dict[str, list[str]]) -> tuple[ColourGrade | None, ClarityGrade | None]:
    if "colour_grade" in heads and "colour_grade" in classes:
        colour = learned_colour(colour, heads["colour_grade"], classes["colour_grade"])
    if "clarity_grade" in heads and "clarity_grade" in classes:
        clarity = learned_clarity(clarity, heads["clarity_grade"], classes["clarity_grade"])
    return colour, clarity
