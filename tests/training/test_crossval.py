"""`gemid train --cv` → `gemid evaluate --oof` → `gemid export`: out-of-fold figures, one shipped model.

Drawn stones (no ../shared), a real EfficientNet-Lite0 at 64 px, a few steps: the code paths, not accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from model_fixture import LABELS, write_stones  # noqa: E402

from gemid.cli import main  # noqa: E402
from gemid.datasets.manifest import read_manifest, write_manifest  # noqa: E402
from gemid.datasets.splits import assign_splits  # noqa: E402

TRAIN = ["--input-size", "64", "--epochs", "1", "--cache-views", "2", "--freeze", "12", "--batch-size", "8",
         "--workers", "2", "--threads", "2", "--quiet", "--seed", "3"]


@pytest.fixture(scope="module")
def cv(tmp_path_factory):
    import os

    base = tmp_path_factory.mktemp("cv")
    os.environ["GEMID_CACHE_DIR"] = str(base / "cache")
    plain = read_manifest(write_stones(base / "stones", n_train=5, n_val=4))
    folds = base / "stones" / "folds.csv"
    write_manifest(assign_splits(list(plain.rows), kfold=3, fold=None, seed=0), folds, root=plain.root)
    assert main(["train", "--manifest", str(folds), "--cv", "--out", str(base / "run"), *TRAIN]) == 0
    yield {"base": base, "manifest": folds, "run": base / "run"}
    os.environ.pop("GEMID_CACHE_DIR", None)


def test_every_photo_is_predicted_once_by_the_model_of_its_own_fold(cv):
    z = np.load(cv["run"] / "oof.npz")
    rows = read_manifest(cv["manifest"]).rows
    assert len(z["logits"]) == len(rows) == 36
    assert list(z["fold_names"]) == ["fold0", "fold1", "fold2"]
    assert sorted(z["folds"].tolist()) == sorted(int(r.split[4:]) for r in rows)
    assert np.isfinite(z["logits"]).all() and np.abs(z["logits"]).sum(axis=1).min() > 0

    # fold 1 trained alone (as on another machine) gives the same held-out predictions: they came from a model
    # that trained on folds 0 and 2 only
    one = cv["base"] / "fold1"
    assert main(["train", "--manifest", str(cv["manifest"]), "--cv", "--cv-fold", "1", "--out", str(one), *TRAIN]) == 0
    single = np.load(one / "oof-fold1.npz")
    np.testing.assert_allclose(single["logits"], z["logits"][z["folds"] == 1], atol=1e-4)
    assert (one / "fold1.pt").is_file() and not (one / "last.pt").exists()


def test_evaluate_fits_on_the_out_of_fold_predictions_and_export_ships_the_all_fold_model(cv, capsys):
    ev = cv["base"] / "eval"
    assert main(["evaluate", "--checkpoint", str(cv["run"] / "last.pt"), "--oof", str(cv["run"] / "oof.npz"),
                 "--out", str(ev)]) == 0
    m = json.loads((ev / "metrics.json").read_text())
    z = np.load(cv["run"] / "oof.npz")
    assert m["split"] == "oof" and m["n"] == 36 and m["classes"] == LABELS
    assert m["top1"] == pytest.approx(float((z["logits"].argmax(1) == z["labels"]).mean()))
    assert [f["n"] for f in m["cross_validation"]["per_fold"]] == [int((z["folds"] == k).sum()) for k in range(3)]
    assert "only 36 oof photos" in capsys.readouterr().err  # too few to act on, and it says so

    bundle = cv["base"] / "bundle"
    assert main(["export", "--checkpoint", str(cv["run"] / "last.pt"), "--eval", str(ev), "--out", str(bundle),
                 "--calib-images", "8"]) == 0
    b = json.loads((bundle / "bundle.json").read_text())
    assert b["metrics"]["split"] == "oof" and b["metrics"]["val_top1"] == pytest.approx(m["top1"])
    assert "int8_top1_agreement_training_photos" in b["metrics"] and "val_top1_int8" not in b["metrics"]
    assert b["temperature"] == pytest.approx(m["calibration"]["temperature"])
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "out-of-fold" in card and "--kfold 3 --fold all" in card  # the card reproduces the run's own folds

    from gemid.vision.bundle import load_bundle

    exported = load_bundle(bundle, verify=True)
    assert exported.labels == LABELS
    # it trained on every photo, so a benchmark on them says first that its figures are in-sample
    assert exported.trained_on_every_photo and "in-sample" in (exported.in_sample_note() or "")


def test_cv_refuses_a_manifest_without_folds(cv, tmp_path, capsys):
    plain = write_stones(tmp_path / "s", n_train=2, n_val=1)
    assert main(["train", "--manifest", str(plain), "--cv", "--out", str(tmp_path / "r"), *TRAIN]) == 2
    assert "--kfold 5 --fold all" in capsys.readouterr().err
