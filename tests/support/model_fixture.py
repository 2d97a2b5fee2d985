"""Drawn stones and a small real checkpoint for the evaluate / export / notebook tests (no ../shared needed).

The checkpoint is the ImageNet EfficientNet-Lite0 with a species head fitted (a few hundred Adam steps
on frozen pooled features) to drawn stones of four colours at 64 px — a genuinely trained, if tiny,
model in exactly the format `gemid train` writes, so evaluate and export run their real code paths.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from bundle_fixture import STONE_COLOURS, draw_stone

LABELS = ["Emerald", "Peridot", "Ruby", "Sapphire Blue"]  # sorted, as gemid train orders classes
SIZE = 64
MARGIN = 0.12


def write_stones(root: Path, *, labels: list[str] = LABELS, n_train: int = 6, n_val: int = 4,
                 seed: int = 0) -> Path:
    """PNG photos of drawn stones (varied size, position, background, blur) and a manifest with splits."""
    from gemid.datasets.manifest import Row, write_manifest

    root = Path(root).resolve()
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for label in labels:
        for i in range(n_train + n_val):
            w, h = int(rng.integers(120, 180)), int(rng.integers(100, 150))
            bg = int(rng.integers(200, 256))
            colour = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in STONE_COLOURS[label])
            rgb = draw_stone(colour, size=(w, h), centre=(w * rng.uniform(0.4, 0.6), h * rng.uniform(0.4, 0.6)),
                             radius=min(w, h) * rng.uniform(0.2, 0.35), background=(bg, bg, bg - 5),
                             blur=float(rng.uniform(0, 1)), seed=int(rng.integers(0, 1 << 30)))
            path = root / "images" / f"{label.replace(' ', '_')}_{i}.png"
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            rows.append(Row(path=str(path), species=label, split="train" if i < n_train else "val",
                            source="drawn"))
    return write_manifest(rows, root / "manifest.csv")


def tiny_checkpoint(path: Path, manifest: Path, *, size: int = SIZE, steps: int = 300,
                    heads: dict[str, list[str]] | None = None) -> Path:
    """Fit the species head (and any extra heads, on random targets) and save a `gemid train`-style checkpoint."""
    import torch

    from gemid.datasets.manifest import manifest_sha256
    from gemid.training.data import eval_crops
    from gemid.training.model import create_model
    from gemid.training.presets import to_tensor

    torch.manual_seed(0)
    heads = heads or {}
    model = create_model("efficientnet_lite0", num_classes=len(LABELS), pretrained=True,
                         extra_heads={k: len(v) for k, v in heads.items()}).eval()
    crops, species, _ = eval_crops(manifest, "train", size, MARGIN)
    y = torch.tensor([LABELS.index(s) for s in species])
    with torch.inference_mode():
        feats = model.forward_head(model.forward_features(to_tensor(crops, model.cfg.mean, model.cfg.std)),
                                   pre_logits=True)
    feats = feats.clone()
    params = list(model.classifier.parameters()) + list(model.extra_heads.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    head_targets = {k: torch.randint(0, len(v), (len(y),)) for k, v in heads.items()}
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model.classifier(feats), y)
        for k, t in head_targets.items():
            loss = loss + torch.nn.functional.cross_entropy(model.extra_heads[k](feats), t)
        loss.backward()
        opt.step()
    cfg = model.cfg
    ckpt = {
        "model": model.state_dict(), "model_name": cfg.name, "labels": LABELS, "extra_heads": heads,
        "input_size": size, "crop_margin": MARGIN, "mean": list(cfg.mean), "std": list(cfg.std),
        "args": {"epochs": 1, "model": cfg.name}, "seed": 0, "manifest": str(Path(manifest).resolve()),
        "manifest_sha256": manifest_sha256(manifest), "command": "tests/support/model_fixture.py tiny_checkpoint",
        "epoch": 0, "metrics": {"train_loss": float(loss.detach())},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def tiny_run(base: Path) -> dict[str, Path]:
    """Drawn stones → checkpoint → `gemid evaluate` → `gemid export`, built once per test session under
    `base` (pytest's basetemp) and shared by the test files that need them. Crops are cached in base/cache."""
    import os

    base = Path(base) / "tiny_run"
    paths = {"root": base, "manifest": base / "stones" / "manifest.csv", "checkpoint": base / "run" / "best.pt",
             "eval": base / "eval", "bundle": base / "bundle", "cache": base / "cache"}
    if (base / "done").is_file():
        return paths
    from gemid.training.evaluate import evaluate
    from gemid.training.export import export

    saved = os.environ.get("GEMID_CACHE_DIR")
    os.environ["GEMID_CACHE_DIR"] = str(paths["cache"])
    try:
        write_stones(base / "stones")
        tiny_checkpoint(paths["checkpoint"], paths["manifest"], heads={"clarity_grade": ["VVS", "VS", "SI"]})
        evaluate(paths["checkpoint"], paths["eval"], progress=False)
        export(paths["checkpoint"], paths["eval"] / "metrics.json", paths["bundle"], version="0.0.0-test",
               name="gemid-species", calibration_images=16, progress=False)
    finally:
        if saved is None:
            os.environ.pop("GEMID_CACHE_DIR", None)
        else:
            os.environ["GEMID_CACHE_DIR"] = saved
    (base / "done").write_text("ok\n")
    return paths


def moved_manifest(run: dict[str, Path], folder: Path) -> tuple[Path, str]:
    """The run's rows written by today's writer from another folder (paths climb out with '..'), and the hash
    a model trained before relative paths would have recorded for those rows (absolute paths)."""
    from gemid.datasets.manifest import legacy_manifest_sha256, manifest_sha256, read_manifest, write_manifest

    moved = write_manifest(read_manifest(run["manifest"]), Path(folder) / "data" / "stones.csv")
    assert "../" in moved.read_text() and legacy_manifest_sha256(moved) != manifest_sha256(moved)
    return moved, legacy_manifest_sha256(moved)
