"""Rendered hard non-gems: small shiny things on a plain background that look like a stone photo.

The species model's open-set rejection is weakest on exactly these (a studio plum is "ruby", a potato
"amber"): one object framed like a product photo, with highlights and a colour of its own. The real photos
of `../shared/data/nongem-dev` cover fruit, cutlery and packaging; these add what a gem desk also sees and
what is easy to draw well: glass marbles (with a swirl), beads on a string, buttons, plastic pieces and
glossy sweets, each with a shadow and a specular highlight, on white, grey, black or beige, seeded.
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("marble", "beads", "button", "plastic", "sweet")
_BACKGROUNDS = ((245, 245, 245), (250, 250, 250), (128, 128, 128), (20, 20, 22), (225, 210, 185), (200, 200, 205))


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated or pastel colour, any hue."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(90, 256), rng.integers(90, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _shade(img: np.ndarray, mask: np.ndarray, colour: np.ndarray, centre: tuple[float, float], r: float,
           rng: np.random.Generator, gloss: float = 1.0) -> None:
    """Paint a rounded body: radial shading, a soft specular highlight, into img where mask."""
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.sqrt((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / max(r, 1.0)
    body = colour[None, None, :] * np.clip(1.05 - 0.55 * d, 0.35, 1.0)[..., None]
    hx, hy = centre[0] - 0.35 * r * rng.uniform(0.6, 1.2), centre[1] - 0.35 * r * rng.uniform(0.6, 1.2)
    spec = np.exp(-(((xx - hx) ** 2 + (yy - hy) ** 2) / (2 * (0.12 * r) ** 2)))[..., None] * 255.0 * gloss
    m = mask > 0
    img[m] = np.clip(body + spec, 0, 255)[m]


def _shadow(img: np.ndarray, mask: np.ndarray, offset: int, strength: float) -> None:
    m = np.roll(np.roll(mask, offset, axis=0), offset // 2, axis=1).astype(np.float32) / 255.0
    soft = cv2.GaussianBlur(m, (0, 0), sigmaX=max(1.0, offset))[..., None]
    img *= 1.0 - strength * soft


def render_negative(kind: str, seed: int, side: int = 320) -> np.ndarray:
    """One rendered non-gem photo (uint8 RGB, side x side)."""
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    bg = np.array(_BACKGROUNDS[int(rng.integers(0, len(_BACKGROUNDS)))], np.float32)
    img = np.empty((side, side, 3), np.float32)
    img[:] = bg
    ramp = np.linspace(rng.uniform(0.9, 1.0), rng.uniform(1.0, 1.05), side, dtype=np.float32)
    img *= ramp[:, None, None]
    c = (side / 2 + rng.uniform(-0.08, 0.08) * side, side / 2 + rng.uniform(-0.08, 0.08) * side)
    r = rng.uniform(0.18, 0.32) * side
    mask = np.zeros((side, side), np.uint8)
    col = _colour(rng)
    if kind == "marble":
        cv2.circle(mask, (int(c[0]), int(c[1])), int(r), 255, -1, cv2.LINE_AA)
        _shadow(img, mask, int(0.08 * r), 0.5)
        tint = col * rng.uniform(0.3, 0.9) + 60
        _shade(img, mask, tint, c, r, rng)
        swirl = np.zeros_like(mask)
        pts = [(c[0] + r * 0.8 * np.cos(t), c[1] + r * 0.5 * np.sin(2 * t + rng.uniform(0, 3)))
               for t in np.linspace(0, 2 * np.pi, 40)]
        cv2.polylines(swirl, [np.int32(pts)], False, 255, max(2, int(0.15 * r)), cv2.LINE_AA)
        swirl &= mask
        img[swirl > 0] = 0.5 * img[swirl > 0] + 0.5 * _colour(rng)
    elif kind == "beads":
        n = int(rng.integers(3, 7))
        rb = r / n * 1.6
        ang = rng.uniform(0, np.pi)
        for k in range(n):
            t = (k - (n - 1) / 2) * 2.05 * rb
            cc = (c[0] + t * np.cos(ang), c[1] + t * np.sin(ang))
            m = np.zeros_like(mask)
            cv2.circle(m, (int(cc[0]), int(cc[1])), int(rb), 255, -1, cv2.LINE_AA)
            _shadow(img, m, int(0.1 * rb), 0.4)
            _shade(img, m, col if rng.random() < 0.7 else _colour(rng), cc, rb, rng)
            mask |= m
        p0 = (int(c[0] - 1.3 * r * np.cos(ang)), int(c[1] - 1.3 * r * np.sin(ang)))
        p1 = (int(c[0] + 1.3 * r * np.cos(ang)), int(c[1] + 1.3 * r * np.sin(ang)))
        cv2.line(img, p0, p1, (40.0, 40.0, 40.0), max(1, side // 200), cv2.LINE_AA)
    elif kind == "button":
        cv2.circle(mask, (int(c[0]), int(c[1])), int(r), 255, -1, cv2.LINE_AA)
        _shadow(img, mask, int(0.05 * r), 0.4)
        _shade(img, mask, col, c, r, rng, gloss=0.4)
        cv2.circle(img, (int(c[0]), int(c[1])), int(0.8 * r), (col * 0.7).tolist(), max(2, int(0.06 * r)),
                   cv2.LINE_AA)
        holes = 2 if rng.random() < 0.5 else 4
        for k in range(holes):
            a = np.pi * 2 * k / holes + rng.uniform(0, 1)
            cv2.circle(img, (int(c[0] + 0.28 * r * np.cos(a)), int(c[1] + 0.28 * r * np.sin(a))),
                       max(2, int(0.1 * r)), (bg * 0.6).tolist(), -1, cv2.LINE_AA)
    elif kind == "plastic":
        n = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = r * rng.uniform(0.55, 1.1, n)
        pts = np.stack([c[0] + radii * np.cos(angles), c[1] + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.int32(pts)], 255, cv2.LINE_AA)
        _shadow(img, mask, int(0.06 * r), 0.35)
        alpha = rng.uniform(0.55, 0.95)
        m = mask > 0
        img[m] = alpha * col + (1 - alpha) * img[m]
        edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        img[edge] = np.clip(img[edge] * 1.3 + 30, 0, 255)
    else:  # a glossy sweet: an ellipse, wrapped or not
        axes = (int(r), int(r * rng.uniform(0.55, 0.9)))
        cv2.ellipse(mask, (int(c[0]), int(c[1])), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
        _shadow(img, mask, int(0.07 * r), 0.45)
        _shade(img, mask, col, c, r, rng, gloss=1.2)
        if rng.random() < 0.4:  # sugar coating: speckle
            speck = (rng.random((side, side)) < 0.05) & (mask > 0)
            img[speck] = np.clip(img[speck] + 60, 0, 255)
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=rng.uniform(0.3, 1.0))
    img += rng.normal(0, rng.uniform(0.5, 3.0), img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def rendered_negatives(n: int, seed: int, side: int = 320) -> list[tuple[str, np.ndarray]]:
    """`n` rendered non-gems, the kinds in turn, each named `rendered:{kind}:{seed}:{i}`."""
    return [(f"rendered:{KINDS[i % len(KINDS)]}:{seed}:{i}", render_negative(KINDS[i % len(KINDS)], seed * 100_003 + i,
                                                                               side)) for i in range(n)]
