"""Open-set rejection and the abstain policy, chosen on validation and checked on non-gem images.

Score: the energy score `logsumexp(logits / T)` — exactly the runtime's `open_set_score` (imported,
not copied); higher means more familiar, and the runtime rejects a photo scoring below
`energy_threshold`.

Non-gem images come from the wheels we already install, so nothing is downloaded: the sample photos
shipped inside scikit-image (astronaut, coffee, cat, rocket, coins, moon, text, …) and matplotlib (Grace
Hopper, logos), each taken whole and as five sub-views, plus rendered scenes (plain cards, gradients,
noise, stripes, printed text). They go through the runtime's own decode → segment → stone crop.

Blurred gem photos are deliberately *not* counted as non-gems: a blurred emerald is still an emerald, and
blur is the photo-quality check's job (`gemid.vision.quality` rejects very blurry photos before the
model's decision). Their score is reported separately as a diagnostic only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Files inside skimage/data shipped in the wheel (loaded by path: skimage.data's loaders may fetch).
SKIMAGE_FILES = (
    "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "camera.png", "coins.png", "horse.png",
    "moon.png", "page.png", "text.png", "brick.png", "grass.png", "gravel.png", "color.png", "logo.png",
    "motorcycle_left.png", "motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png",
    "cell.png", "chessboard_RGB.png", "clock_motion.png", "microaneurysms.png", "phantom.png",
)
MATPLOTLIB_FILES = ("grace_hopper.jpg", "logo2.png", "Minduka_Present_Blue_Pack.png")
N_RENDERED = 24
NOTHING_IDENTIFIED = float(np.nextafter(1.0, 2.0))


@dataclass(frozen=True)
class NonGem:
    name: str
    rgb: np.ndarray  # uint8 (H, W, 3)


def open_set_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    from gemid.vision.classify import open_set_score as runtime_score

    return runtime_score(logits, temperature)


def _views(name: str, rgb: np.ndarray) -> list[NonGem]:
    """The whole image, its four quadrants and its centre (each at least 64 px), as separate photos."""
    h, w = rgb.shape[:2]
    out = [NonGem(name, rgb)]
    if min(h, w) >= 128:
        hh, hw = h // 2, w // 2
        parts = {"tl": rgb[:hh, :hw], "tr": rgb[:hh, hw:], "bl": rgb[hh:, :hw], "br": rgb[hh:, hw:],
                 "centre": rgb[h // 4 : h // 4 + hh, w // 4 : w // 4 + hw]}
        out += [NonGem(f"{name}:{k}", np.ascontiguousarray(v)) for k, v in parts.items()]
    return out


def _decode_file(path: Path) -> np.ndarray:
    from gemid.vision.decode import decode

    return decode(path).rgb


def _render(i: int, rng: np.random.Generator, side: int = 256) -> NonGem:
    """Deterministic non-gem scenes: what a desk camera sees when no stone is in front of it."""
    kind = i % 6
    img = np.empty((side, side, 3), np.uint8)
    if kind == 0:  # a plain card of some colour
        img[:] = rng.integers(0, 256, 3)
        img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
        name = "plain_card"
    elif kind == 1:  # a lighting gradient
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, side)[:, None, None]
        img = (a * (1 - t) + b * t).repeat(side, axis=1).astype(np.uint8)
        name = "gradient"
    elif kind == 2:  # sensor noise
        img = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        name = "noise"
    elif kind == 3:  # stripes / fabric
        period = int(rng.integers(6, 40))
        c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        band = (np.arange(side) // period) % 2
        img[:] = np.where(band[None, :, None] == 0, c1, c2).astype(np.uint8)
        if rng.random() < 0.5:
            img = np.ascontiguousarray(img.transpose(1, 0, 2))
        name = "stripes"
    elif kind == 4:  # printed paperwork
        img[:] = (245, 243, 235)
        for row in range(12):
            words = "".join(chr(int(c)) for c in rng.integers(65, 91, 14))
            cv2.putText(img, words, (8, 20 + row * 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 30), 1,
                        cv2.LINE_AA)
        name = "paper_text"
    else:  # clutter of random rectangles (a desk, a parcel label)
        img[:] = rng.integers(150, 256, 3)
        for _ in range(8):
            x0, y0 = rng.integers(0, side - 20, 2)
            x1, y1 = x0 + rng.integers(10, 120), y0 + rng.integers(10, 120)
            cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), rng.integers(0, 256, 3).tolist(), -1)
        name = "clutter"
    return NonGem(f"rendered:{name}:{i}", img)


def non_gem_images(extra_dir: Path | str | None = None, *, seed: int = 0) -> list[NonGem]:
    """The non-gem set, in a fixed order: wheel sample photos (with sub-views), rendered scenes, extra_dir."""
    import matplotlib
    import skimage

    out: list[NonGem] = []
    sk_dir = Path(skimage.__file__).parent / "data"
    for fname in SKIMAGE_FILES:
        path = sk_dir / fname
        if path.is_file():
            out += _views(f"skimage:{fname}", _decode_file(path))
    mpl_dir = Path(matplotlib.get_data_path()) / "sample_data"
    for fname in MATPLOTLIB_FILES:
        path = mpl_dir / fname
        if path.is_file():
            out += _views(f"matplotlib:{fname}", _decode_file(path))
    rng = np.random.default_rng(seed)
    out += [_render(i, rng) for i in range(N_RENDERED)]
    if extra_dir is not None:
        from gemid.errors import GemidInputError

        for path in sorted(Path(extra_dir).rglob("*")):
            if path.is_file():
                try:
                    out.append(NonGem(f"extra:{path.name}", _decode_file(path)))
                except GemidInputError:
                    continue  # not an image we can read: the runtime would refuse it too
    return out


def runtime_crops(images: list[NonGem], size: int, margin: float, photometric: str = "none") -> np.ndarray:
    """The model's view of each image, through the runtime's segmentation, stone crop and (for a model trained
    with it) photometric front end."""
    from gemid.vision.crop import stone_crop
    from gemid.vision.photometric import light_for, normalise
    from gemid.vision.segment import segment

    if not images:
        return np.zeros((0, size, size, 3), np.uint8)
    out = []
    for im in images:
        seg = segment(im.rgb)
        crop = stone_crop(im.rgb, seg, margin=margin, size=size)
        out.append(normalise(crop, light_for(im.rgb, seg)) if photometric == "grader" else crop)
    return np.stack(out)


def blurred(crops: np.ndarray, sigma_fraction: float = 0.02) -> np.ndarray:
    """Strong Gaussian blur (σ = 2 % of the side, ≈ 4.5 px at 224): facets gone, colour kept."""
    sigma = max(1.0, sigma_fraction * crops.shape[1])
    return np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in crops]) if len(crops) else crops


# --- choosing the policy ----------------------------------------------------------------------------------

def energy_threshold(scores_correct: np.ndarray, keep: float = 0.95) -> float:
    """The largest threshold that still keeps at least `keep` of the correctly classified validation images.

    The runtime rejects `score < threshold`, so at least ⌈keep·n⌉ of these scores lie at or above it.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError("keep must be in (0, 1]")
    s = np.sort(np.asarray(scores_correct, np.float64))
    if len(s) == 0:
        raise ValueError("no correctly classified validation images to set the open-set threshold on")
    k = int(np.floor((1.0 - keep) * len(s) + 1e-9))
    return float(s[min(k, len(s) - 1)])


