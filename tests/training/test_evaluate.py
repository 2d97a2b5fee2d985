"""`gemid evaluate`: calibration, open-set threshold, abstain policy, and the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gemid.training import calibration as cal
from gemid.training import openset
from gemid.training.evaluate import (
    MIN_PER_CLASS,
    MIN_PHOTOS,
    confusion_matrix,
    per_class,
    summarize,
    top_confusions,
    topk,
    validation_warnings,
)


def _calibrated_logits(n: int = 4000, c: int = 12, seed: int = 0):
    """Logits whose softmax is calibrated by construction: labels are drawn from softmax(logits)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.5, (n, c))
    p = cal.softmax(z)
    y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return z, y


@pytest.mark.parametrize("true_t", [0.5, 2.0])
def test_temperature_is_recovered_and_ece_drops(true_t):
    z, y = _calibrated_logits()
    skewed = z / true_t  # over-confident for T < 1 … divide by the right T to undo it
    t = cal.fit_temperature(skewed, y)
    assert t == pytest.approx(1.0 / true_t, rel=0.06)
    before, after = cal.ece(cal.softmax(skewed), y), cal.ece(cal.softmax(skewed, t), y)
    assert before > 0.08 and after < 0.03 and after < before / 3
    assert cal.nll(skewed, y, t) < cal.nll(skewed, y, 1.0)
    assert cal.cross_validated_ece(skewed, y) < 0.04


def test_temperature_bounds_on_separable_data():
    y = np.arange(20) % 4
    z = np.eye(4)[y] * 50.0  # every answer right with a huge margin: NLL keeps falling as T → 0
    assert cal.fit_temperature(z, y) == cal.T_MIN


def test_ece_of_known_bins():
    probs = np.array([[0.9, 0.1]] * 10)
    y = np.array([0] * 6 + [1] * 4)  # 90 % confident, 60 % right
    assert cal.ece(probs, y) == pytest.approx(0.3)
    rel = cal.reliability(probs, y)
    assert sum(rel["count"]) == 10 and len(rel["count"]) == cal.N_BINS


@pytest.mark.parametrize("keep", [0.9, 0.95, 0.99])
def test_energy_threshold_keeps_the_requested_fraction(keep):
    s = np.random.default_rng(3).normal(5, 2, 997)
    thr = openset.energy_threshold(s, keep)
    assert (s >= thr).mean() >= keep
    assert (s > thr).mean() < keep  # the largest such threshold: one notch higher keeps too few


def test_min_prob_reaches_target_precision_or_identifies_nothing():
    rng = np.random.default_rng(0)
    p1 = rng.uniform(0.3, 1.0, 2000)
    correct = rng.random(2000) < p1  # calibrated: right with probability p1
    t = openset.min_prob_for_precision(p1, correct, 0.95)
    sel = p1 >= t
    assert correct[sel].mean() >= 0.95 and 0.5 <= t < 1.0
    assert correct[p1 >= t - 0.1].mean() < 0.95  # it is not needlessly strict
    assert openset.min_prob_for_precision(p1, np.zeros(2000, bool), 0.95) > 1.0


def test_auroc_matches_pairwise_count():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1, 1, 60), np.round(rng.normal(0, 1, 40), 1)
    pos[:5] = neg[:5]  # ties count half
    brute = np.mean([(a > b) + 0.5 * (a == b) for a in pos for b in neg])
    assert openset.auroc(pos, neg) == pytest.approx(brute)


def test_open_set_score_is_the_runtimes():
    from gemid.vision.classify import open_set_score

    z = np.random.default_rng(2).normal(0, 3, (5, 7))
    for t in (0.7, 1.0, 1.8):
        expected = np.log(np.exp(z / t).sum(1))
        np.testing.assert_allclose(openset.open_set_score(z, t), expected)
        np.testing.assert_allclose(open_set_score(z, t), expected)


def test_summary_figures_on_synthetic_logits():
    z, y = _calibrated_logits(n=1500, c=6, seed=5)
    classes = [f"c{i}" for i in range(6)]
    non_gem = np.random.default_rng(6).normal(-4, 0.3, (80, 6))  # low, flat logits: low energy
    m = summarize(z * 2.0, y, classes, non_gem)
    pred = z.argmax(1)
    assert m["top1"] == pytest.approx((pred == y).mean())
    assert m["top5"] >= m["top3"] >= m["top1"]
    assert m["calibration"]["temperature"] == pytest.approx(2.0, rel=0.08)
    assert m["calibration"]["ece_after"] < m["calibration"]["ece_before"]
    o, a = m["open_set"], m["abstain"]
    assert o["val_correct_rejected"] <= 0.05 + 1e-9 and o["non_gem_rejected"] > 0.8
    assert a["identified_precision"] >= 0.95 and 0 < a["coverage"] < 1
    assert a["coverage"] + a["uncertain"] + a["rejected"] == pytest.approx(1.0)
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == len(y) and np.trace(cm) == (pred == y).sum()


