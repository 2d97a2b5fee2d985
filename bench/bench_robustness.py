"""Species accuracy under real capture conditions (issue 29): top-1 / top-5 per named condition on the
validation photos, with the worst drop from clean.

    gemid dataset import ../shared/data/gems68/train --out data/gems68.csv --val-fraction 0.2 --seed 0
    python -m bench.bench_robustness                       # shipped bundle, fp32, raw crops and front end
    python -m bench.bench_robustness --front-end off       # the model as it classified before the front end
    python -m bench.bench_robustness --variant int8 --limit 100 --json /tmp/robust.json
    # the shipped v2 model trained on every gems68 photo: measure its recipe's fold-0 model on fold 0
    python -m bench.bench_robustness --manifest data/gems68-k5.csv --split fold0 \
        --bundle runs/gems68-lite0-cv-fold0/bundle --front-end on   # scripts/train-species-cv.sh makes it

Photos: the `val` split (or `--split`) of the manifest, which must be photos the bundle did not train on.
The shipped model since issue 29 trained on every gems68 photo, so the bench says so first and its figures
are in-sample; the held-out figures in its model card come from the fold-0 model above. Conditions (`gemid.vision.conditions`, the definitions issue 27's colour benchmark
uses too): a 3500 K lamp and 7500 K shade on a camera balanced for D65 (in linear light), one stop under,
the stone ~150 px across at JPEG 40, Gaussian blur of 0.5 % of the long side, noise sigma 10/255, 30
degrees of rotation, the stone in the middle of a frame three times its size, a mid-grey desk around it.
The geometric ones use the clean photo's segmentation (where the stone is); then every version goes
through the runtime's own path: `segment` -> the bundle's crop -> the model.

`--front-end` says which crops the model sees: `off` the raw crop, `on` the crop after the photometric
front end (`gemid.vision.photometric`: the colour grader's white balance and exposure estimate), `both`
measures the two side by side from the same segmentation. For each: top-1 and top-5 with 95 % Wilson
intervals, the drop from clean in points, the share the bundle's rule calls "identified" and how many of
those are wrong, by the energy rule (the bundle's energy threshold and probability; the familiarity score
needs the graph's features, which `gemid openset fit` measures instead). Noise uses a fixed seed per photo. Needs ../shared/data/gems68/train (exits 0 without it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_description  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "data" / "gems68.csv"
_state: dict[str, Any] = {}


def _init(bundle_dir: str, variant: str, front: tuple[str, ...]) -> None:
    from gemid.vision.bundle import load_bundle
    from gemid.vision.classify import SpeciesClassifier

    _state["clf"] = SpeciesClassifier(load_bundle(bundle_dir), variant=variant, threads=1)
    _state["front"] = front


def _one(job: tuple[int, str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    """Logits (conditions x front-end modes x classes) for one photo."""
    from gemid.vision import conditions as capture
    from gemid.vision.decode import decode
    from gemid.vision.photometric import light_for, normalise
    from gemid.vision.segment import segment

    index, path, conditions = job
    clf = _state["clf"]
    rgb = decode(Path(path), max_bytes=200_000_000, max_pixels=200_000_000).rgb
    seg0 = segment(rgb)
    crops = []
    for name in conditions:
        rng = np.random.default_rng([0, index])
        img = capture.apply(name, rgb, seg0, rng)
        seg = segment(img)
        crop = clf.crop(img, seg)
        for mode in _state["front"]:
            crops.append(normalise(crop, light_for(img, seg)) if mode == "on" else crop)
    logits, _ = clf.run(np.stack([clf.preprocess(c) for c in crops]))
    return {"logits": logits.reshape(len(conditions), len(_state["front"]), -1)}


def measure(paths: list[str], bundle_dir: str, variant: str, front: tuple[str, ...], conditions: tuple[str, ...],
            workers: int) -> np.ndarray:
    """Logits (photos, conditions, modes, classes)."""
    jobs = [(i, p, conditions) for i, p in enumerate(paths)]
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(bundle_dir, variant, front)) as ex:
            out = [r["logits"] for r in ex.map(_one, jobs, chunksize=4)]
    else:
        _init(bundle_dir, variant, front)
        out = [_one(j)["logits"] for j in jobs]
    return np.stack(out)


def summarise(logits: np.ndarray, y: np.ndarray, bundle: Any, conditions: tuple[str, ...],
              front: tuple[str, ...]) -> dict[str, Any]:
    from gemid.stats import wilson
    from gemid.vision.classify import decide, open_set_score, softmax

    n = len(y)
    out: dict[str, Any] = {}
    bundle = bundle.model_copy(update={"familiarity": None})  # the energy rule: this bench has no features
    for m, mode in enumerate(front):
        rows = {}
        for c, name in enumerate(conditions):
            lg = logits[:, c, m]
            order = np.argsort(-lg, axis=1)
            top1 = float((order[:, 0] == y).mean())
            top5 = float((order[:, :5] == y[:, None]).any(axis=1).mean())
            probs = softmax(lg, bundle.temperature)
            scores = open_set_score(lg, bundle.temperature)
            decisions = [decide(probs[i], float(scores[i]), bundle)[0] for i in range(n)]
            ident = np.array([d == "identified" for d in decisions])
            wrong = ident & (order[:, 0] != y)
            rows[name] = {
                "top1": top1, "top1_ci": wilson(top1, n), "top5": top5, "top5_ci": wilson(top5, n),
                "identified": float(ident.mean()), "identified_wrong": float(wrong.sum() / max(1, ident.sum())),
                "rejected": float(np.mean([d == "rejected" for d in decisions])),
            }
        clean = rows["clean"]["top1"] if "clean" in rows else None
        for r in rows.values():
            r["drop_pt"] = None if clean is None else 100.0 * (clean - r["top1"])
        drops = {k: r["drop_pt"] for k, r in rows.items() if k != "clean" and r["drop_pt"] is not None}
        worst = max(drops, key=lambda k: drops[k]) if drops else None
        out[mode] = {"conditions": rows, "worst": worst, "worst_drop_pt": drops.get(worst) if worst else None}
    return out


def print_table(res: dict[str, Any], n: int, descriptions: dict[str, str]) -> None:
    for mode, r in res.items():
        label = "crop after the photometric front end" if mode == "on" else "raw crop (no front end)"
        print(f"\n-- {label}: {n} validation photos")
        print(f"{'condition':16s} {'top-1 % (95 % CI)':>24s} {'top-5 %':>8s} {'drop pt':>8s} "
              f"{'ident %':>8s} {'wrong ident %':>14s}  what")
        for name, c in r["conditions"].items():
            lo, hi = c["top1_ci"]
            print(f"{name:16s} {100 * c['top1']:7.1f} ({100 * lo:5.1f}-{100 * hi:5.1f}) {100 * c['top5']:10.1f} "
                  f"{c['drop_pt']:8.1f} {100 * c['identified']:8.1f} {100 * c['identified_wrong']:14.1f}  "
                  f"{descriptions[name]}")
        if r["worst"]:
            print(f"worst drop: {r['worst']} {r['worst_drop_pt']:.1f} points (target <= 5)")


def main(argv: list[str] | None = None) -> int:
    from gemid.vision import conditions as capture
    from gemid.vision.bundle import DEFAULT_BUNDLE_DIR, load_bundle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, default=MANIFEST)
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE_DIR)
    ap.add_argument("--split", default="val",
                    help="the photos to measure: the split the bundle never trained on (default: %(default)s; for a "
                         "fold model of `gemid train --cv --cv-fold I`, foldI of the K-fold manifest)")
    ap.add_argument("--variant", default="fp32", choices=["fp32", "int8"])
    ap.add_argument("--front-end", default="both", choices=["off", "on", "both"])
    ap.add_argument("--conditions", default=",".join(capture.CONDITIONS), help="comma-separated names")
    ap.add_argument("--limit", type=int, default=0, help="only the first N validation photos (quick look)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--save-logits", type=Path, help="write the raw logits (photos, conditions, modes, classes)")
    args = ap.parse_args(argv)

    if not args.manifest.is_file():
        print(f"no manifest at {args.manifest}: run `gemid dataset import ../shared/data/gems68/train --out "
              "data/gems68.csv --val-fraction 0.2 --seed 0` first (needs ../shared/data/gems68)")
        return 0
    from gemid.datasets.manifest import read_manifest

    bundle = load_bundle(args.bundle)
    if bundle.in_sample_note():
        print(bundle.in_sample_note(), flush=True)
    man = read_manifest(args.manifest)
    rows = man.split(args.split)
    if args.limit:
        rows = rows[: args.limit]
    paths = [str(man.resolve(r)) for r in rows]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        print(f"{len(missing)} validation photos missing (first: {missing[0]}); is ../shared/data/gems68 there?")
        return 0
    index = {label: i for i, label in enumerate(bundle.labels)}
    y = np.array([index[r.species] for r in rows])
    conditions = tuple(c for c in args.conditions.split(",") if c)
    if "clean" not in conditions:
        conditions = ("clean", *conditions)
    front = ("off", "on") if args.front_end == "both" else (args.front_end,)

    t0 = time.perf_counter()
    logits = measure(paths, str(args.bundle), args.variant, front, conditions, args.workers)
    secs = time.perf_counter() - t0
    if args.save_logits:
        np.savez(args.save_logits, logits=logits, y=y, conditions=np.array(conditions), front=np.array(front))
    res = summarise(logits, y, bundle, conditions, front)
    print(f"bench_robustness: bundle {bundle.name} {bundle.version} ({args.variant}), manifest {args.manifest.name}, "
          f"{len(paths)} val photos, {secs:.0f} s, {args.workers} workers")
    print(f"cpu: {cpu_description()}")
    print_table(res, len(paths), {k: v[0] for k, v in capture.CONDITIONS.items()})
    if args.json:
        args.json.write_text(json.dumps({"bundle": bundle.version, "variant": args.variant, "n": len(paths),
                                         "cpu": cpu_description(), "seconds": secs, "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
