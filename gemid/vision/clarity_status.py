"""Whether a photo supports a clarity grade, and whether the stone in it is eye-clean: decisions fitted on
real photos judged by eye (issue 27), not only on renders.

The candidate-level measurement of `gemid.vision.clarity` was fitted on rendered stones; on real product
photos it took facet reflections for inclusions and graded nine clean stones in ten I1-I3. Two photo-level
decisions, each on a few measurable cues (`data/clarity_real.json`), sit on top of it:

Both decisions are small networks (one hidden tanh layer, plain numpy).

- **Faceted or not.** A cabochon, a tumbled or rough stone or a carving has no facet pattern, so a clarity
  grade on the faceted scale means nothing. Cues: how much straight edge the LSD line-segment detector finds
  inside the stone (facet edges and junctions), the density of Canny edges, how much of the lightness
  variation is smooth shading (a dome's gradient) rather than fine structure, how well a quadratic surface
  explains the lightness, and how convex the outline is (rough stones are lumpy).
- **Eye-clean or visibly included.** Cues from the measurement itself (severity, the accepted candidates,
  their probabilities and contrast, the inclusion map) and from how busy the facet pattern is, so that a
  busy checkerboard's reflections are weighed against the candidates they produce.

Both are fitted by `python -m bench.bench_clarity_real fit-real` on the annotations' train part (the val
part is never seen) plus rendered stones of seeds disjoint from the render benchmark's, so the grade keeps
its meaning on renders. Hard limits that need no fit (too few pixels, glare, several stones) come first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

from gemid.vision.classify import sigmoid

MIN_DIAMETER_PX = 60.0  # the protocol's "too small": fewer pixels across than this cannot show an inclusion
MAX_GLARE = 0.85  # share of the stone's core clipped white above which reflections hide the inside
TEXTURE = ("curved_edge_share", "curved_edge_density", "fine_detail", "lightness_iqr", "chroma_spread",
           "blotches", "straight_cover")
FACET_FEATURES = ("line_length", "line_count", "edge_density", "smooth_share", "quad_r2", "solidity",
                  "log_noise", "grad_median", *TEXTURE)
PHOTO_FEATURES = ("severity", "log_visibility", "accepted", "p_max", "p_mass", "map_share", "map_mean",
                  "contrast_top", "dark_share", "line_length", "edge_density", "log_noise", "clipped",
                  "candidates", *TEXTURE)

__all__ = ["FACET_FEATURES", "PHOTO_FEATURES", "TEXTURE", "Verdict", "facet_cues", "hard_limit", "not_faceted",
           "p_included", "photo_cues", "real_model"]


@dataclass(frozen=True)
class Verdict:
    status: str  # "cannot_judge" | "not_applicable"
    reason: str


@lru_cache(maxsize=1)
def real_model() -> dict:
    return json.loads(resources.files("gemid.vision").joinpath("data/clarity_real.json").read_text("utf-8"))


def hard_limit(diameter_px: float, clipped_fraction: float, n_stones: int) -> Verdict | None:
    """The reasons that need no fit: the stone is too small, glare covers it, or there are several stones."""
    if n_stones > 1:
        return Verdict("cannot_judge", f"{n_stones} separate stones are in the photo; clarity is graded on "
                                       "one stone at a time")
    if diameter_px < MIN_DIAMETER_PX:
        return Verdict("cannot_judge", f"the stone is only about {diameter_px:.0f} pixels across (fewer than "
                                       f"{MIN_DIAMETER_PX:.0f}); inclusions cannot be seen at this size")
    if clipped_fraction > MAX_GLARE:
        return Verdict("cannot_judge", f"glare covers {clipped_fraction:.0%} of the stone; reflections hide "
                                       "what is inside")
    return None


def _lines(segments: np.ndarray, shape: tuple[int, int], core: np.ndarray) -> tuple[float, int, np.ndarray]:
    """Of the stone's LSD segments: total length and count of those >= 10 px whose middle lies in the core,
    and a 3-px mask of every segment >= 8 px (the straight edges that facet edges and junctions make)."""
    mask = np.zeros(shape, np.uint8)
    if len(segments) == 0:
        return 0.0, 0, mask > 0
    n = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
    for (x1, y1, x2, y2), length in zip(segments, n, strict=True):
        if length >= 8.0:
            cv2.line(mask, (round(x1), round(y1)), (round(x2), round(y2)), 1, thickness=3)
    mx = np.clip(np.round((segments[:, 0] + segments[:, 2]) / 2).astype(int), 0, shape[1] - 1)
    my = np.clip(np.round((segments[:, 1] + segments[:, 3]) / 2).astype(int), 0, shape[0] - 1)
    keep = (n >= 10.0) & core[my, mx]
    return float(n[keep].sum()), int(keep.sum()), mask > 0


def _quad_r2(L: np.ndarray, core: np.ndarray) -> float:
    """Share of the core's lightness variance that a quadratic surface explains (a dome's shading)."""
    ys, xs = np.nonzero(core)
    if len(xs) < 20:
        return 0.0
    step = max(1, len(xs) // 4000)
    xs, ys = xs[::step].astype(np.float64), ys[::step].astype(np.float64)
    v = L[ys.astype(int), xs.astype(int)].astype(np.float64)
    x, y = (xs - xs.mean()) / (xs.std() + 1e-6), (ys - ys.mean()) / (ys.std() + 1e-6)
    a = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], 1)
    coef, *_ = np.linalg.lstsq(a, v, rcond=None)
    var = float(v.var())
    return float(1.0 - (v - a @ coef).var() / var) if var > 1e-6 else 1.0


def _solidity(mask: np.ndarray) -> float:
    """Area of the largest outline over its convex hull's (faceted stones and domes are convex)."""
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 1.0
    c = max(contours, key=cv2.contourArea)
    hull = cv2.contourArea(cv2.convexHull(c))
    return float(cv2.contourArea(c) / hull) if hull > 0 else 1.0


