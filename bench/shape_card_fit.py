"""The cut shape on the scale card: how sure the shape model is there against how often it is right, and the
card temperature (`CARD_TEMPERATURE` in bench/shape_fit.py, `card_temperature` in models/gemid-shape/shape.json).

    python -m bench.shape_card_fit                # choose: the development split's models on its stones
    python -m bench.shape_card_fit --val          # measure: the shipped model on the val stones (chooses nothing)

On the card a stone is 3-14 mm under a desk lamp, a camera's blur and JPEG (`bench.bench_size` composes the
photos: 24 per seed, seeds 0 and 1), and the shapes are read less surely than on product photos. Choosing
uses the models of the development split (`python -m gemid.training.shape_model cnn --dev --run
runs/shape/dev5`: a CNN trained without the 148 development photos, and the head fitted here without them),
on card photos composed from those development stones: neither model has seen them. It prints, for each card
temperature on top of the product's, the negative log-likelihood of the labelled shape, the mean confidence
and the calibration error (10 bins), beside top-1. `--val` prints the same for the shipped model on the val
stones' card photos (held out; this measures the temperature chosen, it does not choose it).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402

from bench import bench_size  # noqa: E402
from bench.machine import cpu_description  # noqa: E402

TEMPERATURES = (1.0, 1.25, 1.5, 1.75, 2.0)
DEV_CNN = Path("runs/shape/dev5/cnn.onnx")


def development_model(ident, cnn_path: Path) -> None:
    """Swap `ident`'s shape model for the development split's: its CNN and a head fitted without those photos."""
    from bench import shape_fit
    from gemid.vision.shape import SIDE_PX, Network

    rs, hand, emb, _ = shape_fit.all_measured(True)
    labels = list(ident.shapes.labels)
    head = shape_fit.development_head(rs, hand, emb, labels)[0]
    cnn_labels = json.loads(cnn_path.with_suffix(".json").read_text())["labels"]
    ident.shapes = replace(ident.shapes, cnn=Network.open(cnn_path, SIDE_PX, threads=2),
                           cnn_order=np.array([cnn_labels.index(k) for k in labels]), card_temperature=1.0,
                           **{k: head[k].astype(np.float64) for k in ("pca_mean", "pca_basis", "mean", "scale",
                                                                      "weights", "bias")})


def card_probabilities(ident, cutouts, seeds: list[int], photos: int) -> tuple[np.ndarray, np.ndarray]:
    """Every found, shape-labelled stone's shape probabilities on the card (without the card temperature) and
    the index of its labelled shape."""
    from gemid.vision.shape import ShapeModel

    seen: list[dict[str, float]] = []
    classify = ShapeModel.classify

    def spy(self, rgb, seg, *, card=False):
        out = classify(self, rgb, seg, card=False)
        seen.append(out[2])
        return out

    ShapeModel.classify = spy  # type: ignore[method-assign]
    probs, truth = [], []
    labels = list(ident.shapes.labels)
    try:
        for seed in seeds:
            rng = np.random.default_rng(seed)
            for _ in range(photos):
                data, truths = bench_size.compose(cutouts, rng)
                seen.clear()
                reports = ident.identify_stones(data, grade=False)
                used: set[int] = set()
                for t in truths:
                    hit = next((i for i, r in enumerate(reports) if i not in used and r.stone is not None
                                and r.stone.bbox[0] <= t.centre_photo[0] <= r.stone.bbox[0] + r.stone.bbox[2]
                                and r.stone.bbox[1] <= t.centre_photo[1] <= r.stone.bbox[1] + r.stone.bbox[3]), None)
                    if hit is None or cutouts[t.cutout].shape is None or hit >= len(seen):
                        continue
                    used.add(hit)
                    probs.append([seen[hit][k] for k in labels])
                    truth.append(labels.index(cutouts[t.cutout].shape))
    finally:
        ShapeModel.classify = classify  # type: ignore[method-assign]
    return np.array(probs), np.array(truth)


def tempered(p: np.ndarray, t: float) -> np.ndarray:
    z = np.log(np.clip(p, 1e-12, 1.0)) / t
    q = np.exp(z - z.max(1, keepdims=True))
    return q / q.sum(1, keepdims=True)


def calibration_error(q: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    conf, right = q.max(1), q.argmax(1) == truth
    k = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum(abs(right[k == b].mean() - conf[k == b].mean()) * (k == b).sum()
                     for b in range(bins) if (k == b).any()) / len(truth))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--val", action="store_true", help="the shipped model on the val stones (measures, chooses nothing)")
    ap.add_argument("--dev-cnn", type=Path, default=DEV_CNN, help="the development split's CNN (choosing)")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--photos", type=int, default=24, help="card photos per seed")
    args = ap.parse_args(argv)

    from gemid.vision.bundle import DEFAULT_BUNDLE_DIR
    from gemid.vision.pipeline import Identifier

    ident = Identifier(DEFAULT_BUNDLE_DIR)
    if ident.shapes is None:
        print("no shape model loaded")
        return 2
    if args.val:
        cutouts = bench_size.real_cutouts("val")
        what = f"shipped shape model, {len(cutouts)} val stones"
    else:
        from gemid.training.shape_model import dev_photos

        if not args.dev_cnn.is_file():
            print(f"{args.dev_cnn} is missing: python -m gemid.training.shape_model cnn --dev --run {args.dev_cnn.parent}")
            return 2
        development_model(ident, args.dev_cnn)
        dev = dev_photos()
        cutouts = [c for c in bench_size.real_cutouts("train") if c.name in dev]
        what = f"development split's models, {len(cutouts)} development stones"
    if not cutouts:
        print(f"no stones: {bench_size.GEMS} is missing")
        return 2
    p, truth = card_probabilities(ident, cutouts, [int(s) for s in args.seeds.split(",")], args.photos)
    print(f"cut shape on the scale card: {what}, seeds {args.seeds}, {args.photos} photos each; CPU: {cpu_description()}")
    print(f"stones found with a shape label: {len(truth)}; top-1 {np.mean(p.argmax(1) == truth):.1%}")
    for t in TEMPERATURES:
        q = tempered(p, t)
        nll = -float(np.mean(np.log(q[np.arange(len(truth)), truth] + 1e-12)))
        print(f"  card temperature {t:g}: negative log-likelihood {nll:.3f}, mean confidence {q.max(1).mean():.1%}, "
              f"calibration error {calibration_error(q, truth):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
