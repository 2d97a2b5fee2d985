"""Synthetic loose stones with known ground truth: the test bed for colour and clarity grading.

No public photo set carries colour or clarity grades, so the estimators are proven on stones whose truth we
set ourselves. A `StoneSpec` is the truth (cut, body colour in CIELAB D65, inclusions, scene); `render`
turns it into an RGB photo and a stone mask, deterministically for a given seed.

How a scene is built (all in linear sRGB light, then one camera pipeline):
- outline (round, oval, cushion, pear brilliant; emerald step cut; cabochon dome) and facets: crown facets
  times pavilion reflections, each with its own brightness (lognormal around 1), dark extinction facets,
  white scintillation flashes, a see-through table window, thin facet-junction lines, a dark girdle rim.
  The brightness map is normalised so its median over the stone is 1: the body colour is the colour of
  a facet of median brightness, which is what a gemmologist reads as the face-up colour;
- inclusions (crystal, feather, needles/silk, cloud) darken a light stone or whiten a dark one, each with
  a footprint (area / stone area) and a contrast; severity follows `gemid.vision.clarity_scales`;
- background (white, grey, black, coloured, gradient, textured), contact shadow, optional neutral
  reference card, specular highlights;
- the illuminant: a daylight white point at `illuminant_k` kelvin (6500 K = D65) applied to the whole scene
  by Bradford adaptation, as a camera with fixed daylight white balance would record it;
- optics and camera: Gaussian blur, sRGB encoding, noise, JPEG.

Truth grades come from `gemid.vision.colour_scales` and `gemid.vision.clarity_scales`, the same functions
the estimators use. Top-level imports stay light (numpy only): `gemid --help` imports this module.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from gemid.vision import clarity_scales, colour_scales
from gemid.vision.colorimetry import (
    D65_XYZ,
    illuminant_xy,
    lab_to_linear,
    lab_to_rgb8,
    linear_rgb_adaptation,
    xy_to_xyz,
)

CUTS = ("round", "oval", "cushion", "emerald", "pear", "cabochon")
BACKGROUNDS = ("white", "grey", "black", "coloured", "gradient", "textured")
INCLUSION_KINDS = ("crystal", "feather", "needles", "cloud")
CARDS = ("white", "grey")
CARD_LAB = {"white": (90.0, 0.0, 0.0), "grey": (62.0, 0.0, 0.0)}  # exposed below clipping
_SS = 2  # supersampling factor for antialiased facets, outline and inclusions


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
        return _inclusion_polygons(self)

    @property
    def area(self) -> float:
        """Area in (stone length)^2 units."""
        return _inclusion_area(self)


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
        area = _outline_area(self.cut, round(self.aspect, 4))
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


# --- geometry ------------------------------------------------------------------------------------------


def _poly_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(x[:-1] @ y[1:] - y[:-1] @ x[1:] + x[-1] * y[0] - y[-1] * x[0]))


def _centroid(p: np.ndarray) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    cr = x * np.roll(y, -1) - np.roll(x, -1) * y
    a = cr.sum() / 2.0
    return np.array([((x + np.roll(x, -1)) * cr).sum() / (6 * a), ((y + np.roll(y, -1)) * cr).sum() / (6 * a)])


def _step_octagon(aspect: float) -> np.ndarray:
    a, b = 0.5, 0.5 / aspect
    c = 0.22 * b
    return np.array([(a - c, b), (-a + c, b), (-a, b - c), (-a, -b + c), (-a + c, -b), (a - c, -b),
                     (a, -b + c), (a, b - c)])


def _dense_outline(cut: str, aspect: float, n: int = 256) -> np.ndarray:
    """Closed outline, long axis along x with length 1, centroid at the origin."""
    if cut == "emerald":
        return _step_octagon(aspect)
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    a, b = 0.5, 0.5 / aspect
    if cut in ("round", "oval", "cabochon"):
        p = np.stack([a * np.cos(t), b * np.sin(t)], axis=1)
    elif cut == "cushion":
        e = 2.0 / 3.4  # superellipse exponent 3.4: rounded square/rectangle
        p = np.stack([a * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** e,
                      b * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** e], axis=1)
    elif cut == "pear":
        x = np.cos(t)
        y = np.sin(t) * np.abs(np.sin(t / 2.0)) ** 1.1
        p = np.stack([0.5 * x, y], axis=1)
        w = p[:, 1].max() - p[:, 1].min()
        p[:, 1] *= (1.0 / aspect) / w
    else:
        raise ValueError(cut)
    return p - _centroid(p)


@lru_cache(maxsize=64)
def _outline_area(cut: str, aspect: float) -> float:
    return _poly_area(_dense_outline(cut, aspect))


def _polar_points(outline: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Points of a star-shaped outline (about the origin) at the given polar angles."""
    phi = np.arctan2(outline[:, 1], outline[:, 0])
    r = np.hypot(outline[:, 0], outline[:, 1])
    order = np.argsort(phi)
    phi, r = phi[order], r[order]
    rr = np.interp(np.mod(angles + np.pi, 2 * np.pi) - np.pi, phi, r, period=2 * np.pi)
    return np.stack([rr * np.cos(angles), rr * np.sin(angles)], axis=1)