def facet_cues(image: np.ndarray, L: np.ndarray, core: np.ndarray, noise: float, seg_mask: np.ndarray,
               diameter: float, segments: np.ndarray, canny: np.ndarray) -> np.ndarray:
    """FACET_FEATURES of a normalised stone (image: RGB uint8, L: its L*, core: the stone less its rim).

    Besides the straight edges, the texture: Canny edges that no straight segment explains (the curved
    outlines of feathers, clouds and the jardin, and a dome's soft highlights), fine detail against the
    facet pattern's contrast, and how much the colour varies (a milky or included stone is patchy).
    `segments` and `canny` are the stone's LSD segments and Canny edges (`clarity.line_segments`, `edge_map`)."""
    length, count, straight = _lines(segments, L.shape, core)
    edges = canny & core
    v = L[core]
    blur = cv2.GaussianBlur(L, (0, 0), 0.8)
    fine = (L - cv2.GaussianBlur(L, (0, 0), 3.0))[core]
    dog = blur - cv2.GaussianBlur(L, (0, 0), 2.0)
    total = float(v.var()) + 1e-6
    gy, gx = np.gradient(cv2.GaussianBlur(L, (0, 0), 1.0))
    core_px = max(1, int(core.sum()))
    curved = int((edges & ~straight).sum())
    q1, q2, q3 = np.percentile(v, [25, 50, 75])
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    chroma = np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)[core]
    return np.array([
        length / diameter, math.log1p(count), float(edges.sum() / core_px),
        float(np.clip(1.0 - fine.var() / total, 0.0, 1.0)), _quad_r2(L, core), _solidity(seg_mask),
        math.log(noise + 0.1), float(np.median(np.hypot(gx, gy)[core])),
        curved / max(1, int(edges.sum())), curved / core_px, float(dog[core].std() / (math.sqrt(total) + 1.0)),
        float((q3 - q1) / (q2 + 5.0)), float(chroma.std() / (chroma.mean() + 3.0)),
        float(((np.abs(dog) > 3.0) & core & ~straight).sum() / core_px), float(straight[core].mean()),
    ])


def photo_cues(severity: float, visibility: float, p: np.ndarray, feats: np.ndarray | None,
               vis: np.ndarray, map_core: np.ndarray | None, map_threshold: float, threshold: float,
               facet: np.ndarray, clipped: float) -> np.ndarray:
    """PHOTO_FEATURES: the measurement's own evidence and the facet pattern's busyness. The photo's size in
    pixels is left out on purpose: the measurement is scale-free, and a size cue only learns that renders
    are small (an upscaled render of an I3 stone came out eye-clean with it).

    p: the candidates' P(inclusion); feats: their feature rows (`clarity.FEATURES` order, contrast second,
    the dark flag fifth); vis: their visibilities; map_core: the inclusion map's values inside the core."""
    acc = p >= threshold
    top = int(np.argmax(p)) if len(p) else -1
    return np.array([
        severity, math.log10(visibility + 1e-5), math.log1p(int(acc.sum())), float(p.max()) if len(p) else 0.0,
        math.log10(float((p * vis).sum()) + 1e-5),
        float((map_core >= map_threshold).mean()) if map_core is not None and map_core.size else 0.0,
        float(map_core.mean()) if map_core is not None and map_core.size else 0.0,
        float(feats[top, 1]) if top >= 0 and feats is not None else math.log(1e-4),
        float(feats[acc, 4].mean()) if feats is not None and acc.any() else 0.5,
        facet[0], facet[2], facet[6], clipped, math.log1p(len(p)),
        *facet[len(FACET_FEATURES) - len(TEXTURE):],
    ])


def _mlp(x: np.ndarray, m: dict, features: tuple[str, ...]) -> float:
    """A one-hidden-layer network (tanh) on standardised cues: renders and real photos need different
    weights of the same cues, which a single linear score cannot give."""
    if list(m["features"]) != list(features):
        raise ValueError("clarity_real.json was fitted on other cues; refit: python -m bench.bench_clarity_real fit-real")
    z = (np.asarray(x, np.float64) - np.array(m["mean"])) / np.array(m["std"])
    hidden = np.tanh(z @ np.array(m["w1"]) + np.array(m["b1"]))
    return float(sigmoid(float(hidden @ np.array(m["w2"]) + float(m["b2"]))))


def not_faceted(facet: np.ndarray, model: dict | None = None) -> float:
    """P(the stone is not faceted: cabochon, rough, tumbled or carved)."""
    return _mlp(facet, (model or real_model())["faceted"], FACET_FEATURES)


def p_included(photo: np.ndarray, model: dict | None = None) -> float:
    """P(an inclusion is visible in the photo) from the photo's cues."""
    return _mlp(photo, (model or real_model())["included"], PHOTO_FEATURES)
