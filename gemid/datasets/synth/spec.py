"""What a synthetic photo shows: the `StoneSpec` (cut, body colour in CIELAB D65, inclusions, scene) is
the ground truth, and `truth` turns it into the plain JSON values a dataset records beside each image.

Truth grades come from `gemid.vision.colour_scales` and `gemid.vision.clarity_scales`, the same functions
the estimators use, so a test compares an estimate with the scale it is graded on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gemid.datasets.synth.geometry import inclusion_area, inclusion_polygons, outline_area
from gemid.vision import clarity_scales, colour_scales
from gemid.vision.colorimetry import lab_to_rgb8

CUTS = ("round", "oval", "cushion", "emerald", "pear", "cabochon")
BACKGROUNDS = ("white", "grey", "black", "coloured", "gradient", "textured")
INCLUSION_KINDS = ("crystal", "feather", "needles", "cloud")
CARDS = ("white", "grey")
CARD_LAB = {"white": (90.0, 0.0, 0.0), "grey": (62.0, 0.0, 0.0)}  # exposed below clipping


@dataclass(frozen=True)
class InclusionSpec:
    """One inclusion. Position in the stone's own frame (long axis along x, stone length 1, centroid at 0)."""

    kind: str
    x: float
    y: float
    size: float  # extent as a fraction of the stone's length
    contrast: float  # 0..1
    angle: float = 0.0  # degrees
    seed: int = 0  # shape details

    def __post_init__(self) -> None:
        if self.kind not in INCLUSION_KINDS:
            raise ValueError(f"inclusion kind {self.kind!r} is not one of {', '.join(INCLUSION_KINDS)}")
        if not (0.0 <= self.contrast <= 1.0) or self.size <= 0:
            raise ValueError("inclusion contrast must be in 0..1 and size > 0")

    def polygons(self) -> tuple[np.ndarray, ...]:
        return inclusion_polygons(self)

    @property
    def area(self) -> float:
        """Area in (stone length)^2 units."""
        return inclusion_area(self)


@dataclass(frozen=True)
class StoneSpec:
    """The ground truth of one rendered photo."""

    cut: str = "round"
    lab: tuple[float, float, float] = (45.0, 40.0, 15.0)
    inclusions: tuple[InclusionSpec, ...] = ()
    background: str = "white"
    background_lab: tuple[float, float, float] = (94.0, 0.0, 0.0)
    background_lab2: tuple[float, float, float] = (70.0, 0.0, 0.0)  # far end of a gradient
    illuminant_k: float = 6500.0
    scale: float = 0.6  # stone length / frame side (> 1: the stone fills the frame)
    center: tuple[float, float] = (0.5, 0.5)  # stone centre as a fraction of the frame
    rotation: float = 0.0  # degrees
    aspect: float = 1.0  # length / width (round: 1)
    facet_seed: int = 0
    facet_contrast: float = 0.22  # lognormal sigma of facet brightness
    extinction: float = 0.15  # share of dark pavilion reflections
    window: float = 0.0  # 0..1 see-through table window
    scintillation: float = 0.1  # share of crown facets flashing white
    highlights: int = 1
    shadow: float = 0.3
    edge_lines: float = 0.0  # 0..1 contrast of facet-junction lines
    blur: float = 0.0  # Gaussian sigma in pixels at 256 px
    noise: float = 0.0  # Gaussian sigma in 8-bit levels
    jpeg_quality: int = 0  # 0: lossless
    card: str | None = None  # neutral reference card: "white" | "grey"
    card_corner: int = 0  # 0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left

    def __post_init__(self) -> None:
        if self.cut not in CUTS:
            raise ValueError(f"cut {self.cut!r} is not one of {', '.join(CUTS)}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background {self.background!r} is not one of {', '.join(BACKGROUNDS)}")
        if self.card is not None and self.card not in CARDS:
            raise ValueError(f"card {self.card!r} is not one of {', '.join(CARDS)}")
        object.__setattr__(self, "inclusions", tuple(self.inclusions))
        object.__setattr__(self, "lab", tuple(float(v) for v in self.lab))

    @property
    def visibility(self) -> float:
        """Sum of contrast x footprint (inclusion area / stone area)."""
        area = outline_area(self.cut, round(self.aspect, 4))
        return float(sum(inc.contrast * inc.area for inc in self.inclusions) / area)

    @property
    def severity(self) -> float:
        return clarity_scales.severity_from_visibility(self.visibility)

    @property
    def clarity_grade(self) -> str:
        return clarity_scales.grade_of(self.severity)

    @property
    def grades(self) -> colour_scales.Grades:
        return colour_scales.grade_lab(self.lab)


def truth(spec: StoneSpec, *, inclusion_boxes: list | None = None, card_box: list | None = None) -> dict[str, Any]:
    """The ground truth of a spec as plain JSON-able values."""
    g = spec.grades
    band = colour_scales.dz_band(spec.lab)
    return {
        "cut": spec.cut,
        "lab": [round(v, 3) for v in spec.lab],
        "hex": "#" + "".join(f"{int(v):02x}" for v in lab_to_rgb8(np.array(spec.lab))),
        "hue": g.hue, "hue_code": g.hue_code, "hue_angle": round(g.hue_angle, 3), "chroma": round(g.chroma, 3),
        "tone": g.tone, "tone_name": g.tone_name, "saturation": g.saturation, "saturation_name": g.saturation_name,
        "colour_grade": g.code,
        "d_to_z": list(band) if band else None,
        "visibility": spec.visibility,
        "severity": round(spec.severity, 5),
        "clarity_grade": spec.clarity_grade,
        "eye_clean": clarity_scales.is_eye_clean(spec.clarity_grade),
        "n_inclusions": len(spec.inclusions),
        "inclusions": inclusion_boxes if inclusion_boxes is not None else [asdict(i) for i in spec.inclusions],
        "background": spec.background, "background_lab": list(spec.background_lab),
        "illuminant_k": spec.illuminant_k,
        "card": spec.card, "card_box": card_box,
    }


def spec_json(spec: StoneSpec) -> dict[str, Any]:
    """The spec as JSON-able values (truth.jsonl keeps it, so any stone can be rendered again)."""
    d = asdict(spec)
    d["inclusions"] = [asdict(i) for i in spec.inclusions]
    return d


def spec_from_json(d: dict[str, Any]) -> StoneSpec:
    """The inverse of `spec_json`."""
    d = dict(d)
    d["inclusions"] = tuple(InclusionSpec(**i) for i in d.get("inclusions", ()))
    for k in ("lab", "background_lab", "background_lab2", "center"):
        if k in d:
            d[k] = tuple(d[k])
    return StoneSpec(**d)


__all__ = ["BACKGROUNDS", "CARDS", "CARD_LAB", "CUTS", "INCLUSION_KINDS", "InclusionSpec", "StoneSpec",
           "spec_from_json", "spec_json", "truth"]