def _brilliant_facets(cut: str, aspect: float, rng: np.random.Generator) -> tuple[list, list]:
    """(crown facets, pavilion reflection wedges), each a list of (polygon, role)."""
    n_key, m = 16, 8
    phi0 = 0.0 if cut != "pear" else np.pi / 16
    ang = phi0 + np.linspace(0.0, 2.0 * np.pi, n_key * m, endpoint=False)
    ring = _polar_points(_dense_outline(cut, aspect), ang)
    P = ring[::m]
    t = rng.uniform(0.5, 0.6)
    s = rng.uniform(0.74, 0.82)
    T = [t * P[2 * j] for j in range(8)]
    S = [s * P[2 * j + 1] for j in range(8)]
    crown: list[tuple[np.ndarray, str]] = [(np.array(T), "table")]
    for j in range(8):
        crown.append((np.array([T[j], T[(j + 1) % 8], S[j]]), "star"))
        crown.append((np.array([T[j], S[j - 1], P[2 * j], S[j]]), "bezel"))
        arc1 = ring[(2 * j) * m : (2 * j + 1) * m + 1]
        idx2 = [((2 * j + 1) * m + k) % (n_key * m) for k in range(m + 1)]
        crown.append((np.vstack([S[j][None], arc1]), "girdle"))
        crown.append((np.vstack([S[j][None], ring[idx2]]), "girdle"))
    wedge_ang = phi0 + np.pi / 16 + np.linspace(0.0, 2.0 * np.pi, n_key + 1)
    far = 1.2 * _polar_points(_dense_outline(cut, aspect), wedge_ang)
    pav = [(np.array([[0.0, 0.0], far[k], far[k + 1]]), "pavilion") for k in range(n_key)]
    return crown, pav


def _step_facets(aspect: float, rng: np.random.Generator) -> tuple[list, list]:
    octo = _step_octagon(aspect)
    scales = [1.0, 0.84, 0.69, rng.uniform(0.52, 0.58)]
    crown: list[tuple[np.ndarray, str]] = [(octo * scales[-1], "table")]
    for i in range(len(scales) - 1):
        for k in range(8):
            q = np.array([octo[k] * scales[i], octo[(k + 1) % 8] * scales[i],
                          octo[(k + 1) % 8] * scales[i + 1], octo[k] * scales[i + 1]])
            crown.append((q, "step"))
    pav = []
    rings = [1.3, 0.92, 0.77, 0.62, 0.47, 0.32, 0.17]
    for i in range(len(rings)):
        inner = rings[i + 1] if i + 1 < len(rings) else 0.0
        for k in range(8):
            if inner > 0:
                q = np.array([octo[k] * rings[i], octo[(k + 1) % 8] * rings[i],
                              octo[(k + 1) % 8] * inner, octo[k] * inner])
            else:
                q = np.array([octo[k] * rings[i], octo[(k + 1) % 8] * rings[i], [0.0, 0.0]])
            pav.append((q, "pavilion"))
    return crown, pav


# --- inclusions ----------------------------------------------------------------------------------------


