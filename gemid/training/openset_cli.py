"""`gemid openset fit`: fit the bundle's combined open-set score on real photos, and report it honestly.

    gemid openset fit --bundle models/gemid-species --manifest data/gems68.csv --nongem ../shared/data/nongem-dev

1. Both ONNX graphs get the global-pool features as an extra output (`familiarity_fit.expose_features`; the
   logits do not change) and bundle.json records their new sha256.
2. Every image goes through the runtime's own view (decode -> segment -> the bundle's crop) and both
   models: the manifest's *train* photos (the statistics), the *val* photos (reported only), and two non-gem
   sets split so that no photo session is in both: **tune** = the nongem-dev groups of `TUNE_GROUPS`, the
   sample photos shipped in scikit-image / matplotlib with their sub-views (`openset.non_gem_images`) and
   rendered hard negatives (seed 1); **report** = the other nongem-dev groups and rendered negatives of
   another seed (seed 2).
3. `familiarity_fit.fit` on train + tune (fp32): energy, distance and, unless `--no-outlier`, the outlier
   logit of a regression of train against tune; the threshold too. With `--oof OUT/oof.npz` (from
   `gemid train --cv`) the training photos' energy is that of their out-of-fold logits, not the shipped
   model's in-sample one, which sits higher than a new photo's and would set the rejection threshold too
   high (fold 0 of the v2 recipe: 25 % of held-out gem photos rejected). The report set and val are measured
   afterwards, for fp32 and int8, next to the energy score alone at the bundle's energy threshold.
4. familiarity.npz and the `familiarity` entry of bundle.json are written; the figures go to
   eval/openset.json and the terminal.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

# nongem-dev groups used for tuning; every other group is the report set (fruit studio shots are in both:
# mslearn-fruit here, grocery-iconic there)
TUNE_GROUPS = frozenset({"mslearn-fruit", "azure-cutlery", "grocery-natural", "jetson-images", "azure-cv",
                         "azure-faces", "mslearn-misc", "dice-gray"})
N_RENDERED = {"tune": 120, "report": 180}
_state: dict[str, Any] = {}


def nongem_split(folder: Path) -> dict[str, list[Path]]:
    """nongem-dev's photos by side (tune / report), split on SOURCES.tsv's group column."""
    out: dict[str, list[Path]] = {"tune": [], "report": []}
    for path, group in nongem_groups(folder).items():
        out["tune" if group in TUNE_GROUPS else "report"].append(path)
    return out


def nongem_groups(folder: Path) -> dict[Path, str]:
    """Each nongem-dev photo's group (its photo session or source), from SOURCES.tsv."""
    with (folder / "SOURCES.tsv").open(newline="") as f:
        return {folder / row["file"]: row["group"] for row in csv.DictReader(f, delimiter="\t")}


def _init(bundle_dir: str) -> None:
    from gemid.vision.bundle import load_bundle
    from gemid.vision.classify import SpeciesClassifier

    bundle = load_bundle(bundle_dir)
    _state["clf"] = {v: SpeciesClassifier(bundle, variant=v, threads=1) for v in bundle.files}
    _state["features"] = {v: _state["names"][v] for v in bundle.files}


