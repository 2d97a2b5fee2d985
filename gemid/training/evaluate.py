"""`gemid evaluate`: accuracy, per-class scores, confusions, calibration and the abstain policy, on a split.

Runs the checkpoint on exactly the runtime's view of each photo (`gemid.training.data.eval_crops`:
decode → segment → stone crop, as `gemid identify` does), so the figures are those of the shipped
pipeline. Writes into OUT:
- metrics.json — everything below, read by `gemid export` (into bundle.json) and the notebook;
- predictions.npz — temperature-scaled probabilities, labels, classes, paths, logits, open-set scores;
- confusion_matrix.png, reliability.png, open_set.png.

The temperature and thresholds are fitted on this split (validation): report the held-out test split
separately. When the split is too small for these figures, or the temperature made calibration worse, it
says so on stderr, in summary.txt and in metrics.json's `warnings` (`validation_warnings`). Deterministic: fixed thread count, inference mode, sorted/seeded everything.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from gemid.training import compare
from gemid.training.extra import train_extra

DEFAULT_KEEP = 0.95  # fraction of correctly classified validation photos the open-set threshold keeps
DEFAULT_PRECISION = 0.95  # precision of 'identified' the min-probability threshold aims for
N_CONFUSIONS = 20
N_WORST = 12
# Below these the figures are too uncertain to act on, and `gemid evaluate` says so (see `validation_warnings`).
# Top-1 is a binomial proportion: its 95 % Wilson interval is ±9.6 points at n = 100 for a top-1 near 50 %
# (±7.2 at 84 %), ±4.9 at n = 400, ±16.8 at n = 30. Under 100 photos two models 10 points apart cannot be
# told apart, the 15 calibration bins hold under 7 photos each, and T and the thresholds fitted on them are
# as loose.
MIN_PHOTOS = 100
# A class with n photos has its recall in steps of 1/n: under 5 one photo moves it 25 points or more, and its
# 95 % interval at 75 % recall spans 30–95 % (n = 4).
MIN_PER_CLASS = 5


# --- model outputs ------------------------------------------------------------------------------------------

def model_outputs(model: Any, crops: np.ndarray, mean, std, *, batch: int = 32) -> dict[str, np.ndarray]:
    """forward_all over uint8 NHWC crops: {'logits': (N, C), head: (N, K)…} as float64 numpy."""
    import torch

    from gemid.training.presets import to_tensor

    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            x = to_tensor(crops[i : i + batch], mean, std).contiguous(memory_format=torch.channels_last)
            for k, v in model.forward_all(x).items():
                parts.setdefault(k, []).append(v.double().numpy())
    n_cls = model.classifier.out_features
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out.setdefault("logits", np.zeros((0, n_cls)))
    return out


# --- metrics (pure numpy: tested on synthetic logits) ---------------------------------------------------------

def confusion_matrix(y: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y, pred), 1)
    return cm


def per_class(cm: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class (None where undefined: no predictions / no support)."""
    out = []
    for i, name in enumerate(classes):
        tp = int(cm[i, i])
        support = int(cm[i].sum())
        predicted = int(cm[:, i].sum())
        p = tp / predicted if predicted else None
        r = tp / support if support else None
        f1 = (2 * p * r / (p + r) if (p + r) else 0.0) if (p is not None and r is not None) else None
        out.append({"class": name, "support": support, "predicted": predicted, "precision": p, "recall": r,
                    "f1": f1})
    return out


def top_confusions(cm: np.ndarray, classes: list[str], n: int = N_CONFUSIONS) -> list[dict[str, Any]]:
    """Most frequent (true → predicted) errors, by count then name."""
    pairs = [(int(cm[i, j]), classes[i], classes[j]) for i in range(len(classes)) for j in range(len(classes))
             if i != j and cm[i, j]]
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [{"true": t, "predicted": p, "count": c, "of_true": int(cm[classes.index(t)].sum())}
            for c, t, p in pairs[:n]]


def topk(logits: np.ndarray, y: np.ndarray, k: int) -> float:
    if len(y) == 0:
        return float("nan")
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top == y[:, None]).any(axis=1).mean())