def min_prob_for_precision(top1_prob: np.ndarray, correct: np.ndarray, target: float = 0.95,
                           floor: float = 0.5) -> float:
    """Smallest top-1 probability t (≥ floor) at which 'identified' (p1 ≥ t) is right ≥ `target` of the time.

    Returns NOTHING_IDENTIFIED (just above 1: no photo is 'identified') when no threshold reaches the
    target; the caller reports the coverage either way.
    """
    p = np.asarray(top1_prob, np.float64)
    c = np.asarray(correct, bool)
    order = np.argsort(-p, kind="stable")
    p, c = p[order], c[order]
    precision = np.cumsum(c) / np.arange(1, len(c) + 1)
    best = NOTHING_IDENTIFIED
    for i in range(len(p)):
        # only at the last image of a run of equal probabilities: thresholds sit between distinct values
        if (i + 1 < len(p) and p[i + 1] == p[i]) or p[i] < floor:
            continue
        if precision[i] >= target:
            best = min(best, float(p[i]))
    if best > 1.0:
        return best
    # the runtime computes p1 in float32 through ONNX Runtime (evaluation in float64): flooring to 6 decimals
    # keeps a photo that sits exactly at t on the "identified" side in both
    return float(np.floor(best * 1e6) / 1e6)


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of an in-distribution image > score of a non-gem), ties counted half (Mann–Whitney U)."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    i = 0
    while i < len(sorted_v):  # average ranks over ties
        j = i
        while j + 1 < len(sorted_v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def decisions(probs: np.ndarray, scores: np.ndarray, threshold: float, min_prob: float,
              min_margin: float = 0.0) -> np.ndarray:
    """The runtime's decision per image ('identified' / 'uncertain' / 'rejected'), photo quality aside."""
    s = np.sort(probs, axis=1)
    p1 = s[:, -1]
    p2 = s[:, -2] if probs.shape[1] > 1 else np.zeros(len(probs))
    out = np.full(len(probs), "uncertain", dtype=object)
    out[(p1 >= min_prob) & (p1 - p2 >= min_margin)] = "identified"
    out[scores < threshold] = "rejected"
    return out
