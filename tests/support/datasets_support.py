"""Tiny folder-per-class data sets drawn with OpenCV, with known faults planted in them.

`make_faulty_dataset` returns the folder and what an audit must find there: a PNG (with alpha) named .jpg,
a truncated JPEG, a zero-byte file, a resized + re-encoded copy inside one class, and a byte-identical copy
across two classes. Every other photo is a distinct random drawing, so nothing else may be reported.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("Ruby", "Emerald Green", "Sapphire Blue")  # a space in a label must survive verbatim


def drawing(seed: int, size: int = 128) -> np.ndarray:
    """A distinct 'stone photo': a coloured random polygon on a light, slightly graded background."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), rng.integers(200, 250, 3), np.uint8)
    img = (img.astype(np.int16) + np.linspace(-12, 12, size, dtype=np.int16)[None, :, None]).clip(0, 255).astype(np.uint8)
    for _ in range(3):  # blobs of different colours in random places
        pts = rng.integers(8, size - 8, (int(rng.integers(3, 7)), 2)).astype(np.int32)
        cv2.fillPoly(img, [cv2.convexHull(pts)], tuple(int(c) for c in rng.integers(0, 200, 3)))
    for _ in range(4):
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(img, tuple(int(v) for v in p1), tuple(int(v) for v in p2),
                 tuple(int(c) for c in rng.integers(0, 255, 3)), int(rng.integers(1, 4)))
    return img


def write_jpeg(path: Path, bgr: np.ndarray, quality: int = 92) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())
    return buf.tobytes()


@dataclass(frozen=True)
class Faulty:
    root: Path
    n_files: int  # image-like files the importer must list
    png_named_jpg: str
    truncated: str
    empty: str
    near_pair: tuple[str, str]  # same class, resized + re-encoded
    cross_pair: tuple[str, str]  # byte-identical, two classes
    ignored: str  # a text file the importer must skip


def make_clean_dataset(root: Path, per_class: int = 8, seed0: int = 0) -> Path:
    for c, cls in enumerate(CLASSES):
        for k in range(per_class):
            write_jpeg(root / cls / f"{cls.lower()}_{k}.jpg", drawing(seed0 + 100 * c + k))
    return root


def make_faulty_dataset(root: Path, per_class: int = 8) -> Faulty:
    make_clean_dataset(root, per_class)
    # PNG with an alpha channel, named .jpg (as Almandine/almandine_21.jpg in gems68)
    rgba = cv2.cvtColor(drawing(9001), cv2.COLOR_BGR2BGRA)
    rgba[:20, :, 3] = 0
    ok, buf = cv2.imencode(".png", rgba)
    assert ok
    png = root / "Emerald Green" / "emerald_png.jpg"
    png.write_bytes(buf.tobytes())
    # truncated JPEG: a half-copied file
    data = write_jpeg(root / "Ruby" / "ruby_truncated.jpg", drawing(9002))
    (root / "Ruby" / "ruby_truncated.jpg").write_bytes(data[: len(data) // 2])
    # zero-byte file
    (root / "Sapphire Blue" / "empty.jpg").write_bytes(b"")
    # near-duplicate inside a class: 70 % resize, re-encoded at quality 70
    src = root / "Ruby" / "ruby_0.jpg"
    small = cv2.resize(cv2.imread(str(src)), (90, 90), interpolation=cv2.INTER_AREA)
    write_jpeg(root / "Ruby" / "ruby_0_small.jpg", small, quality=70)
    # exact duplicate across classes (a label conflict)
    shutil.copyfile(root / "Sapphire Blue" / "sapphire blue_3.jpg", root / "Emerald Green" / "copied.jpg")
    (root / "Emerald Green" / "notes.txt").write_text("not a photo\n")
    return Faulty(
        root=root,
        n_files=3 * per_class + 5,
        png_named_jpg="Emerald Green/emerald_png.jpg",
        truncated="Ruby/ruby_truncated.jpg",
        empty="Sapphire Blue/empty.jpg",
        near_pair=("Ruby/ruby_0.jpg", "Ruby/ruby_0_small.jpg"),
        cross_pair=("Emerald Green/copied.jpg", "Sapphire Blue/sapphire blue_3.jpg"),
        ignored="Emerald Green/notes.txt",
    )
