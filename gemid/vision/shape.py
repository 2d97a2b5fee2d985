"""Cut shape of one stone from its outline, its facet pattern and what an image network sees, with a
probability.

The outline says round, oval, cushion, emerald cut, square, pear, marquise, heart, trillion or irregular;
the surface says faceted or cabochon: facet edges are straight lines of sharp contrast inside the stone, a
cabochon's dome has soft gradients and one or two highlights. `features` measures both on the stone's mask
and pixels, scaled to a fixed size so a 200 px product photo and a 12 MP phone photo read alike. Those 28
numbers alone (the shape model before) reached 66.7 % top-1 on the first 93 shape-labelled val photos;
beside them `ShapeModel` puts the
stone's crop as an ImageNet EfficientNet-Lite0 sees it (`models/gemid-shape/embed.onnx`, 224 px), reduced
to its main directions, in one multinomial logistic regression (`head.npz`, fitted by `bench/shape_fit.py`).
A second Lite0 fine-tuned on the shape labels (`cnn.onnx`) reads the same crop; the two models'
probabilities are multiplied (`combine`). Both networks come from `gemid.training.shape_model`, everything
from the train part of `gemid/datasets/annotations/shape_gems68.csv` (real photos labelled by eye); the
README and `models/gemid-shape/MODEL_CARD.md` have the figures.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gemid.errors import ModelError
from gemid.report import SHAPES
from gemid.vision.bundle import MODELS_DIR, sha256_file
from gemid.vision.crop import stone_crop
from gemid.vision.segment import Segmentation

SHAPE_DIR = MODELS_DIR / "gemid-shape"
CONFIG = "shape.json"
EMBEDDER_FILE, CNN_FILE, HEAD_FILE = "embed.onnx", "cnn.onnx", "head.npz"
SIDE_PX = 224  # both networks' input side
# the networks' view: the stone's square with this margin. The CNN was trained with it (gemid train's
# --crop-margin default, the species model's margin); shape_fit refuses a CNN trained with another
CROP_MARGIN = 0.12
SIDE = 160  # the stone's longer side is scaled to this before measuring (most gems68 stones are ~200 px)
PROFILE = np.linspace(0.05, 0.95, 10)  # where along its length the stone's width is read (share of length)

FEATURES = (
    "elongation", "rect_fill", "hull_fill", "ellipse_iou", "triangle_fill", "circularity", "vertices_coarse",
    "vertices_fine", "notch", "end_asym", "w05", "w15", "w30", "w70", "w85", "w95", "narrow_end", "wide_end",
    "corner_fill", "edge_density", "straight_share", "grad_mean", "highlight", "lap_var", "sym_lr",
    "mid_detail", "line_length", "dome_fit",
)


def _stone_patch(rgb: np.ndarray, seg: Segmentation) -> tuple[np.ndarray, np.ndarray]:
    """The stone's bounding box of pixels and mask, with a small margin, scaled to SIDE on its longer side."""
    x, y, w, h = seg.bbox
    pad = max(2, int(0.06 * max(w, h)))
    H, W = seg.mask.shape
    x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(W, x + w + pad), min(H, y + h + pad)
    mask = seg.mask[y0:y1, x0:x1]
    img = rgb[y0:y1, x0:x1]
    s = SIDE / max(1, max(w, h))
    size = (max(8, round((x1 - x0) * s)), max(8, round((y1 - y0) * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    img = cv2.resize(img, size, interpolation=interp)
    # the mask is smoothed as it is scaled: segment's mask is blocky (a 384 px working copy, upsampled)
    m = cv2.GaussianBlur(cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR), (0, 0), 1.5) > 127
    return img, m.astype(np.uint8)


def _largest(mask: np.ndarray) -> np.ndarray | None:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return max(contours, key=cv2.contourArea) if contours else None


def _profile(mask: np.ndarray, contour: np.ndarray) -> tuple[np.ndarray, float]:
    """The stone's width across its long axis at PROFILE positions (share of its greatest width), oriented
    so that the wider end comes first, and the left-right symmetry of the outline about that axis."""
    pts = contour.reshape(-1, 2).astype(np.float64)
    centre = pts.mean(0)
    cov = np.cov((pts - centre).T)
    evals, evecs = np.linalg.eigh(cov)
    major = evecs[:, 1]
    (cx, cy), (rw, rh), ang = cv2.minAreaRect(contour)
    if max(rw, rh) / max(1e-6, min(rw, rh)) > 1.08:  # elongated: the rectangle's long side is the axis
        a = np.deg2rad(ang if rw >= rh else ang + 90.0)
        major = np.array([np.cos(a), np.sin(a)])
    ys, xs = np.nonzero(mask)
    p = np.stack([xs, ys], 1).astype(np.float64) - centre
    t = p @ major
    n = p @ np.array([-major[1], major[0]])
    lo, hi = t.min(), t.max()
    bins = np.clip(((t - lo) / max(1e-6, hi - lo) * 40).astype(int), 0, 39)
    width = np.zeros(40)
    np.maximum.at(width, bins, n)
    neg = np.zeros(40)
    np.maximum.at(neg, bins, -n)
    full = width + neg
    full = full / max(1e-6, full.max())
    prof = np.interp(PROFILE * 39, np.arange(40), full)
    if prof[:3].sum() < prof[-3:].sum():
        prof = prof[::-1]
    sym = 1.0 - float(np.mean(np.abs(width - neg)) / max(1e-6, np.mean(width + neg) / 2))
    return prof, sym


def features(rgb: np.ndarray, seg: Segmentation) -> np.ndarray:
    """The FEATURES of one stone (its Segmentation in `rgb`'s pixels)."""
    img, mask = _stone_patch(rgb, seg)
    c = _largest(mask)
    if c is None or cv2.contourArea(c) < 20:
        return np.zeros(len(FEATURES))
    area = float(cv2.contourArea(c))
    perim = float(cv2.arcLength(c, True))
    (_, _), (rw, rh), _ = cv2.minAreaRect(c)
    elong = max(rw, rh) / max(1.0, min(rw, rh))
    rect_fill = area / max(1.0, rw * rh)
    hull = cv2.convexHull(c)
    hull_fill = area / max(1.0, cv2.contourArea(hull))
    ell = np.zeros_like(mask)
    if len(c) >= 5:
        cv2.ellipse(ell, cv2.fitEllipse(c), 1, -1)
    inter = np.logical_and(ell, mask).sum()
    ellipse_iou = inter / max(1, np.logical_or(ell, mask).sum())
    tri_area, _ = cv2.minEnclosingTriangle(hull.astype(np.float32))
    triangle_fill = area / max(1.0, tri_area)
    circularity = 4 * np.pi * area / max(1.0, perim**2)
    hp = cv2.arcLength(hull, True)
    coarse = len(cv2.approxPolyDP(hull, 0.04 * hp, True))
    fine = len(cv2.approxPolyDP(hull, 0.015 * hp, True))
    notch = 0.0
    idx = cv2.convexHull(c, returnPoints=False)
    if idx is not None and len(idx) > 3:
        try:
            defects = cv2.convexityDefects(c, idx)
        except cv2.error:
            defects = None
        if defects is not None and defects.size:  # a convex outline has no defects: an empty array
            notch = float(defects.reshape(-1, 4)[:, 3].max()) / 256.0 / np.sqrt(area)
    prof, sym = _profile(mask, c)
    # corners of the bounding rectangle filled: square corners (princess, emerald) vs rounded (cushion, oval)
    box = cv2.boxPoints(cv2.minAreaRect(c))
    rect_m = np.zeros_like(mask)
    cv2.fillPoly(rect_m, [np.round(box).astype(np.int32)], 1)
    to_corner = cv2.distanceTransform(1 - _corners(box, mask.shape), cv2.DIST_L2, 3)
    near = rect_m.astype(bool) & (to_corner < 0.15 * min(rw, rh))
    corner_fill = float(mask[near].mean()) if near.any() else 0.0

    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))).astype(bool)
    if inner.sum() < 30:
        inner = mask.astype(bool)
    g = cv2.GaussianBlur(grey, (3, 3), 0)
    v = float(np.median(g[inner]))
    edges = cv2.Canny(g, int(max(10, 0.4 * v)), int(max(25, 0.9 * v))) > 0
    e_in = edges & inner
    edge_density = e_in.sum() / max(1, inner.sum())
    lines = cv2.HoughLinesP(e_in.astype(np.uint8) * 255, 1, np.pi / 180, 15, minLineLength=SIDE // 8, maxLineGap=2)
    line_px = 0.0
    if lines is not None:
        seg4 = lines.reshape(-1, 4).astype(np.float64)  # OpenCV 4 gives (n, 1, 4), 5 gives (n, 4)
        line_px = float(np.hypot(seg4[:, 2] - seg4[:, 0], seg4[:, 3] - seg4[:, 1]).sum())
    straight_share = min(1.0, line_px / max(1.0, float(e_in.sum())))
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1)
    mag = np.hypot(gx, gy)
    grad_mean = float(mag[inner].mean()) / max(8.0, float(g[inner].std()) + 8.0)
    highlight = float((g[inner] >= 245).mean())
    lap_var = float(np.log1p(cv2.Laplacian(g, cv2.CV_32F)[inner].var()))
    tex = _texture(grey, inner, float(mask.sum()))
    return np.array([
        np.log(elong), rect_fill, hull_fill, ellipse_iou, triangle_fill, circularity, min(coarse, 12) / 12,
        min(fine, 24) / 24, notch, float(prof[1] - prof[-2]), *prof[[0, 1, 3, 6, 8, 9]],
        float(min(prof[0], prof[-1])), float(max(prof[0], prof[-1])), corner_fill, edge_density, straight_share,
        grad_mean, highlight, lap_var, sym, *tex,
    ], np.float64)


