"""Species with ONNX Runtime: calibrated probabilities, top-k, an open-set score, and a decision.

One `InferenceSession` per classifier, shared by every caller (ONNX Runtime's `run` is thread-safe), so a
service answering from a thread pool holds the model in memory once. The decision uses the bundle's
thresholds, chosen on validation by `gemid evaluate`: below the open-set threshold the photo is rejected
as unfamiliar; a low or contested top-1 is `uncertain`; otherwise `identified`. The open-set score is the
energy of the logits, or, when the bundle has a fitted `familiarity` (`gemid openset fit`), the energy
combined with the distance of the photo's global-pool features to the training photos' and a gem-vs-non-gem
logit of the same features (`gemid.vision.familiarity`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from gemid.errors import ModelError
from gemid.messages import percent
from gemid.report import Candidate, Decision, ModelInfo, Quality, SpeciesResult
from gemid.vision.bundle import Bundle
from gemid.vision.crop import stone_crop
from gemid.vision.familiarity import Familiarity
from gemid.vision.photometric import light_for, normalise
from gemid.vision.segment import Segmentation
from gemid.vision.stone_area import StoneArea

# the report always lists at least ten candidates (fewer only if the model knows fewer): readings re-rank them,
# and labels beyond them share the photo's leftover probability equally, so five left a blue benitoite as likely
# as an almandine for a red stone's RI; bench_readings (seed 0/1/2), 5 -> 10: genuine stones referred 2.8/2.8/2.9
# -> 2.1/2.0/2.3 %, simulants referred and look-alikes named unchanged, photo + RI 95.3/95.3/95.2 ->
# 95.4/95.5/95.3 %
MIN_TOP_K = 10
MAX_BATCH = 16  # crops per session.run: bounds memory for a parcel of hundreds of photos

# Photo-quality problems that make a confident species answer unsafe even when the model is sure:
# the crop may hold several stones, or whatever the model saw was not a separated stone.
_DOWNGRADE = {
    "several_stones": "several stones are in the photo",
    "no_stone": "no stone could be separated from the background",
}


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime options for every gemid session (species model, inclusion map, export checks).

    No spin-waiting between runs: on a 2-core desk PC or a service thread pool the spinning threads
    steal the CPU that decoding, segmentation and grading need (measured: 2x slower model runs and a 6x
    slower PyTorch eager next to an idle-spinning session on a busy 2-core machine)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads) if threads else 0  # 0: ONNX Runtime picks (physical cores)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, clipped so that large logits neither overflow nor warn."""
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Temperature-scaled softmax over the last axis (float64 for stable small probabilities)."""
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def open_set_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Energy score logsumexp(logits / T) (bundle.py's definition): higher means more familiar."""
    z = np.asarray(logits, np.float64) / float(temperature)
    m = z.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]


@dataclass(frozen=True)
class Prediction:
    logits: np.ndarray  # (C,) raw
    probs: np.ndarray  # (C,) temperature-scaled, sums to 1
    score: float  # open-set score: energy, or energy combined with feature distance (higher: more familiar)
    heads: dict[str, np.ndarray] = field(default_factory=dict)  # extra learned head -> class probabilities


