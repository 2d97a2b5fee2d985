"""The combined open-set score (issue 29): statistics from training features, weights and threshold from the
tuning non-gems only, and the runtime reading the fitted file back to the same numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gemid.training import familiarity_fit as ff
from gemid.vision.familiarity import Familiarity, outlier_logit

N_CLASSES, DIM = 4, 32


def _gems(n: int, rng: np.random.Generator) -> ff.Split:
    """Features clustered by class, logits that favour the class: a stand-in for a trained model's outputs."""
    y = rng.integers(0, N_CLASSES, n)
    centres = np.eye(N_CLASSES, DIM) * 6.0 + 1.0
    feats = centres[y] + rng.normal(0, 1.0, (n, DIM))
    logits = np.eye(N_CLASSES)[y] * 6.0 + rng.normal(0, 1.0, (n, N_CLASSES))
    return ff.Split(logits, np.abs(feats), y)


def _nongems(n: int, rng: np.random.Generator, shift: float = 0.0) -> ff.Split:
    """Unfamiliar features; a third of them with a confident logit (the plum called ruby)."""
    feats = np.abs(rng.normal(2.0 + shift, 2.0, (n, DIM)))
    logits = rng.normal(0, 1.0, (n, N_CLASSES))
    logits[: n // 3, 0] += 8.0
    return ff.Split(logits, feats)


def test_threshold_comes_from_the_tuning_set_not_the_report_set() -> None:
    rng = np.random.default_rng(0)
    train, tune = _gems(400, rng), _nongems(300, rng)
    spec, arrays, tuning = ff.fit(train, tune, 1.0, 0.9, N_CLASSES, target=0.01, dims=16, keep=0.99, outlier=False)
    fam = Familiarity(spec, arrays)
    # at most 1 % of the tuning non-gems are identified at the identify threshold, and it is the lowest such
    probs = np.exp(tune.logits) / np.exp(tune.logits).sum(axis=1, keepdims=True)
    confident = probs.max(axis=1) >= 0.9
    s = fam.score(tune.logits, tune.features, 1.0)
    gate = spec.identify_threshold
    assert gate is not None
    assert ((s >= gate) & confident).sum() <= 3
    assert gate == spec.threshold or ((s >= np.nextafter(gate, -np.inf) - 1e-9) & confident).sum() > 3
    # the rejection threshold keeps 99 % of the training photos (their distances measured out of sample)
    d_train = ff.train_distances(train.features, train.y, spec.method, spec.k, N_CLASSES, 16)
    from gemid.vision.familiarity import energy
    s_train = fam.combine(energy(train.logits, 1.0), d_train)
    assert 0.985 <= (s_train >= spec.threshold).mean() <= 0.995
    assert spec.identify_threshold is not None and spec.identify_threshold >= spec.threshold
    # the report set never enters: fitting again gives the same spec, whatever we report on afterwards
    report_a = ff.report(fam, 1.0, 0.9, _gems(100, rng), {"report": _nongems(200, rng, 1.0)}, 0.0)
    report_b = ff.report(fam, 1.0, 0.9, _gems(100, rng), {"report": _nongems(200, rng, -1.0)}, 0.0)
    assert report_a["report"]["combined"]["identified"] != report_b["report"]["combined"]["identified"]
    again, _, _ = ff.fit(train, tune, 1.0, 0.9, N_CLASSES, target=0.01, dims=16, outlier=False)
    assert again == spec
    # and a different tuning set moves the threshold
    other, _, _ = ff.fit(train, _nongems(300, np.random.default_rng(5), 1.5), 1.0, 0.9, N_CLASSES, target=0.01,
                         dims=16, outlier=False)
    assert other.threshold != spec.threshold
    assert tuning["n_tune"] == 300 and tuning["n_train"] == 400


def test_distance_separates_what_energy_cannot() -> None:
    rng = np.random.default_rng(1)
    train, tune = _gems(400, rng), _nongems(300, rng)
    spec, arrays, tuning = ff.fit(train, tune, 1.0, 0.9, N_CLASSES, dims=16, outlier=False)
    energy_only = max(c["auroc_tune"] for c in tuning["candidates"] if c["distance_weight"] == 0.0)
    best = max(c["auroc_tune"] for c in tuning["candidates"])
    assert spec.distance_weight > 0 and best > energy_only + 0.02
    fam = Familiarity(spec, arrays)
    val, ng = _gems(200, rng), _nongems(200, rng)
    res = ff.report(fam, 1.0, 0.9, val, {"report": ng}, energy_threshold=2.0)
    assert res["report"]["combined"]["auroc"] > res["report"]["energy"]["auroc"]


@pytest.mark.parametrize("method", ["knn", "mahalanobis"])
def test_runtime_reads_the_fitted_file(tmp_path, method: str) -> None:
    from gemid.vision.bundle import Bundle

    rng = np.random.default_rng(2)
    train = _gems(300, rng)
    arrays = ff.statistics(train.features, train.y, method, N_CLASSES, dims=8)
    spec = ff.write(tmp_path, ff._spec(method, 3, threshold=-1.0, feature_output={"fp32": "f"}), arrays)
    fam = Familiarity(spec, arrays)
    bundle = Bundle.model_validate({**json.loads(_bundle_json()), "familiarity": json.loads(spec.model_dump_json())})
    bundle.root = tmp_path
    loaded = Familiarity.load(bundle)
    assert loaded is not None
    ng = _nongems(50, rng)
    np.testing.assert_allclose(loaded.score(ng.logits, ng.features, 1.3), fam.score(ng.logits, ng.features, 1.3))
    assert bundle.open_set_threshold == -1.0
    (tmp_path / spec.path).write_bytes(b"changed")
    with pytest.raises(Exception, match="sha256"):
        Familiarity.load(bundle)


def _bundle_json() -> str:
    return json.dumps({"name": "t", "version": "1", "created_at": "now", "labels": ["a", "b", "c", "d"],
                       "input": {}, "abstain": {"energy_threshold": 0.0}, "files": {}})


def test_out_of_fold_energy_keeps_new_gems_the_in_sample_energy_turns_away() -> None:
    """The all-fold model is over-confident on its own photos; a threshold set on that energy rejects new gems.
    Given the out-of-fold energy (what a new photo gets), the threshold keeps 99 % of new gems again."""
    from gemid.vision.familiarity import energy

    rng = np.random.default_rng(3)
    train, tune = _gems(600, rng), _nongems(300, rng)
    new = _gems(600, np.random.default_rng(4))
    over = ff.Split(train.logits * 2.5, train.features, train.y)  # in-sample: the same photos, sharper logits
    e_new_like = energy(train.logits, 1.0)  # out-of-fold: as confident as on a photo it never saw
    spec_in, arr_in, tun_in = ff.fit(over, tune, 1.0, 0.9, N_CLASSES, dims=16, keep=0.99, outlier=False)
    spec_oof, arr_oof, tun_oof = ff.fit(over, tune, 1.0, 0.9, N_CLASSES, dims=16, keep=0.99, outlier=False,
                                        train_energy=e_new_like)
    assert tun_in["train_energy"] == "in-sample" and tun_oof["train_energy"] == "out-of-fold"

    def rejected(spec, arrays) -> float:
        return float((Familiarity(spec, arrays).score(new.logits, new.features, 1.0) < spec.threshold).mean())

    assert rejected(spec_oof, arr_oof) <= 0.03 < rejected(spec_in, arr_in)
    with pytest.raises(ValueError, match="one value per training photo"):
        ff.fit(over, tune, 1.0, 0.9, N_CLASSES, dims=16, train_energy=e_new_like[:10])


def test_oof_energy_matches_photos_by_species_folder_and_name(tmp_path) -> None:
    """oof.npz from a GPU machine names its photos under another root; the rows still line up, and a photo
    without an out-of-fold row is an error, not a silent zero."""
    from gemid.training.openset_cli import oof_energy
    from gemid.vision.familiarity import energy

    labels = ["Ruby", "Spinel"]
    logits = np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]], np.float32)
    np.savez(tmp_path / "oof.npz", logits=logits, classes=np.array(labels),
             paths=np.array(["/gpu/shared/Ruby/ruby_1.jpg", "/gpu/shared/Spinel/spinel_4.jpg",
                             "/gpu/shared/Ruby/ruby_2.jpg"]))
    got = oof_energy(tmp_path / "oof.npz", ["../../shared/Spinel/spinel_4.jpg", "/x/Ruby/ruby_1.jpg"], labels, 0.5)
    np.testing.assert_allclose(got, energy(logits[[1, 0]], 0.5), rtol=1e-6)
    with pytest.raises(ValueError, match="no out-of-fold logits"):
        oof_energy(tmp_path / "oof.npz", ["/x/Ruby/ruby_9.jpg"], labels, 0.5)
    with pytest.raises(ValueError, match="classes"):
        oof_energy(tmp_path / "oof.npz", ["/x/Ruby/ruby_1.jpg"], ["Spinel", "Ruby"], 0.5)


