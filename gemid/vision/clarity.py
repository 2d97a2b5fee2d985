"""Clarity grade from a photo: visible inclusions inside the stone, not fooled by its facets.

A faceted stone face-up is a mosaic of polygons of different brightness, separated by straight edges and
lit by reflections; inclusions are small dark or bright features with curved, irregular outlines (crystals,
feathers, clouds) or short thin lines (needles, silk). The measurement:

1. The stone (convex mask, reference card removed; `gemid.vision.stone_area`) is resampled so its diameter
   is NORM_DIAMETER pixels: visibility is measured relative to the stone, whatever the photo's size.
2. **Candidates.** Lightness L* minus its area opening (bright features) and its area closing minus L*
   (dark features; both `gemid.vision.area_filter`). An area filter removes connected structures smaller
   than a given area whatever their shape: a crystal, a needle or a cloud goes; a facet, or a network of
   facet-junction lines, stays (a median or top-hat filter would flag every thin junction line and facet
   corner). Two areas are used, 0.4 % and 2 % of the stone; connected regions of the residual above a
   noise-scaled threshold are the candidates. Clipped highlights and a rim along the girdle are ignored.
3. **Inclusion map.** A small U-Net (`gemid.vision.inclusion_net`, ONNX Runtime) reads the normalised
   crop with the residual and gives P(inclusion) per pixel: it sees the facet pattern around a candidate
   (edges that run on, the cut's symmetry), which the hand-made features below cannot.
4. **Facet or inclusion?** Small facet pieces (where a dark pavilion reflection crosses crown facets, the
   culet, step corners) pass step 2 too. Each candidate is described by generic features - size, contrast,
   how much of its outline runs along long straight edges (LSD line segments longer than the candidate),
   how dark or bright its surroundings are relative to the stone (extinction zones and flashes),
   elongation, solidity, edge density around it, whether its straight sides run on as edges beyond it,
   glare contact, and the inclusion map's mean and peak over it - and a small neural network (one hidden
   layer, numpy) gives the probability that it is an inclusion (`data/clarity_blobs.json`).
5. **Visibility.** The inclusions' extent is the connected regions of the map (P >= map_threshold) that
   touch a candidate judged an inclusion (p >= threshold): the candidates decide whether there is an
   inclusion, the map how far it reaches. Visibility = 10^a x share^b, where share is those pixels' share
   of the stone's core, fitted on the rendered stones with the networks. Severity and grade follow
   `gemid.vision.clarity_scales` (one mapping, shared with the renderer's truth).

Both networks and the fit come from one command, `python -m bench.bench_grading fit` (rendered stones
whose inclusion pixels are known, seeds disjoint from the benchmark's).
6. **What the photo supports** (issue 27). Fitted on renders alone, steps 2-5 took facet reflections on real
   photos for inclusions. Photo-level decisions fitted on real photos judged by eye
   (`gemid.vision.clarity_status`, `python -m bench.bench_clarity_real fit-real`) say whether the photo can
   show clarity at all (one faceted stone, enough pixels, not drowned in glare) and whether the stone is
   eye-clean; the grade is kept consistent with that decision.

The species' GIA clarity type, and what a grade means for it, is gemid.vision.clarity_types.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

from gemid.report import ClarityGrade, Inclusion
from gemid.vision import clarity_scales
from gemid.vision import clarity_status as status
from gemid.vision.area_filter import area_open
from gemid.vision.clarity_shapes import continuation, contour, shape, straightness
from gemid.vision.clarity_shapes import kind as kind_of
from gemid.vision.clarity_shapes import outline as outline_of
from gemid.vision.clarity_types import clarity_type, type_meaning
from gemid.vision.classify import sigmoid
from gemid.vision.colorimetry import lightness, luminance, srgb8_to_linear
from gemid.vision.inclusion_net import InclusionNet, net_inputs
from gemid.vision.inclusion_net import shipped as shipped_net
from gemid.vision.segment import Segmentation
from gemid.vision.stone_area import CLIP, StoneArea, channel_max, locate

NORM_DIAMETER = 128  # stone diameter after resampling (pixels)
AREA_SMALL, AREA_LARGE = 0.004, 0.02  # area filters: shares of the stone's area
ZONE_LENGTHS = (8, 16, 32, 64)  # straight-edge maps by minimum segment length (pixels at NORM_DIAMETER)
RIM = 0.06  # share of the diameter ignored along the girdle
FEATURES = (
    "log_area", "log_contrast", "log_peak", "small_share", "dark", "edge_frac_8", "edge_frac_long",
    "edge_frac_longer", "ground", "elongation", "solidity", "edge_density", "glare", "log_noise",
    "log_area_x_edge", "contrast_x_ground", "contrast_vs_play", "straight_outline", "continuation",
    "map_mean", "map_max", "map_logit",
)
N_MAP = 3  # the last features come from the inclusion map

__all__ = ["Analysis", "Candidate", "ClarityMeasurement", "analyse", "clarity_type", "grade_clarity", "inclusion_pixels",
           "inclusion_probability", "measure_analysis", "visibility_from_share",
           "measure_clarity", "type_meaning", "with_inclusion_map"]


@dataclass(frozen=True)
class Candidate:
    """One residual region: where it is, its features and its visibility if it is an inclusion."""

    local_box: tuple[int, int, int, int]  # normalised-image pixels (x, y, w, h)
    mask: np.ndarray  # bool, within local_box
    features: np.ndarray  # float64, FEATURES order
    visibility: float  # share of the stone's visibility if it is an inclusion
    kind: str

    def window(self, plane: np.ndarray) -> np.ndarray:
        """The candidate's box of a normalised-image plane (a view: `c.window(p)[c.mask]` are its pixels)."""
        x, y, w, h = self.local_box
        return plane[y:y + h, x:x + w]


