"""Test-time augmentation (issue 29): does averaging the model over flipped and rotated views of the stone
crop beat one view, on photos the model never trained on?

    scripts/train-species-cv.sh          # makes the fold-0 model (runs/gems68-lite0-cv-fold0/bundle)
    python -m bench.bench_tta --bundle runs/gems68-lite0-cv-fold0/bundle --manifest data/gems68-k5.csv --split fold0

Every photo goes through the runtime's view (decode -> segment -> the bundle's crop, with its photometric
front end), then the bundle's fp32 ONNX graph on each of the 8 dihedral views of that crop (identity, flips,
quarter turns, transposes). Printed: top-1 / top-5 of each view alone, and of the mean over 2, 4 and 8 views
(of the logits and of the calibrated probabilities), with 95 % Wilson intervals; how many photos the 8-view
mean gains and loses against one view; the classifier's time per view. Needs the `train` extra (the crops
are cut as `gemid export` cuts them) and ../shared/data/gems68 (exits 0 without it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_description  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEANS = {"1 view": ("identity",), "2 views (flip)": ("identity", "flip_lr"),
         "4 views (quarter turns)": ("identity", "rot90", "rot180", "rot270")}


def views(x: np.ndarray) -> dict[str, np.ndarray]:
    """The 8 dihedral views of NCHW crops (a square crop of a stone has no preferred orientation)."""
    t = np.swapaxes(x, 2, 3)
    return {"identity": x, "flip_lr": x[..., ::-1], "flip_ud": x[..., ::-1, :], "rot90": np.rot90(x, 1, (2, 3)),
            "rot180": np.rot90(x, 2, (2, 3)), "rot270": np.rot90(x, 3, (2, 3)), "transpose": t,
            "anti_transpose": np.rot90(t, 2, (2, 3))}


def softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def summarise(logits: dict[str, np.ndarray], y: np.ndarray, temperature: float) -> dict[str, dict]:
    """Top-1 / top-5 (with Wilson intervals) of each view and of each mean; gained / lost by 8 views."""
    from gemid.stats import wilson

    n = len(y)

    def score(p: np.ndarray) -> dict:
        top1 = float((p.argmax(1) == y).mean())
        top5 = float(np.mean([y[i] in np.argsort(-p[i])[:5] for i in range(n)]))
        return {"top1": top1, "top1_ci": wilson(top1, n), "top5": top5}

    out = {f"view {k}": score(v) for k, v in logits.items()}
    means = {**MEANS, "8 views (dihedral)": tuple(logits)}
    for name, keys in means.items():
        out[f"{name}, mean logits"] = score(np.mean([logits[k] for k in keys], axis=0))
        out[f"{name}, mean probabilities"] = score(np.mean([softmax(logits[k], temperature) for k in keys], axis=0))
    one = logits["identity"].argmax(1) == y
    eight = np.mean(list(logits.values()), axis=0).argmax(1) == y
    out["8 views vs 1"] = {"gained": int((eight & ~one).sum()), "lost": int((one & ~eight).sum())}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, required=True, help="a model that did not train on the photos")
    ap.add_argument("--manifest", type=Path, default=REPO / "data" / "gems68-k5.csv")
    ap.add_argument("--split", default="fold0")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.manifest.is_file():
        print(f"no manifest at {args.manifest}: see scripts/train-species-cv.sh (needs ../shared/data/gems68)")
        return 0

    from gemid.training.data import eval_crops
    from gemid.training.onnx_export import ort_outputs, ort_session
    from gemid.training.presets import to_tensor
    from gemid.vision.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    if bundle.in_sample_note():
        print(bundle.in_sample_note(), flush=True)
    t0 = time.time()
    crops, species, _ = eval_crops(args.manifest, args.split, bundle.input.size, bundle.input.crop.margin,
                                   photometric=bundle.input.photometric)
    index = {label: i for i, label in enumerate(bundle.labels)}
    y = np.array([index[s] for s in species])
    x = to_tensor(crops, bundle.input.mean, bundle.input.std).numpy()
    session = ort_session(args.bundle / bundle.files["fp32"].path, args.threads)
    logits, ms = {}, {}
    for name, v in views(x).items():
        t = time.perf_counter()
        logits[name] = ort_outputs(session, np.ascontiguousarray(v))["logits"]
        ms[name] = (time.perf_counter() - t) / len(x) * 1000
    res = summarise(logits, y, bundle.temperature)
    print(f"bench_tta: bundle {bundle.name} {bundle.version} (fp32), {args.manifest.name} {args.split}: {len(y)} "
          f"photos, {time.time() - t0:.0f} s; cpu: {cpu_description()}, {args.threads} threads")
    for name, r in res.items():
        if "top1" in r:
            lo, hi = r["top1_ci"]
            extra = f"  {ms[name[5:]]:5.1f} ms/photo" if name.startswith("view ") else ""
            print(f"{name:42s} top-1 {100 * r['top1']:5.1f} % ({100 * lo:4.1f}-{100 * hi:4.1f})  "
                  f"top-5 {100 * r['top5']:5.1f} %{extra}")
    g = res["8 views vs 1"]
    print(f"8 views against 1: {g['gained']} photos gained, {g['lost']} lost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
