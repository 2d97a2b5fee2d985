"""Photos → cached stone crops. Decoding and segmentation are the runtime's own (gemid.vision), run once.

Two views per photo are cached (uint8, on disk under the cache folder):
- the *training crop*: a square with TRAIN_MARGIN around the stone, plus its stone mask (augmentation
  zooms, rotates and swaps the background from it);
- the *evaluation crop*: exactly the runtime's `stone_crop(margin, size)` (after the photometric front end
  when the model uses it, `photometric="grader"`), so validation numbers are the numbers of the shipped
  pipeline.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from gemid.datasets.manifest import is_fold, read_manifest
from gemid.training.presets import TRAIN_MARGIN
from gemid.vision import crop as crop_module
from gemid.vision.crop import crop_square, square_box, stone_crop
from gemid.vision.decode import decode
from gemid.vision.segment import segment

CACHE_VERSION = 1


def cache_dir() -> Path:
    d = Path(os.environ.get("GEMID_CACHE_DIR", Path.cwd() / "cache"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _key(*parts) -> str:
    # the crops depend on the presets, the segmentation and the crop geometry: a change to any re-cuts them
    code = b"".join(Path(f).read_bytes() for f in (Path(__file__).with_name("presets.py"),
                                                   segment.__code__.co_filename, crop_module.__file__))
    h = hashlib.sha256(json.dumps([CACHE_VERSION, *map(str, parts)]).encode() + code)
    return h.hexdigest()[:16]


def _load_one(args: tuple[str, int, float, int, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path, train_side, eval_margin, eval_size, photometric = args
    rgb = decode(Path(path), max_bytes=200_000_000, max_pixels=200_000_000).rgb
    seg = segment(rgb)
    h, w = rgb.shape[:2]
    bbox = seg.bbox if seg.found else (0, 0, w, h)
    box = square_box(bbox, TRAIN_MARGIN if seg.found else 0.0, (w, h))
    import cv2

    tr = cv2.resize(crop_square(rgb, box), (train_side, train_side), interpolation=cv2.INTER_AREA)
    m3 = crop_square(np.repeat(seg.mask[..., None], 3, axis=2), box, fill=(0, 0, 0))[..., 0]
    m = cv2.resize(m3, (train_side, train_side), interpolation=cv2.INTER_NEAREST)
    ev = stone_crop(rgb, seg, margin=eval_margin, size=eval_size)
    if photometric == "grader":
        from gemid.vision.photometric import light_for, normalise

        ev = normalise(ev, light_for(rgb, seg))
    return tr, m, ev


def load_crops(paths: list[str], *, train_side: int, eval_margin: float, eval_size: int,
               workers: int = 2, progress: bool = True, photometric: str = "none") -> dict[str, np.ndarray]:
    """Train crops (N,S,S,3), masks (N,S,S), eval crops (N,E,E,3) for these files, cached by content+params."""
    digest = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        digest.update(f"{p}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    key = _key(digest.hexdigest(), train_side, eval_margin, eval_size, *([photometric] if photometric != "none" else []))
    file = cache_dir() / f"crops-{key}.npz"
    if file.is_file():
        with np.load(file) as z:
            return {k: z[k] for k in z.files}
    jobs = [(p, train_side, eval_margin, eval_size, photometric) for p in paths]
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("decode + segment", total=len(jobs))
        if workers > 1:
            with ProcessPoolExecutor(workers) as ex:
                for r in ex.map(_load_one, jobs, chunksize=8):
                    out.append(r)
                    bar.advance(task)
        else:
            for j in jobs:
                out.append(_load_one(j))
                bar.advance(task)
    res = {
        "train": np.stack([o[0] for o in out]) if out else np.zeros((0, train_side, train_side, 3), np.uint8),
        "mask": np.stack([o[1] for o in out]) if out else np.zeros((0, train_side, train_side), np.uint8),
        "eval": np.stack([o[2] for o in out]) if out else np.zeros((0, eval_size, eval_size, 3), np.uint8),
    }
    tmp = file.with_suffix(".tmp.npz")
    np.savez(tmp, **res)
    os.replace(tmp, file)
    return res


OOF = "oof"  # the pseudo-split of a K-fold manifest: every photo of every fold (`gemid train --cv`)


def split_rows(manifest_path: str | Path, split: str) -> list:
    """The manifest's rows of `split`; for "oof" every row that lies in a cross-validation fold."""
    m = read_manifest(manifest_path)
    return [r for r in m.rows if is_fold(r.split)] if split == OOF else m.split(split)


def split_paths(manifest_path: str | Path, split: str) -> tuple[list[str], list[str]]:
    m = read_manifest(manifest_path)
    rows = split_rows(manifest_path, split)
    return [str(m.resolve(r)) for r in rows], [r.species for r in rows]


def eval_crops(manifest_path: str | Path, split: str, size: int, margin: float,
               train_side: int | None = None, photometric: str = "none") -> tuple[np.ndarray, list[str], list[str]]:
    """Exactly the runtime's view for every photo of a split: (crops, labels, paths)."""
    paths, labels = split_paths(manifest_path, split)
    c = load_crops(paths, train_side=train_side or train_side_for(size), eval_margin=margin, eval_size=size,
                   photometric=photometric)
    return c["eval"], labels, paths


def train_crops(manifest_path: str | Path, split: str, size: int, margin: float,
                train_side: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Training crops with TRAIN_MARGIN and their masks: (crops, masks, labels, paths)."""
    paths, labels = split_paths(manifest_path, split)
    c = load_crops(paths, train_side=train_side or train_side_for(size), eval_margin=margin, eval_size=size)
    return c["train"], c["mask"], labels, paths


def train_side_for(size: int) -> int:
    """Training crops are stored a little larger than the input so zooming in keeps detail."""
    return int(round(size * 1.3 / 8)) * 8
