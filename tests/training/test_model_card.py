"""The model card states the measured figures, with their uncertainty, and names the exact commands."""

from __future__ import annotations

import json

import pytest

from gemid.training.model_card import render, wilson, write


def test_wilson_interval_matches_the_textbook_value():
    lo, hi = wilson(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    lo, hi = wilson(1.0, 20)
    assert hi == pytest.approx(1.0) and 0.8 < lo < 0.9


def _bundle() -> dict:
    return {
        "name": "gemid-species", "version": "t1", "labels": ["Ruby", "Emerald", "Sapphire Blue"],
        "input": {"size": 224, "crop": {"margin": 0.12}}, "temperature": 0.7,
        "abstain": {"identified_min_prob": 0.9},
        "metrics": {"n_val": 200, "val_top1": 0.835, "val_top5": 0.99, "val_top1_int8": 0.84,
                    "int8_delta_top1": 0.005, "ece": 0.048, "ece_before_temperature": 0.116},
        "training": {"command": "gemid train --manifest m.csv --out runs/x", "export_command": None,
                     "manifest_sha256": "abc123", "args": {"freeze": 8, "cache_views": 8}},
        "files": {"fp32": {"path": "model.onnx", "sha256": "f" * 64}},
    }


def test_card_carries_the_measured_figures_and_commands(tmp_path):
    evaluation = {"n": 200, "confusions": [{"true": "Kyanite", "predicted": "Sapphire Blue", "count": 3,
                                            "of_true": 6}],
                  "per_class": [{"class": "Ruby", "f1": 0.5}, {"class": "Emerald", "f1": 0.9}]}
    text = render(_bundle(), evaluation)
    assert "83.5 %" in text and "99.0 %" in text and "4.8 %" in text and "11.6 %" in text
    lo, hi = wilson(0.835, 200)
    assert f"{100 * lo:.1f} %–{100 * hi:.1f} %" in text
    assert "gemid train --manifest m.csv --out runs/x" in text
    assert "| Kyanite | Sapphire Blue | 3 of 6 |" in text
    assert "Ruby (50 %)" in text
    assert "selected on validation" in text  # no last.pt in the export command: say the figures flatter

    bundle_dir, eval_dir = tmp_path / "b", tmp_path / "e"
    bundle_dir.mkdir()
    eval_dir.mkdir()
    (bundle_dir / "bundle.json").write_text(json.dumps(_bundle()))
    (eval_dir / "metrics.json").write_text(json.dumps(evaluation))
    card = write(bundle_dir, eval_dir / "metrics.json")
    assert card.read_text() == text
    assert (bundle_dir / "eval" / "metrics.json").is_file()


def test_a_class_without_predictions_renders_instead_of_crashing():
    """A class with no photo predicted as it has no F1 (None): the card is written, and the class is not
    called the weakest (it is unmeasured, not bad)."""
    evaluation = {"n": 200, "confusions": [],
                  "per_class": [{"class": "Ruby", "f1": 0.5}, {"class": "Benitoite", "f1": None},
                                {"class": "Emerald", "f1": 0.9}]}
    text = render(_bundle(), evaluation)
    assert "Ruby (50 %)" in text and "Benitoite" not in text.split("Weakest classes by F1:")[1].split("\n")[0]