def test_per_class_and_confusions():
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 1, 0])
    cm = confusion_matrix(y, pred, 3)
    pc = per_class(cm, ["a", "b", "c"])
    assert pc[0]["precision"] == 0.5 and pc[0]["recall"] == pytest.approx(1 / 3)
    assert pc[1]["precision"] == 0.5 and pc[1]["recall"] == 1.0
    assert pc[2]["precision"] is None and pc[2]["recall"] == 0.0 and pc[2]["f1"] is None
    conf = top_confusions(cm, ["a", "b", "c"])
    assert conf[0] == {"true": "a", "predicted": "b", "count": 2, "of_true": 3}
    assert topk(np.eye(3)[pred], y, 1) == pytest.approx(0.5)


def test_non_gem_set_is_varied_and_local():
    images = openset.non_gem_images()
    names = [im.name for im in images]
    assert len(images) >= 150
    assert any(n.startswith("skimage:chelsea.png") for n in names)
    assert any(n.startswith("matplotlib:grace_hopper.jpg") for n in names)
    assert sum(n.startswith("rendered:") for n in names) == openset.N_RENDERED
    assert all(im.rgb.dtype == np.uint8 and im.rgb.ndim == 3 and im.rgb.shape[2] == 3 for im in images)
    assert [im.name for im in openset.non_gem_images()] == names  # same set every time
    crops = openset.runtime_crops(images[:5], 48, 0.12)
    assert crops.shape == (5, 48, 48, 3)


# --- warnings: a split too small for its figures, a temperature that made calibration worse ----------------------

def _summary(n_per_class: int, classes: int = 4, seed: int = 0) -> dict:
    """`summarize` on calibrated logits with `n_per_class` photos of each class."""
    z, _ = _calibrated_logits(n=n_per_class * classes, c=classes, seed=seed)
    y = np.repeat(np.arange(classes), n_per_class)
    z[np.arange(len(y)), y] += 3.0  # mostly right, as a trained model
    return summarize(z, y, [f"c{i}" for i in range(classes)], np.zeros((0, classes))) | {"split": "val"}


def test_no_warning_for_a_split_large_enough():
    m = _summary(40)  # 160 photos, 40 per class
    assert m["n"] >= MIN_PHOTOS and m["calibration"]["ece_after"] <= m["calibration"]["ece_before"]
    assert validation_warnings(m) == []


def test_a_small_split_warns_with_the_uncertainty_of_top1():
    from gemid.training.model_card import wilson

    m = _summary(12)  # 48 photos: enough per class, too few overall
    w = {x["code"]: x["message"] for x in validation_warnings(m)}
    assert set(w) >= {"small_validation_set"} and "few_photos_per_class" not in w
    lo, hi = wilson(m["top1"], 48)
    assert f"only 48 val photos (fewer than {MIN_PHOTOS})" in w["small_validation_set"]
    assert f"in {lo * 100:.1f}–{hi * 100:.1f} % (95 % interval, {(hi - lo) * 100:.1f} points wide)" in \
        w["small_validation_set"]


def test_classes_with_too_few_photos_are_named():
    m = _summary(40)
    m["per_class"][2]["support"], m["per_class"][3]["support"] = MIN_PER_CLASS - 1, 0
    w = {x["code"]: x["message"] for x in validation_warnings(m)}
    assert set(w) == {"few_photos_per_class"}
    assert f"2 of 4 classes have fewer than {MIN_PER_CLASS} val photos: c2 ({MIN_PER_CLASS - 1}), c3 (0)" in \
        w["few_photos_per_class"]
    assert "a class with none is not measured at all" in w["few_photos_per_class"]


def test_a_temperature_that_makes_ece_worse_is_reported():
    """Top-1 probabilities calibrated by construction (80 % sure, 80 % right: ECE 0), but every miss lands on
    the least likely class: the NLL fit heats T to spare those misses and the top-1 becomes under-confident."""
    n = 600
    z = np.tile(np.log([0.8, 0.19, 0.01]), (n, 1))
    y = np.where(np.arange(n) % 5 == 4, 2, 0)  # 80 % class 0, the rest the 1 % class
    m = summarize(z, y, ["a", "b", "c"], np.zeros((0, 3))) | {"split": "val"}
    c = m["calibration"]
    assert c["temperature"] > 1.5 and c["ece_before"] < 1e-9 < 0.1 < c["ece_after"]
    w = {x["code"]: x["message"] for x in validation_warnings(m)}
    assert set(w) == {"calibration_worse", "few_photos_per_class"}  # class b has no photo at all
    assert "made calibration worse than none: ECE 0.0 % uncalibrated" in w["calibration_worse"]
    assert "fitted on this split" in w["calibration_worse"] and "2-fold cross-fitted" in w["calibration_worse"]


# --- the command on a small trained model -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from model_fixture import tiny_run

    return tiny_run(tmp_path_factory.getbasetemp())


