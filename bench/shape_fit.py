"""Fit the cut-shape model's head (`models/gemid-shape/head.npz`, `shape.json`) on the train part of the
labelled gems68 photos, and say how the whole shape model does on val.

  .venv/bin/python -m bench.shape_fit            # fit on train, print val top-1 and confusion, write the head
  .venv/bin/python -m bench.shape_fit --check    # only measure the committed model (no writing)

The networks (`embed.onnx`, `cnn.onnx` and its `cnn.json`) come first, from `python -m
gemid.training.shape_model embedder` and `... cnn`. The head is a multinomial logistic regression (numpy,
full-batch gradient descent, L2, class weights balanced so that a shape with few photos still counts) over
the 28 hand-measured features, their squares, and the ImageNet embedding projected on its main directions
(PCA over the train photos). Its L2 strength and number of directions are chosen by 5-fold
cross-validation inside train. The head's and the CNN's probabilities are multiplied and tempered by
TEMPERATURE (chosen with the recipe on a development split inside train: `gemid.training.shape_model`).
Val is never seen by a fit and chooses nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from gemid.vision.shape import CONFIG, FEATURES, SHAPE_DIR, inputs

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "gemid/datasets/annotations/shape_gems68.csv"
PHOTOS = ROOT.parent / "shared/data/gems68/train"
EMBEDDER = SHAPE_DIR / "embed.onnx"
CNN = SHAPE_DIR / "cnn.onnx"
SIDE = 224  # the networks' input side (gemid.training.shape_model.SIDE)
# the product's temperature: on the development split (148 train photos, both models fitted without them)
# it brought the negative log-likelihood from 0.317 (1.0) to 0.297 and the calibration error from 6.1 to 5.6 %
TEMPERATURE = 1.3
L2S = (3e-3, 1e-2, 3e-2)
COMPONENTS = (32, 64)
STEPS = 1500
CACHE = Path("/tmp/gemid_shape_measured.npz")


def rows(split: str | None = None) -> list[dict[str, str]]:
    with MANIFEST.open(newline="") as f:
        return [r for r in csv.DictReader(f) if split is None or r["split"] == split]


def measure(paths: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FEATURES, the embedding and the CNN's logits of each photo's stone (the first stone, as `identify`
    reports it)."""
    from gemid.vision.decode import decode
    from gemid.vision.segment import segment
    from gemid.vision.shape import Network, features
    from gemid.vision.stones import find_stones

    embedder, cnn = Network.open(EMBEDDER, SIDE, threads=2), Network.open(CNN, SIDE, threads=2)
    hand, emb, logits = [], [], []
    for p in paths:
        rgb = decode(PHOTOS / p).rgb
        stone = find_stones(rgb, segment(rgb))[0]
        crop = [embedder.crop(rgb, stone)]
        hand.append(features(rgb, stone))
        emb.append(embedder.embed(crop)[0])
        logits.append(cnn.run(crop)[0])
    return np.array(hand), np.array(emb), np.array(logits)


def all_measured(use_cache: bool) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray, np.ndarray]:
    """Every labelled photo's hand features, embedding and CNN logits (cached in /tmp by paths, feature names
    and the networks' sha256)."""
    from gemid.vision.bundle import sha256_file

    rs = rows()
    paths = [r["path"] for r in rs]
    key = sha256_file(EMBEDDER) + sha256_file(CNN)
    if use_cache and CACHE.exists():
        z = np.load(CACHE, allow_pickle=False)
        if ("networks" in z.files and list(z["paths"]) == paths and tuple(z["names"]) == FEATURES
                and str(z["networks"]) == key):
            return rs, z["hand"], z["emb"], z["logits"]
    hand, emb, logits = measure(paths)
    np.savez(CACHE, paths=np.array(paths), names=np.array(FEATURES), networks=np.array(key), hand=hand, emb=emb,
             logits=logits)
    return rs, hand, emb, logits


