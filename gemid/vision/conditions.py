"""Capture conditions, simulated: how the same stone looks under a desk lamp, one stop under, small in a big
frame, blurred, noisy, rotated or on a grey desk. One home for the definitions, so that the robustness
benchmark (`bench/bench_robustness.py`), the colour benchmark (issue 27's `bench/bench_colour_real.py`) and
the training augmentation all mean the same thing by "a 3500 K lamp".

**Light** is simulated the way a camera white-balanced for D65 records another light: in linear light
(decode sRGB, multiply per channel, encode to 8 bits), with the gains of the lamp's white on linear sRGB
(its largest channel 1, so a white that was at the sensor's limit stays there in that channel). A
Planckian lamp at 3500 K gives gains R 1.00, G 0.571, B 0.259; 7500 K shade 0.828, 0.842, 1.00.
Exposure is a factor on linear light (one stop under: x 0.5).

**Geometry and sensor** conditions use the stone's segmentation on the clean photo (where the stone is):
the stone ~150 px across saved at JPEG 40, Gaussian blur of 0.5 % of the image's long side, noise of
sigma 10/255, a 30 degree rotation on a canvas that holds the whole photo, the stone in the middle of a
frame three times its size, and a mid-grey desk (18 % reflectance, sRGB 118) around it.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from gemid.vision.colorimetry import linear_to_srgb, planckian_xy, srgb8_to_linear, xy_to_xyz, xyz_to_linear
from gemid.vision.segment import Segmentation

WARM_K, COOL_K = 3500.0, 7500.0
MID_GREY = 118  # sRGB code of an 18 % grey
STONE_PX = 150
JPEG_Q = 40
BLUR_FRACTION = 0.005
NOISE_SIGMA = 10.0  # 8-bit levels
ROTATION = 30.0
FRAME_FACTOR = 3.0


def lamp_gains(cct: float) -> np.ndarray:
    """Linear-sRGB gains with which a D65-balanced camera records a black-body lamp at `cct` kelvin (max 1)."""
    rgb = xyz_to_linear(xy_to_xyz(planckian_xy(cct)))
    return np.asarray(rgb / rgb.max(), np.float64)


def relight(rgb: np.ndarray, gains: np.ndarray | tuple[float, float, float], exposure: float = 1.0) -> np.ndarray:
    """The photo as recorded under other light: per-channel gains (and exposure) on linear sRGB, 8-bit sRGB out."""
    lin = srgb8_to_linear(rgb) * (np.asarray(gains, np.float64) * float(exposure))
    return np.round(linear_to_srgb(np.clip(lin, 0.0, 1.0)) * 255.0).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _stone_side(rgb: np.ndarray, seg: Segmentation) -> float:
    """The stone's size across in pixels (the whole photo's short side when no stone was found)."""
    if not seg.found:
        return float(min(rgb.shape[:2]))
    _, _, w, h = seg.bbox
    return float(max(w, h))


def small_stone(rgb: np.ndarray, seg: Segmentation, stone_px: float = STONE_PX, quality: int = JPEG_Q) -> np.ndarray:
    """The photo scaled so that the stone is `stone_px` across (never enlarged), saved as a JPEG."""
    f = min(1.0, stone_px / max(_stone_side(rgb, seg), 1.0))
    h, w = rgb.shape[:2]
    size = (max(8, int(round(w * f))), max(8, int(round(h * f))))
    return jpeg(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), quality)


def blur(rgb: np.ndarray, fraction: float = BLUR_FRACTION) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigmaX=max(0.3, fraction * max(rgb.shape[:2])))


def noise(rgb: np.ndarray, rng: np.random.Generator, sigma: float = NOISE_SIGMA) -> np.ndarray:
    return np.clip(rgb + rng.normal(0.0, sigma, rgb.shape), 0, 255).astype(np.uint8)


def rotate(rgb: np.ndarray, degrees: float = ROTATION) -> np.ndarray:
    """Rotated about its centre onto a canvas that holds the whole photo, the border's colour continued."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(round(h * s + w * c)), int(round(h * c + w * s))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(rgb, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def border_colour(rgb: np.ndarray) -> np.ndarray:
    edge = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    return np.median(edge, axis=0).astype(np.uint8)


def in_frame(rgb: np.ndarray, seg: Segmentation, factor: float = FRAME_FACTOR) -> np.ndarray:
    """The stone in the middle of a frame `factor` times its size, the photo's own background around it."""
    h, w = rgb.shape[:2]
    side = int(round(factor * _stone_side(rgb, seg)))
    x, y, bw, bh = seg.bbox if seg.found else (0, 0, w, h)
    cx, cy = x + bw / 2, y + bh / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    out = np.empty((side, side, 3), np.uint8)
    out[:] = border_colour(rgb)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out


def on_desk(rgb: np.ndarray, seg: Segmentation, level: int = MID_GREY) -> np.ndarray:
    """The background (everything the segmentation did not call stone) replaced by a plain grey desk."""
    if not seg.found:
        return rgb.copy()
    soft = cv2.GaussianBlur(seg.mask.astype(np.float32) / max(float(seg.mask.max()), 1.0), (0, 0),
                            sigmaX=max(1.0, max(rgb.shape[:2]) / 300))[..., None]
    return np.round(rgb * soft + float(level) * (1.0 - soft)).astype(np.uint8)


Condition = Callable[[np.ndarray, Segmentation, np.random.Generator], np.ndarray]

CONDITIONS: dict[str, tuple[str, Condition]] = {
    "clean": ("the photo as it is", lambda rgb, seg, rng: rgb),
    "warm_lamp": (f"{WARM_K:.0f} K lamp on a D65-balanced camera",
                  lambda rgb, seg, rng: relight(rgb, lamp_gains(WARM_K))),
    "cool_shade": (f"{COOL_K:.0f} K shade on a D65-balanced camera",
                   lambda rgb, seg, rng: relight(rgb, lamp_gains(COOL_K))),
    "under_1ev": ("one stop under-exposed", lambda rgb, seg, rng: relight(rgb, (1.0, 1.0, 1.0), 0.5)),
    "small_jpeg": (f"stone {STONE_PX} px across, JPEG {JPEG_Q}", lambda rgb, seg, rng: small_stone(rgb, seg)),
    "blur": (f"Gaussian blur sigma {BLUR_FRACTION:.1%} of the long side", lambda rgb, seg, rng: blur(rgb)),
    "noise": (f"sensor noise sigma {NOISE_SIGMA:.0f}/255", lambda rgb, seg, rng: noise(rgb, rng)),
    "rotate": (f"rotated {ROTATION:.0f} degrees", lambda rgb, seg, rng: rotate(rgb)),
    "small_in_frame": (f"stone in the middle of a frame {FRAME_FACTOR:.0f}x its size",
                       lambda rgb, seg, rng: in_frame(rgb, seg)),
    "grey_desk": (f"mid-grey desk (sRGB {MID_GREY}) around the stone", lambda rgb, seg, rng: on_desk(rgb, seg)),
}


def apply(name: str, rgb: np.ndarray, seg: Segmentation, rng: np.random.Generator) -> np.ndarray:
    """Condition `name` applied to a clean photo whose stone `seg` is (its segmentation)."""
    return np.ascontiguousarray(CONDITIONS[name][1](rgb, seg, rng))