def test_evaluate_writes_consistent_outputs(run):
    from model_fixture import LABELS

    out = run["eval"]
    for name in ("metrics.json", "predictions.npz", "confusion_matrix.png", "reliability.png", "open_set.png",
                 "summary.txt"):
        assert (out / name).is_file() and (out / name).stat().st_size > 100, name
    m = json.loads((out / "metrics.json").read_text())
    with np.load(out / "predictions.npz") as z:
        probs, labels, classes, paths = z["probs"], z["labels"], list(z["classes"]), list(z["paths"])
        logits, scores = z["logits"], z["scores"]
    assert classes == LABELS == m["classes"]
    assert probs.shape == (m["n"], len(LABELS)) == logits.shape and len(paths) == m["n"] == 16
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert m["top1"] == pytest.approx((probs.argmax(1) == labels).mean()) and m["top1"] >= 0.9
    np.testing.assert_allclose(scores, openset.open_set_score(logits.astype(np.float64),
                                                              m["calibration"]["temperature"]), rtol=1e-5)
    assert m["open_set"]["n_non_gem"] >= 150 and m["open_set"]["non_gem_rejected"] > 0.5
    assert m["checkpoint"]["sha256"] and m["manifest"]["same_as_training"] is True
    assert m["heads"]["clarity_grade"] == {"n": 0}  # the drawn stones carry no clarity grades
    assert m["abstain"]["energy_threshold"] == m["open_set"]["energy_threshold"]


def test_evaluate_is_deterministic(run, tmp_path, monkeypatch):
    from gemid.training.evaluate import evaluate

    monkeypatch.setenv("GEMID_CACHE_DIR", str(run["cache"]))
    evaluate(run["checkpoint"], tmp_path, progress=False)
    first = json.loads((run["eval"] / "metrics.json").read_text())
    again = json.loads((tmp_path / "metrics.json").read_text())
    first.pop("command"), again.pop("command")
    assert again == first
    with np.load(run["eval"] / "predictions.npz") as a, np.load(tmp_path / "predictions.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_evaluate_cli_errors_are_clear(run, tmp_path, capsys):
    from gemid.cli import main

    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["evaluate", "--checkpoint", str(bad), "--out", str(tmp_path)]) == 2
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(run["checkpoint"]), "--manifest", str(run["manifest"]),
                 "--split", "test", "--out", str(tmp_path)]) == 2
    assert "no rows with split=test" in capsys.readouterr().err


def test_evaluate_says_it_needs_the_train_extra_without_torch(tmp_path):
    """On a runtime-only install (`make serve`) `gemid evaluate` names the missing extra, exit 2, no traceback."""
    import subprocess
    import sys
    import textwrap

    code = f"""
        import sys
        sys.modules["torch"] = None  # `import torch` now fails, as on a runtime-only install
        from gemid.cli import main
        rc = main(["evaluate", "--checkpoint", "x.pt", "--out", {str(tmp_path / "out")!r}])
        assert rc == 2, rc
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "needs the training extra (torch is missing)" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_evaluate_warns_on_stderr_and_in_its_json(run, tmp_path, monkeypatch, capsys):
    """The drawn-stone run has 16 validation photos, 4 per class: too few for its figures, and it says so."""
    from gemid.cli import main

    monkeypatch.setenv("GEMID_CACHE_DIR", str(run["cache"]))
    assert main(["evaluate", "--checkpoint", str(run["checkpoint"]), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    m = json.loads((tmp_path / "metrics.json").read_text())
    codes = [w["code"] for w in m["warnings"]]
    assert codes[:2] == ["small_validation_set", "few_photos_per_class"]
    for w in m["warnings"]:
        assert f"WARNING: {w['message']}" in err.splitlines()
        assert f"WARNING: {w['message']}" in (tmp_path / "summary.txt").read_text()
    assert "only 16 val photos (fewer than 100)" in err
    assert "4 of 4 classes have fewer than 5 val photos" in err


def test_evaluate_knows_the_training_manifest_in_its_relative_form(run, tmp_path, monkeypatch):
    """A model trained before manifests held relative paths records the old rendering's hash; the same rows
    re-imported are still its training manifest (no 'manifest changed' warning), another hash still is not."""
    import torch
    from model_fixture import moved_manifest

    from gemid.training.evaluate import evaluate

    monkeypatch.setenv("GEMID_CACHE_DIR", str(run["cache"]))
    moved, legacy = moved_manifest(run, tmp_path)
    ckpt = torch.load(run["checkpoint"], map_location="cpu", weights_only=False)
    ckpt["manifest_sha256"] = legacy  # trained on the rows as the old writer wrote them
    torch.save(ckpt, tmp_path / "old.pt")
    m = evaluate(tmp_path / "old.pt", tmp_path / "eval", manifest=moved, progress=False)
    assert m["manifest"]["same_as_training"] is True
    assert "manifest_changed" not in [w["code"] for w in m["warnings"]]
    ckpt["manifest_sha256"] = "0" * 64  # another manifest altogether: still flagged
    torch.save(ckpt, tmp_path / "other.pt")
    m = evaluate(tmp_path / "other.pt", tmp_path / "eval2", manifest=moved, progress=False)
    assert m["manifest"]["same_as_training"] is False and m["warnings"][0]["code"] == "manifest_changed"
