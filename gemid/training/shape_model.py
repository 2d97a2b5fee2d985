"""Build the cut-shape model's two networks (`models/gemid-shape/`) for the torch-free runtime.

  .venv/bin/python -m gemid.training.shape_model embedder   # embed.onnx: ImageNet Lite0, nothing trained
  .venv/bin/python -m gemid.training.shape_model cnn        # cnn.onnx: Lite0 fine-tuned on the shape labels
  .venv/bin/python -m bench.shape_fit                       # then the head over both, and the val figures

  # the development split the recipe was chosen on (train photos only; val is not touched):
  .venv/bin/python -m gemid.training.shape_model cnn --dev --run runs/shape-dev
  .venv/bin/python -m bench.shape_fit --dev runs/shape-dev/cnn.onnx

**The embedder** is EfficientNet-Lite0 with its ImageNet weights, unchanged, cut at the global pool (1,280
numbers a stone), 224 px. Not the species model's features: fine-tuned to tell species apart, they lost
most of what says round from pear (53 % alone on the first 328 labelled train photos, ImageNet's 71 %), and
they change at every retrain. On the 533 train photos' 5-fold cross-validation, 224 px scored 82.7 % against
78.0 % at 128 px, and Lite1 / Lite2 at 160 px no better (76.7 / 78.0 %). Byte for byte the same file on
every run.

**The CNN** is the same Lite0 fine-tuned on the train photos of `shape_gems68.csv` by `gemid train` with
the species model's recipe (stem and 5 blocks frozen, 16 cached augmented views a photo: any rotation,
flips, light, blur, noise, JPEG, background swaps; 25 epochs, the last kept, nothing chosen on val). The
recipe was chosen on a development split inside train (the train photos in fold 0 of the project's seeded
5-fold split, 148 photos; 572 to train; `--dev`): the CNN alone 85.8 %, the hand features and ImageNet
embedding 83.1 %, their probabilities averaged 89.9 %, multiplied 92.6 %, and a temperature of 1.3 on the
product brought its negative log-likelihood there from 0.347 to 0.328 (0.8 / 1.6 / 2.0: 0.389 / 0.344 /
0.400). The shipped CNN is then trained once on all 720 train photos (about 8 minutes on 2 CPU cores); val
chose nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from gemid.vision.bundle import MODELS_DIR, sha256_file
from gemid.vision.shape import CNN_FILE, CROP_MARGIN, EMBEDDER_FILE, SHAPE_DIR, SIDE_PX

EMBEDDER = SHAPE_DIR / EMBEDDER_FILE
CNN = SHAPE_DIR / CNN_FILE
OUTPUT = "features"
REPO = MODELS_DIR.parent
LABELS = REPO / "gemid/datasets/annotations/shape_gems68.csv"
PHOTOS = REPO.parent / "shared/data/gems68/train"
# gemid train's flags for the CNN (the species model's recipe, shorter: 720 photos, not 2,042)
RECIPE = ("--epochs", "25", "--freeze", "5", "--cache-views", "16", "--seed", "0", "--crop-margin", str(CROP_MARGIN))
DEV_FOLD = "fold0"  # of `gemid dataset import --kfold 5 --fold all --seed 0` (data/gems68-k5.csv)


def embedder():
    """The ImageNet EfficientNet-Lite0 whose `forward_all` gives its pooled features (eval mode)."""
    from torch import nn

    from gemid.training.model import create_model

    class Embedder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = create_model("efficientnet_lite0", pretrained=True)

        def forward_all(self, x):
            return {OUTPUT: self.inner.forward_head(self.inner.forward_features(x), pre_logits=True)}

    return Embedder().eval()


def export_embedder(out: Path = EMBEDDER) -> str:
    """Write the embedder to `out`; returns its sha256."""
    from gemid.training.onnx_export import export_onnx

    export_onnx(embedder(), out, SIDE_PX, outputs=[OUTPUT], what="gemid shape embedder (ImageNet EfficientNet-Lite0)")
    return sha256_file(out)


def dev_photos(photos: Path = PHOTOS) -> set[str]:
    """The photos ("Species/file.jpg") of DEV_FOLD in the project's seeded 5-fold split of gems68 (near-duplicate
    groups kept whole): with the shape labels' train split, the development photos."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "k5.csv"
        subprocess.run([sys.executable, "-m", "gemid.cli", "dataset", "import", str(photos), "--out", str(out),
                        "--kfold", "5", "--fold", "all", "--seed", "0"], check=True, capture_output=True)
        with out.open(newline="") as f:
            return {"/".join(r["path"].replace("\\", "/").split("/")[-2:]) for r in csv.DictReader(f)
                    if r["split"] == DEV_FOLD}


