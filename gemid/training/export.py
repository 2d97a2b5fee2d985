"""`gemid export`: checkpoint + evaluation → the runtime bundle (model.onnx, model.int8.onnx, bundle.json).

Order of work, each step checked before the next:
1. the evaluation must be of this very checkpoint (sha256 recorded by `gemid evaluate`), so the
   temperature and thresholds written into the bundle were fitted on this model;
2. fp32 ONNX (PyTorch's dynamo exporter, opset 18, dynamic batch, no Pad node left; see onnx_export);
3. parity: ONNX Runtime vs PyTorch logits on real validation crops, max |Δ| ≤ PARITY_TOLERANCE;
4. int8 static quantization calibrated on training photos (runtime view, class-balanced sample);
5. validation top-1/top-5 of both ONNX models through ONNX Runtime — the numbers the runtime will
   deliver — and the int8 delta;
6. bundle.json written from the runtime's own `Bundle` schema, then re-read with sha256 verification.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from gemid.training.extra import train_extra

PARITY_TOLERANCE = 1e-3  # max |logit| difference ONNX Runtime fp32 vs PyTorch
PARITY_IMAGES = 64
DEFAULT_CALIBRATION_IMAGES = 300


class ExportError(RuntimeError):
    """The export cannot produce a trustworthy bundle (mismatched evaluation, parity failure, …)."""


def _top(logits: np.ndarray, y: np.ndarray, k: int) -> float:
    from gemid.training.evaluate import topk

    return topk(logits, y, k)


def _load_eval(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise ExportError(f"no evaluation at {path}; run `gemid evaluate` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path} is not valid JSON: {exc}") from exc


INT8_HOW = "int8: "  # where the int8 part of a bundle's `training.how` starts (requantize replaces it)


def _int8_how(quant: dict[str, Any]) -> str:
    return (f"{INT8_HOW}ONNX Runtime static QDQ, {quant.get('weights', '-')} weights, {quant.get('calibration', '-')} "
            f"calibration on {quant.get('calibration_images', 0)} training photos")


def _int8(fp32: Path, q8: Path, manifest: str | Path, size: int, margin: float, mean, std, seed: int,
          calibration_images: int, calibration_method: str, threads: int, x: np.ndarray, y: np.ndarray,
          fp32_logits: np.ndarray, say, photometric: str = "none",
          split: str = "val") -> tuple[dict[str, Any], dict[str, Any]]:
    """Quantize on class-balanced training crops, then measure int8 against fp32 on the validation crops `x`."""
    from gemid.datasets.manifest import is_fold
    from gemid.training import onnx_export
    from gemid.training.data import OOF, eval_crops, split_paths, split_rows
    from gemid.training.presets import to_tensor
    from gemid.training.quantize import calibration_indices, quantize_int8

    # a K-fold manifest has no train split: a fold's model trained on the other folds, the shipped one on all
    if split_rows(manifest, "train"):
        tr_crops, tr_species, _ = eval_crops(manifest, "train", size, margin, photometric=photometric)
    else:
        tr_crops, tr_species, paths = eval_crops(manifest, OOF, size, margin, photometric=photometric)
        if is_fold(split):
            held = {str(p) for p in split_paths(manifest, split)[0]}
            keep = [i for i, p in enumerate(paths) if p not in held]
            tr_crops, tr_species = tr_crops[keep], [tr_species[i] for i in keep]
    idx = calibration_indices(tr_species, calibration_images, seed=seed)
    quant = quantize_int8(fp32, q8, to_tensor(tr_crops[idx], mean, std).numpy(), method=calibration_method)
    logits = onnx_export.ort_outputs(onnx_export.ort_session(q8, threads), x)["logits"]
    m = {"val_top1_int8": _top(logits, y, 1), "val_top5_int8": _top(logits, y, 5),
         "int8_top1_agreement": float((logits.argmax(1) == fp32_logits.argmax(1)).mean()) if len(y) else None}
    m["int8_delta_top1"] = m["val_top1_int8"] - _top(fp32_logits, y, 1)
    m["int8_delta_top5"] = m["val_top5_int8"] - _top(fp32_logits, y, 5)
    say(f"int8 ({quant['weights']}, {quant['calibration']} calibration on {quant['calibration_images']} training "
        f"photos): top-1 {m['val_top1_int8'] * 100:.2f} % (Δ {m['int8_delta_top1'] * 100:+.2f} pt vs fp32), top-5 "
        f"{m['val_top5_int8'] * 100:.2f} %, agreement {m['int8_top1_agreement'] * 100:.1f} %")
    return quant, m


def requantize(bundle_dir: Path | str, manifest: Path | str | None = None, *,
               calibration_images: int = DEFAULT_CALIBRATION_IMAGES, calibration_method: str = "minmax",
               threads: int = 2, command: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Rebuild a bundle's int8 model from its own fp32 model.onnx (no checkpoint needed) on the manifest it
    was trained on, re-measure it on the same validation split, and rewrite bundle.json and the model card.
    For a quantizer fix (7-bit weights for CPUs without VNNI) without retraining."""
    from gemid.datasets.manifest import manifest_matches
    from gemid.training import model_card, onnx_export
    from gemid.training.data import OOF, eval_crops
    from gemid.training.presets import to_tensor
    from gemid.vision.bundle import OnnxFile, load_bundle, sha256_file

    def say(msg: str) -> None:
        if progress:
            print(msg, flush=True)

    out = Path(bundle_dir)
    bundle = load_bundle(out, verify=False)  # the int8 file is about to be replaced; the fp32 one must be intact
    fp32 = out / bundle.files["fp32"].path
    if not fp32.is_file() or sha256_file(fp32) != bundle.files["fp32"].sha256:
        raise ExportError(f"{fp32} is missing or differs from the sha256 in bundle.json; refusing an altered model")
    manifest = Path(manifest or bundle.training.get("manifest") or "")
    want = bundle.training.get("manifest_sha256")
    if not manifest_matches(manifest, want):  # also gems68 re-imported since manifests hold relative paths
        raise ExportError(f"{manifest} is missing or is not the manifest this model was trained on (sha256 "
                          f"{str(want)[:12]}…); recreate it with the command in the model card")
    size, margin = bundle.input.size, bundle.input.crop.margin
    split = bundle.metrics.get("split", "val")
    crops, species, _ = eval_crops(manifest, split, size, margin, photometric=bundle.input.photometric)
    index = {c: i for i, c in enumerate(bundle.labels)}
    y = np.array([index[s] for s in species], np.int64)
    x = to_tensor(crops, bundle.input.mean, bundle.input.std).numpy()
    fp32_logits = onnx_export.ort_outputs(onnx_export.ort_session(fp32, threads), x)["logits"]
    top1 = _top(fp32_logits, y, 1)
    oof = split == OOF  # the bundle's top-1 is out-of-fold; these photos trained it
    if not oof and abs(top1 - float(bundle.metrics.get("val_top1", top1))) > 1e-9:
        raise ExportError(f"fp32 top-1 on '{split}' is {top1:.4f} here but {bundle.metrics.get('val_top1')} in the "
                          "bundle: not the same photos or crops; not re-quantizing")
    q8 = out / "model.int8.onnx"
    quant, m8 = _int8(fp32, q8, manifest, size, margin, bundle.input.mean, bundle.input.std,
                      int(bundle.training.get("seed") or 0), calibration_images, calibration_method, threads, x, y,
                      fp32_logits, say, bundle.input.photometric, split)
    if oof:
        m8 = {"int8_top1_agreement_training_photos": m8["int8_top1_agreement"],
              "int8_delta_top1_training_photos": m8["int8_delta_top1"]}
    how = str(bundle.training.get("how", "")).split(INT8_HOW)[0] + _int8_how(quant)
    updated = bundle.model_copy(update={
        "metrics": bundle.metrics | m8,
        "training": bundle.training | {"how": how, "quantize_command": command},
        "files": bundle.files | {"int8": OnnxFile(path=q8.name, sha256=sha256_file(q8))},
    })
    (out / "bundle.json").write_text(updated.model_dump_json(indent=2) + "\n")
    load_bundle(out, verify=True)
    model_card.write(out, out / "eval")
    return {"quantization": quant, "metrics": m8}


