"""How familiar a photo looks to the species model: the energy of its logits combined with how far its
penultimate features lie from the training photos'.

The energy score alone (logsumexp of the logits) is high for anything that excites one class strongly,
which a studio plum does for "ruby": rejection by energy reached AUROC ~0.89 on held-back non-gems. A
distance in feature space asks instead whether any *training photo* looked like this one, and fails
differently, so the two together separate better. The model's graphs expose the global-pool features as
an extra output (`gemid openset fit` adds it); the bundle's `familiarity.npz` holds what the distance
needs, fitted on training photos only:

- `knn`: the cosine distance to the k-th nearest training photo, in a PCA-reduced, re-normalised space;
- `mahalanobis`: the smallest class-conditional Mahalanobis distance (shared covariance) in PCA space.

A third term, when fitted (`outlier_weight` > 0), is *outlier exposure*: a logistic regression on the same
features, gem photos against non-gem photos shown to it (the tuning non-gems of `gemid openset fit`: fruit,
cutlery, beads, marbles...), whose logit says how gem-like a photo is. A distance only knows the gems; this
term also knows what a studio plum looks like, and on held-back non-gems it separates best (issue 29).

The combined score is `w_e * z(energy) - w_d * z(distance) + w_o * z(outlier logit)`, each standardised by
its mean and spread on the training photos, so it is always a number and higher means more familiar
(`species.open_set_score`).
"""

from __future__ import annotations

import numpy as np

from gemid.errors import ModelError
from gemid.vision.bundle import Bundle, FamiliaritySpec, sha256_file


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """logsumexp(logits / T): higher means more familiar."""
    z = np.asarray(logits, np.float64) / float(temperature)
    m = z.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]


OUTLIER_KEYS = ("outlier_mu", "outlier_sd", "outlier_w", "outlier_b")  # the regression in familiarity.npz


def outlier_logit(arrays: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """The gem-vs-non-gem logistic regression's logit (higher: more like the gem photos), in float64: the
    runtime and the fit (`gemid.training.familiarity_fit`) compute it with this one function."""
    f = np.asarray(features, np.float64)
    f = f.reshape(len(f), -1) if f.ndim > 2 else f  # (N, D); a (N, D, 1, 1) pool output flattened
    return ((f - arrays["outlier_mu"]) / arrays["outlier_sd"]) @ np.asarray(arrays["outlier_w"], np.float64) + float(
        arrays["outlier_b"])


class Familiarity:
    """The fitted statistics of a bundle's familiarity.npz, and the combined score."""

    def __init__(self, spec: FamiliaritySpec, arrays: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self.mean = arrays["mean"].astype(np.float32)
        self.components = arrays["components"].astype(np.float32)
        self.bank = arrays.get("bank")
        self.class_means = arrays.get("class_means")
        self.precision = arrays.get("precision")
        if self.bank is not None:
            self.bank = self.bank.astype(np.float32)
        if self.class_means is not None:
            self.class_means = self.class_means.astype(np.float32)
            self.precision = np.asarray(self.precision, np.float32)
        self.outlier = {k: np.asarray(arrays[k], np.float64) for k in OUTLIER_KEYS} if "outlier_w" in arrays else None
        if spec.outlier_weight and self.outlier is None:
            raise ModelError("the familiarity spec weighs an outlier logit that familiarity.npz does not hold")

    @classmethod
    def load(cls, bundle: Bundle, *, verify: bool = True) -> Familiarity | None:
        spec = bundle.familiarity
        if spec is None:
            return None
        assert bundle.root is not None
        path = bundle.root / spec.path
        if not path.is_file():
            raise ModelError(f"bundle {bundle.name}: {spec.path} is missing")
        if verify and sha256_file(path) != spec.sha256:
            raise ModelError(f"bundle {bundle.name}: {spec.path} does not match its recorded sha256")
        with np.load(path) as z:
            return cls(spec, {k: z[k] for k in z.files})

    def project(self, features: np.ndarray) -> np.ndarray:
        f = np.asarray(features, np.float32).reshape(len(features), -1)
        if self.spec.method == "knn":
            f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-6)
        z = (f - self.mean) @ self.components
        if self.spec.method == "knn":
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-6)
        return z

    def distance(self, features: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
        """Distance of each photo's features to the training photos (larger: less familiar).

        exclude_self: the features are the bank's own rows, in order (leave-one-out, for fitting)."""
        z = self.project(features)
        if self.spec.method == "knn":
            assert self.bank is not None
            sims = z @ self.bank.T
            if exclude_self:
                np.fill_diagonal(sims, -np.inf)
            k = min(self.spec.k, sims.shape[1])
            kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
            return (1.0 - kth).astype(np.float64)
        assert self.class_means is not None and self.precision is not None
        diff = z[:, None, :] - self.class_means[None, :, :]
        d2 = np.einsum("ncd,de,nce->nc", diff, self.precision, diff)
        return np.sqrt(np.maximum(d2.min(axis=1), 0.0)).astype(np.float64)

    def outlier_logit(self, features: np.ndarray) -> np.ndarray:
        """The gem-vs-non-gem logistic regression's logit (higher: more like the gem photos)."""
        return np.zeros(len(features)) if self.outlier is None else outlier_logit(self.outlier, features)

    def combine(self, energies: np.ndarray, distances: np.ndarray, outliers: np.ndarray | None = None) -> np.ndarray:
        s = self.spec
        ze = (np.asarray(energies, np.float64) - s.energy_mean) / s.energy_std
        zd = (np.asarray(distances, np.float64) - s.distance_mean) / s.distance_std
        out = s.energy_weight * ze - s.distance_weight * zd
        if s.outlier_weight:
            if outliers is None:
                raise ValueError("this familiarity score needs the outlier logits")
            out = out + s.outlier_weight * (np.asarray(outliers, np.float64) - s.outlier_mean) / s.outlier_std
        return out

    def score(self, logits: np.ndarray, features: np.ndarray, temperature: float) -> np.ndarray:
        """The combined familiarity score per photo (higher: more familiar)."""
        o = self.outlier_logit(features) if self.spec.outlier_weight else None
        return self.combine(energy(logits, temperature), self.distance(features), o)