def _lookalikes(n: int, rng: np.random.Generator, session: float) -> ff.Split:
    """Non-gems that sit among the gems in distance and confidence (a studio plum next to the rubies) but
    differ along one feature direction the gems never take; `session` moves them a little, as a new photo
    session of the same kind of thing would."""
    g = _gems(n, rng)
    feats = g.features.copy()
    feats[:, -1] += 3.0 + session  # the last feature: what a regression can learn and a distance drowns
    return ff.Split(g.logits, feats)


def test_outlier_exposure_learns_what_the_distance_cannot_see() -> None:
    rng = np.random.default_rng(7)
    train = _gems(500, rng)
    a, b = _lookalikes(100, rng, 0.0), _lookalikes(100, rng, 0.5)  # two photo sessions of one kind
    tune = ff.Split(np.vstack([a.logits, b.logits]), np.vstack([a.features, b.features]))
    groups = np.array(["a"] * 100 + ["b"] * 100)
    val, report = _gems(300, rng), _lookalikes(300, rng, 0.25)  # a session nobody tuned on
    plain, arr_plain, _ = ff.fit(train, tune, 1.0, 0.9, N_CLASSES, dims=16, outlier=False)
    spec, arrays, tuning = ff.fit(train, tune, 1.0, 0.9, N_CLASSES, dims=16, tune_groups=groups)
    assert spec.outlier_weight > 0 and "by photo session" in tuning["outlier"]
    a_plain = ff.report(Familiarity(plain, arr_plain), 1.0, 0.9, val, {"r": report}, 0.0)["r"]["combined"]["auroc"]
    res = ff.report(Familiarity(spec, arrays), 1.0, 0.9, val, {"r": report}, 0.0)
    assert a_plain < 0.75 < 0.95 < res["r"]["combined"]["auroc"]
    assert res["r"]["combined"]["identified"] <= 0.02 and res["val"]["combined"]["rejected"] <= 0.05