class SpeciesClassifier:
    """The bundle's ONNX model behind one shared session; `predict` takes stone crops, batched."""

    def __init__(self, bundle: Bundle, variant: str = "fp32", threads: int | None = None, *,
                 session: bool = True) -> None:
        """session=False: everything but `run`/`predict` (labels, crops, decisions) without loading the model,
        for a process that never classifies (a service's server process, whose workers do)."""
        self.bundle = bundle
        self.variant = variant
        self.session: Any = None
        self.familiarity = Familiarity.load(bundle)
        self._features: str | None = None
        self._mean = np.array(bundle.input.mean, np.float32)
        self._std = np.array(bundle.input.std, np.float32)
        levels = np.arange(256, dtype=np.uint8)[:, None].astype(np.float32)
        self._lut = np.ascontiguousarray(((levels * (1.0 / 255.0) - self._mean) / self._std).T)  # (3, 256)
        if session:
            self._open(threads)

    def _open(self, threads: int | None) -> None:
        import onnxruntime as ort

        path = self.bundle.onnx_path(self.variant)
        try:
            self.session = ort.InferenceSession(os.fspath(path), session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load {path}: {exc}") from exc

        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{path.name}: expected one image input, found {len(inputs)}")
        self._input = inputs[0].name
        batch_dim = inputs[0].shape[0] if inputs[0].shape else None
        self._max_batch = 1 if batch_dim == 1 else MAX_BATCH
        outs = [o.name for o in self.session.get_outputs()]
        self._logits = "logits" if "logits" in outs else outs[0]
        self._heads = [name for name in self.bundle.heads if name in outs]
        if self.familiarity is not None:
            self._features = self.familiarity.spec.feature_output.get(self.variant)
            if self._features not in outs:
                raise ModelError(f"{path.name} has no feature output '{self._features}' that the bundle's familiarity "
                                 "score needs; run gemid openset fit again")
        n_out = self.session.get_outputs()[outs.index(self._logits)].shape[-1]
        if isinstance(n_out, int) and n_out != len(self.bundle.labels):
            raise ModelError(f"{path.name} outputs {n_out} classes but the bundle lists {len(self.bundle.labels)} labels")

    @property
    def labels(self) -> list[str]:
        return self.bundle.labels

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo(name=self.bundle.name, version=self.bundle.version,
                         sha256=self.bundle.files[self.variant].sha256, variant=self.variant)  # type: ignore[arg-type]

    def crop(self, rgb: np.ndarray, seg: Segmentation | None) -> np.ndarray:
        """The model's view of a photo, per the bundle's crop policy (the same function training used)."""
        spec = self.bundle.input
        if spec.crop.policy == "full_image":
            return stone_crop(rgb, None, margin=0.0, size=spec.size)
        return stone_crop(rgb, seg, margin=spec.crop.margin, size=spec.size)

    def view(self, rgb: np.ndarray, seg: Segmentation, area: StoneArea | None = None) -> np.ndarray:
        """What the model classifies: the crop, after the photometric front end when the bundle asks for it
        (`area`: the photo's `locate`, when the caller has it)."""
        return self.front_end(self.crop(rgb, seg), rgb, seg, area)

    def front_end(self, crop: np.ndarray, rgb: np.ndarray, seg: Segmentation,
                  area: StoneArea | None = None) -> np.ndarray:
        """`crop` white-balanced and exposure-normalised by the light estimated on the photo `rgb` it was cut
        from, when the bundle's input asks for it (`photometric: grader`); else the crop itself."""
        if self.bundle.input.photometric == "grader":
            return normalise(crop, light_for(rgb, seg, area))
        return crop

    def preprocess(self, crop: np.ndarray) -> np.ndarray:
        """uint8 RGB crop (H, W, 3) → float32 (3, S, S): resized, (x/255 - mean) / std."""
        size = self.bundle.input.size
        if crop.shape[:2] != (size, size):
            interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
            crop = cv2.resize(crop, (size, size), interpolation=interp)
        # (x/255 - mean) / std for each of the 256 values, per channel, gathered plane by plane into CHW: the same
        # float32 numbers as computing it per pixel, without the float image and the transposing copy
        out = np.empty((3, size, size), np.float32)
        for c in range(3):
            np.take(self._lut[c], crop[..., c], out=out[c])
        return out

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Raw logits (N, C) and head outputs for a preprocessed batch (N, 3, S, S)."""
        logits, heads, _ = self.run_all(batch)
        return logits, heads

    def run_all(self, batch: np.ndarray, *, features: str | None = None
                ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
        """Raw logits (N, C), head outputs and the global-pool features (None when the graph does not expose
        them) for a preprocessed batch (N, 3, S, S). `features` names the feature output (default: the
        bundle's)."""
        if self.session is None:
            raise RuntimeError("this classifier was built without its model session (session=False)")
        feat_name = features or self._features
        logits, heads, feats = [], {h: [] for h in self._heads}, []
        names = [self._logits, *self._heads, *([feat_name] if feat_name else [])]
        for i in range(0, len(batch), self._max_batch):
            outs = self.session.run(names, {self._input: batch[i : i + self._max_batch]})
            logits.append(outs[0])
            for h, o in zip(self._heads, outs[1 : 1 + len(self._heads)], strict=True):
                heads[h].append(o)
            if feat_name:
                feats.append(outs[-1].reshape(len(outs[0]), -1))
        return (np.concatenate(logits), {h: np.concatenate(v) for h, v in heads.items()},
                np.concatenate(feats) if feat_name else None)

    def predict(self, crops: Sequence[np.ndarray]) -> list[Prediction]:
        """One Prediction per uint8 crop, in order."""
        if not crops:
            return []
        batch = np.stack([self.preprocess(c) for c in crops])
        logits, heads, feats = self.run_all(batch)
        t = self.bundle.temperature
        probs = softmax(logits, t)
        if self.familiarity is not None and feats is not None:
            scores = self.familiarity.score(logits, feats, t)
        else:
            scores = open_set_score(logits, t)
        head_probs = {h: softmax(v) for h, v in heads.items()}
        return [
            Prediction(logits=logits[i], probs=probs[i], score=float(scores[i]),
                       heads={h: v[i] for h, v in head_probs.items()})
            for i in range(len(crops))
        ]

    def result(self, pred: Prediction, quality: Quality | None = None, *, top_k: int = MIN_TOP_K,
               poor_photo: str | None = None) -> SpeciesResult:
        """The report's `species` section for one prediction."""
        return species_result(pred, self.bundle, quality, top_k=top_k, poor_photo=poor_photo)


def top_candidates(probs: np.ndarray, labels: Sequence[str], k: int = MIN_TOP_K) -> list[Candidate]:
    k = min(len(labels), max(k, MIN_TOP_K))
    order = np.argsort(-probs, kind="stable")[:k]
    return [Candidate(label=labels[i], probability=float(min(1.0, max(0.0, round(float(probs[i]), 6)))))
            for i in order]


def species_result(pred: Prediction, bundle: Bundle, quality: Quality | None = None, *, top_k: int = MIN_TOP_K,
                   poor_photo: str | None = None) -> SpeciesResult:
    """Decide identified / uncertain / rejected, and say why in plain words."""
    top = top_candidates(pred.probs, bundle.labels, top_k)
    decision, reason = decide(pred.probs, pred.score, bundle, quality, poor_photo=poor_photo)
    return SpeciesResult(decision=decision, reason=reason, top=top, open_set_score=round(pred.score, 4))


def decide(probs: np.ndarray, score: float, bundle: Bundle, quality: Quality | None = None,
           *, poor_photo: str | None = None) -> tuple[Decision, str]:
    """The bundle's abstain policy (same rule as `gemid.training.openset.decisions`), then photo quality."""
    policy = bundle.abstain
    if poor_photo:
        return "rejected", f"The photo is too poor to judge: {poor_photo}. Photograph the stone again."
    threshold = bundle.open_set_threshold
    if score < threshold:
        return "rejected", (
            f"This does not look like any of the {len(bundle.labels)} gemstone species the model knows "
            f"(familiarity score {score:.2f}, below {threshold:.2f}): it may not be a gemstone, "
            "or it is a species, simulant or treatment the model was not taught. Refer it for full testing."
        )
    order = np.argsort(-np.asarray(probs), kind="stable")
    p1 = float(probs[order[0]])
    p2 = float(probs[order[1]]) if len(order) > 1 else 0.0
    first = bundle.labels[order[0]]
    second = bundle.labels[order[1]] if len(order) > 1 else None
    also = f"; {second} ({percent(p2)}) is also possible" if second else ""
    if p1 < policy.identified_min_prob:
        if policy.identified_min_prob > 1.0:  # evaluation found no confidence level precise enough
            return "uncertain", (f"Most likely {first} ({percent(p1)}){also}. This model never names a species on "
                                 "the photo alone; use the recommended tests to decide.")
        return "uncertain", (f"Most likely {first} ({percent(p1)}), but not confidently (needs "
                             f"{policy.identified_min_prob:.0%}){also}. Use the recommended tests to decide.")
    if p1 - p2 < policy.identified_min_margin:
        return "uncertain", (
            f"{first} ({percent(p1)}) and {second} ({percent(p2)}) are too close to call. Use the recommended tests to decide."
        )
    fam = bundle.familiarity
    if fam is not None and fam.identify_threshold is not None and score < fam.identify_threshold:
        return "uncertain", (
            f"Most likely {first} ({percent(p1)}), but the photo looks less like the model's training photos than a "
            f"named species needs (familiarity {score:.2f}, below {fam.identify_threshold:.2f}){also}. Use the "
            "recommended tests to decide."
        )
    codes = {w.code for w in quality.warnings} if quality is not None else set()
    problems = [text for code, text in _DOWNGRADE.items() if code in codes]
    if problems:
        return "uncertain", (
            f"The model says {first} ({percent(p1)}), but {' and '.join(problems)}, so the answer may not be about "
            "one stone. Photograph one stone alone on a plain background."
        )
    return "identified", f"{first} ({percent(p1)} probability). Preliminary: confirm with standard gemmological tests."
