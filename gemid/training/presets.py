"""Transforms in one place: the training augmentation and the evaluation view.

Loose stones: any rotation, flips, scale/position jitter around the stone, mild brightness/contrast, background
swaps (plain desk tones, lightbox gradients, muted cloth, wood grain), and the capture conditions of issue 29:
low resolution (the stone 80-200 px across), JPEG 30-95, defocus / motion / Gaussian blur, sensor noise.
**No hue shifts**: colour is the evidence.

With the photometric front end (`light=True`, `gemid train --photometric grader`) each view is first
photographed under a random lamp on the Planckian locus (2700-9000 K, uniform in mired) at a random
exposure (-2..+1 EV), in linear light as `gemid.vision.conditions` defines it, and then normalised by the
runtime's own estimate (`gemid.vision.photometric`): training sees what the runtime sees, including the
estimator's misses. Every other step keeps hue.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

# Training crops are cut with this margin around the stone so the zoom jitter has room; the
# evaluation view (the runtime's crop, bundle margin) is a centred sub-square of it.
TRAIN_MARGIN = 0.35


def zoom_range(eval_margin: float) -> tuple[float, float]:
    """Fractions of the training crop to keep: from a tight crop to the whole padded crop."""
    eval_frac = (1 + 2 * eval_margin) / (1 + 2 * TRAIN_MARGIN)
    return max(0.5, eval_frac * 0.8), 1.0


def stone_zoom(img: np.ndarray, rng: np.random.Generator, frac_range: tuple[float, float], size: int) -> np.ndarray:
    """Random square sub-crop around the centre (scale + small shift), resized to `size`."""
    side = img.shape[0]
    frac = rng.uniform(*frac_range)
    s = max(8, int(round(side * frac)))
    slack = side - s
    jitter = 0.25 * slack
    cx = side / 2 + rng.uniform(-jitter, jitter)
    cy = side / 2 + rng.uniform(-jitter, jitter)
    x0 = int(np.clip(round(cx - s / 2), 0, side - s))
    y0 = int(np.clip(round(cy - s / 2), 0, side - s))
    crop = img[y0 : y0 + s, x0 : x0 + s]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_LINEAR)


def centre_view(img: np.ndarray, eval_margin: float, size: int) -> np.ndarray:
    """The evaluation view cut from a training crop (used only for quick checks; eval uses stone_crop)."""
    side = img.shape[0]
    s = int(round(side * (1 + 2 * eval_margin) / (1 + 2 * TRAIN_MARGIN)))
    o = (side - s) // 2
    return cv2.resize(img[o : o + s, o : o + s], (size, size), interpolation=cv2.INTER_AREA)


def swap_background(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Replace the background (mask == 0) by another plain tone, a gradient or a darker/lighter field."""
    h, w = mask.shape
    kind = rng.integers(0, 4)
    if kind == 0:  # plain neutral grey level (white desk, grey card, black velvet)
        bg = np.full((h, w, 3), rng.choice([rng.integers(200, 256), rng.integers(90, 170), rng.integers(0, 40)]),
                     np.uint8)
    elif kind == 1:  # vertical neutral gradient (lightbox falloff)
        a, b = rng.integers(150, 256), rng.integers(60, 220)
        ramp = np.linspace(a, b, h, dtype=np.float32)[:, None, None]
        bg = np.broadcast_to(ramp, (h, w, 3)).astype(np.uint8)
    elif kind == 2:  # muted coloured cloth/paper: low chroma so the stone's colour stays the strongest signal
        base = rng.integers(120, 240)
        tint = rng.integers(-25, 26, size=3)
        bg = np.clip(np.full((h, w, 3), base) + tint, 0, 255).astype(np.uint8)
    else:  # a wooden desk: warm brown with wavy grain (desks photograph stones where they sit)
        bg = wood(h, w, rng)
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigmaX=max(1.0, h / 150))[..., None]
    return (img.astype(np.float32) * soft + bg.astype(np.float32) * (1 - soft)).astype(np.uint8)


def wood(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A procedural wood-grain field: brown, low texture contrast, grain lines bent by a slow wave."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    period = rng.uniform(0.04, 0.12) * max(h, w)
    grain = np.sin(2 * np.pi * (u + 0.08 * max(h, w) * np.sin(v / (0.6 * max(h, w)) * 2 * np.pi)) / period)
    base = np.array([rng.uniform(110, 190), 0, 0], np.float32)
    base[1], base[2] = base[0] * rng.uniform(0.68, 0.78), base[0] * rng.uniform(0.45, 0.58)
    field = base * (1 + 0.12 * grain[..., None])
    return np.clip(field, 0, 255).astype(np.uint8)


def build_photometric(p: float = 1.0) -> A.Compose:
    """Geometry and capture conditions that keep hue: rotation, flips, light, low resolution, blur, noise, JPEG."""
    return A.Compose([
        A.Affine(rotate=(-180, 180), scale=(0.95, 1.05), border_mode=cv2.BORDER_REPLICATE, p=0.9 * p),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.12, contrast_limit=0.12, p=0.6 * p),
        # the stone 80-200 px across in the photo: the model's 224-px view of it is an enlargement
        A.Downscale(scale_range=(0.4, 0.95), p=0.25 * p),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7)),
                 A.Defocus(radius=(2, 4), alias_blur=(0.1, 0.3))], p=0.25 * p),
        A.GaussNoise(std_range=(0.01, 0.06), p=0.3 * p),
        A.ImageCompression(quality_range=(30, 95), p=0.35 * p),
    ])


LAMP_K = (2700.0, 9000.0)
EXPOSURE_EV = (-2.0, 1.0)


def random_light(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The view under a random Planckian lamp and exposure, then white-balanced and exposure-normalised by the
    runtime's front end (estimated on the view itself: the stone on its background)."""
    from gemid.vision.conditions import lamp_gains, relight
    from gemid.vision.photometric import light_for, normalise
    from gemid.vision.segment import segment

    mired = rng.uniform(1e6 / LAMP_K[1], 1e6 / LAMP_K[0])
    lit = relight(img, lamp_gains(1e6 / mired), 2.0 ** rng.uniform(*EXPOSURE_EV))
    return normalise(lit, light_for(lit, segment(lit)))


class TrainAugment:
    """Deterministic given (seed, view, index): the same cached view is reproducible on resume."""

    def __init__(self, size: int, eval_margin: float, seed: int, background_p: float = 0.3, light: bool = False):
        self.size = size
        self.light = light
        self.frac = zoom_range(eval_margin)
        self.seed = seed
        self.background_p = background_p
        self.photometric = build_photometric()

    def __call__(self, img: np.ndarray, mask: np.ndarray, view: int, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, view, index])
        if mask.any() and rng.random() < self.background_p:
            img = swap_background(img, mask, rng)
        if self.light:
            img = random_light(img, rng)
        img = stone_zoom(img, rng, self.frac, self.size)
        self.photometric.set_random_seed(int(rng.integers(0, 2**31 - 1)))
        return self.photometric(image=img)["image"]


def to_tensor(crops: np.ndarray, mean, std):
    """uint8 NHWC RGB → float32 NCHW normalised, the exact arithmetic of the runtime's preprocess."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s
