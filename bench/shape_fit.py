"""Fit the cut-shape classifier (`gemid/vision/shape_weights.json`) on the train part of the labelled gems68
photos, and say how it does on val.

  .venv/bin/python -m bench.shape_fit            # fit on train, print val top-1 and confusion, write weights
  .venv/bin/python -m bench.shape_fit --check    # only measure the committed weights (no writing)

A multinomial logistic regression (numpy, full-batch gradient descent with L2 and class weights balanced so
a shape with few photos still counts) over `gemid.vision.shape.expand(features)`. Val is never seen by the
fit: it chooses nothing (the L2 strength is fixed up front).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from gemid.vision.shape import FEATURES, OUTLINE_FEATURES, SURFACE, SURFACE_FEATURES, WEIGHTS, columns, expand

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "gemid/datasets/annotations/shape_gems68.csv"
PHOTOS = ROOT.parent / "shared/data/gems68/train"
L2 = 3e-3
STEPS = 4000
CACHE = Path("/tmp/gemid_shape_features.npz")


def rows(split: str | None = None) -> list[dict[str, str]]:
    with MANIFEST.open(newline="") as f:
        return [r for r in csv.DictReader(f) if split is None or r["split"] == split]


def measure(paths: list[str]) -> np.ndarray:
    """FEATURES of each photo's stone (the first stone, as `identify` reports it)."""
    from gemid.vision.decode import decode
    from gemid.vision.segment import segment
    from gemid.vision.shape import features
    from gemid.vision.stones import find_stones

    out = []
    for p in paths:
        rgb = decode(PHOTOS / p).rgb
        stones = find_stones(rgb, segment(rgb))
        out.append(features(rgb, stones[0]))
    return np.array(out)


def all_features(use_cache: bool) -> tuple[list[dict[str, str]], np.ndarray]:
    rs = rows()
    paths = [r["path"] for r in rs]
    if use_cache and CACHE.exists():
        z = np.load(CACHE, allow_pickle=False)
        if list(z["paths"]) == paths and tuple(z["names"]) == FEATURES:
            return rs, z["x"]
    x = measure(paths)
    np.savez(CACHE, paths=np.array(paths), names=np.array(FEATURES), x=x)
    return rs, x


def fit(x: np.ndarray, y: np.ndarray, k: int, balanced: bool = True) -> tuple[np.ndarray, ...]:
    e = expand(x)
    mean, scale = e.mean(0), e.std(0) + 1e-6
    z = (e - mean) / scale
    n, d = z.shape
    counts = np.bincount(y, minlength=k).astype(np.float64)
    cw = (n / (k * np.maximum(counts, 1)))[y] if balanced else np.ones(n)
    w, b = np.zeros((k, d)), np.zeros(k)
    onehot = np.eye(k)[y]
    lr = 0.5
    for _ in range(STEPS):
        logits = z @ w.T + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) * cw[:, None] / cw.sum()
        w -= lr * (g.T @ z + L2 * w)
        b -= lr * g.sum(0)
    return mean, scale, w, b


def confusion(truth: list[str], pred: list[str], labels: list[str]) -> str:
    width = max(len(s) for s in labels) + 1
    head = " " * width + "".join(f"{s[:6]:>7}" for s in labels)
    lines = [head]
    for t in labels:
        cells = [sum(1 for a, b in zip(truth, pred, strict=True) if a == t and b == q) for q in labels]
        if sum(cells):
            lines.append(f"{t:<{width}}" + "".join(f"{c or '.':>7}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="measure the committed weights; write nothing")
    ap.add_argument("--no-cache", action="store_true", help="recompute the features (cached in /tmp)")
    a = ap.parse_args()
    rs, x = all_features(not a.no_cache)
    from gemid.report import SHAPES

    tr = np.array([r["split"] == "train" for r in rs])
    outline_labels = [s for s in SHAPES if s not in SURFACE and any(r["shape"] == s for r in rs)]
    labels = [*outline_labels, "cabochon", "tumbled_or_rough"]
    if not a.check:
        surf = np.array([SURFACE.index(r["shape"]) if r["shape"] in SURFACE else 0 for r in rs])
        faceted = tr & (surf == 0)
        outl = np.array([outline_labels.index(r["shape"]) if r["shape"] in outline_labels else -1 for r in rs])
        stages = {}
        for stage, sel, yy, names, labs, bal in (
            ("surface", tr, surf, SURFACE_FEATURES, list(SURFACE), False),
            ("outline", faceted, outl, OUTLINE_FEATURES, outline_labels, True),
        ):
            mean, scale, w, b = fit(x[sel][:, columns(names)], yy[sel], len(labs), balanced=bal)
            stages[stage] = {"labels": labs, "mean": mean.round(6).tolist(), "scale": scale.round(6).tolist(),
                             "weights": w.round(5).tolist(), "bias": b.round(5).tolist()}
        WEIGHTS.write_text(json.dumps({
            "features": list(FEATURES), **stages,
            "fitted_on": f"{MANIFEST.name} train ({int(tr.sum())} photos); bench/shape_fit.py",
        }, indent=1) + "\n")
    from gemid.vision import shape

    shape._model.cache_clear()
    pred = [max((p := shape.probabilities(v)), key=p.__getitem__) for v in x]
    for split, sel in (("train", tr), ("val", ~tr)):
        t = [r["shape"] for r, s in zip(rs, sel, strict=True) if s]
        q = [p for p, s in zip(pred, sel, strict=True) if s]
        acc = np.mean([a_ == b_ for a_, b_ in zip(t, q, strict=True)])
        print(f"{split}: top-1 {acc:.1%} on {len(t)} photos")
    print(confusion([r["shape"] for r, s in zip(rs, tr, strict=True) if not s],
                    [p for p, s in zip(pred, tr, strict=True) if not s], labels))


if __name__ == "__main__":
    main()
