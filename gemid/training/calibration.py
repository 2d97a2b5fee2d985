"""Temperature scaling and calibration error.

A fine-tuned network's softmax is over-confident; one scalar temperature T (logits / T), fitted on
validation by minimising the negative log-likelihood, fixes most of it without changing any ranking
(Guo et al., 2017). Pure numpy: the notebook and tests use it without torch. ECE is measured with 15 equal-width confidence bins, the usual convention.
"""

from __future__ import annotations

import numpy as np

N_BINS = 15
T_MIN, T_MAX = 0.05, 20.0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    from gemid.vision.classify import softmax as runtime_softmax  # the runtime's arithmetic, not a copy

    return runtime_softmax(logits, temperature)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    p = softmax(logits, temperature)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], 1e-300, None))))


def _nll_slope(z: np.ndarray, y: np.ndarray, beta: float) -> float:
    """d NLL / d beta for softmax(beta * z): mean over images of E_p[z] - z_true (non-decreasing in beta)."""
    p = softmax(z, 1.0 / beta)
    return float(np.mean((p * z).sum(axis=1) - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, iters: int = 80) -> float:
    """T minimising the NLL of softmax(logits / T) on (validation) logits.

    With beta = 1/T the NLL is convex (log-sum-exp of a linear function minus a linear one), so its
    slope is monotone and bisection on log beta finds the global minimum exactly — no optimiser state,
    no step size, float64 numpy. T is kept within [T_MIN, T_MAX] (the bound is hit only on separable data).
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.int64)
    if len(y) == 0:
        raise ValueError("cannot fit a temperature on zero validation images")
    lo, hi = np.log(1.0 / T_MAX), np.log(1.0 / T_MIN)
    if _nll_slope(z, y, np.exp(lo)) >= 0:  # NLL already rising at the smallest beta: hottest allowed T
        return T_MAX
    if _nll_slope(z, y, np.exp(hi)) <= 0:  # still falling at the largest beta: data separable, coldest T
        return T_MIN
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if _nll_slope(z, y, np.exp(mid)) > 0:
            hi = mid
        else:
            lo = mid
    return float(1.0 / np.exp(0.5 * (lo + hi)))


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> dict[str, list]:
    """Per confidence bin: count, mean confidence, accuracy (bins with no images have count 0)."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count, mean_conf, acc = [], [], []
    for b in range(n_bins):
        sel = idx == b
        n = int(sel.sum())
        count.append(n)
        mean_conf.append(float(conf[sel].mean()) if n else 0.0)
        acc.append(float(correct[sel].mean()) if n else 0.0)
    return {"edges": edges.tolist(), "count": count, "confidence": mean_conf, "accuracy": acc}


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error: Σ_b (n_b / N) · |accuracy_b − confidence_b| over top-1 confidence bins."""
    if len(labels) == 0:
        return 0.0
    r = reliability(probs, labels, n_bins)
    n = float(len(labels))
    return float(sum(c / n * abs(a - m) for c, a, m in zip(r["count"], r["accuracy"], r["confidence"], strict=True)))


def cross_validated_ece(logits: np.ndarray, labels: np.ndarray, folds: int = 2, seed: int = 0) -> float:
    """ECE with T fitted on the other folds: an honest figure, since the in-sample ECE uses T fitted on itself."""
    n = len(labels)
    if n < 2 * folds:
        return ece(softmax(logits, fit_temperature(logits, labels)), labels)
    order = np.random.default_rng(seed).permutation(n)
    probs = np.zeros((n, logits.shape[1]))
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        probs[test] = softmax(logits[test], fit_temperature(logits[train], labels[train]))
    return ece(probs, labels)
