"""`gemid export`: checkpoint + evaluation → the runtime bundle (model.onnx, model.int8.onnx, bundle.json).

Order of work, each step checked before the next:
1. the evaluation must be of this very checkpoint (sha256 recorded by `gemid evaluate`), so the
   temperature and thresholds written into the bundle were fitted on this model;
2. fp32 ONNX (opset 17, dynamic batch, padding folded into the convolutions; see onnx_export);
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

PARITY_TOLERANCE = 1e-3  # max |logit| difference ONNX Runtime fp32 vs PyTorch
PARITY_IMAGES = 64
DEFAULT_CALIBRATION_IMAGES = 300
BUNDLE_NAME = "gemid-species"


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


def export(checkpoint: Path | str, eval_metrics: Path | str, out: Path | str, *, version: str | None = None,
           calibration_images: int = DEFAULT_CALIBRATION_IMAGES, calibration_method: str = "minmax",
           int8: bool = True, threads: int = 2, name: str = BUNDLE_NAME, command: str | None = None,
           allow_manifest_change: bool = False, progress: bool = True) -> dict[str, Any]:
    import torch

    from gemid.datasets.manifest import manifest_sha256
    from gemid.training import onnx_export
    from gemid.training.data import eval_crops
    from gemid.training.presets import to_tensor
    from gemid.training.quantize import calibration_indices, quantize_int8
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
    manifest, split = ev["manifest"]["path"], ev.get("split", "val")
    if not Path(manifest).is_file() or manifest_sha256(manifest) != ev["manifest"].get("sha256"):
        raise ExportError(f"{manifest} is missing or has changed since `gemid evaluate` ran; evaluate again")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    # 2. fp32 ONNX
    fp32 = out / "model.onnx"
    graph = onnx_export.export_onnx(restored.model, fp32, size)
    say(f"exported {fp32} (opset {graph['opset']}, {graph['nodes']} nodes, {graph['pads_folded']} Pad folded into Conv, "
        f"outputs {', '.join(graph['outputs'])})")

    # 3. parity on real validation crops
    crops, species, _ = eval_crops(manifest, split, size, margin)
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

    metrics: dict[str, Any] = {
        "split": split, "n_val": int(len(y)),
        "manifest_same_as_training": bool(ev.get("manifest", {}).get("same_as_training")),
        "val_top1": _top(fp32_out["logits"], y, 1), "val_top5": _top(fp32_out["logits"], y, 5),
        "val_top1_torch": ev.get("top1"), "val_top5_torch": ev.get("top5"), "macro_f1": ev.get("macro_f1"),
        "ece": ev["calibration"]["ece_after"], "ece_before_temperature": ev["calibration"]["ece_before"],
        "ece_cross_fitted": ev["calibration"].get("ece_after_cv2"),
        "onnx_parity_max_abs": worst,
        "open_set": {k: ev["open_set"].get(k) for k in ("energy_threshold", "keep_correct", "non_gem_rejected",
                                                          "n_non_gem", "val_rejected", "auroc_val_vs_non_gem")},
        "abstain": {k: ev["abstain"].get(k) for k in ("coverage", "identified_precision", "uncertain", "rejected",
                                                        "target_precision")},
        "heads": ev.get("heads", {}),
        "how_measured": (f"gemid evaluate / gemid export on the '{split}' split of the training manifest "
                         f"({len(y)} photos, runtime crop); top-1/top-5 through ONNX Runtime (fp32 and int8); "
                         "temperature and thresholds fitted on the same split"),
    }
    files = {"fp32": OnnxFile(path=fp32.name, sha256=sha256_file(fp32))}

    # 4-5. int8
    quant: dict[str, Any] = {}
    if int8:
        q8 = out / "model.int8.onnx"
        tr_crops, tr_species, _ = eval_crops(manifest, "train", size, margin)
        idx = calibration_indices(tr_species, calibration_images, seed=int(restored.meta.get("seed", 0)))
        calib = to_tensor(tr_crops[idx], mean, std).numpy()
        quant = quantize_int8(fp32, q8, calib, method=calibration_method)
        int8_out = onnx_export.ort_outputs(onnx_export.ort_session(q8, threads), x)
        metrics |= {
            "val_top1_int8": _top(int8_out["logits"], y, 1), "val_top5_int8": _top(int8_out["logits"], y, 5),
            "int8_top1_agreement": float((int8_out["logits"].argmax(1) == fp32_out["logits"].argmax(1)).mean())
            if len(y) else None,
        }
        metrics["int8_delta_top1"] = metrics["val_top1_int8"] - metrics["val_top1"]
        metrics["int8_delta_top5"] = metrics["val_top5_int8"] - metrics["val_top5"]
        files["int8"] = OnnxFile(path=q8.name, sha256=sha256_file(q8))
        say(f"int8 ({quant['calibration']} calibration on {quant['calibration_images']} training photos): "
            f"top-1 {metrics['val_top1_int8'] * 100:.2f} % vs fp32 {metrics['val_top1'] * 100:.2f} % "
            f"(Δ {metrics['int8_delta_top1'] * 100:+.2f} pt), top-5 {metrics['val_top5_int8'] * 100:.2f} % vs "
            f"{metrics['val_top5'] * 100:.2f} %, agreement {metrics['int8_top1_agreement'] * 100:.1f} %")

    # 6. bundle
    meta = restored.meta
    train_args = meta.get("args") or {}
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    bundle = Bundle(
        name=name,
        version=version or f"{dt.date.today():%Y.%m.%d}-{meta['model_name'].removeprefix('efficientnet_')}",
        created_at=created,
        labels=restored.labels,
        input=InputSpec(size=size, mean=mean, std=std, crop=CropPolicy(policy="stone_square", margin=margin)),
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
                    f"temperature and abstain thresholds from gemid evaluate; int8: ONNX Runtime static "
                    f"QDQ, per-channel weights, {quant.get('calibration', '-')} calibration on "
                    f"{quant.get('calibration_images', 0)} training photos"),
            "args": {k: v for k, v in train_args.items() if isinstance(v, str | int | float | bool) or v is None},
        },
        files=files,
        heads=restored.heads,
    )
    (out / "bundle.json").write_text(bundle.model_dump_json(indent=2) + "\n")
    load_bundle(out, verify=True)  # the runtime can read what we wrote, hashes included
    from gemid.training import model_card

    model_card.write(out, eval_metrics)  # eval/ beside the bundle + MODEL_CARD.md from the same figures
    say(f"wrote {out}/bundle.json ({name} {bundle.version}) in {time.time() - t0:.0f} s")
    return {"bundle": json.loads((out / "bundle.json").read_text()), "graph": graph, "parity": parity,
            "quantization": quant}


def register_cli(sub) -> None:
    p = sub.add_parser("export", help="ONNX fp32 + int8 and bundle.json from a checkpoint and its evaluation")
    p.add_argument("--checkpoint", required=True, help="runs/<name>/best.pt")
    p.add_argument("--eval", required=True, dest="eval_metrics", help="metrics.json (or its folder) from gemid evaluate")
    p.add_argument("--out", required=True, help="bundle folder, e.g. models/gemid-species")
    p.add_argument("--version", default=None, help="bundle version (default: date and model)")
    p.add_argument("--name", default=BUNDLE_NAME)
    p.add_argument("--calib-images", type=int, default=DEFAULT_CALIBRATION_IMAGES,
                   help="training photos used to calibrate int8 activations")
    p.add_argument("--calib-method", default="minmax", choices=("minmax", "percentile", "entropy"))
    p.add_argument("--no-int8", action="store_true", help="skip the int8 model")
    p.add_argument("--allow-manifest-change", action="store_true",
                   help="export even though the manifest changed since training (you vouch the splits did not)")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=main)


def main(args) -> int:
    from gemid.datasets.manifest import ManifestError
    from gemid.training.onnx_passes import GraphPassError
    from gemid.training.restore import CheckpointError
    from gemid.vision.errors import ModelError

    try:
        export(args.checkpoint, args.eval_metrics, args.out, version=args.version, name=args.name,
               calibration_images=args.calib_images, calibration_method=args.calib_method, int8=not args.no_int8,
               threads=args.threads, allow_manifest_change=args.allow_manifest_change,
               command=" ".join(["gemid", *map(shlex.quote, sys.argv[1:])]))
    except (ExportError, CheckpointError, ManifestError, GraphPassError, ModelError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