def summarize(logits: np.ndarray, y: np.ndarray, classes: list[str], non_gem_logits: np.ndarray, *,
              blurred_logits: np.ndarray | None = None, keep: float = DEFAULT_KEEP,
              target_precision: float = DEFAULT_PRECISION) -> dict[str, Any]:
    """Every figure `gemid evaluate` reports, from raw logits (N, C) and integer labels."""
    from gemid.training import calibration as cal
    from gemid.training import openset

    logits = np.asarray(logits, np.float64)
    y = np.asarray(y, np.int64)
    pred = logits.argmax(axis=1)
    correct = pred == y
    cm = confusion_matrix(y, pred, len(classes))
    pc = per_class(cm, classes)
    f1s = [c["f1"] for c in pc if c["f1"] is not None]

    t = cal.fit_temperature(logits, y)
    p_raw, p_cal = cal.softmax(logits, 1.0), cal.softmax(logits, t)
    calib = {
        "temperature": t, "n_bins": cal.N_BINS,
        "nll_before": cal.nll(logits, y, 1.0), "nll_after": cal.nll(logits, y, t),
        "ece_before": cal.ece(p_raw, y), "ece_after": cal.ece(p_cal, y),
        "ece_after_cv2": cal.cross_validated_ece(logits, y, folds=2),
        "reliability_before": cal.reliability(p_raw, y), "reliability_after": cal.reliability(p_cal, y),
    }

    scores = openset.open_set_score(logits, t)
    ng_scores = openset.open_set_score(non_gem_logits, t) if len(non_gem_logits) else np.zeros(0)
    threshold = openset.energy_threshold(scores[correct] if correct.any() else scores, keep)
    kept = scores >= threshold
    p1 = p_cal.max(axis=1)
    min_prob = openset.min_prob_for_precision(p1[kept], correct[kept], target_precision)
    dec = openset.decisions(p_cal, scores, threshold, min_prob)
    identified = dec == "identified"

    def rate(mask: np.ndarray) -> float | None:
        return float(mask.mean()) if len(mask) else None

    open_set = {
        "score": "logsumexp(logits / T)", "keep_correct": keep, "energy_threshold": threshold,
        "val_rejected": rate(~kept), "val_correct_rejected": rate(~kept[correct]),
        "val_wrong_rejected": rate(~kept[~correct]), "n_non_gem": int(len(ng_scores)),
        "non_gem_rejected": rate(ng_scores < threshold), "auroc_val_vs_non_gem": openset.auroc(scores, ng_scores),
    }
    if len(non_gem_logits):
        ng_dec = openset.decisions(cal.softmax(non_gem_logits, t), ng_scores, threshold, min_prob)
        open_set["non_gem_identified"] = rate(ng_dec == "identified")
    if len(non_gem_logits):
        # diagnostic only (the runtime scores with the energy): how other common scores would separate
        alt = {"max_logit": (logits.max(axis=1), np.asarray(non_gem_logits).max(axis=1)),
               "max_probability": (p_cal.max(axis=1), cal.softmax(non_gem_logits, t).max(axis=1))}
        open_set["alternatives_diagnostic"] = {}
        for name, (v, ng) in alt.items():
            thr = openset.energy_threshold(v[correct] if correct.any() else v, keep)
            open_set["alternatives_diagnostic"][name] = {
                "auroc_val_vs_non_gem": openset.auroc(v, ng), "non_gem_rejected": rate(ng < thr),
                "val_rejected": rate(v < thr)}
    if blurred_logits is not None and len(blurred_logits):
        b_scores = openset.open_set_score(blurred_logits, t)
        open_set["blurred_val_rejected_diagnostic"] = rate(b_scores < threshold)
        open_set["blurred_val_top1_diagnostic"] = topk(blurred_logits, y, 1)
    abstain = {
        "energy_threshold": threshold, "identified_min_prob": min_prob, "identified_min_margin": 0.0,
        "target_precision": target_precision,
        "coverage": rate(identified), "identified_precision": float(correct[identified].mean()) if identified.any()
        else None, "uncertain": rate(dec == "uncertain"), "rejected": rate(dec == "rejected"),
        "top1_of_kept": float(correct[kept].mean()) if kept.any() else None,
    }
    return {
        "n": int(len(y)), "n_classes": len(classes), "classes": list(classes),
        "top1": topk(logits, y, 1), "top3": topk(logits, y, 3), "top5": topk(logits, y, 5),
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "per_class": pc, "confusions": top_confusions(cm, classes), "confusion_matrix": cm.tolist(),
        "calibration": calib, "open_set": open_set, "abstain": abstain,
    }