def test_outlier_cross_fit_keeps_a_photo_session_whole() -> None:
    """A session's non-gems are scored by a regression that saw none of that session, so an odd session
    looks as new as it is (more gem-like) instead of being learnt from its own photos."""
    rng = np.random.default_rng(8)
    gems = _gems(300, rng).features
    usual = _lookalikes(200, rng, 0.0).features
    odd = _lookalikes(40, rng, 0.0).features
    odd[:, -2] += 4.0  # a second direction only this session takes
    nongems = np.vstack([usual, odd])
    groups = np.array(["usual"] * 200 + ["odd"] * 40)
    _, by_photo = ff.crossfit_outlier(gems, nongems)
    _, by_session = ff.crossfit_outlier(gems, nongems, nongem_groups=groups)
    assert by_session[200:].mean() > by_photo[200:].mean()  # unseen, the odd session looks less like a non-gem
    assert by_photo[200:].mean() < by_photo[:200].mean() + 1.0  # seen in its own folds, it was learnt as usual


def test_runtime_reads_the_outlier_regression_back(tmp_path) -> None:
    from gemid.errors import ModelError
    from gemid.vision.bundle import Bundle

    rng = np.random.default_rng(9)
    train, tune = _gems(300, rng), _lookalikes(200, rng, 0.0)
    spec, arrays, _ = ff.fit(train, tune, 1.0, 0.9, N_CLASSES, dims=16)
    assert spec.outlier_weight > 0 and {"outlier_w", "outlier_b", "outlier_mu", "outlier_sd"} <= set(arrays)
    spec = ff.write(tmp_path, spec.model_copy(update={"feature_output": {"fp32": "f"}}), arrays)
    bundle = Bundle.model_validate({**json.loads(_bundle_json()), "familiarity": json.loads(spec.model_dump_json())})
    bundle.root = tmp_path
    loaded = Familiarity.load(bundle)
    assert loaded is not None
    x = _lookalikes(20, rng, 0.0)
    np.testing.assert_allclose(loaded.outlier_logit(x.features), outlier_logit(arrays, x.features), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loaded.score(x.logits, x.features, 1.0), Familiarity(spec, arrays).score(
        x.logits, x.features, 1.0), rtol=1e-5)
    with pytest.raises(ModelError, match="outlier"):
        Familiarity(spec, {k: v for k, v in arrays.items() if not k.startswith("outlier_")})