def export(checkpoint: Path | str, eval_metrics: Path | str, out: Path | str, *, version: str | None = None,
           calibration_images: int = DEFAULT_CALIBRATION_IMAGES, calibration_method: str = "minmax",
           int8: bool = True, threads: int = 2, name: str | None = None, command: str | None = None,
           allow_manifest_change: bool = False, progress: bool = True,
           manifest: Path | str | None = None) -> dict[str, Any]:
    import torch

    from gemid.datasets.manifest import manifest_matches
    from gemid.training import onnx_export
    from gemid.training.data import OOF, eval_crops
    from gemid.training.presets import to_tensor
    from gemid.training.restore import load_checkpoint
    from gemid.vision.bundle import (
        AbstainPolicy,
        Bundle,
        CropPolicy,
        InputSpec,
        OnnxFile,
        load_bundle,
        sha256_file,
    )

    def say(msg: str) -> None:
        if progress:
            print(msg, flush=True)

    torch.set_num_threads(threads)
    t0 = time.time()
    restored = load_checkpoint(checkpoint)
    ev = _load_eval(Path(eval_metrics))
    if ev.get("checkpoint", {}).get("sha256") != restored.sha256:
        raise ExportError(f"{eval_metrics} evaluated a different checkpoint "
                          f"({str(ev.get('checkpoint', {}).get('sha256'))[:12]}…, this one is {restored.sha256[:12]}…); "
                          "run `gemid evaluate` on this checkpoint first")
    if not ev.get("manifest", {}).get("same_as_training") and not allow_manifest_change:
        raise ExportError(f"the evaluation used {ev.get('manifest', {}).get('path')}, which differs from the manifest "
                          "this checkpoint was trained on (sha256 mismatch): validation photos may have been "
                          "trained on. Retrain on the current manifest, or pass --allow-manifest-change if you "
                          "know the splits are unchanged")
    if ev.get("classes") != restored.labels:
        raise ExportError("the evaluation's class list differs from the checkpoint's labels")
    size, margin, mean, std = restored.input_size, restored.margin, restored.mean, restored.std
    manifest, split = manifest or ev["manifest"]["path"], ev.get("split", "val")
    if not manifest_matches(manifest, ev["manifest"].get("sha256")):
        raise ExportError(f"{manifest} is missing or changed since `gemid evaluate` read it (sha256 "
                          f"{str(ev['manifest'].get('sha256'))[:12]}…); evaluate again or pass --manifest")
    oof = split == OOF  # figures from `gemid evaluate --oof`: the crops below are the shipped model's own photos
    out = Path(out)
    name = (name or out.resolve().name).strip()  # models/mine → "mine": a retrained bundle is not gemid-species
    if not name:
        raise ExportError("the bundle needs a name: pass --name")
    out.mkdir(parents=True, exist_ok=True)

    # 2. fp32 ONNX
    fp32 = out / "model.onnx"
    graph = onnx_export.export_onnx(restored.model, fp32, size)
    say(f"exported {fp32} (opset {graph['opset']}, {graph['nodes']} nodes, outputs {', '.join(graph['outputs'])})")

    # 3. parity on real validation crops
    crops, species, _ = eval_crops(manifest, split, size, margin, photometric=restored.photometric)
    index = {c: i for i, c in enumerate(restored.labels)}
    y = np.array([index[s] for s in species], np.int64)
    x = to_tensor(crops, mean, std).numpy()
    session = onnx_export.ort_session(fp32, threads)
    fp32_out = onnx_export.ort_outputs(session, x)
    n_par = min(PARITY_IMAGES, len(x))
    ref = onnx_export.torch_outputs(restored.model, x[:n_par])
    parity = {k: float(np.abs(fp32_out[k][:n_par] - ref[k]).max()) if n_par else 0.0 for k in ref}
    say(f"parity ONNX Runtime fp32 vs PyTorch on {n_par} validation crops: max |Δ| "
        + ", ".join(f"{k} {v:.2e}" for k, v in parity.items()) + f" (limit {PARITY_TOLERANCE:g})")
    worst = max(parity.values(), default=0.0)
    if not worst <= PARITY_TOLERANCE:
        raise ExportError(f"ONNX and PyTorch disagree by {worst:.3g} > {PARITY_TOLERANCE:g}; not shipping this export")

    top1, top5 = _top(fp32_out["logits"], y, 1), _top(fp32_out["logits"], y, 5)
    if oof:  # in-sample for the all-fold model: the held-out figures are the evaluation's out-of-fold ones
        top1, top5 = float(ev["top1"]), float(ev["top5"])
    metrics: dict[str, Any] = {
        "split": split, "n_val": int(len(y)),
        "manifest_same_as_training": bool(ev.get("manifest", {}).get("same_as_training")),
        "val_top1": top1, "val_top5": top5,
        "val_top1_torch": ev.get("top1"), "val_top5_torch": ev.get("top5"), "macro_f1": ev.get("macro_f1"),
        "ece": ev["calibration"]["ece_after"], "ece_before_temperature": ev["calibration"]["ece_before"],
        "ece_cross_fitted": ev["calibration"].get("ece_after_cv2"),
        "onnx_parity_max_abs": worst,
        "open_set": {k: ev["open_set"].get(k) for k in ("energy_threshold", "keep_correct", "non_gem_rejected",
                                                          "n_non_gem", "val_rejected", "auroc_val_vs_non_gem")},
        "abstain": {k: ev["abstain"].get(k) for k in ("coverage", "identified_precision", "uncertain", "rejected",
                                                        "target_precision")},
        "heads": ev.get("heads", {}),
        "how_measured": (f"gemid evaluate --oof: {len(y)} photos, each predicted by the fold model that never saw it "
                         f"({ev.get('cross_validation', {}).get('folds')}-fold cross-validation, runtime crop, PyTorch); "
                         "temperature and thresholds fitted on those out-of-fold predictions; the int8 figures compare "
                         "int8 with fp32 on the shipped model's own training photos" if oof else
                         f"gemid evaluate / gemid export on the '{split}' split of the training manifest "
                         f"({len(y)} photos, runtime crop); top-1/top-5 through ONNX Runtime (fp32 and int8); "
                         "temperature and thresholds fitted on the same split"),
    }
    files = {"fp32": OnnxFile(path=fp32.name, sha256=sha256_file(fp32))}

    # 4-5. int8
    quant: dict[str, Any] = {}
    if int8:
        q8 = out / "model.int8.onnx"
        quant, m8 = _int8(fp32, q8, manifest, restored.input_size, margin, mean, std, int(restored.meta.get("seed", 0)),
                          calibration_images, calibration_method, threads, x, y, fp32_out["logits"], say,
                          restored.photometric, split)
        if oof:  # int8 vs fp32 on photos it trained on: agreement is meaningful, accuracy is not held out
            m8 = {"int8_top1_agreement_training_photos": m8["int8_top1_agreement"],
                  "int8_delta_top1_training_photos": m8["int8_delta_top1"]}
        metrics |= m8
        files["int8"] = OnnxFile(path=q8.name, sha256=sha256_file(q8))

    # 6. bundle
    meta = restored.meta
    train_args = meta.get("args") or {}
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    bundle = Bundle(
        name=name,
        version=version or f"{dt.date.today():%Y.%m.%d}-{meta['model_name'].removeprefix('efficientnet_')}",
        created_at=created,
        labels=restored.labels,
        input=InputSpec(size=size, mean=mean, std=std, crop=CropPolicy(policy="stone_square", margin=margin),
                        photometric=restored.photometric),  # type: ignore[arg-type]
        temperature=float(ev["calibration"]["temperature"]),
        abstain=AbstainPolicy(energy_threshold=float(ev["abstain"]["energy_threshold"]),
                              identified_min_prob=float(ev["abstain"]["identified_min_prob"]),
                              identified_min_margin=float(ev["abstain"].get("identified_min_margin", 0.0))),
        metrics=metrics,
        training={
            "command": meta.get("command"), "seed": meta.get("seed"), "model": meta["model_name"],
            "epochs": train_args.get("epochs"), "best_epoch": (meta.get("epoch") + 1) if isinstance(meta.get("epoch"), int)
            else None, "manifest": meta.get("manifest"), "manifest_sha256": meta.get("manifest_sha256"),
            "checkpoint_sha256": restored.sha256, "evaluate_command": ev.get("command"), "export_command": command,
            "how": ("EfficientNet-Lite fine-tuned from ImageNet weights on the runtime's stone crops "
                    "(hue-preserving augmentation, label smoothing, AdamW + cosine); "
                    "temperature and abstain thresholds from gemid evaluate; " + _int8_how(quant)),
            "args": {k: v for k, v in train_args.items() if isinstance(v, str | int | float | bool) or v is None},
        },
        files=files,
        heads=restored.heads,
    )
    from gemid.training import model_card

    (out / "bundle.json").write_text(bundle.model_dump_json(indent=2) + "\n")
    try:
        model_card.write(out, eval_metrics)  # eval/ beside the bundle + MODEL_CARD.md from the same figures
    except Exception:
        (out / "bundle.json").unlink()  # never leave a bundle that would load without its card
        raise
    load_bundle(out, verify=True)  # the runtime can read what we wrote: hashes and the model card
    say(f"wrote {out}/bundle.json ({name} {bundle.version}) in {time.time() - t0:.0f} s")
    return {"bundle": json.loads((out / "bundle.json").read_text()), "graph": graph, "parity": parity,
            "quantization": quant}