def head_metrics(outputs: dict[str, np.ndarray], heads: dict[str, list[str]], truth: dict[str, list[str]]) -> dict:
    """Accuracy of each extra head on the photos whose manifest row has that grade."""
    res = {}
    for head, names in heads.items():
        if head not in outputs:
            continue
        idx = {n: i for i, n in enumerate(names)}
        rows = [(i, idx[v]) for i, v in enumerate(truth.get(head, [])) if v in idx]
        if not rows:
            res[head] = {"n": 0}
            continue
        sel, y = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        pred = outputs[head][sel].argmax(axis=1)
        res[head] = {"n": len(rows), "top1": float((pred == y).mean()),
                     "within_one": float((np.abs(pred - y) <= 1).mean())}
    return res


def validation_warnings(m: dict[str, Any]) -> list[dict[str, str]]:
    """What makes these figures unreliable, as {code, message}: a validation split too small for them, classes
    with too few photos, or a temperature that made calibration worse than none. Pure: tested on hand-made
    summaries."""
    from gemid.training.model_card import wilson

    out: list[dict[str, str]] = []
    n, split = int(m["n"]), m.get("split", "val")
    if n < MIN_PHOTOS:
        lo, hi = wilson(m["top1"], n)
        out.append({"code": "small_validation_set", "message": (
            f"only {n} {split} photos (fewer than {MIN_PHOTOS}): top-1 {m['top1'] * 100:.1f} % is only known to lie "
            f"in {lo * 100:.1f}–{hi * 100:.1f} % (95 % interval, {(hi - lo) * 100:.1f} points wide), and the temperature and "
            f"abstain thresholds fitted on these photos are as uncertain; put more photos in the {split} split")})
    few = [(c["class"], c["support"]) for c in m["per_class"] if c["support"] < MIN_PER_CLASS]
    if few:
        listed = ", ".join(f"{name} ({k})" for name, k in few[:6]) + (" …" if len(few) > 6 else "")
        out.append({"code": "few_photos_per_class", "message": (
            f"{len(few)} of {len(m['per_class'])} classes have fewer than {MIN_PER_CLASS} {split} photos: "
            f"{listed}; their precision, recall and F1 move by {100 // MIN_PER_CLASS}+ points per photo"
            + (", and a class with none is not measured at all" if any(k == 0 for _, k in few) else ""))})
    c = m["calibration"]
    before, after, crossed = c["ece_before"], c["ece_after"], c.get("ece_after_cv2")
    worse = [f"{_fmt(v)} {what}" for v, what in ((after, "fitted on this split"), (crossed, "2-fold cross-fitted"))
             if v is not None and np.isfinite(v) and v > before]
    if worse:
        out.append({"code": "calibration_worse", "message": (
            f"temperature scaling (T = {c['temperature']:.3f}) made calibration worse than none: ECE "
            f"{_fmt(before)} uncalibrated, {' and '.join(worse)}; the {split} split is too small or too unlike "
            "the photos the model will see to fit T on, and the bundle's probabilities would mislead")})
    return out


# --- the command -----------------------------------------------------------------------------------------------

def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    return f"{v * 100:.1f} %" if pct else f"{v:.3f}"


