"""A synthetic dataset on disk: images, a manifest the trainer and evaluator read, and the truth of each stone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gemid.datasets.synth.render import render
from gemid.datasets.synth.sampling import random_spec
from gemid.datasets.synth.spec import spec_json


def render_dataset(n: int, out_dir: Path | str, seed: int = 0, size: int = 256, **constraints: Any) -> Path:
    """Render n stones into out_dir: images/, manifest.csv (species 'synthetic', colour and clarity grades),
    truth.jsonl (one JSON object per image, same order). Returns the manifest path."""
    import cv2

    from gemid.datasets.manifest import Row, write_manifest

    if n < 1:
        raise ValueError("n must be at least 1")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    with open(out / "truth.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            spec = random_spec(rng, **constraints)
            rgb, _mask, t = render(spec, size=size, seed=seed * 1_000_003 + i)
            ext = ".jpg" if spec.jpeg_quality else ".png"
            path = out / "images" / f"stone_{i:05d}{ext}"
            params = [cv2.IMWRITE_JPEG_QUALITY, 100] if ext == ".jpg" else []
            if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
                raise OSError(f"could not write {path}")
            rows.append(Row(path=str(path), species="synthetic", colour_grade=t["colour_grade"],
                            clarity_grade=t["clarity_grade"], source=f"synth:seed={seed}"))
            f.write(json.dumps({"path": f"images/{path.name}", "seed": seed * 1_000_003 + i, **t,
                                "spec": spec_json(spec)}) + "\n")
    return write_manifest(rows, out / "manifest.csv")


__all__ = ["render_dataset"]