@dataclass(frozen=True)
class Analysis:
    image: np.ndarray  # the normalised crop (RGB uint8)
    crop: tuple[int, int, int, int]  # the crop in original pixels (x0, y0, x1, y1)
    scale: float  # normalised pixels per original pixel
    core: np.ndarray
    residual: np.ndarray  # signed (bright > 0), large scale
    candidates: tuple[Candidate, ...]
    diameter_px: float
    noise: float
    clipped_fraction: float
    lightness: np.ndarray  # L* of the normalised crop (float32)
    segments: np.ndarray  # its `line_segments`
    edges: np.ndarray  # its `edge_map`
    inclusion_map: np.ndarray | None = None  # P(inclusion) per normalised pixel (`gemid.vision.inclusion_net`)
    photo_scale: float = 1.0  # pixels of the analysed image per photo pixel (`StoneArea.photo_scale`)

    def photo_box(self, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
        """A normalised-pixel box in the photo's own pixels."""
        inv, p = 1.0 / self.scale, 1.0 / self.photo_scale
        return (int((self.crop[0] + int(x * inv)) * p), int((self.crop[1] + int(y * inv)) * p),
                max(1, math.ceil(math.ceil(w * inv) * p)), max(1, math.ceil(math.ceil(h * inv) * p)))

    def to_local(self, photo_mask: np.ndarray) -> np.ndarray:
        """A photo-sized mask cut and resampled to the normalised image (nearest neighbour, bool)."""
        x0, y0, x1, y1 = self.crop
        m = photo_mask[y0:y1, x0:x1].astype(np.uint8)
        return cv2.resize(m, self.image.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0


@dataclass(frozen=True)
class Blob:
    bbox: tuple[int, int, int, int]
    kind: str
    visibility: float  # its share of the stone's visibility (by its pixels)
    probability: float


@dataclass(frozen=True)
class ClarityMeasurement:
    visibility: float
    severity: float
    blobs: tuple[Blob, ...]
    diameter_px: float  # the stone's diameter in the original image
    noise: float  # lightness noise (L* units)
    clipped_fraction: float
    stone_found: bool


def _lightness(rgb: np.ndarray) -> np.ndarray:
    return lightness(luminance(srgb8_to_linear(rgb))).astype(np.float32)


def line_segments(L: np.ndarray) -> np.ndarray:
    """LSD line segments (float32, n x 4: x1 y1 x2 y2) of a normalised stone's L*: the straight edges that
    facet edges and junctions make. Detected once per stone; the candidates and the faceting cues
    (`clarity_status.facet_cues`) both read them."""
    g = cv2.GaussianBlur(np.clip(L * 2.55, 0, 255).astype(np.uint8), (3, 3), 0)
    lines = cv2.createLineSegmentDetector().detect(g)[0]
    return np.zeros((0, 4), np.float32) if lines is None else lines.reshape(-1, 4)


def edge_map(L: np.ndarray) -> np.ndarray:
    """Canny edges of a normalised stone's L* (bool), shared like `line_segments`."""
    return cv2.Canny(np.clip(L * 2.55, 0, 255).astype(np.uint8), 15, 40) > 0


def _straight_edges(segments: np.ndarray, shape: tuple[int, int]) -> list[np.ndarray]:
    """One 3-px mask of the straight edges per minimum length in ZONE_LENGTHS: a facet edge runs on
    beyond a small facet piece it bounds, while an inclusion's outline is never much longer than the
    inclusion."""
    zones = [np.zeros(shape, np.uint8) for _ in ZONE_LENGTHS]
    for x1, y1, x2, y2 in segments:
        n = math.hypot(x2 - x1, y2 - y1)
        for z, m in zip(zones, ZONE_LENGTHS, strict=True):
            if n >= m:
                cv2.line(z, (round(x1), round(y1)), (round(x2), round(y2)), 1, thickness=3)
    return [z > 0 for z in zones]


def analyse(rgb: np.ndarray, seg: Segmentation, area: StoneArea | None = None, *, net: InclusionNet | None = None,
            inclusion_map: bool = True) -> Analysis | None:
    """Normalise the stone and list the residual regions (candidate inclusions) with their features.

    The stone is cut from `rgb` at its own resolution (any size; boxes come back in its pixels);
    `area` is `locate(rgb, seg)` when the caller already has it. The inclusion map comes from `net` (the
    shipped network by default); `inclusion_map=False` leaves it out (its features NaN) for fitting a new one."""
    area = area if area is not None else locate(rgb, seg)
    if not area.found:
        return None
    stone = area.stone.astype(np.uint8)
    x, y, w, h = cv2.boundingRect(stone)
    inv = 1.0 / area.scale
    d_orig = 2.0 * math.sqrt(stone.sum() / math.pi) * inv  # diameter in original pixels
    if d_orig < 24:
        return None
    pad = int(math.ceil(0.05 * max(w, h)))
    sx0, sy0 = max(0, x - pad), max(0, y - pad)
    sx1, sy1 = min(stone.shape[1], x + w + pad), min(stone.shape[0], y + h + pad)
    ox0, oy0 = int(sx0 * inv), int(sy0 * inv)
    ox1, oy1 = min(rgb.shape[1], int(math.ceil(sx1 * inv))), min(rgb.shape[0], int(math.ceil(sy1 * inv)))
    f = NORM_DIAMETER / d_orig  # normalised pixels per original pixel
    size = (max(8, round((ox1 - ox0) * f)), max(8, round((oy1 - oy0) * f)))
    img = cv2.resize(rgb[oy0:oy1, ox0:ox1], size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    cm = cv2.resize(stone[sy0:sy1, sx0:sx1], size, interpolation=cv2.INTER_NEAREST) > 0
    d = NORM_DIAMETER

    L = _lightness(img)
    clipped = cv2.dilate((channel_max(img) >= CLIP).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    rim = max(3, int(RIM * d))
    core = cv2.erode(cm.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1,) * 2)) > 0
    if core.sum() < 50:
        return None
    Lm = float(np.median(L[core]))
    L8 = np.clip(np.where(cm, L, Lm) * 2.55, 0, 255).astype(np.uint8)
    lo, hi = (int(v) for v in np.percentile(L8[cm], [0.0, 100.0]))
    stone_area = float(cm.sum())
    areas = (max(12, int(AREA_SMALL * stone_area)), max(40, int(AREA_LARGE * stone_area)))
    bright_s, bright_l = (v.astype(np.float32) / 2.55 for v in area_open(L8, areas, lo, hi))
    dark_s, dark_l = ((255 - v).astype(np.float32) / 2.55 for v in area_open(255 - L8, areas, 255 - hi, 255 - lo))
    Lq = L8.astype(np.float32) / 2.55
    hf = L - cv2.GaussianBlur(L, (0, 0), 1.0)
    noise = float(1.4826 * np.median(np.abs(hf[core]))) * 1.6
    thr = max(4.0, 4.0 * noise)
    segments = line_segments(L)
    zones = _straight_edges(segments, L.shape)
    edges = edge_map(L)
    edges_wide = cv2.dilate(edges.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    glare = cv2.dilate(clipped.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    valid = core & ~clipped
    core_area = float(core.sum())
    out: list[Candidate] = []
    signed = np.zeros(L.shape, np.float32)
    for dark in (True, False):
        r_s = (dark_s - Lq) if dark else (Lq - bright_s)
        r_l = (dark_l - Lq) if dark else (Lq - bright_l)
        ground = dark_l if dark else bright_l
        full = max(10.0, Lm) if dark else max(10.0, 100.0 - Lm)
        signed += (-r_l if dark else r_l) * valid
        hit = (r_l > thr) & valid
        n, lab, stats, cents = cv2.connectedComponentsWithStats(hit.astype(np.uint8), connectivity=8)
        for i in range(1, n):
            bx, by, bw, bh, a = (int(t) for t in stats[i])
            if a < 2:
                continue
            sl = (slice(by, by + bh), slice(bx, bx + bw))
            comp = lab[sl] == i
            rl, rs = r_l[sl][comp], r_s[sl][comp]
            if not (rs > thr).any():
                continue  # whole facets smaller than the large area: only features seen at the small scale count
            contrast = float(rl.mean() / full)
            line = contour(comp)
            length, width, solidity = shape(comp, line)
            outline = outline_of(comp)
            n_out = max(1, int(outline.sum()))
            size = max(bw, bh)
            fr = [float((outline & z[sl]).sum() / n_out) for z in zones]
            longer = [fr[k] for k, m in enumerate(ZONE_LENGTHS) if m >= 1.5 * size] or [fr[-1]]
            longest = [fr[k] for k, m in enumerate(ZONE_LENGTHS) if m >= 3.0 * size] or [fr[-1]]
            gx0, gy0 = max(0, bx - 6), max(0, by - 6)
            gsl = (slice(gy0, by + bh + 6), slice(gx0, bx + bw + 6))
            ring = edges[gsl]
            around = L[gsl][~(lab[gsl] == i) & core[gsl]]
            play = float(np.subtract(*np.percentile(around, [75, 25]))) if around.size > 8 else 0.0
            g_rel = float(np.median(ground[sl][comp])) / max(Lm, 1.0)
            feats = np.array([
                math.log(a), math.log(max(contrast, 1e-4)),
                math.log(max(float(rl.max()), 1e-3) / max(float(rl.mean()), 1e-3)),
                float((rs > thr).mean()), 1.0 if dark else 0.0, fr[0], longer[0], longest[0], g_rel,
                math.log(length / width), solidity, float(ring.mean()),
                0.0 if dark else float((glare[sl] & outline).sum() / n_out), math.log(noise + 0.1),
                math.log(a) * longer[0], contrast * g_rel, math.log((float(rl.mean()) + 1.0) / (play + 2.0)),
                straightness(line), continuation(line, (bx, by), edges_wide), *([math.nan] * N_MAP),
            ])
            vis = float(np.clip(rl / full, 0.0, 1.0).sum() / core_area)
            out.append(Candidate(
                local_box=(bx, by, bw, bh), mask=comp, features=feats, visibility=vis,
                kind=kind_of(dark, a, length, width)))
    a = Analysis(
        image=img, crop=(ox0, oy0, ox1, oy1), scale=f, core=core, residual=signed, candidates=tuple(out),
        diameter_px=d_orig / area.photo_scale, noise=noise, photo_scale=area.photo_scale,
        clipped_fraction=float((core & clipped).sum() / max(1.0, core_area)), lightness=L, segments=segments,
        edges=edges,
    )
    if not inclusion_map:
        return a
    net = net if net is not None else shipped_net()
    return with_inclusion_map(a, net.predict(net_inputs(img, core, signed)))


def with_inclusion_map(a: Analysis, pmap: np.ndarray) -> Analysis:
    """The analysis with its inclusion map and the candidates' map features (mean, max, logit of the mean)."""
    cands = []
    for c in a.candidates:
        v = c.window(pmap)[c.mask]
        mean = float(v.mean())
        m = min(max(mean, 1e-3), 1.0 - 1e-3)
        feats = np.concatenate([c.features[:-N_MAP], [mean, float(v.max()), math.log(m / (1.0 - m))]])
        cands.append(replace(c, features=feats))
    return replace(a, candidates=tuple(cands), inclusion_map=pmap)


@lru_cache(maxsize=1)
def _model() -> dict:
    return json.loads(resources.files("gemid.vision").joinpath("data/clarity_blobs.json").read_text("utf-8"))


def inclusion_probability(features: np.ndarray, model: dict | None = None) -> np.ndarray:
    """P(inclusion) for candidate feature rows: a one-hidden-layer network (tanh) on standardised features,
    plain numpy so the runtime needs nothing else."""
    m = model or _model()
    if list(m["features"]) != list(FEATURES):
        raise ValueError("clarity_blobs.json was fitted on other features; refit: python -m bench.bench_grading fit")
    x = (np.atleast_2d(features) - np.array(m["mean"])) / np.array(m["std"])
    hidden = np.tanh(x @ np.array(m["w1"]) + np.array(m["b1"]))
    return sigmoid(hidden @ np.array(m["w2"]) + float(m["b2"]))


def inclusion_pixels(a: Analysis, accepted: np.ndarray, map_threshold: float) -> np.ndarray:
    """Label image (int32, normalised pixels) of the inclusions: connected regions of the inclusion map
    (P >= map_threshold, inside the core) that touch a candidate judged an inclusion. The candidates
    decide *whether* there is an inclusion there; the map says how far it reaches."""
    seeds = np.zeros(a.core.shape, np.uint8)
    for c, ok in zip(a.candidates, accepted, strict=True):
        if ok:
            c.window(seeds)[c.mask] = 1
    if a.inclusion_map is None or not seeds.any():
        return np.zeros(a.core.shape, np.int32)
    hot = ((a.inclusion_map >= map_threshold) & a.core).astype(np.uint8)
    n, lab = cv2.connectedComponents(hot, connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(lab[(seeds > 0) & (hot > 0)])] = True
    keep[0] = False
    return np.where(keep[lab], lab, 0).astype(np.int32)


def visibility_from_share(share: float, model: dict) -> float:
    """Visibility (contrast x footprint, `clarity_scales`) from the inclusions' share of the core's pixels:
    log10 v = log10_gain + exponent * log10 share, fitted on rendered stones with the network."""
    if share <= 0:
        return 0.0
    fit = model["visibility_fit"]
    return float(10.0 ** (float(fit["log10_gain"]) + float(fit["exponent"]) * math.log10(share)))


def measure_clarity(rgb: np.ndarray, seg: Segmentation, *, model: dict | None = None,
                    area: StoneArea | None = None, net: InclusionNet | None = None) -> ClarityMeasurement | None:
    """Visible inclusions and the severity they add up to; None when no stone can be measured."""
    a = analyse(rgb, seg, area, net=net)
    if a is None:
        return None
    return measure_analysis(a, model)


def measure_analysis(a: Analysis, model: dict | None = None, p: np.ndarray | None = None) -> ClarityMeasurement:
    """Severity and inclusions of an analysed stone (with its inclusion map); `p`: the candidates'
    probabilities when the caller already has them."""
    m = model or _model()
    threshold = float(m["threshold"])
    if p is None:
        p = inclusion_probability(np.stack([c.features for c in a.candidates]), m) if a.candidates else np.zeros(0)
    lab = inclusion_pixels(a, p >= threshold, float(m["map_threshold"]))
    core_px = max(1.0, float(a.core.sum()))
    n_px = int(np.count_nonzero(lab))
    vis = visibility_from_share(n_px / core_px, m)
    blobs: list[Blob] = []
    if n_px:
        kinds: dict[int, tuple[float, str]] = {}  # region -> the most probable accepted candidate in it
        for c, pi in zip(a.candidates, p, strict=True):
            if pi < threshold:
                continue
            for k in np.unique(c.window(lab)[c.mask]):
                if k and pi > kinds.get(int(k), (-1.0, ""))[0]:
                    kinds[int(k)] = (float(pi), c.kind)
        for k, (pi, kind) in kinds.items():
            ys, xs = np.nonzero(lab == k)
            bx, by = int(xs.min()), int(ys.min())
            bw, bh = int(xs.max()) - bx + 1, int(ys.max()) - by + 1
            blobs.append(Blob(bbox=a.photo_box(bx, by, bw, bh), kind=kind, visibility=vis * len(xs) / n_px, probability=pi))
    return ClarityMeasurement(
        visibility=vis, severity=clarity_scales.severity_from_visibility(vis),
        blobs=tuple(sorted(blobs, key=lambda b: -b.visibility)), diameter_px=a.diameter_px, noise=a.noise,
        clipped_fraction=a.clipped_fraction, stone_found=True,
    )


@dataclass(frozen=True)
class Evidence:
    """What the photo-level decisions (`gemid.vision.clarity_status`) read: the measurement and two cue rows."""

    measurement: ClarityMeasurement
    facet: np.ndarray  # clarity_status.FACET_FEATURES
    photo: np.ndarray  # clarity_status.PHOTO_FEATURES


def evidence(a: Analysis, seg: Segmentation, model: dict | None = None) -> Evidence:
    """The measurement of an analysed stone and the cues of its faceting and of visible inclusions."""
    m = model or _model()
    feats = np.stack([c.features for c in a.candidates]) if a.candidates else None
    p = inclusion_probability(feats, m) if feats is not None else np.zeros(0)
    meas = measure_analysis(a, m, p)
    facet = status.facet_cues(a.image, a.lightness, a.core, a.noise, a.to_local(seg.mask > 0), NORM_DIAMETER,
                              a.segments, a.edges)
    vis = np.array([c.visibility for c in a.candidates])
    pmap = a.inclusion_map[a.core] if a.inclusion_map is not None else None
    photo = status.photo_cues(meas.severity, meas.visibility, p, feats, vis, pmap, float(m["map_threshold"]),
                              float(m["threshold"]), facet, a.clipped_fraction)
    return Evidence(meas, facet, photo)


def _confidence(m: ClarityMeasurement, t: str | None, margin: float) -> float:
    """From the stone's size, noise and glare, and how far the eye-clean decision is from its cut (0..1)."""
    c = 0.75 * (0.6 + 0.4 * margin)
    if m.diameter_px < 100:
        c *= 0.6  # small in the photo: pinpoints are below one pixel
    elif m.diameter_px < 200:
        c *= 0.85
    if m.noise > 3.0:
        c *= 0.8
    if m.clipped_fraction > 0.15:
        c *= 0.8
    if t == "diamond":
        c = min(c, 0.2)
    return float(np.clip(c, 0.05, 0.9))


def _not_graded(state: str, reason: str, t: str | None) -> ClarityGrade:
    return ClarityGrade(status=state, reason=reason, clarity_type=t if t in ("I", "II", "III") else None,
                        confidence=0.0)


def grade_clarity(rgb: np.ndarray, seg: Segmentation, species: str | None = None, *,
                  area: StoneArea | None = None) -> ClarityGrade | None:
    """The clarity section of the report; None when no stone is found.

    `not_applicable` for an opaque species; `cannot_judge` (with the reason) when the photo cannot show
    faceted-stone clarity: several stones, too few pixels, glare, or no facets (`clarity_status`).
    Otherwise graded: eye-clean or not is the real-photo decision, and the grade agrees with it (an
    eye-clean stone is at most VS, with no inclusion boxes; an included one at least SI1)."""
    t = clarity_type(species)
    if t == "opaque":
        return _not_graded("not_applicable", type_meaning(species, "VVS") or "an opaque material", t)
    area = area if area is not None else locate(rgb, seg)
    if not area.found:
        return None
    a = analyse(rgb, seg, area)
    if a is None:
        return _not_graded("cannot_judge", "the stone is too small in the photo to see inside it", t)
    e = evidence(a, seg)
    m = e.measurement
    stones = seg.n_stones - (1 if area.card_box is not None else 0)  # a reference card is not a stone
    limit = status.hard_limit(m.diameter_px, m.clipped_fraction, stones)
    real = status.real_model()
    if limit is None and status.not_faceted(e.facet, real) >= float(real["faceted"]["cut"]):
        limit = status.Verdict("cannot_judge", "the stone shows no facets (a cabochon, tumbled, rough or carved "
                                               "stone): the faceted clarity scale does not apply to this photo")
    if limit is not None:
        return _not_graded(limit.status, limit.reason, t)
    p_inc, cut = status.p_included(e.photo, real), float(real["included"]["cut"])
    eye_clean = p_inc < cut
    sev = m.severity
    cuts = clarity_scales.GRADE_CUTS
    sev = min(sev, cuts[1] - 1e-3) if eye_clean else max(sev, cuts[1])
    grade = clarity_scales.grade_of(sev)
    blobs = () if eye_clean else m.blobs[:50]
    incl = [Inclusion(bbox=b.bbox, kind=b.kind, severity=round(clarity_scales.severity_from_visibility(b.visibility), 4))
            for b in blobs]
    margin = min(1.0, abs(p_inc - cut) / max(cut if eye_clean else 1.0 - cut, 1e-3))
    return ClarityGrade(
        grade=grade, eye_clean=eye_clean, severity=round(sev, 4),
        clarity_type=t if t in ("I", "II", "III") else None, type_meaning=type_meaning(species, grade),
        inclusions=incl, confidence=round(_confidence(m, t, margin), 3),
    )
