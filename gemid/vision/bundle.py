"""The model bundle: `bundle.json` next to `model.onnx` / `model.int8.onnx`.

Written by `gemid export` (training side), read here by the runtime. One schema for both, so the
preprocessing the model was trained with is exactly what inference applies.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from gemid.errors import ModelError

MODEL_CARD = "MODEL_CARD.md"  # every bundle ships its card: what it was trained on, what it scores, where it fails
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"  # the bundles a source checkout ships
DEFAULT_BUNDLE_DIR = MODELS_DIR / "gemid-species"


class CropPolicy(BaseModel):
    policy: Literal["stone_square", "full_image"] = "stone_square"
    margin: float = Field(0.12, description="extra border around the stone's box, as a fraction of its side")


class InputSpec(BaseModel):
    size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    colour: Literal["RGB"] = "RGB"
    layout: Literal["NCHW"] = "NCHW"
    crop: CropPolicy = CropPolicy()
    photometric: Literal["none", "grader"] = Field(
        "none", description="'grader': the crop is white-balanced and exposure-normalised by the colour grader's "
                            "estimate of the light (gemid.vision.photometric) before the model sees it")


class AbstainPolicy(BaseModel):
    """Thresholds chosen on validation (+ non-gem images) by `gemid evaluate`."""

    energy_threshold: float = Field(description="below this logsumexp(logits/T) the photo is rejected as unfamiliar")
    identified_min_prob: float = Field(0.5, description="top-1 calibrated probability needed for 'identified'")
    identified_min_margin: float = Field(0.0, description="top-1 minus top-2 needed for 'identified'")


class FamiliaritySpec(BaseModel):
    """The open-set score that combines energy and feature distance (`gemid.vision.familiarity`), written by
    `gemid openset fit`: statistics from training photos, weights and threshold from tuning non-gems."""

    path: str = Field(description="the .npz of fitted statistics, next to bundle.json")
    sha256: str
    feature_output: dict[str, str] = Field(description="variant (fp32, int8) -> the graph output with the "
                                                        "global-pool features")
    method: Literal["knn", "mahalanobis"]
    k: int = 1
    energy_weight: float
    distance_weight: float
    energy_mean: float
    energy_std: float
    distance_mean: float
    distance_std: float
    outlier_weight: float = Field(0.0, description="weight of the gem-vs-non-gem logit (0: not used)")
    outlier_mean: float = 0.0
    outlier_std: float = 1.0
    threshold: float = Field(description="below this combined score the photo is rejected as unfamiliar")
    identify_threshold: float | None = Field(
        None, description="below this (and above `threshold`) the answer is at most 'uncertain': familiar "
                                   "enough to list candidates, not enough to name a species")
    fitted: dict = Field(default_factory=dict, description="what the statistics and the threshold were fitted on")


class OnnxFile(BaseModel):
    path: str
    sha256: str


class Bundle(BaseModel):
    name: str
    version: str
    created_at: str
    labels: list[str]
    input: InputSpec
    temperature: float = 1.0
    abstain: AbstainPolicy
    metrics: dict = Field(default_factory=dict)
    training: dict = Field(default_factory=dict)
    files: dict[str, OnnxFile] = Field(description="variant name (fp32, int8) -> file")
    heads: dict[str, list[str]] = Field(
        default_factory=dict,
        description="extra learned outputs (e.g. colour_grade, clarity_grade) -> their class names",
    )

    familiarity: FamiliaritySpec | None = Field(
        None, description="combined energy + feature-distance open-set score; None: the energy alone")

    # set by load(), not serialised
    root: Path | None = Field(None, exclude=True)

    @property
    def trained_on_every_photo(self) -> bool:
        """The all-fold model of `gemid train --cv` trained on every photo of its manifest, so none of those
        photos (any split of any gems68 manifest) measures it out of sample; a fold's model (`--cv-fold I`)
        did not train on its fold."""
        args = self.training.get("args") or {}
        return bool(args.get("cv")) and args.get("cv_fold") is None

    def in_sample_note(self) -> str | None:
        """What a benchmark on gems68 photos prints first when this model trained on all of them."""
        if not self.trained_on_every_photo:
            return None
        return (f"warning: {self.name} {self.version} trained on every gems68 photo (the all-fold model of "
                "`gemid train --cv`): figures on gems68 photos are in-sample, not held out. Measure the same "
                "recipe's fold model instead: --bundle runs/gems68-lite0-cv-fold0/bundle --manifest "
                "data/gems68-k5.csv --split fold0 (scripts/train-species-cv.sh makes it)")

    @property
    def open_set_threshold(self) -> float:
        """Below this `open_set_score` a photo is rejected: the familiarity threshold when the bundle has one."""
        return self.familiarity.threshold if self.familiarity is not None else self.abstain.energy_threshold

    def onnx_path(self, variant: str = "fp32") -> Path:
        if variant not in self.files:
            raise ModelError(f"bundle {self.name} has no '{variant}' model (has: {', '.join(self.files)})")
        assert self.root is not None
        return self.root / self.files[variant].path


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_bundle(directory: Path | str = DEFAULT_BUNDLE_DIR, *, verify: bool = True) -> Bundle:
    """Read bundle.json; with verify, refuse ONNX files whose sha256 differs from the record."""
    root = Path(directory)
    meta = root / "bundle.json"
    if not meta.is_file():
        raise ModelError(f"no model bundle at {root} (bundle.json missing); name the folder of one with --model "
                         "(gemid identify) or GEMID_MODEL_DIR / --model-dir (gemid serve); the repository ships "
                         "models/gemid-species")
    try:
        bundle = Bundle.model_validate(json.loads(meta.read_text()))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{meta} is not a valid bundle: {exc}") from exc
    bundle.root = root
    if not (root / MODEL_CARD).is_file():
        raise ModelError(f"bundle {bundle.name} at {root} has no {MODEL_CARD}: a model without its card (what it "
                         "was trained on, what it scores, where it fails) is not served; export it again with "
                         "gemid export")
    if verify:
        for variant, entry in bundle.files.items():
            path = root / entry.path
            if not path.is_file():
                raise ModelError(f"bundle {bundle.name}: {variant} model {path} is missing")
            actual = sha256_file(path)
            if actual != entry.sha256:
                raise ModelError(f"bundle {bundle.name}: {path.name} sha256 {actual[:12]}… does not match "
                                 f"the recorded {entry.sha256[:12]}…; refusing an altered model")
    return bundle