def _one(item: tuple[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(logits, features) per variant and view: "raw" (the crop) and "grader" (after the photometric front end),
    both measured in one pass so that either front-end setting can be fitted from the cache."""
    from gemid.vision.decode import decode
    from gemid.vision.photometric import light_for, normalise
    from gemid.vision.segment import segment

    _, src = item
    rgb = decode(Path(src), max_bytes=200_000_000, max_pixels=200_000_000).rgb if isinstance(src, str) else src
    seg = segment(rgb)
    out = {}
    for variant, clf in _state["clf"].items():
        crop = clf.crop(rgb, seg)
        x = np.stack([clf.preprocess(crop), clf.preprocess(normalise(crop, light_for(rgb, seg)))])
        logits, _, feats = clf.run_all(x, features=_state["features"][variant])
        for i, mode in enumerate(("none", "grader")):
            out[f"{variant}/{mode}"] = (logits[i], feats[i])
    return out


def _init_with(bundle_dir: str, names: dict[str, str]) -> None:
    _state["names"] = names
    _init(bundle_dir)


def outputs(items: list[tuple[str, Any]], bundle_dir: Path, names: dict[str, str], workers: int,
            cache: Path | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """variant -> (logits (N, C), features (N, D)) for the items, in order; cached by bundle and item names."""
    from gemid.vision.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    spec = bundle.input.model_dump(exclude={"photometric"})
    key = hashlib.sha256(json.dumps([spec, {v: f.sha256 for v, f in bundle.files.items()},
                                     [n for n, _ in items]]).encode()).hexdigest()[:16]
    file = cache / f"openset-{key}.npz" if cache else None
    mode = bundle.input.photometric
    if file is not None and file.is_file():
        with np.load(file) as z:
            return {v: (z[f"{v}/{mode}_logits"], z[f"{v}/{mode}_features"]) for v in bundle.files}
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_init_with, initargs=(str(bundle_dir), names)) as ex:
            rows = list(ex.map(_one, items, chunksize=8))
    else:
        _init_with(str(bundle_dir), names)
        rows = [_one(i) for i in items]
    res = {v: (np.stack([r[v][0] for r in rows]), np.stack([r[v][1] for r in rows])) for v in rows[0]}
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(file, **{f"{v}_{k}": a for v, (lg, ft) in res.items() for k, a in (("logits", lg),
                                                                                   ("features", ft))})
    return {v: res[f"{v}/{mode}"] for v in bundle.files}


def _expose(bundle_dir: Path) -> dict[str, str]:
    """Feature outputs on every variant's graph; bundle.json's sha256 entries follow the rewritten files."""
    from gemid.training.familiarity_fit import expose_features
    from gemid.vision.bundle import sha256_file

    meta = bundle_dir / "bundle.json"
    data = json.loads(meta.read_text())
    names = {}
    for variant, entry in data["files"].items():
        path = bundle_dir / entry["path"]
        names[variant] = expose_features(path)
        entry["sha256"] = sha256_file(path)
    meta.write_text(json.dumps(data, indent=2) + "\n")
    return names


def photo_key(path: str | Path) -> str:
    """species folder/file name: the same photo under another root (a GPU machine's /shared, ../../shared)."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


def oof_energy(oof_path: Path, photos: list[str], labels: list[str], temperature: float) -> np.ndarray:
    """The energy of each photo's out-of-fold logits (`gemid train --cv`'s oof.npz), in `photos`' order."""
    from gemid.vision.familiarity import energy

    with np.load(oof_path) as d:
        if list(d["classes"]) != list(labels):
            raise ValueError(f"{oof_path}'s classes are not the bundle's labels")
        row = {photo_key(p): i for i, p in enumerate(d["paths"])}
        missing = [p for p in photos if photo_key(p) not in row]
        if missing:
            raise ValueError(f"{len(missing)} training photos have no out-of-fold logits in {oof_path} "
                               f"(first: {missing[0]})")
        logits = d["logits"][[row[photo_key(p)] for p in photos]]
    return energy(logits, temperature)


def run_fit(args: Any) -> int:
    from gemid.datasets.manifest import read_manifest
    from gemid.datasets.negatives import rendered_negatives
    from gemid.errors import ModelError
    from gemid.training import familiarity_fit as ff
    from gemid.training.openset import non_gem_images
    from gemid.vision.bundle import load_bundle
    from gemid.vision.familiarity import Familiarity

    bundle_dir = Path(args.bundle)
    try:
        load_bundle(bundle_dir)  # a bundle that would not be served is not fitted either
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = _expose(bundle_dir)
    bundle = load_bundle(bundle_dir)
    man = read_manifest(args.manifest)
    index = {label: i for i, label in enumerate(bundle.labels)}
    gems = {s: [(str(man.resolve(r)), index[r.species]) for r in man.split(s)] for s in ("train", "val")}
    in_sample = not gems["train"] and bool(man.folds)
    if in_sample:  # a K-fold manifest: the shipped model trained on every fold, and no gem photo is held out
        rows = [r for r in man.rows if r.split in man.folds]
        gems["train"] = gems["val"] = [(str(man.resolve(r)), index[r.species]) for r in rows]
        print("note: every gem photo of this K-fold manifest trained the model: the gem-side figures below are "
              "in-sample (they flatter); the non-gem figures are held out. Fit a fold's model with its "
              "train/val manifest (gemid dataset import --kfold K --fold I) for held-out gem figures.")
    ng = nongem_split(Path(args.nongem))
    items: dict[str, list[tuple[str, Any]]] = {
        "train": [(p, p) for p, _ in gems["train"]], "val": [(p, p) for p, _ in gems["val"]],
        "tune_real": [(str(p), str(p)) for p in ng["tune"]], "report_real": [(str(p), str(p)) for p in ng["report"]],
        "tune_wheel": [(g.name, g.rgb) for g in non_gem_images()],
        "tune_rendered": rendered_negatives(N_RENDERED["tune"], seed=1),
        "report_rendered": rendered_negatives(N_RENDERED["report"], seed=2),
    }
    if args.limit:  # a quick look (and the tests): the first N of every part
        items = {k: v[: args.limit] for k, v in items.items()}
        gems = {k: v[: args.limit] for k, v in gems.items()}
    t, min_prob = bundle.temperature, bundle.abstain.identified_min_prob
    try:
        e_oof = oof_energy(Path(args.oof), [p for p, _ in gems["train"]], bundle.labels, t) if args.oof else None
    except (OSError, KeyError, ValueError) as e:
        print(f"error: --oof: {e}", file=sys.stderr)
        return 2
    cache = Path(os.environ.get("GEMID_CACHE_DIR", Path.cwd() / "cache"))
    out = {k: outputs(v, bundle_dir, names, args.workers, cache) for k, v in items.items()}

    def split(part: list[str], variant: str, y: np.ndarray | None = None) -> ff.Split:
        return ff.Split(np.concatenate([out[p][variant][0] for p in part]),
                        np.concatenate([out[p][variant][1] for p in part]), y)

    y_train = np.array([y for _, y in gems["train"]])
    y_val = np.array([y for _, y in gems["val"]])
    tune = ["tune_real", "tune_wheel", "tune_rendered"]
    # the outlier regression is cross-fitted by photo session, so a tuning non-gem is scored by a regression
    # that saw none of its session: as a non-gem of a new kind will be
    groups = nongem_groups(Path(args.nongem))
    tune_groups = np.array([groups[Path(p)] for p, _ in items["tune_real"]]
                           + ["wheel"] * len(items["tune_wheel"]) + ["rendered"] * len(items["tune_rendered"]))
    spec, arrays, tuning = ff.fit(split(["train"], "fp32", y_train), split(tune, "fp32"), t, min_prob,
                                  len(bundle.labels), target=args.target, train_energy=e_oof,
                                  outlier=not args.no_outlier, tune_groups=tune_groups)
    spec = ff.write(bundle_dir, spec.model_copy(update={"feature_output": names}), arrays)
    fam = Familiarity(spec, arrays)
    figures: dict[str, Any] = {}
    for variant in bundle.files:
        sets = {"report": split(["report_real", "report_rendered"], variant),
                "report_real": split(["report_real"], variant), "report_rendered": split(["report_rendered"], variant),
                "tune": split(tune, variant)}
        figures[variant] = ff.report(fam, t, min_prob, split(["val"], variant, y_val), sets,
                                     bundle.abstain.energy_threshold)
    counts = {k: len(v) for k, v in items.items()}
    spec = spec.model_copy(update={"fitted": {
        "statistics": f"{counts['train']} training photos of {Path(args.manifest).name} (features of fp32)",
        "gem_side_in_sample": in_sample,
        "training_energy": f"out-of-fold ({Path(args.oof).name})" if args.oof else "in-sample",
        "command": " ".join(["gemid openset fit", "--bundle", str(args.bundle), "--manifest", str(args.manifest),
                             "--nongem", str(args.nongem), *(["--oof", str(args.oof)] if args.oof else []),
                             *(["--no-outlier"] if args.no_outlier else [])]),
        "weights_and_threshold": f"{sum(counts[p] for p in tune)} tuning non-gems (nongem-dev groups "
                                 f"{', '.join(sorted(TUNE_GROUPS))}; wheel sample photos; rendered seed 1)",
        "target_identified_tune": args.target, "report": figures["fp32"]["report"]["combined"]}})
    meta = bundle_dir / "bundle.json"
    data = json.loads(meta.read_text())
    data["familiarity"] = json.loads(spec.model_dump_json())
    meta.write_text(json.dumps(data, indent=2) + "\n")
    evald = bundle_dir / "eval"
    evald.mkdir(exist_ok=True)
    (evald / "openset.json").write_text(json.dumps({"counts": counts, "tuning": tuning, "figures": figures,
                                                    "spec": data["familiarity"]}, indent=1, default=float) + "\n")
    print_figures(spec, counts, figures)
    return 0


def print_figures(spec: Any, counts: dict[str, int], figures: dict[str, Any]) -> None:
    print(f"familiarity: {spec.method} (k={spec.k}), weights energy {spec.energy_weight} / distance "
          f"{spec.distance_weight} / outlier {spec.outlier_weight}, rejected below {spec.threshold:.3f}, identified from {spec.identify_threshold:.3f}; "
          f"images {counts}")
    for variant, fig in figures.items():
        for score in ("energy", "combined"):
            v = fig["val"][score]
            print(f"[{variant}] {score:8s} val: rejected {v['rejected']:.1%} ({v['rejected_ci'][0]:.1%}-"
                  f"{v['rejected_ci'][1]:.1%}), identified {v['identified']:.1%}, of them right "
                  f"{v['identified_precision']:.1%}")
            for name in ("tune", "report", "report_real", "report_rendered"):
                r = fig[name][score]
                print(f"[{variant}] {score:8s} {name:15s} n={r['n']:4d} AUROC {r['auroc']:.3f}  identified "
                      f"{r['identified']:.1%} ({r['identified_ci'][0]:.1%}-{r['identified_ci'][1]:.1%})  "
                      f"rejected {r['rejected']:.1%}")


def register(sub) -> None:
    from gemid.training.extra import train_extra

    p = sub.add_parser("openset", help="fit the combined open-set score of a model bundle")
    osub = p.add_subparsers(dest="openset_command", metavar="ACTION", required=True)
    f = osub.add_parser("fit", help="feature outputs on the graphs, statistics from training photos, threshold "
                                    "from tuning non-gems, figures on report non-gems (writes the bundle)")
    f.add_argument("--bundle", default="models/gemid-species")
    f.add_argument("--manifest", required=True, help="the manifest the bundle was trained with (train / val)")
    f.add_argument("--nongem", required=True, help="nongem-dev folder (SOURCES.tsv with a group column)")
    f.add_argument("--target", type=float, default=0.005,
                   help="share of tuning non-gems that may be 'identified' (default: %(default)s)")
    f.add_argument("--oof", help="OUT/oof.npz of `gemid train --cv` for the same recipe: the training photos' "
                                 "energy from their out-of-fold logits (recommended for a K-fold bundle)")
    f.add_argument("--no-outlier", action="store_true",
                   help="leave out the outlier-exposure term (the logistic regression on the tuning non-gems)")
    f.add_argument("--workers", type=int, default=2)
    f.add_argument("--limit", type=int, default=0, help="only the first N images of every part (a quick look)")
    f.set_defaults(func=train_extra(run_fit, needs=("onnx",)))
