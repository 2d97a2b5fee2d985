"""Inclusion map: a small fully convolutional network that marks inclusion pixels in the normalised stone.

The hand-made candidate features of `gemid.vision.clarity` cannot always tell a small inclusion from a
piece of the facet pattern around it: that takes the pattern's context (facet edges that run on, the
symmetry of the cut), which a convolutional network sees. The network (`data/clarity_net.onnx`, a
four-level U-Net, 116k weights) is trained on rendered stones whose inclusion pixels are known
(`python -m bench.bench_grading fit`, seeds disjoint from the benchmark's), and runs on ONNX Runtime like
the species model: no torch at run time.

Input: the normalised crop of `clarity.analyse` (stone diameter NORM_DIAMETER pixels) as six planes
(RGB, L, the signed area-filter residual, the measured core); output: P(inclusion) per pixel.
"""

from __future__ import annotations

import os
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from gemid.vision.classify import session_options, sigmoid

INPUT_NAME, OUTPUT_NAME = "planes", "logit"
CHANNELS = 6
MULTIPLE = 8  # the network pools three times: sides are padded to a multiple of 8
RESIDUAL_SCALE = 25.0  # L* units

__all__ = ["InclusionNet", "net_inputs", "shipped", "shipped_path"]


def net_inputs(image: np.ndarray, core: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """The network's input planes (float32, CHANNELS x H x W) from the normalised crop (RGB uint8), its core
    mask and the signed residual (L* units). Shared by training and run time, so both see the same planes."""
    rgb = image.astype(np.float32) / 255.0
    lum = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32) / 255.0
    res = np.clip(residual.astype(np.float32), -50.0, 50.0) / RESIDUAL_SCALE
    return np.concatenate([rgb.transpose(2, 0, 1) - 0.5, lum[None] - 0.5, res[None], core[None].astype(np.float32)], 0)


class InclusionNet:
    """One ONNX Runtime session for the inclusion map (`run` is thread-safe, so callers share it)."""

    def __init__(self, path: Path | str, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.session = ort.InferenceSession(os.fspath(self.path), session_options(threads), providers=["CPUExecutionProvider"])

    @cached_property
    def sha256(self) -> str:
        """Of the ONNX file (the clarity model records the network it was fitted with)."""
        from gemid.vision.bundle import sha256_file

        return sha256_file(self.path)

    def predict(self, planes: np.ndarray) -> np.ndarray:
        """P(inclusion) per pixel (float32, H x W) for one stone's input planes."""
        _, h, w = planes.shape
        x = np.pad(planes, ((0, 0), (0, (-h) % MULTIPLE), (0, (-w) % MULTIPLE)))[None]
        logit = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, np.float32)})[0][0, 0, :h, :w]
        return sigmoid(logit).astype(np.float32)


def shipped_path() -> Path:
    return Path(os.fspath(resources.files("gemid.vision").joinpath("data/clarity_net.onnx")))


@lru_cache(maxsize=1)
def shipped() -> InclusionNet:
    """The network that ships with gemid (one session per process)."""
    return InclusionNet(shipped_path())
