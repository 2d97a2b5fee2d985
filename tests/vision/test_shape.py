"""Cut shape: the labelled manifest's schema, the fitted weights, and drawn outlines."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from bundle_fixture import draw_stone

from gemid.report import SHAPES
from gemid.vision import shape
from gemid.vision.segment import segment

MANIFEST = Path(shape.__file__).resolve().parents[1] / "datasets/annotations/shape_gems68.csv"
CLARITY = MANIFEST.with_name("clarity_gems68.csv")


def test_manifest_schema():
    with MANIFEST.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "species", "shape", "split"]
    assert len(rows) >= 300 and len({r["path"] for r in rows}) == len(rows)
    assert {r["shape"] for r in rows} == set(SHAPES)  # every shape has real photos
    assert {r["split"] for r in rows} == {"train", "val"}
    for r in rows:
        assert r["path"].split("/")[0] == r["species"] and r["path"].lower().endswith(".jpg")
    with CLARITY.open(newline="") as f:
        clarity_split = {r["path"]: r["split"] for r in csv.DictReader(f)}
    shared = [r for r in rows if r["path"] in clarity_split]
    assert shared and all(clarity_split[r["path"]] == r["split"] for r in shared)


def test_weights_match_the_features():
    model = shape._model()
    assert set(model) == {"surface", "outline"}
    assert model["surface"]["labels"] == list(shape.SURFACE)
    assert set(model["outline"]["labels"]) <= set(SHAPES) - {"cabochon", "tumbled_or_rough"}
    x = shape.features(draw_stone(), segment(draw_stone()))
    assert x.shape == (len(shape.FEATURES),) and np.isfinite(x).all()
    probs = shape.probabilities(x)
    assert set(probs) <= set(SHAPES) and abs(sum(probs.values()) - 1.0) < 1e-9


def dome(size=(256, 192), axes=(70, 50)) -> np.ndarray:
    """A smooth, shaded elliptical dome (a cabochon) with one soft highlight, on a light background."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (xx - w / 2) / axes[0], (yy - h / 2) / axes[1]
    r2 = u * u + v * v
    inside = r2 <= 1
    light = np.clip(0.55 + 0.35 * np.sqrt(np.clip(1 - r2, 0, 1)) + 0.4 * np.exp(-((u + 0.3) ** 2 + (v + 0.4) ** 2) * 12),
                    0, 1.2)
    img = np.full((h, w, 3), 245, np.uint8)
    body = np.array([30, 120, 60], np.float32)
    img[inside] = np.clip(body * light[inside, None] * 1.6, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (3, 3), 0)


def test_a_smooth_dome_is_more_cabochon_than_a_faceted_stone():
    faceted, smooth = draw_stone(), dome()
    p_facet = shape.probabilities(shape.features(faceted, segment(faceted)))
    p_dome = shape.probabilities(shape.features(smooth, segment(smooth)))
    assert p_dome["cabochon"] > p_facet["cabochon"]
    assert max(p_facet, key=p_facet.__getitem__) not in ("cabochon", "tumbled_or_rough")


def test_elongation_is_measured_from_the_outline():
    round_ = draw_stone(size=(256, 256))
    long_ = cv2.resize(round_, (512, 256), interpolation=cv2.INTER_LINEAR)
    e_round = shape.features(round_, segment(round_))[shape.FEATURES.index("elongation")]
    e_long = shape.features(long_, segment(long_))[shape.FEATURES.index("elongation")]
    assert e_round < 0.08 and abs(e_long - np.log(2.0)) < 0.12
