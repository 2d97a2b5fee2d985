"""Fitting the combined open-set score (`gemid.vision.familiarity`): statistics from training photos, the
combination and the threshold from *tuning* non-gems, figures on a *report* set nobody tuned on.

Pure numpy on arrays the caller computed (logits and global-pool features through the runtime's own crop),
so the rules can be tested without photos:

- the feature statistics (PCA, the kNN bank or class means and shared covariance) come from the training
  photos' features only;
- the method and the weight of the distance are chosen by AUROC between the training photos and the tuning
  non-gems, the training photos' distances measured out of sample (kNN: leave-one-out, each photo's own
  row excluded; Mahalanobis: 5-fold cross-fitted class means and covariance), so that a method that
  memorises the training photos does not look better than it is. Their energy is in-sample (the model
  was trained on them), which flatters the energy: the more epochs, the more. With `train_energy` (the
  energy of out-of-fold logits, `gemid openset fit --oof`: each photo predicted by a model of the same
  recipe that did not train on it) the standardisation, the choice and the rejection threshold see the
  energy a new photo will have instead;
- outlier exposure: a logistic regression on the features, the training photos against the *tuning* non-gems,
  whose logit is a third term of the score when it helps (its weight is chosen with the others). Every
  choice and threshold sees cross-fitted logits (`crossfit_outlier`: no photo scored by a regression that saw
  it); the runtime's regression is then fitted on all of them;
- two thresholds. *Rejected* below `threshold`: the score that keeps `keep` (99 %) of the training photos
  (cross-fitted distances), so that gems are not turned away much more often than by the energy alone.
  *Identified* only from `identify_threshold` up: the lowest score at which at most `target` of the tuning
  non-gems would be "identified" (with a top-1 probability the abstain rule accepts); between the two the
  answer is "uncertain" (candidates listed, no species named);
- `report` measures on the validation photos and the report non-gems, which `fit` never sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gemid.stats import wilson
from gemid.training.openset import auroc
from gemid.vision.bundle import FamiliaritySpec
from gemid.vision.classify import softmax
from gemid.vision.familiarity import Familiarity, energy, outlier_logit

PCA_DIMS = 128
CANDIDATES: tuple[tuple[str, int], ...] = (("knn", 1), ("knn", 5), ("mahalanobis", 1))
DISTANCE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, None)  # None: the distance alone
DEFAULT_TARGET = 0.005  # tuning non-gems "identified" at most this share (the target on the report set: 1 %)
DEFAULT_KEEP = 0.99  # training photos kept above the rejection threshold
OUTLIER_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)  # weight of the gem-vs-non-gem logit (outlier exposure)
OUTLIER_L2 = 1e-2  # the logistic regression's L2 strength, fixed up front (nothing reported chose it)
OUTLIER_STEPS = 1500
OUTLIER_FOLDS = 5


@dataclass
class Split:
    """Logits (N, C) and features (N, D) of one set of images; labels for gems (-1 for non-gems)."""

    logits: np.ndarray
    features: np.ndarray
    y: np.ndarray | None = None


def statistics(features: np.ndarray, y: np.ndarray, method: str, n_classes: int, dims: int = PCA_DIMS,
               ) -> dict[str, np.ndarray]:
    """PCA and the bank (knn) or class means + shared precision (mahalanobis), from training features."""
    f = np.asarray(features, np.float64)
    if method == "knn":
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-6)
    mean = f.mean(axis=0)
    _, _, vt = np.linalg.svd(f - mean, full_matrices=False)
    comps = vt[: min(dims, vt.shape[0])].T
    z = (f - mean) @ comps
    out = {"mean": mean.astype(np.float16), "components": comps.astype(np.float16)}
    if method == "knn":
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-6)
        out["bank"] = z.astype(np.float16)
    else:
        means = np.stack([z[y == c].mean(axis=0) if (y == c).any() else np.zeros(z.shape[1])
                          for c in range(n_classes)])
        resid = z - means[y]
        cov = resid.T @ resid / max(1, len(z) - n_classes) + 1e-6 * np.eye(z.shape[1])
        out["class_means"] = means.astype(np.float32)
        out["precision"] = np.linalg.inv(cov).astype(np.float32)
    return out


def train_distances(features: np.ndarray, y: np.ndarray, method: str, k: int, n_classes: int, dims: int,
                    folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each training photo's distance measured without itself: leave-one-out for kNN, K-fold for Mahalanobis."""
    if method == "knn":
        fam = Familiarity(_spec(method, k), statistics(features, y, method, n_classes, dims))
        return fam.distance(features, exclude_self=True)
    fold = np.random.default_rng(seed).permutation(len(features)) % folds
    out = np.empty(len(features))
    for f in range(folds):
        fam = Familiarity(_spec(method, k), statistics(features[fold != f], y[fold != f], method, n_classes, dims))
        out[fold == f] = fam.distance(features[fold == f])
    return out