def report_text(m: dict[str, Any]) -> str:
    """The printed summary (also written as summary.txt)."""
    c, o, a = m["calibration"], m["open_set"], m["abstain"]
    lines = [
        f"{m['split']} split of {m['manifest']['path']}: {m['n']} photos, {m['n_classes']} classes",
        f"top-1 {_fmt(m['top1'])}   top-3 {_fmt(m['top3'])}   top-5 {_fmt(m['top5'])}   macro-F1 {_fmt(m['macro_f1'])}",
        f"calibration: T = {c['temperature']:.3f}; ECE {_fmt(c['ece_before'])} → {_fmt(c['ece_after'])} "
        f"(2-fold cross-fitted {_fmt(c['ece_after_cv2'])}); NLL {c['nll_before']:.3f} → {c['nll_after']:.3f}",
        f"open set: threshold {o['energy_threshold']:.3f} on {o['score']} (keeps {o['keep_correct']:.0%} of "
        f"correct validation photos); rejects {_fmt(o['non_gem_rejected'])} of {o['n_non_gem']} non-gem images, "
        f"{_fmt(o['val_rejected'])} of validation ({_fmt(o['val_wrong_rejected'])} of its errors); "
        f"AUROC {_fmt(o['auroc_val_vs_non_gem'], pct=False)}",
        f"abstain: identified when p ≥ {a['identified_min_prob']:.3f} → coverage {_fmt(a['coverage'])} at precision "
        f"{_fmt(a['identified_precision'])} (target {a['target_precision']:.0%}); uncertain {_fmt(a['uncertain'])}, "
        f"rejected {_fmt(a['rejected'])}",
    ]
    if "blurred_val_rejected_diagnostic" in o:
        lines.append(f"diagnostic: strongly blurred validation crops — top-1 {_fmt(o['blurred_val_top1_diagnostic'])}, "
                     f"rejected by the open-set score {_fmt(o['blurred_val_rejected_diagnostic'])} "
                     "(blur itself is the photo-quality check's job)")
    for head, hm in m.get("heads", {}).items():
        if hm.get("n"):
            lines.append(f"head {head}: top-1 {_fmt(hm['top1'])}, within one grade {_fmt(hm['within_one'])} "
                         f"(n={hm['n']})")
    worst = sorted([p for p in m["per_class"] if p["support"]], key=lambda p: (p["f1"] or 0.0, p["class"]))[:N_WORST]
    lines += ["", f"worst {len(worst)} classes by F1:", f"  {'class':<24}{'n':>4}{'precision':>11}{'recall':>9}{'F1':>8}"]
    lines += [f"  {p['class']:<24}{p['support']:>4}{_fmt(p['precision']):>11}{_fmt(p['recall']):>9}{_fmt(p['f1']):>8}"
              for p in worst]
    lines += ["", "most frequent confusions (true → predicted):"]
    lines += [f"  {x['count']:>3} of {x['of_true']:>3}  {x['true']} → {x['predicted']}" for x in m["confusions"][:12]]
    return "\n".join(lines)


def evaluate(checkpoint: Path | str, out: Path | str, *, manifest: Path | str | None = None, split: str = "val",
             ood_dir: Path | str | None = None, keep: float = DEFAULT_KEEP,
             target_precision: float = DEFAULT_PRECISION, threads: int = 2, batch: int = 32,
             progress: bool = True, command: str | None = None) -> dict[str, Any]:
    import torch

    from gemid.datasets.manifest import ManifestError, manifest_matches, manifest_sha256, read_manifest
    from gemid.training import openset
    from gemid.training.data import eval_crops
    from gemid.training.restore import load_checkpoint

    torch.set_num_threads(threads)
    t0 = time.time()
    restored = load_checkpoint(checkpoint)
    manifest = Path(manifest or restored.meta.get("manifest") or "")
    if not manifest.is_file():
        raise ManifestError(f"manifest {manifest} not found; pass --manifest")
    sha = manifest_sha256(manifest)  # taken before reading: it names exactly the rows evaluated
    rows = read_manifest(manifest).split(split)
    if not rows:
        raise ManifestError(f"{manifest} has no rows with split={split}")
    labels = restored.labels
    index = {c: i for i, c in enumerate(labels)}
    unknown = sorted({r.species for r in rows} - set(index))
    if unknown:
        raise ManifestError(f"{split} rows have species the model was not trained on: {', '.join(unknown[:8])}")
    size, margin = restored.input_size, restored.margin
    crops, species, paths = eval_crops(manifest, split, size, margin, photometric=restored.photometric)
    if manifest_sha256(manifest) != sha or species != [r.species for r in rows]:
        raise ManifestError(f"{manifest} changed while it was being read; run gemid evaluate again")
    y = np.array([index[s] for s in species], np.int64)

    outputs = model_outputs(restored.model, crops, restored.mean, restored.std, batch=batch)
    non_gems = openset.non_gem_images(ood_dir)
    ng_crops = openset.runtime_crops(non_gems, size, margin, photometric=restored.photometric)
    ng_logits = model_outputs(restored.model, ng_crops, restored.mean, restored.std, batch=batch)["logits"]
    blur_logits = model_outputs(restored.model, openset.blurred(crops), restored.mean, restored.std,
                                batch=batch)["logits"]

    m = summarize(outputs["logits"], y, labels, ng_logits, blurred_logits=blur_logits, keep=keep,
                  target_precision=target_precision)
    m = {
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "sha256": restored.sha256,
                       "model_name": restored.meta["model_name"], "epoch": restored.meta.get("epoch"),
                       "input_size": size, "crop_margin": margin},
        "manifest": {"path": str(manifest.resolve()), "sha256": sha,
                     "same_as_training": sha == restored.meta.get("manifest_sha256")
                     or manifest_matches(manifest, restored.meta.get("manifest_sha256"))},
        "split": split,
        **m,
        "heads": head_metrics(outputs, restored.heads,
                              {h: [getattr(r, h, "") for r in rows] for h in restored.heads}),
        "non_gem_sources": sorted({":".join(n.name.split(":")[:2]) for n in non_gems}),
        "figures": {"confusion_matrix": "confusion_matrix.png", "reliability": "reliability.png",
                    "open_set": "open_set.png"},
        "command": command,
    }
    m["warnings"] = validation_warnings(m)
    if not m["manifest"]["same_as_training"]:
        m["warnings"].insert(0, {"code": "manifest_changed", "message": (
            f"{manifest} has changed since this model was trained (sha256 {sha[:12]}…, training used "
            f"{str(restored.meta.get('manifest_sha256'))[:12]}…): if its splits moved, validation photos may have "
            "been trained on and these figures are optimistic.")})

    return _write(Path(out), m, outputs["logits"], y, labels, paths, ng_logits, non_gems,
                  title=f"{restored.meta['model_name']} on {split}", t0=t0, progress=progress)


