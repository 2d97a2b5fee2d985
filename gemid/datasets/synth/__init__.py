"""Synthetic loose stones with known ground truth: the test bed for colour and clarity grading.

No public photo set carries colour or clarity grades, so the estimators are proven on stones whose truth we
set ourselves. A `StoneSpec` is the truth (`spec`), `render` turns it into an RGB photo and a stone mask,
deterministically for a given seed (`render`, on the outlines and facets of `geometry`), `random_spec`
draws plausible ones (`sampling`), and `render_dataset` writes a folder a trainer can read (`dataset`).
`gemid dataset synth` (in `gemid.datasets.cli`) is that last one on the command line.

Top-level imports stay light (numpy, no OpenCV): `gemid --help` imports this package.
"""

from gemid.datasets.synth.dataset import render_dataset
from gemid.datasets.synth.render import inclusion_truth, render
from gemid.datasets.synth.sampling import random_background, random_inclusions, random_lab, random_spec
from gemid.datasets.synth.spec import (
    BACKGROUNDS,
    CARD_LAB,
    CARDS,
    CUTS,
    INCLUSION_KINDS,
    InclusionSpec,
    StoneSpec,
    spec_from_json,
    spec_json,
    truth,
)

__all__ = [
    "BACKGROUNDS", "CARDS", "CARD_LAB", "CUTS", "INCLUSION_KINDS", "InclusionSpec", "StoneSpec", "inclusion_truth",
    "random_background", "random_inclusions", "random_lab", "random_spec", "render", "render_dataset",
    "spec_from_json", "spec_json", "truth",
]