def _spec(method: str, k: int, **kw: Any) -> FamiliaritySpec:
    base = {"path": "familiarity.npz", "sha256": "", "feature_output": {}, "method": method, "k": k,
            "energy_weight": 1.0, "distance_weight": 1.0, "energy_mean": 0.0, "energy_std": 1.0,
            "distance_mean": 0.0, "distance_std": 1.0, "threshold": 0.0}
    return FamiliaritySpec(**{**base, **kw})


def lowest_threshold(scores: np.ndarray, would_identify: np.ndarray, target: float) -> float:
    """The lowest threshold at which at most floor(target * n) of these non-gems score at or above it among
    those the probability rule would call identified (the runtime rejects `score < threshold`)."""
    q = np.sort(np.asarray(scores, np.float64)[np.asarray(would_identify, bool)])[::-1]
    allowed = int(np.floor(target * len(scores) + 1e-9))
    if len(q) <= allowed:
        return float("-inf")
    return float(np.nextafter(q[allowed], np.inf))


def fit_outlier(gems: np.ndarray, nongems: np.ndarray, l2: float = OUTLIER_L2,
                steps: int = OUTLIER_STEPS) -> dict[str, np.ndarray]:
    """Outlier exposure: a logistic regression on the features, gem photos (1) against non-gems (0), the two
    sides weighted equally; full-batch gradient descent on features standardised by the gems' spread."""
    g, n = np.asarray(gems, np.float64), np.asarray(nongems, np.float64)
    mu, sd = g.mean(axis=0), g.std(axis=0) + 1e-6
    x = (np.vstack([g, n]) - mu) / sd
    y = np.r_[np.ones(len(g)), np.zeros(len(n))]
    sw = np.where(y == 1, 0.5 / len(g), 0.5 / len(n))
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w + b, -30, 30)))
        r = (p - y) * sw
        w -= 0.5 * (x.T @ r + l2 * w)
        b -= 0.5 * float(r.sum())
    return {"outlier_mu": mu.astype(np.float32), "outlier_sd": sd.astype(np.float32),
            "outlier_w": w.astype(np.float32), "outlier_b": np.array(b, np.float32)}


