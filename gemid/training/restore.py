"""Rebuild a trained model from a `gemid train` checkpoint, for evaluation and export.

The checkpoint carries everything needed to reproduce the runtime view (labels in class-index order,
input size, crop margin, mean/std) and its provenance (command, seed, manifest and its hash), so
evaluate and export never guess a preprocessing parameter.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUIRED_KEYS = ("model", "model_name", "labels", "input_size", "mean", "std")


class CheckpointError(ValueError):
    """The checkpoint is missing, unreadable or not a gemid training checkpoint."""


@dataclass
class Restored:
    model: Any  # gemid.training.model.EfficientNetLite, in eval mode
    meta: dict[str, Any]  # the checkpoint without the weights
    path: Path
    sha256: str

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def heads(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in (self.meta.get("extra_heads") or {}).items()}

    @property
    def input_size(self) -> int:
        return int(self.meta["input_size"])

    @property
    def margin(self) -> float:
        return float(self.meta.get("crop_margin", 0.12))

    @property
    def photometric(self) -> str:
        """The front end the model was trained with ("none" for models trained before it existed)."""
        return str(self.meta.get("photometric", "none"))

    @property
    def mean(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.meta["mean"])  # type: ignore[return-value]

    @property
    def std(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.meta["std"])  # type: ignore[return-value]


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checkpoint(path: Path | str) -> Restored:
    """Load weights into a fresh model (no ImageNet download: pretrained=False, all weights come from here)."""
    import torch

    from gemid.training.model import create_model

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for damaged files
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not a gemid checkpoint (found a {type(ckpt).__name__})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is not a gemid training checkpoint: missing {', '.join(missing)}")
    heads = {k: len(v) for k, v in (ckpt.get("extra_heads") or {}).items()}
    try:
        model = create_model(ckpt["model_name"], num_classes=len(ckpt["labels"]), pretrained=False,
                             extra_heads=heads)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    state = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit {ckpt['model_name']}: {exc}") from exc
    model.eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler", "scaler", "ema")}
    return Restored(model=model, meta=meta, path=path, sha256=file_sha256(path))