def evaluate_oof(checkpoint: Path | str, oof: Path | str, out: Path | str, *, ood_dir: Path | str | None = None,
                 keep: float = DEFAULT_KEEP, target_precision: float = DEFAULT_PRECISION, threads: int = 2,
                 batch: int = 32, progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """The figures of `gemid train --cv`: every photo scored by the fold model that never saw it (oof.npz), the
    temperature and thresholds fitted on all of them; non-gem images through the shipped (all-fold) checkpoint."""
    import torch

    from gemid.datasets.manifest import ManifestError, manifest_sha256
    from gemid.training import openset
    from gemid.training.restore import load_checkpoint

    torch.set_num_threads(threads)
    t0 = time.time()
    restored = load_checkpoint(checkpoint)
    z = np.load(oof)
    labels = [str(c) for c in z["classes"]]
    if labels != restored.labels:
        raise ManifestError(f"{oof} has other classes than {checkpoint}: not the same `gemid train --cv` run")
    manifest = Path(str(z["manifest"]))
    sha = str(z["manifest_sha256"])
    if sha != restored.meta.get("manifest_sha256"):
        raise ManifestError(f"{oof} and {checkpoint} were trained on different manifests")
    logits, y, paths = z["logits"].astype(np.float64), z["labels"].astype(np.int64), [str(p) for p in z["paths"]]
    folds = z["folds"]
    size, margin = restored.input_size, restored.margin
    non_gems = openset.non_gem_images(ood_dir)
    ng_crops = openset.runtime_crops(non_gems, size, margin, photometric=restored.photometric)
    ng_logits = model_outputs(restored.model, ng_crops, restored.mean, restored.std, batch=batch)["logits"]
    m = summarize(logits, y, labels, ng_logits, keep=keep, target_precision=target_precision)
    per_fold = [{"fold": str(name), "n": int((folds == k).sum()), "top1": topk(logits[folds == k], y[folds == k], 1)}
                for k, name in enumerate(z["fold_names"])]
    m = {
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "sha256": restored.sha256,
                       "model_name": restored.meta["model_name"], "epoch": restored.meta.get("epoch"),
                       "input_size": size, "crop_margin": margin},
        "manifest": {"path": str(manifest), "sha256": sha, "same_as_training": True},
        "split": "oof",
        **m,
        "cross_validation": {"folds": len(per_fold), "per_fold": per_fold,
                             "top1_spread": [min(f["top1"] for f in per_fold), max(f["top1"] for f in per_fold)]},
        "heads": {},
        "non_gem_sources": sorted({":".join(n.name.split(":")[:2]) for n in non_gems}),
        "figures": {"confusion_matrix": "confusion_matrix.png", "reliability": "reliability.png",
                    "open_set": "open_set.png"},
        "command": command,
    }
    m["warnings"] = validation_warnings(m)
    if manifest.is_file() and manifest_sha256(manifest) != sha:
        m["warnings"].insert(0, {"code": "manifest_changed", "message": f"{manifest} has changed since training"})
    return _write(Path(out), m, logits, y, labels, paths, ng_logits, non_gems,
                  title=f"{restored.meta['model_name']}, out-of-fold ({len(per_fold)} folds)", t0=t0,
                  progress=progress)