def shape_manifest(path: Path, labels: Path = LABELS, photos: Path = PHOTOS, dev: set[str] | None = None) -> Path:
    """A training manifest whose "species" column holds the cut shape (gemid train learns any label set).
    With `dev`: the train photos only, those in `dev` as its val."""
    with labels.open(newline="") as f:
        rows = list(csv.DictReader(f))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "species", "colour_grade", "clarity_grade", "split", "source"])
        for r in rows:
            split = r["split"]
            if dev is not None:
                if split != "train":
                    continue
                split = "val" if r["path"] in dev else "train"
            w.writerow([str((photos / r["path"]).resolve()), r["shape"], "", "", split, "gems68"])
    return path


def train_cnn(out: Path = CNN, run: Path | None = None, threads: int = 2, dev: bool = False) -> str:
    """Fine-tune the CNN with RECIPE (`gemid train`, in `run`), export its last epoch to `out`; its sha256.
    dev: on the train photos outside the development split only."""
    if not PHOTOS.is_dir():
        raise SystemExit(f"the gems68 photos are not at {PHOTOS}")
    run = run or Path(tempfile.mkdtemp(prefix="gemid-shape-"))
    run.mkdir(parents=True, exist_ok=True)
    manifest = shape_manifest(run / "manifest.csv", dev=dev_photos() if dev else None)
    subprocess.run([sys.executable, "-m", "gemid.cli", "train", "--manifest", str(manifest), "--out", str(run / "cnn"),
                    *RECIPE, "--threads", str(threads), "--workers", str(threads), "--quiet"], check=True)
    return export_cnn(run / "cnn" / "last.pt", out, dev=dev)


def export_cnn(checkpoint: Path, out: Path, *, dev: bool = False) -> str:
    """The fine-tuned checkpoint as ONNX at `out`, with its labels and input beside it (`out`.json); its sha256."""
    from gemid.training.onnx_export import export_onnx
    from gemid.training.restore import load_checkpoint

    restored = load_checkpoint(checkpoint)
    export_onnx(restored.model.eval(), out, SIDE_PX, what=f"gemid shape CNN ({', '.join(restored.labels)})")
    digest = sha256_file(out)
    out.with_suffix(".json").write_text(json.dumps({
        "labels": list(restored.labels), "sha256": digest, "input": {"size": SIDE_PX, "mean": list(restored.mean),
                                                                     "std": list(restored.std), "margin": restored.margin},
        "trained_on": f"{LABELS.name} train{' outside the development split' if dev else ''}; "
                      f"gemid train {' '.join(RECIPE)}; last epoch",
    }, indent=1) + "\n")
    return digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("part", choices=("embedder", "cnn"))
    ap.add_argument("--out", type=Path, help="where the ONNX file goes (default: models/gemid-shape/)")
    ap.add_argument("--run", type=Path, help="cnn: gemid train's run folder (default: a temporary one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dev", action="store_true", help="cnn: train on the train photos outside the development "
                    "split, written to RUN/cnn.onnx (needs --run); the shipped model is not touched")
    a = ap.parse_args()
    if a.part == "embedder":
        out = a.out or EMBEDDER
        print(f"{out}: sha256 {export_embedder(out)}")
    elif a.dev:
        if a.run is None:
            ap.error("--dev needs --run")
        out = a.out or a.run / CNN_FILE
        print(f"{out}: sha256 {train_cnn(out, a.run, a.threads, dev=True)}")
    else:
        out = a.out or CNN
        print(f"{out}: sha256 {train_cnn(out, a.run, a.threads)}")


if __name__ == "__main__":
    main()
