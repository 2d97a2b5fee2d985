"""Random but plausible stone specs: body colours reproducible in sRGB under the chosen daylight, cuts,
backgrounds, inclusions and camera settings, for datasets and for tests that need variety.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gemid.datasets.synth.spec import BACKGROUNDS, CARDS, CUTS, INCLUSION_KINDS, InclusionSpec, StoneSpec
from gemid.vision.colorimetry import D65_XYZ, illuminant_xy, lab_to_linear, linear_rgb_adaptation, xy_to_xyz


def _in_gamut(lab: tuple[float, float, float], kelvins: tuple[float, ...], headroom: float) -> bool:
    lin = lab_to_linear(np.array(lab))
    for k in kelvins:
        M = linear_rgb_adaptation(D65_XYZ, xy_to_xyz(illuminant_xy(k)))
        v = M @ lin
        if v.min() < 0.002 or v.max() * headroom > 1.0:
            return False
    return True


def random_lab(rng: np.random.Generator, kind: str | None = None, kelvins: tuple[float, ...] = (6500.0,)) -> tuple:
    """A body colour reproducible in sRGB (with room for facet brightness and the illuminant shift)."""
    kind = kind or str(rng.choice(["coloured", "coloured", "coloured", "coloured", "coloured", "coloured",
                                   "colourless", "black"]))
    for _ in range(500):
        if kind == "colourless":
            L, c = rng.uniform(72, 90), rng.uniform(0, 12)
            h = rng.uniform(60, 100) if rng.random() < 0.8 else rng.uniform(0, 360)
        elif kind == "black":
            L, c, h = rng.uniform(6, 16), rng.uniform(0, 3), rng.uniform(0, 360)
        else:
            L, c, h = rng.uniform(20, 82), rng.uniform(5, 75), rng.uniform(0, 360)
        lab = (float(L), float(c * math.cos(math.radians(h))), float(c * math.sin(math.radians(h))))
        if _in_gamut(lab, kelvins, headroom=1.3):
            return lab
    return (50.0, 0.0, 0.0)


def random_inclusions(rng: np.random.Generator, n: int, aspect: float = 1.0, *,
                      size: tuple[float, float] = (0.012, 0.12), contrast: tuple[float, float] = (0.15, 1.0),
                      kinds: tuple[str, ...] = INCLUSION_KINDS) -> tuple[InclusionSpec, ...]:
    out = []
    for _ in range(n):
        th = rng.uniform(0, 2 * np.pi)
        rho = 0.8 * math.sqrt(rng.random())
        out.append(InclusionSpec(
            kind=str(rng.choice(kinds)), x=0.5 * rho * math.cos(th), y=0.5 / aspect * rho * math.sin(th),
            size=float(math.exp(rng.uniform(math.log(size[0]), math.log(size[1])))),
            contrast=float(rng.uniform(*contrast)), angle=float(rng.uniform(0, 180)),
            seed=int(rng.integers(0, 2**31 - 1)),
        ))
    return tuple(out)


def random_background(rng: np.random.Generator, kind: str) -> tuple[tuple, tuple]:
    if kind == "white":
        lab = (rng.uniform(88, 97), 0.0, 0.0)
    elif kind == "grey":
        lab = (rng.uniform(45, 80), 0.0, 0.0)
    elif kind == "black":
        lab = (rng.uniform(3, 14), 0.0, 0.0)
    elif kind == "coloured":
        c, h = rng.uniform(30, 55), rng.uniform(0, 360)
        lab = (rng.uniform(35, 80), c * math.cos(math.radians(h)), c * math.sin(math.radians(h)))
        for _ in range(50):  # keep it reproducible in sRGB
            if _in_gamut(lab, (5000.0, 8000.0), headroom=1.0):
                break
            c *= 0.85
            lab = (lab[0], c * math.cos(math.radians(h)), c * math.sin(math.radians(h)))
    elif kind == "gradient":
        lab = (rng.uniform(75, 96), 0.0, 0.0)
    else:  # textured
        lab = (rng.uniform(55, 90), 0.0, 0.0)
    lab2 = (float(np.clip(lab[0] - rng.uniform(8, 22), 30, 95)), 0.0, 0.0)
    return tuple(float(v) for v in lab), lab2


def random_spec(rng: np.random.Generator | int | None = None, **constraints: Any) -> StoneSpec:
    """A random but plausible photo. Any StoneSpec field given as a keyword is kept as given; also
    `n_inclusions=N` (how many random inclusions) and `colour_kind` ('coloured'|'colourless'|'black')."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    c = dict(constraints)
    n_incl = c.pop("n_inclusions", None)
    colour_kind = c.pop("colour_kind", None)
    unknown = set(c) - {f for f in StoneSpec.__dataclass_fields__}
    if unknown:
        raise TypeError(f"random_spec: unknown constraint(s) {', '.join(sorted(unknown))}")
    cut = c.get("cut") or str(rng.choice(CUTS))
    aspect = c.get("aspect") or (1.0 if cut == "round" else float(
        rng.uniform(1.0, 1.15) if cut == "cushion" else rng.uniform(1.25, 1.6) if cut in ("oval", "pear", "emerald")
        else rng.uniform(1.0, 1.4)))
    bg_kind = c.get("background") or str(rng.choice(BACKGROUNDS))
    bg, bg2 = random_background(rng, bg_kind)
    kelvin = float(c.get("illuminant_k") or rng.uniform(5000.0, 8000.0))
    lab = c.get("lab") or random_lab(rng, colour_kind, kelvins=(kelvin,))
    card = c["card"] if "card" in c else (str(rng.choice(CARDS)) if rng.random() < 0.2 else None)
    scale_hi = 0.62 if card else 0.75
    scale = c.get("scale") or float(rng.uniform(0.4, scale_hi))
    if card:  # keep the stone clear of the card's corner
        corner = int(c.get("card_corner", rng.integers(0, 4)))
        cx = 0.5 + (0.08 if corner in (0, 3) else -0.08)
        cy = 0.5 + (0.08 if corner in (0, 1) else -0.08)
        center = c.get("center") or (cx + rng.uniform(-0.03, 0.03), cy + rng.uniform(-0.03, 0.03))
    else:
        corner = int(c.get("card_corner", 0))
        slack = max(0.0, (1.0 - scale) / 2.0 - 0.04)
        center = c.get("center") or (0.5 + rng.uniform(-slack, slack), 0.5 + rng.uniform(-slack, slack))
    if n_incl is None:
        n_incl = 0 if rng.random() < 0.3 else int(round(math.exp(rng.uniform(0.0, math.log(30.0)))))
    incl = c.get("inclusions")
    if incl is None:
        incl = random_inclusions(rng, n_incl, aspect)
    base = dict(
        cut=cut, lab=lab, inclusions=incl, background=bg_kind, background_lab=bg, background_lab2=bg2,
        illuminant_k=kelvin, scale=scale, center=center, rotation=float(rng.uniform(0, 180)), aspect=aspect,
        facet_seed=int(rng.integers(0, 2**31 - 1)), facet_contrast=float(rng.uniform(0.12, 0.3)),
        extinction=float(rng.uniform(0.05, 0.3)), window=float(rng.uniform(0.0, 0.5) if rng.random() < 0.4 else 0.0),
        scintillation=float(rng.uniform(0.0, 0.15)), highlights=int(rng.integers(0, 4)),
        shadow=float(rng.uniform(0.0, 0.45)), edge_lines=float(rng.uniform(0.0, 0.6) if rng.random() < 0.5 else 0.0),
        blur=float(rng.uniform(0.0, 1.0)), noise=float(rng.uniform(0.0, 3.0)),
        jpeg_quality=int(rng.choice([0, 70, 80, 90, 95])), card=card, card_corner=corner,
    )
    base.update({k: v for k, v in c.items() if k != "card"})
    base["card"] = card
    return StoneSpec(**base)


__all__ = ["random_background", "random_inclusions", "random_lab", "random_spec"]