def _rot(theta_deg: float) -> np.ndarray:
    t = math.radians(theta_deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


@lru_cache(maxsize=8192)
def _inclusion_area(inc: InclusionSpec) -> float:
    return float(sum(_poly_area(p) for p in _inclusion_polygons(inc)))


@lru_cache(maxsize=8192)
def _inclusion_polygons(inc: InclusionSpec) -> tuple[np.ndarray, ...]:
    """Polygons (stone frame) of one inclusion; their area is its footprint. Seeded, so exact truth."""
    rng = np.random.default_rng(inc.seed)
    s = inc.size
    R = _rot(inc.angle)
    c = np.array([inc.x, inc.y])
    polys: list[np.ndarray] = []
    if inc.kind == "crystal":  # irregular convex prism outline
        k = int(rng.integers(5, 9))
        th = np.sort(rng.uniform(0, 2 * np.pi, k)) if k > 5 else np.linspace(0, 2 * np.pi, k, endpoint=False)
        q = rng.uniform(0.5, 1.0)
        rad = rng.uniform(0.8, 1.0, k) * s / 2.0
        polys.append(np.stack([rad * np.cos(th), q * rad * np.sin(th)], axis=1))
    elif inc.kind == "feather":  # wavy, tapered planar fracture with a few barbs
        n = 12
        u = np.linspace(-0.5, 0.5, n) * s
        amp = rng.uniform(0.05, 0.15) * s
        v = amp * np.sin(np.linspace(0, rng.uniform(1.5, 3.5) * np.pi, n) + rng.uniform(0, np.pi))
        w = s * rng.uniform(0.06, 0.12) * (1.0 - (2 * u / s) ** 2) ** 0.5 + 0.004
        top = np.stack([u, v + w], axis=1)
        bot = np.stack([u, v - w], axis=1)[::-1]
        polys.append(np.vstack([top, bot]))
        for _ in range(int(rng.integers(2, 5))):
            i = int(rng.integers(2, n - 2))
            d = rng.choice([-1.0, 1.0])
            L = s * rng.uniform(0.15, 0.3)
            base = np.array([u[i], v[i]])
            tip = base + np.array([L * 0.5, d * L])
            polys.append(np.array([base + [-0.01 * s, 0], base + [0.03 * s, 0], tip]))
    elif inc.kind == "needles":  # silk: thin straight needles in one to three directions 60 deg apart
        n = int(rng.integers(6, 15))
        dirs = rng.integers(1, 4)
        width = 0.006
        for _ in range(n):
            th = math.radians(60.0 * int(rng.integers(0, dirs)))
            L = s * rng.uniform(0.35, 0.9)
            cx, cy = rng.uniform(-0.5, 0.5, 2) * s * 0.8
            d = np.array([math.cos(th), math.sin(th)])
            nrm = np.array([-d[1], d[0]])
            p0 = np.array([cx, cy]) - d * L / 2
            p1 = np.array([cx, cy]) + d * L / 2
            polys.append(np.array([p0 - nrm * width / 2, p1 - nrm * width / 2, p1 + nrm * width / 2,
                                   p0 + nrm * width / 2]))
    elif inc.kind == "cloud":  # cluster of pinpoints
        n = int(rng.integers(20, 50))
        pts = rng.normal(0.0, s / 4.0, (n, 2))
        r = rng.uniform(0.004, 0.008, n)
        th = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        hexagon = np.stack([np.cos(th), np.sin(th)], axis=1)
        polys.extend(pts[:, None, :] + r[:, None, None] * hexagon[None])
    out = tuple(np.ascontiguousarray((p @ R.T) + c) for p in polys)
    for p in out:
        p.setflags(write=False)
    return out


# --- scene --------------------------------------------------------------------------------------------


def _to_px(p: np.ndarray, spec: StoneSpec, side: int) -> np.ndarray:
    """Stone frame -> pixel coordinates of an image `side` pixels wide."""
    R = _rot(spec.rotation)
    return (p @ R.T) * (spec.scale * side) + np.array(spec.center) * side


def _many_to_px(polys: list[np.ndarray] | tuple[np.ndarray, ...], spec: StoneSpec, side: int) -> list[np.ndarray]:
    """_to_px for many polygons at once (one matrix product: the renderer's hot path)."""
    if not polys:
        return []
    sizes = np.cumsum([len(p) for p in polys])[:-1]
    return np.split(_to_px(np.concatenate(polys), spec, side), sizes)


def _fill(img: np.ndarray, polys: list[np.ndarray], value: float | tuple) -> None:
    import cv2

    pts = [np.round(p * 16.0).astype(np.int32).reshape(-1, 1, 2) for p in polys]
    cv2.fillPoly(img, pts, value, lineType=cv2.LINE_8, shift=4)


def _lin(lab: tuple[float, float, float]) -> np.ndarray:
    return np.clip(lab_to_linear(np.array(lab)), 0.0, 1.0).astype(np.float32)


def _background(spec: StoneSpec, size: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    base = _lin(spec.background_lab)
    img = np.empty((size, size, 3), np.float32)
    img[:] = base
    if spec.background == "gradient":
        th = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
        t = np.clip(0.5 + (xx * math.cos(th) + yy * math.sin(th)), 0.0, 1.0)[..., None]
        img = base * (1.0 - t) + _lin(spec.background_lab2) * t
    elif spec.background == "textured":
        low = cv2.resize(rng.normal(0, 1, (6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        grain = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.8)
        period = rng.uniform(3.0, 6.0)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        weave = np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)
        tex = 1.0 + 0.06 * low + 0.05 * grain + 0.03 * weave
        img = img * tex[..., None]
    return img.astype(np.float32)


def _card_rect(spec: StoneSpec, size: int) -> tuple[int, int, int, int]:
    w, h = int(0.22 * size), int(0.15 * size)
    m = int(0.03 * size)
    x = m if spec.card_corner in (0, 3) else size - m - w
    y = m if spec.card_corner in (0, 1) else size - m - h
    return x, y, w, h


def render(spec: StoneSpec, *, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Render a stone: (RGB uint8 image, stone mask uint8 {0,255}, truth dict). Deterministic."""
    import cv2

    if size < 32 or size > 4096:
        raise ValueError("size must be within 32..4096 pixels")
    rng = np.random.default_rng([seed, spec.facet_seed, 7919])
    S = size * _SS
    outline_px = _to_px(_dense_outline(spec.cut, spec.aspect), spec, S)

    # stone coverage (antialiased alpha) and facet brightness map, supersampled
    cov = np.zeros((S, S), np.float32)
    _fill(cov, [outline_px], 1.0)
    gain = np.ones((S, S), np.float32)
    scint = np.zeros((S, S), np.float32)
    window = np.zeros((S, S), np.float32)
    frng = np.random.default_rng(spec.facet_seed)
    lines: list[np.ndarray] = []
    if spec.cut == "cabochon":
        # smooth dome shading, computed at output resolution and upsampled (it has no sharp edges)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        inv = np.linalg.inv(_rot(spec.rotation)) / (spec.scale * size)
        u = (xx - spec.center[0] * size) * inv[0, 0] + (yy - spec.center[1] * size) * inv[0, 1]
        v = (xx - spec.center[0] * size) * inv[1, 0] + (yy - spec.center[1] * size) * inv[1, 1]
        rho2 = np.clip((u / 0.5) ** 2 + (v * spec.aspect / 0.5) ** 2, 0.0, 1.0)
        dome = (0.55 + 0.75 * np.sqrt(1.0 - rho2) - 0.25 * rho2).astype(np.float32)
        gain = cv2.resize(dome, (S, S), interpolation=cv2.INTER_LINEAR)
    else:
        crown, pav = (_step_facets(spec.aspect, frng) if spec.cut == "emerald"
                      else _brilliant_facets(spec.cut, spec.aspect, frng))
        sig = spec.facet_contrast
        cg = np.ones((S, S), np.float32)
        crown_px = _many_to_px([c[0] for c in crown], spec, S)
        for (_poly, role), p in zip(crown, crown_px, strict=True):
            g = 1.0 if role == "table" else float(np.exp(frng.normal(0.0, sig * 0.6)))
            _fill(cg, [p], g)
            if role != "table" and frng.random() < spec.scintillation:
                _fill(scint, [p], float(frng.uniform(0.35, 0.8)))
            lines.append(p)
            if role == "table" and spec.window > 0:
                cen = p.mean(axis=0)
                _fill(window, [cen + 0.6 * (p - cen)], float(spec.window))
        pg = np.ones((S, S), np.float32)
        for p in _many_to_px([q[0] for q in pav], spec, S):
            g = float(np.exp(frng.normal(0.0, sig)))
            if frng.random() < spec.extinction:
                g = float(frng.uniform(0.08, 0.3))
            _fill(pg, [p], g)
        gain = cg * pg
        if spec.edge_lines > 0:
            gmed = float(np.median(gain[::4, ::4]))
            for p in lines:
                g = 1.0 + spec.edge_lines * (0.6 if frng.random() < 0.5 else -0.5)
                pts = np.round(p * 16.0).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(gain, [pts], True, g * gmed, thickness=_SS, lineType=cv2.LINE_8,
                              shift=4)
    # girdle rim: a slightly darker outline
    rim = np.round(outline_px * 16.0).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(gain, [rim], True, 0.55, thickness=_SS, lineType=cv2.LINE_8, shift=4)

    inside = cov > 0.5
    med = float(np.median(gain[::2, ::2][inside[::2, ::2]])) if inside[::2, ::2].any() else 1.0
    gain /= max(med, 1e-6)

    # inclusions: alpha maps (darkening on light stones, whitening on dark ones)
    incl = np.zeros((S, S), np.float32)
    boxes = []
    for inc in spec.inclusions:
        polys = _many_to_px(inc.polygons(), spec, S)
        allp = np.vstack(polys)
        lx0, ly0 = np.clip(np.floor(allp.min(axis=0)).astype(int) - 1, 0, S)
        lx1, ly1 = np.clip(np.ceil(allp.max(axis=0)).astype(int) + 2, 0, S)
        if lx1 > lx0 and ly1 > ly0:
            layer = np.zeros((ly1 - ly0, lx1 - lx0), np.float32)
            _fill(layer, [p - (lx0, ly0) for p in polys], float(inc.contrast))
            roi = incl[ly0:ly1, lx0:lx1]
            np.maximum(roi, layer, out=roi)
        allp = allp / _SS
        x0, y0 = np.floor(allp.min(axis=0)).astype(int)
        x1, y1 = np.ceil(allp.max(axis=0)).astype(int)
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(size, x1), min(size, y1)
        if x1 > x0 and y1 > y0:
            boxes.append({"kind": inc.kind, "bbox": [int(x0), int(y0), int(x1 - x0), int(y1 - y0)],
                          "contrast": inc.contrast, "footprint": inc.area / _outline_area(spec.cut, round(spec.aspect, 4))})

    def down(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA)

    alpha = down(cov)[..., None]
    gain, scint, window, incl = down(gain), down(scint), down(window), down(incl)
    mask = ((alpha[..., 0] >= 0.5) * 255).astype(np.uint8)

    # scene in linear light (D65)
    bg = _background(spec, size, rng)
    if spec.shadow > 0 and spec.scale < 1.0:
        d = spec.scale * size
        M = np.float32([[1, 0, 0.04 * d], [0, 1, 0.06 * d]])
        sh = cv2.warpAffine(alpha[..., 0], M, (size, size))
        sh = cv2.GaussianBlur(sh, (0, 0), max(1.0, 0.06 * d))
        bg = bg * (1.0 - spec.shadow * sh)[..., None]
    card_box = None
    if spec.card:
        x, y, w, h = _card_rect(spec, size)
        bg[y : y + h, x : x + w] = _lin(CARD_LAB[spec.card])
        card_box = [x, y, w, h]

    body = _lin(spec.lab)
    stone = body[None, None, :] * gain[..., None]
    # see-through window: lighter and less saturated (half the path length through the stone)
    through = np.sqrt(np.clip(body, 1e-4, 1.0))[None, None, :] * bg if spec.window > 0 else None
    if spec.window > 0:
        stone = stone * (1.0 - window[..., None]) + through * window[..., None]
    if spec.scintillation > 0:
        stone = stone + scint[..., None] * (0.9 - stone)
    if spec.inclusions:  # dark inclusions on a light stone, whitish ones on a dark stone
        dark = float(spec.lab[0]) > 55.0
        stone = stone * (1.0 - 0.92 * incl[..., None]) if dark else stone + incl[..., None] * (0.85 - stone)
    # specular highlights: small saturated reflections of the lamp
    d = spec.scale * size
    for _ in range(spec.highlights):
        ang = rng.uniform(0, 2 * np.pi)
        r = rng.uniform(0.0, 0.3) * d
        cx = spec.center[0] * size + r * math.cos(ang)
        cy = spec.center[1] * size + r * math.sin(ang)
        sg = max(0.7, rng.uniform(0.012, 0.03) * d)
        k = rng.uniform(1.5, 3.0)
        x0, x1 = int(max(0, cx - 4 * sg)), int(min(size, cx + 4 * sg + 1))
        y0, y1 = int(max(0, cy - 4 * sg)), int(min(size, cy + 4 * sg + 1))
        if x1 > x0 and y1 > y0:
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sg * sg)) * k
            stone[y0:y1, x0:x1] += blob[..., None]
    scene = bg * (1.0 - alpha) + np.clip(stone, 0.0, None) * alpha

    # illuminant: what a camera with fixed D65 white balance records under a daylight of illuminant_k
    if abs(spec.illuminant_k - 6500.0) > 1.0:
        M = linear_rgb_adaptation(D65_XYZ, xy_to_xyz(illuminant_xy(spec.illuminant_k))).astype(np.float32)
        scene = scene @ M.T
    if spec.blur > 0:
        scene = cv2.GaussianBlur(scene, (0, 0), spec.blur * size / 256.0)
    img = _encode_srgb(scene)
    if spec.noise > 0:
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(spec.noise)
    rgb = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if spec.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
        rgb = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return rgb, mask, truth(spec, inclusion_boxes=boxes, card_box=card_box)


def _encode_srgb(lin: np.ndarray) -> np.ndarray:
    """Linear float32 -> sRGB in 0..255 float32 (float32 throughout: this is the renderer's hot path)."""
    v = np.clip(lin, 0.0, 1.0).astype(np.float32, copy=False)
    return np.where(v <= 0.0031308, v * (12.92 * 255.0), (1.055 * 255.0) * np.power(v, np.float32(1 / 2.4)) - 0.055 * 255.0)


def inclusion_truth(spec: StoneSpec, rgb: np.ndarray, *, size: int, seed: int) -> np.ndarray:
    """The pixels of `rgb` (rendered from `spec` with `size` and `seed`) that its inclusions change: the
    same scene rendered without them differs there by more than 15 levels (summed over R, G, B)."""
    clean, _, _ = render(replace(spec, inclusions=()), size=size, seed=seed)
    return np.abs(clean.astype(np.int16) - rgb.astype(np.int16)).sum(-1) > 15


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


# --- random specs ------------------------------------------------------------------------------------


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


# --- datasets and CLI ----------------------------------------------------------------------------------


def render_dataset(n: int, out_dir: Path | str, seed: int = 0, size: int = 256, **constraints: Any) -> Path:
    """Render n stones into out_dir: images/, manifest.csv (species 'synthetic', colour and clarity grades),
    truth.jsonl (one JSON object per image, same order). Returns the manifest path."""
    import cv2

    from gemid.datasets.manifest import Row, write_manifest

    if n < 1:
        raise ValueError("n must be at least 1")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    with open(out / "truth.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            spec = random_spec(rng, **constraints)
            rgb, _mask, t = render(spec, size=size, seed=seed * 1_000_003 + i)
            ext = ".jpg" if spec.jpeg_quality else ".png"
            path = out / "images" / f"stone_{i:05d}{ext}"
            params = [cv2.IMWRITE_JPEG_QUALITY, 100] if ext == ".jpg" else []
            if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
                raise OSError(f"could not write {path}")
            rows.append(Row(path=str(path), species="synthetic", colour_grade=t["colour_grade"],
                            clarity_grade=t["clarity_grade"], source=f"synth:seed={seed}"))
            f.write(json.dumps({"path": f"images/{path.name}", "seed": seed * 1_000_003 + i, **t,
                                "spec": _spec_json(spec)}) + "\n")
    return write_manifest(rows, out / "manifest.csv")


def _spec_json(spec: StoneSpec) -> dict[str, Any]:
    d = asdict(spec)
    d["inclusions"] = [asdict(i) for i in spec.inclusions]
    return d


def spec_from_json(d: dict[str, Any]) -> StoneSpec:
    d = dict(d)
    d["inclusions"] = tuple(InclusionSpec(**i) for i in d.get("inclusions", ()))
    for k in ("lab", "background_lab", "background_lab2", "center"):
        if k in d:
            d[k] = tuple(d[k])
    return StoneSpec(**d)


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render synthetic stones with known colour and clarity truth",
                       description="Render synthetic loose stones (images + manifest.csv + truth.jsonl).")
    p.add_argument("--n", type=int, required=True, help="number of stones")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--cut", choices=CUTS, help="only this cut")
    p.add_argument("--background", choices=BACKGROUNDS, help="only this background")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    import sys

    constraints = {k: v for k, v in (("cut", args.cut), ("background", args.background)) if v}
    try:
        path = render_dataset(args.n, args.out, seed=args.seed, size=args.size, **constraints)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} stones: {path}")
    return 0


__all__ = [
    "BACKGROUNDS", "CUTS", "INCLUSION_KINDS", "InclusionSpec", "StoneSpec", "inclusion_truth", "random_spec", "register_cli",
    "render", "render_dataset", "spec_from_json", "truth",
]
