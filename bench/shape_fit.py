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
TEMPERATURE. How the recipe and the temperature were chosen on a development split inside train, never on
val: `gemid.training.shape_model`'s docstring, and `--dev` below to do it again. Val is never seen by a fit
and chooses nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from gemid.vision.segment import Segmentation
from gemid.vision.shape import (
    CNN_FILE,
    CONFIG,
    CROP_MARGIN,
    EMBEDDER_FILE,
    FEATURES,
    HEAD_FILE,
    SHAPE_DIR,
    SIDE_PX,
    inputs,
)

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "gemid/datasets/annotations/shape_gems68.csv"
PHOTOS = ROOT.parent / "shared/data/gems68/train"
EMBEDDER = SHAPE_DIR / EMBEDDER_FILE
CNN = SHAPE_DIR / CNN_FILE
# what the measured features depend on besides the photos and the networks: a change to any invalidates the cache
SOURCES = [ROOT / "gemid/vision" / f for f in ("shape.py", "segment.py", "stones.py", "crop.py", "decode.py")]
# the product's temperature: on the development split (148 train photos, both models fitted without them;
# `--dev`) it brought the negative log-likelihood from 0.347 (1.0) to 0.328, the best of 0.8-2.5
TEMPERATURE = 1.3
# on the scale card the shape is read on a small stone under a desk lamp, a camera's blur and JPEG, and the model
# is surer than it is right there: a further temperature for those stones, chosen with the development split's
# models on card photos composed from the development stones (`python -m bench.shape_card_fit`: negative
# log-likelihood 0.621 at 1.0, 0.609 at 1.25, 0.637 at 1.5); val's card photos, measured after, chose nothing
CARD_TEMPERATURE = 1.25
L2S = (1e-3, 3e-3, 1e-2, 3e-2)
COMPONENTS = (32, 64, 96, 128)
STEPS = 1500
CACHE = ROOT / "cache" / "shape_measured.npz"  # ignored by git; one per checkout


def rows(split: str | None = None) -> list[dict[str, str]]:
    with MANIFEST.open(newline="") as f:
        return [r for r in csv.DictReader(f) if split is None or r["split"] == split]


def first_stone(path: str) -> tuple[np.ndarray, Segmentation]:
    """A labelled photo's pixels and its first stone, as `identify_stones` finds it."""
    from gemid.vision.decode import decode
    from gemid.vision.segment import segment
    from gemid.vision.stones import find_stones

    if not PHOTOS.is_dir():
        raise SystemExit(f"the gems68 photos are not at {PHOTOS}: the shape figures need them")
    rgb = decode(PHOTOS / path).rgb
    return rgb, find_stones(rgb, segment(rgb))[0]


