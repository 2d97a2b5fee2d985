"""The renderer: a `StoneSpec` in, an RGB photo and a stone mask out, deterministically for a given seed.

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

OpenCV is imported inside the functions that draw, so importing the package stays light.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from gemid.datasets.synth.geometry import brilliant_facets, dense_outline, outline_area, rot, step_facets
from gemid.datasets.synth.spec import CARD_LAB, StoneSpec, truth
from gemid.vision.colorimetry import D65_XYZ, illuminant_xy, lab_to_linear, linear_rgb_adaptation, xy_to_xyz

_SS = 2  # supersampling factor for antialiased facets, outline and inclusions


def _to_px(p: np.ndarray, spec: StoneSpec, side: int) -> np.ndarray:
    """Stone frame -> pixel coordinates of an image `side` pixels wide."""
    R = rot(spec.rotation)
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
    outline_px = _to_px(dense_outline(spec.cut, spec.aspect), spec, S)

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
        inv = np.linalg.inv(rot(spec.rotation)) / (spec.scale * size)
        u = (xx - spec.center[0] * size) * inv[0, 0] + (yy - spec.center[1] * size) * inv[0, 1]
        v = (xx - spec.center[0] * size) * inv[1, 0] + (yy - spec.center[1] * size) * inv[1, 1]
        rho2 = np.clip((u / 0.5) ** 2 + (v * spec.aspect / 0.5) ** 2, 0.0, 1.0)
        dome = (0.55 + 0.75 * np.sqrt(1.0 - rho2) - 0.25 * rho2).astype(np.float32)
        gain = cv2.resize(dome, (S, S), interpolation=cv2.INTER_LINEAR)
    else:
        crown, pav = (step_facets(spec.aspect, frng) if spec.cut == "emerald"
                      else brilliant_facets(spec.cut, spec.aspect, frng))
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
                          "contrast": inc.contrast, "footprint": inc.area / outline_area(spec.cut, round(spec.aspect, 4))})

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


__all__ = ["inclusion_truth", "render"]