def _lsd() -> cv2.LineSegmentDetector:
    """A detector per call: one shared between threads (the service's thread mode, a library user's pool)
    corrupted memory and crashed the process; creating one costs microseconds."""
    return cv2.createLineSegmentDetector()


def _texture(grey: np.ndarray, inner: np.ndarray, area: float) -> tuple[float, float, float]:
    """Facet cues. mid_detail: what a 4 px blur removes, against the stone's contrast (facet edges, not a
    dome's shading); line_length: straight segments (LSD, >= 12 px) inside the stone per unit of its size
    (facet edges are straight; a cabochon's stripes and highlights curve); dome_fit: how much of the
    lightness a smooth quadratic surface explains (a cabochon's dome: much; a facet mosaic: little)."""
    g = grey.astype(np.float32)
    spread = float(np.std(g[inner])) + 5.0
    mid = float(np.std((g - cv2.GaussianBlur(g, (0, 0), 4))[inner])) / spread
    length = 0.0
    lines = _lsd().detect(grey)[0]
    if lines is not None:
        seg4 = lines.reshape(-1, 4)
        ln = np.hypot(seg4[:, 2] - seg4[:, 0], seg4[:, 3] - seg4[:, 1])
        mx = ((seg4[:, 0] + seg4[:, 2]) / 2).astype(int).clip(0, grey.shape[1] - 1)
        my = ((seg4[:, 1] + seg4[:, 3]) / 2).astype(int).clip(0, grey.shape[0] - 1)
        length = float(ln[inner[my, mx] & (ln >= 12)].sum()) / np.sqrt(max(1.0, area))
    ys, xs = np.nonzero(inner)
    xs, ys = xs / SIDE, ys / SIDE
    a = np.stack([np.ones_like(xs), xs, ys, xs * xs, ys * ys, xs * ys], 1)
    v = g[inner].astype(np.float64)
    try:  # the normal equations: 6 x 6, 30 times faster than lstsq's SVD of the (pixels x 6) matrix, same fit
        coef = np.linalg.solve(a.T @ a, a.T @ v)
    except np.linalg.LinAlgError:  # a degenerate patch (one row or column of pixels)
        coef, *_ = np.linalg.lstsq(a, v, rcond=None)
    fit = 1.0 - float(np.var(v - a @ coef)) / max(1e-6, float(np.var(v)))
    return mid, length, fit


