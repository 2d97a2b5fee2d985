"""The shape model's build steps: the embedder is exported byte for byte as shipped, and the CNN's training
manifest keeps val out (and, for the development split, keeps only the train photos)."""

from __future__ import annotations

import csv
from pathlib import Path

from gemid.training import shape_model
from gemid.vision.bundle import sha256_file
from gemid.vision.shape import CONFIG, SHAPE_DIR


def test_the_embedder_exports_to_the_shipped_bytes(tmp_path):
    import json

    out = tmp_path / "embed.onnx"
    digest = shape_model.export_embedder(out)
    assert digest == sha256_file(SHAPE_DIR / "embed.onnx")
    assert digest == json.loads((SHAPE_DIR / CONFIG).read_text())["files"]["embedder"]["sha256"]


def labels(tmp_path: Path) -> Path:
    path = tmp_path / "shapes.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "species", "shape", "split"])
        w.writerows([["Ruby/ruby_1.jpg", "Ruby", "oval", "train"], ["Ruby/ruby_2.jpg", "Ruby", "pear", "train"],
                     ["Onyx Red/onyx red_3.jpg", "Onyx Red", "cabochon", "val"]])
    return path


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_manifest_carries_the_shape_as_its_label_and_keeps_the_split(tmp_path):
    rows = read(shape_model.shape_manifest(tmp_path / "m.csv", labels(tmp_path), tmp_path / "photos"))
    assert [(r["species"], r["split"]) for r in rows] == [("oval", "train"), ("pear", "train"), ("cabochon", "val")]
    assert rows[2]["path"] == str((tmp_path / "photos" / "Onyx Red/onyx red_3.jpg").resolve())


def test_the_development_manifest_never_holds_a_val_photo(tmp_path):
    rows = read(shape_model.shape_manifest(tmp_path / "m.csv", labels(tmp_path), tmp_path / "photos",
                                           dev={"Ruby/ruby_2.jpg", "Onyx Red/onyx red_3.jpg"}))
    assert [(r["species"], r["split"]) for r in rows] == [("oval", "train"), ("pear", "val")]