def crossfit_outlier(gems: np.ndarray, nongems: np.ndarray, folds: int = OUTLIER_FOLDS, seed: int = 0,
                     nongem_groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each photo's outlier logit from a regression that did not see it (K folds over both sides), so that
    choosing the weights and setting the thresholds on these photos does not flatter the regression.

    nongem_groups: the non-gems' photo sessions; a session then falls in one fold whole (largest first, each
    into the emptiest fold), so a non-gem is scored by a regression that saw nothing of its session, as a
    non-gem of a kind nobody tuned on will be."""
    rng = np.random.default_rng(seed)
    fg, fn = rng.permutation(len(gems)) % folds, rng.permutation(len(nongems)) % folds
    if nongem_groups is not None:
        names, counts = np.unique(np.asarray(nongem_groups), return_counts=True)
        load = np.zeros(folds)
        for i in np.argsort(-counts, kind="stable"):
            f = int(load.argmin())
            fn[np.asarray(nongem_groups) == names[i]] = f
            load[f] += counts[i]
    og, on = np.empty(len(gems)), np.empty(len(nongems))
    for f in range(folds):
        arrays = fit_outlier(gems[fg != f], nongems[fn != f])
        og[fg == f], on[fn == f] = outlier_logit(arrays, gems[fg == f]), outlier_logit(arrays, nongems[fn == f])
    return og, on


def fit(train: Split, tune: Split, temperature: float, min_prob: float, n_classes: int, *,
        target: float = DEFAULT_TARGET, dims: int = PCA_DIMS, keep: float = DEFAULT_KEEP,
        train_energy: np.ndarray | None = None, outlier: bool = True, tune_groups: np.ndarray | None = None,
        ) -> tuple[FamiliaritySpec, dict[str, np.ndarray], dict]:
    """(spec without file fields, arrays for the .npz, the candidates' tuning figures). Only `train` (gem
    photos, labelled), `tune` (non-gems) and `train_energy` (the training photos' energy measured out of
    sample, if known; else that of `train.logits`) are read."""
    assert train.y is not None
    e_train = energy(train.logits, temperature) if train_energy is None else np.asarray(train_energy, np.float64)
    if e_train.shape != (len(train.logits),):
        raise ValueError("train_energy needs one value per training photo")
    e_tune = energy(tune.logits, temperature)
    # the outlier logits every choice below sees are cross-fitted; the runtime's regression is fitted on all
    o_train, o_tune = (crossfit_outlier(train.features, tune.features, nongem_groups=tune_groups) if outlier
                       else (np.zeros(len(train.logits)), np.zeros(len(tune.logits))))
    o_stats = {"outlier_mean": float(o_train.mean()), "outlier_std": float(o_train.std() + 1e-9)}
    tried: list[dict[str, Any]] = []
    best: tuple[float, FamiliaritySpec, dict[str, np.ndarray], np.ndarray, np.ndarray] | None = None
    for method, k in CANDIDATES:
        arrays = statistics(train.features, train.y, method, n_classes, dims)
        fam = Familiarity(_spec(method, k), arrays)
        d_train = train_distances(train.features, train.y, method, k, n_classes, dims)
        d_tune = fam.distance(tune.features)
        stats = {"energy_mean": float(e_train.mean()), "energy_std": float(e_train.std() + 1e-9),
                 "distance_mean": float(d_train.mean()), "distance_std": float(d_train.std() + 1e-9)}
        for w in DISTANCE_WEIGHTS:
            we, wd = (0.0, 1.0) if w is None else (1.0, float(w))
            for wo in OUTLIER_WEIGHTS if outlier else (0.0,):
                spec = _spec(method, k, energy_weight=we, distance_weight=wd, outlier_weight=wo, **stats, **o_stats)
                fam.spec = spec
                s_tr, s_tu = fam.combine(e_train, d_train, o_train), fam.combine(e_tune, d_tune, o_tune)
                a = auroc(s_tr, s_tu)
                tried.append({"method": method, "k": k, "energy_weight": we, "distance_weight": wd,
                              "outlier_weight": wo, "auroc_tune": a})
                if best is None or a > best[0]:
                    best = (a, spec, arrays, s_tr, s_tu)
    assert best is not None
    _, spec, arrays, s_train, s_tune = best
    if spec.outlier_weight:
        arrays = {**arrays, **fit_outlier(train.features, tune.features)}
    reject = float(np.quantile(s_train, 1.0 - keep))
    gate = lowest_threshold(s_tune, softmax(tune.logits, temperature).max(axis=1) >= min_prob, target)
    spec = spec.model_copy(update={"threshold": reject, "identify_threshold": max(reject, gate)})
    return spec, arrays, {"candidates": tried, "target_identified_tune": target, "keep_train": keep,
                          "train_energy": "in-sample" if train_energy is None else "out-of-fold",
                          "outlier": (f"logistic regression, L2 {OUTLIER_L2}, scores {OUTLIER_FOLDS}-fold cross-fitted "
                                      "for the choice and the thresholds"
                                      + (", non-gems by photo session" if tune_groups is not None else ""))
                          if outlier else "not used",
                          "n_train": int(len(train.logits)),
                          "n_tune": int(len(tune.logits))}


def rates(scores: np.ndarray, probs: np.ndarray, threshold: float, min_prob: float,
          identify_threshold: float = float("-inf"), correct: np.ndarray | None = None) -> dict[str, Any]:
    """Rejected and identified shares (with 95 % Wilson intervals) under the runtime's rule."""
    from gemid.training.openset import decisions

    dec = decisions(probs, scores, threshold, min_prob)
    dec[(dec == "identified") & (np.asarray(scores) < identify_threshold)] = "uncertain"
    n = len(dec)
    out: dict[str, Any] = {"n": n}
    for name in ("rejected", "identified"):
        p = float((dec == name).mean()) if n else float("nan")
        out[name] = p
        out[f"{name}_ci"] = wilson(p, n)
    if correct is not None:
        ident = dec == "identified"
        out["identified_precision"] = float(np.asarray(correct)[ident].mean()) if ident.any() else None
    return out


