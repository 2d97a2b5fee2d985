"""A bundle with learned grade heads is preferred over the measured grades; without one, measurement stands."""

from __future__ import annotations

import json

import numpy as np
from bundle_fixture import HEAD_NAME, STONE_COLOURS, build_bundle, draw_stone, encode

from gemid.datasets.synth import random_spec, render
from gemid.vision.clarity import grade_clarity
from gemid.vision.colour import grade_colour
from gemid.vision.learned import apply_heads
from gemid.vision.pipeline import Identifier
from gemid.vision.segment import segment


def _measured():
    spec = random_spec(np.random.default_rng(5), cut="oval", background="white")
    rgb, _, _ = render(spec, size=256, seed=5)
    seg = segment(rgb)
    return grade_colour(rgb, seg), grade_clarity(rgb, seg, "Emerald")


def test_learned_heads_win_and_keep_what_only_measurement_gives():
    colour, clarity = _measured()
    assert colour.source == clarity.source == "measured" and clarity.inclusions
    heads = {"colour_grade": np.array([0.1, 0.9]), "clarity_grade": np.array([0.8, 0.15, 0.05])}
    classes = {"colour_grade": ["R 3/2", "bG 7/5"], "clarity_grade": ["VS", "SI2", "I3"]}
    c2, k2 = apply_heads(colour, clarity, heads, classes)
    assert (c2.source, c2.tone.value, c2.saturation.value, c2.hue) == ("learned", 7, 5, "bluish green")
    assert c2.lab == colour.lab and c2.hex == colour.hex and c2.confidence == 0.9
    assert (k2.source, k2.grade, k2.eye_clean) == ("learned", "VS", True)
    assert k2.inclusions == clarity.inclusions  # boxes still come from the measurement


def test_unknown_head_classes_leave_the_measurement():
    colour, clarity = _measured()
    c2, k2 = apply_heads(colour, clarity, {"clarity_grade": np.array([0.3, 0.7]), "colour_grade": np.array([1.0])},
                         {"clarity_grade": ["eye_clean", "included"], "colour_grade": ["greenish"]})
    assert c2 == colour and k2 == clarity


def test_pipeline_reports_the_learned_clarity_head(tmp_path):
    bundle = build_bundle(tmp_path / "b")
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["heads"] = {HEAD_NAME: ["VVS", "I2"]}  # the fixture's 2-output head, now naming real grades
    (bundle / "bundle.json").write_text(json.dumps(meta))
    report = Identifier(bundle).identify(encode(draw_stone(STONE_COLOURS["Emerald"])))
    assert report.species.decision != "rejected"
    assert report.clarity is not None and report.clarity.source == "learned"
    assert report.clarity.grade in ("VVS", "I2")