def _write(out: Path, m: dict[str, Any], logits: np.ndarray, y: np.ndarray, labels: list[str], paths: list[str],
           ng_logits: np.ndarray, non_gems: list, *, title: str, t0: float, progress: bool) -> dict[str, Any]:
    """metrics.json, predictions.npz, summary.txt and the figures, from one evaluation's logits."""
    from gemid.training import figures, openset
    out.mkdir(parents=True, exist_ok=True)
    from gemid.training.calibration import softmax

    t = m["calibration"]["temperature"]
    scores = openset.open_set_score(logits, t)
    np.savez_compressed(
        out / "predictions.npz", probs=softmax(logits, t).astype(np.float32), labels=y,
        classes=np.array(labels), paths=np.array(paths), logits=logits.astype(np.float32),
        scores=scores, temperature=np.float64(t), non_gem_logits=ng_logits.astype(np.float32),
        non_gem_scores=openset.open_set_score(ng_logits, t), non_gem_names=np.array([n.name for n in non_gems]),
    )
    figures.confusion_matrix_png(np.array(m["confusion_matrix"]), labels, out / "confusion_matrix.png",
                                 title=f"{title} (n={m['n']}): top-1 "
                                       f"{m['top1'] * 100:.1f} %")
    c = m["calibration"]
    figures.reliability_png(c["reliability_before"], c["reliability_after"], c["ece_before"], c["ece_after"], t,
                            out / "reliability.png")
    correct = logits.argmax(1) == y
    figures.energy_png({"validation, correct": scores[correct], "validation, wrong": scores[~correct],
                        "non-gem images": openset.open_set_score(ng_logits, t)},
                       m["open_set"]["energy_threshold"], out / "open_set.png")
    (out / "metrics.json").write_text(json.dumps(m, indent=2, default=_json_default) + "\n")
    text = report_text(m)
    (out / "summary.txt").write_text(text + "".join(f"\nWARNING: {w['message']}" for w in m["warnings"]) + "\n")
    if progress:
        print(text)
        print(f"\nwrote {out}/metrics.json, predictions.npz, confusion_matrix.png, reliability.png, open_set.png "
              f"({time.time() - t0:.0f} s)")
        for w in m["warnings"]:
            print(f"WARNING: {w['message']}", file=sys.stderr)
    return m


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, confusions, calibration and abstain thresholds of a checkpoint")
    p.add_argument("--checkpoint", default=None, help="runs/<name>/best.pt from gemid train (required, no default, unless --compare)")
    p.add_argument("--manifest", default=None, help="default: the manifest the checkpoint was trained on")
    p.add_argument("--split", default="val", help="split to evaluate and fit T/thresholds on (default: %(default)s)")
    p.add_argument("--oof", default=None, metavar="OOF_NPZ",
                   help="the out-of-fold predictions of `gemid train --cv` (RUN/oof.npz): figures, temperature and "
                        "thresholds from them instead of a split (default: none)")
    p.add_argument("--out", default=None, help="folder for metrics.json, predictions.npz and figures (required, no default, unless --compare)")
    p.add_argument("--ood-dir", default=None,
                   help="a folder of extra non-gem photos for the open-set check (default: none; the sample photos "
                        "of scikit-image and matplotlib and rendered scenes are always used)")
    p.add_argument("--keep", type=float, default=DEFAULT_KEEP,
                   help="fraction of correct validation photos the open-set threshold keeps (default: %(default)s)")
    p.add_argument("--target-precision", type=float, default=DEFAULT_PRECISION,
                   help="precision of 'identified' that sets identified_min_prob (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="PyTorch threads; ONNX Runtime threads with --compare (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    compare.add_arguments(p)  # gemid evaluate --compare OLD NEW: two bundles, runtime only
    p.set_defaults(func=compare.dispatch(train_extra(main, needs=("torch",))))


def main(args) -> int:
    from gemid.datasets.manifest import ManifestError
    from gemid.errors import GemidInputError
    from gemid.training.restore import CheckpointError

    command = " ".join(["gemid", *map(shlex.quote, sys.argv[1:])])
    try:
        if args.oof:
            evaluate_oof(args.checkpoint, args.oof, args.out, ood_dir=args.ood_dir, keep=args.keep,
                         target_precision=args.target_precision, threads=args.threads, batch=args.batch_size,
                         command=command)
        else:
            evaluate(args.checkpoint, args.out, manifest=args.manifest, split=args.split, ood_dir=args.ood_dir,
                     keep=args.keep, target_precision=args.target_precision, threads=args.threads,
                     batch=args.batch_size, command=command)
    except (CheckpointError, ManifestError, GemidInputError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