def report(fam: Familiarity, temperature: float, min_prob: float, val: Split, sets: dict[str, Split],
           energy_threshold: float) -> dict[str, Any]:
    """Figures on sets `fit` never saw: AUROC val vs each non-gem set, identified / rejected rates, and the same
    for the energy score alone at the bundle's energy threshold (the baseline)."""
    e_val = energy(val.logits, temperature)
    p_val = softmax(val.logits, temperature)
    s_val = fam.score(val.logits, val.features, temperature)
    spec = fam.spec
    ok = val.logits.argmax(axis=1) == val.y if val.y is not None else None
    gate = spec.identify_threshold if spec.identify_threshold is not None else float("-inf")
    out: dict[str, Any] = {"val": {"combined": rates(s_val, p_val, spec.threshold, min_prob, gate, ok),
                                   "energy": rates(e_val, p_val, energy_threshold, min_prob, correct=ok),
                                   "auroc_note": "val is the gem side of every AUROC below"}}
    for name, ng in sets.items():
        e, p = energy(ng.logits, temperature), softmax(ng.logits, temperature)
        s = fam.score(ng.logits, ng.features, temperature)
        out[name] = {"combined": {**rates(s, p, spec.threshold, min_prob, gate),
                                  "auroc": auroc(s_val, s)},
                     "energy": {**rates(e, p, energy_threshold, min_prob), "auroc": auroc(e_val, e)}}
    return out


def write(bundle_dir: Path, spec: FamiliaritySpec, arrays: dict[str, np.ndarray]) -> FamiliaritySpec:
    """familiarity.npz next to bundle.json; returns the spec with its file name and sha256."""
    from gemid.vision.bundle import sha256_file

    path = bundle_dir / "familiarity.npz"
    np.savez_compressed(path, **arrays)
    return spec.model_copy(update={"path": path.name, "sha256": sha256_file(path)})


def expose_features(onnx_path: Path) -> str:
    """Make the classifier's input (the global-pool features) a graph output; returns its name. Idempotent.

    The Gemm that produces the logits (directly, or through the int8 graph's Quantize/Dequantize pair) takes
    the pooled features as its first input: that tensor becomes an extra output, nothing else changes."""
    import onnx

    model = onnx.load(str(onnx_path))
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    node = producer.get("logits")
    while node is not None and node.op_type in ("DequantizeLinear", "QuantizeLinear"):
        node = producer.get(node.input[0])
    if node is None or node.op_type != "Gemm":
        raise ValueError(f"{onnx_path.name}: no Gemm produces the logits")
    name = node.input[0]
    if name not in {o.name for o in g.output}:
        width = None
        for init in g.initializer:
            if init.name == node.input[1]:
                width = int(init.dims[1])
        if width is None:  # int8: the weight comes through a DequantizeLinear of an initializer
            w = producer.get(node.input[1])
            for init in g.initializer:
                if w is not None and init.name == w.input[0]:
                    width = int(init.dims[1])
        g.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", width or "D"]))
        onnx.save(model, str(onnx_path))
    return name