def principal(emb: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    mean = emb.mean(0)
    _, _, vt = np.linalg.svd(emb - mean, full_matrices=False)
    return mean, vt[:n]


def fit(x: np.ndarray, y: np.ndarray, k: int, l2: float) -> tuple[np.ndarray, ...]:
    """Standardisation, weights and bias of a class-balanced multinomial logistic regression."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    n, d = z.shape
    counts = np.bincount(y, minlength=k).astype(np.float64)
    cw = (n / (k * np.maximum(counts, 1)))[y]
    w, b = np.zeros((k, d)), np.zeros(k)
    onehot = np.eye(k)[y]
    for _ in range(STEPS):
        logits = z @ w.T + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) * cw[:, None] / cw.sum()
        w -= 0.5 * (g.T @ z + l2 * w)
        b -= 0.5 * g.sum(0)
    return mean, scale, w, b


def fit_head(hand: np.ndarray, emb: np.ndarray, y: np.ndarray, k: int, l2: float, n: int) -> dict[str, np.ndarray]:
    pca_mean, pca_basis = principal(emb, n)
    mean, scale, w, b = fit(inputs(hand, emb, pca_mean, pca_basis), y, k, l2)
    return {"pca_mean": pca_mean, "pca_basis": pca_basis, "mean": mean, "scale": scale, "weights": w, "bias": b}


def predict(head: dict[str, np.ndarray], hand: np.ndarray, emb: np.ndarray) -> np.ndarray:
    x = inputs(hand, emb, head["pca_mean"], head["pca_basis"])
    return ((x - head["mean"]) / head["scale"]) @ head["weights"].T + head["bias"]


def cross_validated(hand: np.ndarray, emb: np.ndarray, y: np.ndarray, k: int, l2: float, n: int) -> float:
    """Top-1 of 5-fold cross-validation (seeded folds) inside the photos given."""
    fold = np.random.default_rng(0).integers(0, 5, len(y))
    hits = 0
    for f in range(5):
        a, q = fold != f, fold == f
        head = fit_head(hand[a], emb[a], y[a], k, l2, n)
        hits += int((predict(head, hand[q], emb[q]).argmax(1) == y[q]).sum())
    return hits / len(y)


def confusion(truth: list[str], pred: list[str], labels: list[str]) -> str:
    width = max(len(s) for s in labels) + 1
    head = " " * width + "".join(f"{s[:6]:>7}" for s in labels)
    lines = [head]
    for t in labels:
        cells = [sum(1 for a, b in zip(truth, pred, strict=True) if a == t and b == q) for q in labels]
        if sum(cells):
            lines.append(f"{t:<{width}}" + "".join(f"{c or '.':>7}" for c in cells))
    return "\n".join(lines)


def cnn_config() -> dict:
    """What `gemid.training.shape_model cnn` wrote beside the CNN (its labels, input, provenance)."""
    from gemid.vision.bundle import sha256_file

    config = json.loads(CNN.with_suffix(".json").read_text())
    if config["sha256"] != sha256_file(CNN) or config["input"]["size"] != SIDE:
        raise SystemExit(f"{CNN.with_suffix('.json')} does not describe {CNN}: export the CNN again")
    if config["input"]["mean"] != [0.5] * 3 or config["input"]["std"] != [0.5] * 3:
        raise SystemExit("the CNN was trained with another normalisation than the runtime's (mean = std = 0.5)")
    return config


def write(head: dict[str, np.ndarray], labels: list[str], meta: dict) -> None:
    from gemid.vision.bundle import sha256_file

    path = SHAPE_DIR / "head.npz"
    np.savez(path, **{k: v.astype(np.float32) for k, v in head.items()})
    cnn = cnn_config()
    config = {
        "name": "gemid-shape",
        "input": {"size": SIDE, "mean": [0.5] * 3, "std": [0.5] * 3, "crop": "stone square, margin 0.12"},
        "labels": labels,
        "features": list(FEATURES),
        "cnn_labels": cnn["labels"],
        "temperature": TEMPERATURE,
        "files": {"embedder": {"path": EMBEDDER.name, "sha256": sha256_file(EMBEDDER)},
                  "cnn": {"path": CNN.name, "sha256": sha256_file(CNN), "trained_on": cnn["trained_on"]},
                  "head": {"path": path.name, "sha256": sha256_file(path)}},
        **meta,
    }
    (SHAPE_DIR / CONFIG).write_text(json.dumps(config, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="measure the committed model; write nothing")
    ap.add_argument("--no-cache", action="store_true", help="measure the photos again (cached in /tmp)")
    a = ap.parse_args()
    rs, hand, emb, logits = all_measured(not a.no_cache)
    from gemid.report import SHAPES

    labels = [s for s in SHAPES if any(r["shape"] == s for r in rs)]
    y = np.array([labels.index(r["shape"]) for r in rs])
    tr = np.array([r["split"] == "train" for r in rs])
    if not a.check:
        scores = {(l2, n): cross_validated(hand[tr], emb[tr], y[tr], len(labels), l2, n)
                  for l2 in L2S for n in COMPONENTS}
        for (l2, n), s in scores.items():
            print(f"train 5-fold: L2 {l2:g}, {n} directions: top-1 {s:.1%}")
        l2, n = max(scores, key=scores.__getitem__)
        head = fit_head(hand[tr], emb[tr], y[tr], len(labels), l2, n)
        write(head, labels, {"chosen": {"l2": l2, "directions": n, "train_cv_top1": round(scores[(l2, n)], 4)},
                             "fitted_on": f"{MANIFEST.name} train ({int(tr.sum())} photos); bench/shape_fit.py"})
    from gemid.vision.shape import ShapeModel

    model = ShapeModel.load()
    pred = []
    for h, e, g in zip(hand, emb, logits, strict=True):
        p = model.probabilities(h, e, g)
        pred.append(max(p, key=p.__getitem__))
    head_z = ((model.inputs(hand, emb) - model.mean) / model.scale) @ model.weights.T + model.bias
    parts = {"head alone": [model.labels[int(i)] for i in head_z.argmax(1)],
             "CNN alone": [model.labels[int(i)] for i in logits[:, model.cnn_order].argmax(1)]}
    for split, sel in (("train", tr), ("val", ~tr)):
        t = [r["shape"] for r, s in zip(rs, sel, strict=True) if s]
        q = [p for p, s in zip(pred, sel, strict=True) if s]
        acc = np.mean([a_ == b_ for a_, b_ in zip(t, q, strict=True)])
        alone = ", ".join(f"{k} {np.mean([v[i] == rs[i]['shape'] for i in np.flatnonzero(sel)]):.1%}"
                          for k, v in parts.items())
        print(f"{split}: top-1 {acc:.1%} on {len(t)} photos ({alone})")
    print(confusion([r["shape"] for r, s in zip(rs, tr, strict=True) if not s],
                    [p for p, s in zip(pred, tr, strict=True) if not s], labels))


if __name__ == "__main__":
    main()