def _corners(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A mask with the four corner points of `box` set (for a distance-to-corner map)."""
    m = np.zeros(shape, np.uint8)
    for px, py in box:
        x, y = int(round(px)), int(round(py))
        if 0 <= x < shape[1] and 0 <= y < shape[0]:
            m[y, x] = 1
        else:
            m[min(max(y, 0), shape[0] - 1), min(max(x, 0), shape[1] - 1)] = 1
    return m


def expand(x: np.ndarray) -> np.ndarray:
    """The hand-measured features and their squares (curved boundaries, still linear in the inputs)."""
    return np.concatenate([x, x**2], axis=-1)


@dataclass(frozen=True)
class Network:
    """One of the shape model's ONNX networks (EfficientNet-Lite0, mean = std = 0.5): crops → its output."""

    session: Any
    side: int

    @classmethod
    def open(cls, path: Path | str, side: int, *, threads: int | None = None) -> Network:
        import onnxruntime as ort

        from gemid.vision.classify import session_options

        try:
            session = ort.InferenceSession(os.fspath(path), session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load {path}: {exc}") from exc
        return cls(session=session, side=side)

    def crop(self, rgb: np.ndarray, seg: Segmentation) -> np.ndarray:
        """What the networks see: the stone's square with CROP_MARGIN, at their side (uint8 RGB)."""
        return stone_crop(rgb, seg, margin=CROP_MARGIN, size=self.side)

    def run(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, D) outputs for uint8 RGB crops of the network's side."""
        x = np.stack([c.astype(np.float32).transpose(2, 0, 1) for c in crops]) / np.float32(127.5) - 1  # mean, std 0.5
        name = self.session.get_inputs()[0].name
        return self.session.run(None, {name: x})[0].reshape(len(crops), -1).astype(np.float64)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, D) unit-length outputs: the embedder's features as the head reads them."""
        f = self.run(crops)
        return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-9)