def measure(paths: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FEATURES, the embedding and the CNN's logits of each photo's stone (the first stone, as `identify`
    reports it)."""
    from gemid.vision.shape import Network, features

    embedder, cnn = Network.open(EMBEDDER, SIDE_PX, threads=2), Network.open(CNN, SIDE_PX, threads=2)
    hand, emb, logits = [], [], []
    for p in paths:
        rgb, stone = first_stone(p)
        crop = [embedder.crop(rgb, stone)]
        hand.append(features(rgb, stone))
        emb.append(embedder.embed(crop)[0])
        logits.append(cnn.run(crop)[0])
    return np.array(hand), np.array(emb), np.array(logits)


def all_measured(use_cache: bool) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray, np.ndarray]:
    """Every labelled photo's hand features, embedding and CNN logits (cached in the checkout's cache/, keyed
    by the paths, the feature names, the networks' and the measuring code's sha256)."""
    from gemid.vision.bundle import sha256_file

    rs = rows()
    paths = [r["path"] for r in rs]
    key = "".join(sha256_file(p) for p in (EMBEDDER, CNN, *SOURCES))
    if use_cache and CACHE.exists():
        z = np.load(CACHE, allow_pickle=False)
        if ("networks" in z.files and list(z["paths"]) == paths and tuple(z["names"]) == FEATURES
                and str(z["networks"]) == key):
            return rs, z["hand"], z["emb"], z["logits"]
    hand, emb, logits = measure(paths)
    CACHE.parent.mkdir(exist_ok=True)
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
    if config["sha256"] != sha256_file(CNN) or config["input"]["size"] != SIDE_PX:
        raise SystemExit(f"{CNN.with_suffix('.json')} does not describe {CNN}: export the CNN again")
    if abs(config["input"]["margin"] - CROP_MARGIN) > 1e-9:
        raise SystemExit(f"the CNN was trained on crops with margin {config['input']['margin']}, the runtime cuts "
                         f"{CROP_MARGIN}")
    if config["input"]["mean"] != [0.5] * 3 or config["input"]["std"] != [0.5] * 3:
        raise SystemExit("the CNN was trained with another normalisation than the runtime's (mean = std = 0.5)")
    return config


def write(head: dict[str, np.ndarray], labels: list[str], meta: dict) -> None:
    """head.npz and shape.json, each written whole beside and then renamed over the old (a failure on the way
    leaves the committed pair as it was)."""
    from gemid.vision.bundle import sha256_file

    cnn = cnn_config()  # first: a CNN that does not fit is refused before anything is written
    path = SHAPE_DIR / HEAD_FILE
    tmp_head = path.with_suffix(".new.npz")
    np.savez(tmp_head, labels=np.array(labels), **{k: v.astype(np.float32) for k, v in head.items()})
    config = {
        "name": "gemid-shape",
        "input": {"size": SIDE_PX, "mean": [0.5] * 3, "std": [0.5] * 3, "crop": f"stone square, margin {CROP_MARGIN}"},
        "labels": labels,
        "features": list(FEATURES),
        "cnn_labels": cnn["labels"],
        "temperature": TEMPERATURE,
        "card_temperature": CARD_TEMPERATURE,
        "files": {"embedder": {"path": EMBEDDER.name, "sha256": sha256_file(EMBEDDER)},
                  "cnn": {"path": CNN.name, "sha256": sha256_file(CNN), "trained_on": cnn["trained_on"]},
                  "head": {"path": path.name, "sha256": sha256_file(tmp_head)}},
        **meta,
    }
    tmp_config = SHAPE_DIR / (CONFIG + ".new")
    tmp_config.write_text(json.dumps(config, indent=1) + "\n")
    tmp_head.replace(path)
    tmp_config.replace(SHAPE_DIR / CONFIG)


def development_head(rs: list[dict[str, str]], hand: np.ndarray, emb: np.ndarray, labels: list[str]
                     ) -> tuple[dict[str, np.ndarray], float, int, np.ndarray, np.ndarray, np.ndarray]:
    """The head fitted on the train photos outside the development split (its L2 and directions by the same
    cross-validation), in `labels`' order: (head, L2, directions, fitted-on mask, development mask, label
    index per photo, -1 for a shape outside `labels`)."""
    from gemid.training.shape_model import dev_photos

    dev = dev_photos()
    y = np.array([labels.index(r["shape"]) if r["shape"] in labels else -1 for r in rs])
    fit_on = np.array([r["split"] == "train" and r["path"] not in dev for r in rs])
    held = np.array([r["split"] == "train" and r["path"] in dev for r in rs])
    head, l2, n, _ = choose_head(hand[fit_on], emb[fit_on], y[fit_on], len(labels))
    return head, l2, n, fit_on, held, y


def dev_figures(cnn_path: Path, rs: list[dict[str, str]], hand: np.ndarray, emb: np.ndarray) -> None:
    """The development split's figures (how the recipe and TEMPERATURE were chosen): the head fitted on the
    train photos outside it (its L2 and directions by the same cross-validation), a CNN trained without it
    (`python -m gemid.training.shape_model cnn --dev --run R`), each alone and together, and the product's
    negative log-likelihood at each temperature. Val is not read."""
    from gemid.report import SHAPES
    from gemid.vision.shape import combine, log_softmax

    labels = [s for s in SHAPES if any(r["shape"] == s for r in rs)]
    head, l2, n, fit_on, held, y = development_head(rs, hand, emb, labels)
    cnn_labels = json.loads(cnn_path.with_suffix(".json").read_text())["labels"]
    logits = dev_logits(cnn_path, [r["path"] for r, h in zip(rs, held, strict=True) if h])
    logits = logits[:, [cnn_labels.index(k) for k in labels]]
    z = predict(head, hand[held], emb[held])
    truth = y[held]
    p_head, p_cnn = np.exp(log_softmax(z)), np.exp(log_softmax(logits))
    print(f"development split: {int(held.sum())} train photos, fitted on the other {int(fit_on.sum())}; "
          f"head L2 {l2:g}, {n} directions")
    for name, p in (("head alone", p_head), ("CNN alone", p_cnn), ("averaged", p_head + p_cnn),
                    ("multiplied", combine(z, logits, 1.0))):
        print(f"  {name}: top-1 {np.mean(p.argmax(1) == truth):.1%}")
    for t in (0.8, 1.0, 1.3, 1.6, 2.0, 2.5):
        p = combine(z, logits, t)
        print(f"  multiplied, temperature {t:g}: negative log-likelihood {-np.mean(np.log(p[np.arange(len(truth)), truth])):.3f}")


def dev_logits(cnn_path: Path, paths: list[str]) -> np.ndarray:
    from gemid.vision.shape import Network

    cnn = Network.open(cnn_path, SIDE_PX, threads=2)
    return np.array([cnn.run([cnn.crop(*first_stone(p))])[0] for p in paths])


def choose_head(hand: np.ndarray, emb: np.ndarray, y: np.ndarray, k: int, *, show: bool = False
                ) -> tuple[dict[str, np.ndarray], float, int, float]:
    """The head fitted on the photos given, with the L2 and directions that cross-validate best among them;
    and those choices and their score."""
    scores = {(l2, n): cross_validated(hand, emb, y, k, l2, n) for l2 in L2S for n in COMPONENTS}
    if show:
        for (l2, n), s in scores.items():
            print(f"train 5-fold: L2 {l2:g}, {n} directions: top-1 {s:.1%}")
    l2, n = max(scores, key=scores.__getitem__)
    return fit_head(hand, emb, y, k, l2, n), l2, n, scores[(l2, n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="measure the committed model; write nothing")
    ap.add_argument("--no-cache", action="store_true", help="measure the photos again (cached in cache/)")
    ap.add_argument("--dev", type=Path, metavar="CNN_ONNX",
                    help="the development split's figures with a CNN trained without it; writes nothing")
    a = ap.parse_args()
    rs, hand, emb, logits = all_measured(not a.no_cache)
    if a.dev:
        dev_figures(a.dev, rs, hand, emb)
        return
    from gemid.report import SHAPES

    labels = [s for s in SHAPES if any(r["shape"] == s for r in rs)]
    y = np.array([labels.index(r["shape"]) for r in rs])
    tr = np.array([r["split"] == "train" for r in rs])
    if not a.check:
        head, l2, n, score = choose_head(hand[tr], emb[tr], y[tr], len(labels), show=True)
        write(head, labels, {"chosen": {"l2": l2, "directions": n, "train_cv_top1": round(score, 4)},
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
