"""Stone geometry in the stone's own frame (long axis along x, length 1, centroid at the origin):
outlines of each cut, crown facets and pavilion reflections, and inclusion polygons.

Everything here is seeded and exact, so an inclusion's footprint (its polygons' area over the outline's)
is known truth rather than something measured back from pixels.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Protocol

import numpy as np


class InclusionShape(Protocol):
    """What the geometry needs of an inclusion (`spec.InclusionSpec`, hashable: the polygons are cached)."""

    @property
    def kind(self) -> str: ...
    @property
    def x(self) -> float: ...
    @property
    def y(self) -> float: ...
    @property
    def size(self) -> float: ...
    @property
    def angle(self) -> float: ...
    @property
    def seed(self) -> int: ...


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


def dense_outline(cut: str, aspect: float, n: int = 256) -> np.ndarray:
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
def outline_area(cut: str, aspect: float) -> float:
    return _poly_area(dense_outline(cut, aspect))


def _polar_points(outline: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Points of a star-shaped outline (about the origin) at the given polar angles."""
    phi = np.arctan2(outline[:, 1], outline[:, 0])
    r = np.hypot(outline[:, 0], outline[:, 1])
    order = np.argsort(phi)
    phi, r = phi[order], r[order]
    rr = np.interp(np.mod(angles + np.pi, 2 * np.pi) - np.pi, phi, r, period=2 * np.pi)
    return np.stack([rr * np.cos(angles), rr * np.sin(angles)], axis=1)


def brilliant_facets(cut: str, aspect: float, rng: np.random.Generator) -> tuple[list, list]:
    """(crown facets, pavilion reflection wedges), each a list of (polygon, role)."""
    n_key, m = 16, 8
    phi0 = 0.0 if cut != "pear" else np.pi / 16
    ang = phi0 + np.linspace(0.0, 2.0 * np.pi, n_key * m, endpoint=False)
    ring = _polar_points(dense_outline(cut, aspect), ang)
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
    far = 1.2 * _polar_points(dense_outline(cut, aspect), wedge_ang)
    pav = [(np.array([[0.0, 0.0], far[k], far[k + 1]]), "pavilion") for k in range(n_key)]
    return crown, pav


def step_facets(aspect: float, rng: np.random.Generator) -> tuple[list, list]:
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


def rot(theta_deg: float) -> np.ndarray:
    t = math.radians(theta_deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


@lru_cache(maxsize=8192)
def inclusion_area(inc: InclusionShape) -> float:
    return float(sum(_poly_area(p) for p in inclusion_polygons(inc)))


@lru_cache(maxsize=8192)
def inclusion_polygons(inc: InclusionShape) -> tuple[np.ndarray, ...]:
    """Polygons (stone frame) of one inclusion; their area is its footprint. Seeded, so exact truth."""
    rng = np.random.default_rng(inc.seed)
    s = inc.size
    R = rot(inc.angle)
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


__all__ = ["brilliant_facets", "dense_outline", "inclusion_area", "inclusion_polygons", "outline_area", "rot",
           "step_facets"]