def register(sub) -> None:
    p = sub.add_parser("export", help="ONNX fp32 + int8 and bundle.json from a checkpoint and its evaluation")
    p.add_argument("--checkpoint", required=True, help="runs/<name>/best.pt")
    p.add_argument("--eval", required=True, dest="eval_metrics", help="metrics.json (or its folder) from gemid evaluate")
    p.add_argument("--out", required=True, help="bundle folder, e.g. models/gemid-species")
    p.add_argument("--version", default=None, help="bundle version (default: today's date and the model, "
                                                    "e.g. 2026.11.22-lite0)")
    p.add_argument("--name", default=None,
                   help="bundle name, shown in every report's model field (default: the --out folder's name, "
                        "e.g. gemid-species for models/gemid-species)")
    p.add_argument("--calib-images", type=int, default=DEFAULT_CALIBRATION_IMAGES,
                   help="training photos used to calibrate int8 activations (default: %(default)s)")
    p.add_argument("--calib-method", default="minmax", choices=("minmax", "percentile", "entropy"),
                   help="int8 activation calibration (default: %(default)s)")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 model")
    p.add_argument("--manifest", default=None,
                   help="the manifest the evaluation read, where it has moved since (checked by sha256; default: the "
                        "path the evaluation records)")
    p.add_argument("--allow-manifest-change", action="store_true",
                   help="export even though the manifest changed since training (you vouch the splits did not)")
    p.add_argument("--threads", type=int, default=2, help="PyTorch and ONNX Runtime threads (default: %(default)s)")
    p.set_defaults(func=train_extra(main, needs=("onnx", "torch")))

    q = sub.add_parser("quantize", help="rebuild a bundle's int8 model from its fp32 model and re-measure it")
    q.add_argument("--bundle", required=True, help="bundle folder, e.g. models/gemid-species")
    q.add_argument("--manifest", default=None, help="the manifest it was trained on (default: the one it records)")
    q.add_argument("--calib-images", type=int, default=DEFAULT_CALIBRATION_IMAGES,
                   help="training photos used to calibrate int8 activations (default: %(default)s)")
    q.add_argument("--calib-method", default="minmax", choices=("minmax", "percentile", "entropy"),
                   help="int8 activation calibration (default: %(default)s)")
    q.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default: %(default)s)")
    q.set_defaults(func=train_extra(quantize_main, needs=("onnx", "torch")))


