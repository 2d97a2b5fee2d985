"""Evaluation figures (matplotlib, Agg backend: no display needed on a lab server or in CI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(cm: np.ndarray, classes: list[str], path: Path | str, title: str = "") -> Path:
    """Row-normalised confusion matrix (true rows, predicted columns), every class named and readable.

    Sized to the number of classes (68 classes → ~17 in at 150 dpi, 6-pt labels); off-diagonal cells
    with any errors carry their count so the common confusions stand out.
    """
    plt = _plt()
    n = len(classes)
    side = max(5.0, 0.25 * n + 2.0)
    font = 6 if n > 30 else 8
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=np.float64), where=rows > 0)
    fig, ax = plt.subplots(figsize=(side, side * 0.92))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(n), classes, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if cm[i, j] and i != j:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=font - 1, color="crimson")
    ax.set_title(title or "Confusion matrix (row-normalised; red: error counts)")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return Path(path)


def reliability_png(before: dict, after: dict, ece_before: float, ece_after: float, temperature: float,
                    path: Path | str) -> Path:
    """Reliability diagrams before and after temperature scaling, with the share of images per bin."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharey=True)
    for ax, rel, ece_v, title in ((axes[0], before, ece_before, "uncalibrated (T = 1)"),
                                  (axes[1], after, ece_after, f"temperature T = {temperature:.3f}")):
        edges = np.asarray(rel["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        width = edges[1] - edges[0]
        count = np.asarray(rel["count"], dtype=np.float64)
        has = count > 0
        acc, conf = np.asarray(rel["accuracy"])[has], np.asarray(rel["confidence"])[has]
        ax.bar(centres[has], acc, width=width * 0.95, color="#4477aa", edgecolor="black", label="accuracy")
        ax.bar(centres[has], np.abs(conf - acc), bottom=np.minimum(acc, conf), width=width * 0.95, color="none",
               edgecolor="#cc3311", hatch="///", lw=0.8, label="gap to mean confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        share = count / max(1.0, count.sum())
        ax.step(edges[:-1], share, where="post", color="grey", lw=1, label="share of images")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("top-1 confidence")
        ax.set_title(f"{title}\nECE {ece_v * 100:.2f} %")
    axes[0].set_ylabel("accuracy")
    axes[1].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def energy_png(groups: dict[str, np.ndarray], threshold: float, path: Path | str) -> Path:
    """Histograms of the open-set score per group, with the chosen threshold."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    allv = np.concatenate([v for v in groups.values() if len(v)]) if groups else np.zeros(1)
    bins = np.linspace(float(allv.min()) - 0.5, float(allv.max()) + 0.5, 50)
    for name, v in groups.items():
        if len(v):
            ax.hist(v, bins=bins, alpha=0.5, density=True, label=f"{name} (n={len(v)})")
    ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("energy score logsumexp(logits / T)  (higher = more familiar)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