@dataclass(frozen=True)
class ShapeModel:
    """The shape model: a logistic regression over the hand features and the ImageNet embedding, and a CNN
    fine-tuned on the shape labels; their probabilities multiplied, tempered and renormalised. One per
    Identifier (its threads), like the species classifier: no module-level session."""

    embedder: Network
    cnn: Network
    cnn_order: np.ndarray  # the CNN's output index of each of `labels`
    temperature: float
    labels: tuple[str, ...]
    pca_mean: np.ndarray  # (D,) the embedding's mean over the train photos
    pca_basis: np.ndarray  # (P, D) its main directions there
    mean: np.ndarray  # the regression inputs' standardisation
    scale: np.ndarray
    weights: np.ndarray  # (K, inputs)
    bias: np.ndarray  # (K,)
    card_temperature: float = 1.0  # a further temperature for a stone read on the scale card (shape.json)

    @classmethod
    def load(cls, directory: Path | str = SHAPE_DIR, *, threads: int | None = None, verify: bool = True) -> ShapeModel:
        """The shape model in `directory` (ModelError when it is missing, altered, or fitted on other
        features)."""
        directory = Path(directory)
        try:
            config = json.loads((directory / CONFIG).read_text())
            files = {k: (directory / config["files"][k]["path"], config["files"][k]["sha256"])
                     for k in ("embedder", "cnn", "head")}
            side, labels, names = int(config["input"]["size"]), tuple(config["labels"]), tuple(config["features"])
            cnn_labels, temperature = list(config["cnn_labels"]), float(config["temperature"])
            card_temperature = float(config.get("card_temperature", 1.0))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"no usable shape model in {directory}: {exc!r}") from exc
        if names != FEATURES:
            raise ModelError(f"{directory / CONFIG} was fitted on other features; refit with bench/shape_fit.py")
        unknown = (set(labels) | set(cnn_labels)) - set(SHAPES)
        if unknown or set(cnn_labels) != set(labels):
            raise ModelError(f"{directory / CONFIG}: the CNN's shapes {sorted(cnn_labels)} are not the head's "
                             f"{sorted(labels)}, or not all the report's")
        for k, (path, digest) in files.items():
            if not path.is_file():
                raise ModelError(f"the shape model's {k} {path} is missing")
            if verify and sha256_file(path) != digest:
                raise ModelError(f"{path} is not the file {directory / CONFIG} was fitted with (sha256 differs)")
        try:
            with np.load(files["head"][0], allow_pickle=False) as head:
                head_labels = tuple(str(v) for v in head["labels"])
                arrays = {k: head[k].astype(np.float64) for k in ("pca_mean", "pca_basis", "mean", "scale", "weights",
                                                                   "bias")}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ModelError(f"cannot read the shape model's head {files['head'][0]}: {exc!r}") from exc
        if head_labels != labels:
            raise ModelError(f"{files['head'][0]} was fitted on the labels {head_labels}, {CONFIG} says {labels}")
        for name, t in (("temperature", temperature), ("card_temperature", card_temperature)):
            if not (np.isfinite(t) and t > 0):
                raise ModelError(f"{directory / CONFIG}: the {name} must be a positive number, not {t}")
        model = cls(embedder=Network.open(files["embedder"][0], side, threads=threads),
                    cnn=Network.open(files["cnn"][0], side, threads=threads),
                    cnn_order=np.array([cnn_labels.index(k) for k in labels]), temperature=temperature,
                    labels=labels, card_temperature=card_temperature, **arrays)
        model._check(len(cnn_labels))
        return model

    def _check(self, n_cnn: int) -> None:
        """One run on a plain grey crop: the networks take the side, give the sizes the head was fitted on, and
        the model a distribution (ModelError otherwise: a mismatched file must not fail every photo later)."""
        crop = [np.full((self.embedder.side, self.embedder.side, 3), 128, np.uint8)]
        try:
            embedding, logits = self.embedder.embed(crop)[0], self.cnn.run(crop)[0]
            if embedding.shape != self.pca_mean.shape or logits.shape != (n_cnn,):
                raise ValueError(f"the embedder gives {embedding.shape[0]} numbers for a head fitted on "
                                 f"{self.pca_mean.shape[0]}, the CNN {logits.shape[0]} for {n_cnn} shapes")
            p = self.probabilities(np.zeros(len(FEATURES)), embedding, logits)
        except Exception as exc:  # onnxruntime and numpy raise their own types
            raise ModelError(f"the shape model does not run: {exc}") from exc
        if not np.isfinite(list(p.values())).all() or abs(sum(p.values()) - 1.0) > 1e-6:
            raise ModelError("the shape model gives no probability distribution on a plain crop")

    def inputs(self, hand: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """The regression's inputs before standardising: hand features, their squares, and the embedding's
        projection on its main directions. Batched: (N, F) and (N, D) give (N, inputs)."""
        return inputs(hand, embedding, self.pca_mean, self.pca_basis)

    def probabilities(self, hand: np.ndarray, embedding: np.ndarray, cnn_logits: np.ndarray, *,
                      card: bool = False) -> dict[str, float]:
        """Every shape's probability for one stone's hand FEATURES, embedding and CNN logits (`card`: a stone
        on the scale card, tempered further by `card_temperature`)."""
        z = self.weights @ ((self.inputs(hand, embedding) - self.mean) / self.scale) + self.bias
        t = self.temperature * (self.card_temperature if card else 1.0)
        p = combine(z, cnn_logits[self.cnn_order], t)
        return {label: float(v) for label, v in zip(self.labels, p, strict=True)}

    def classify(self, rgb: np.ndarray, seg: Segmentation, *, card: bool = False) -> tuple[str, float, dict[str, float]]:
        """The most probable cut shape of the stone `seg` in `rgb` (the other stones painted out), its
        probability, and every shape's. `card`: the stone lies on the scale card, small, under a desk lamp and
        a camera's blur, where the shapes are read less surely than on product photos (78-80 % top-1 on
        composed card photos of val stones against 90.6 % on their own photos), and its probabilities are
        tempered for it."""
        crop = [self.embedder.crop(rgb, seg)]
        probs = self.probabilities(features(rgb, seg), self.embedder.embed(crop)[0], self.cnn.run(crop)[0],
                                   card=card)
        label = max(probs, key=probs.__getitem__)
        return label, probs[label], probs


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def combine(head_logits: np.ndarray, cnn_logits: np.ndarray, temperature: float) -> np.ndarray:
    """The two models' probabilities multiplied, raised to 1/temperature and renormalised (same label order;
    batched on the last axis). A product, not a mean: each vetoes what it finds implausible."""
    z = (log_softmax(head_logits) + log_softmax(cnn_logits)) / temperature
    return np.exp(log_softmax(z))


def inputs(hand: np.ndarray, embedding: np.ndarray, pca_mean: np.ndarray, pca_basis: np.ndarray) -> np.ndarray:
    """`ShapeModel.inputs` for a fit that has no model yet (bench/shape_fit.py)."""
    return np.concatenate([expand(hand), (embedding - pca_mean) @ pca_basis.T], axis=-1)