def quantize_main(args) -> int:
    from gemid.datasets.manifest import ManifestError
    from gemid.errors import ModelError

    try:
        command = ["gemid", "quantize", "--bundle", args.bundle, *(["--manifest", args.manifest] if args.manifest else []),
                   *(["--calib-images", str(args.calib_images)] if args.calib_images != DEFAULT_CALIBRATION_IMAGES else []),
                   *(["--calib-method", args.calib_method] if args.calib_method != "minmax" else [])]
        requantize(args.bundle, args.manifest, calibration_images=args.calib_images,
                   calibration_method=args.calib_method, threads=args.threads, command=shlex.join(command))
    except (ExportError, ManifestError, ModelError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(args) -> int:
    from gemid.datasets.manifest import ManifestError
    from gemid.errors import ModelError
    from gemid.training.onnx_export import GraphError
    from gemid.training.restore import CheckpointError

    try:
        export(args.checkpoint, args.eval_metrics, args.out, version=args.version, name=args.name,
               calibration_images=args.calib_images, calibration_method=args.calib_method, int8=not args.no_int8,
               threads=args.threads, allow_manifest_change=args.allow_manifest_change, manifest=args.manifest,
               command=" ".join(["gemid", *map(shlex.quote, sys.argv[1:])]))
    except (ExportError, CheckpointError, ManifestError, GraphError, ModelError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
