"""Photos of stones on gemid's scale card, composed with a known size in millimetres: what the size
measurement (gemid.vision.size) is tested and benchmarked on (`python -m bench.bench_size`).

The card is drawn as printed (`gemid.vision.scale.CARD`) at a chosen resolution; each stone is a cut-out (its
pixels and mask, from a real photo or a rendered stone) scaled to its true length in millimetres and laid on the
paper, and the whole is then seen as a camera would: a tilt (a homography), a desk around the card, a lamp's
colour, defocus, sensor noise and JPEG. The truth is the pasted mask's own length and width.
"""

from __future__ import annotations

import cv2
import numpy as np

from gemid.vision.scale import CARD, MARKER_IDS, MODULES, CardLayout, marker_image

SHADOW = 0.25


def draw_card(px_per_mm: float, border_mm: float = 12.0, layout: CardLayout = CARD,
              paper: tuple[int, int, int] = (246, 246, 242), ink: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """The printed card as an RGB image, and the pixel position of the card's origin (marker 0's corner).
    Drawn four times finer and reduced by area, so the markers' edges fall between pixels as a print's do."""
    fine = 4
    w = int(round((layout.width_mm + 2 * border_mm) * px_per_mm))
    h = int(round((layout.height_mm + 2 * border_mm) * px_per_mm))
    grey = np.full((h * fine, w * fine), 255, np.uint8)
    module = layout.marker_mm / MODULES * px_per_mm * fine
    for i in MARKER_IDS:
        pattern = marker_image(i)
        ox, oy = (np.array(layout.origin(i)) + border_mm) * px_per_mm * fine
        for r, c in zip(*np.nonzero(pattern == 0), strict=True):
            x0, y0 = int(round(ox + c * module)), int(round(oy + r * module))
            x1, y1 = int(round(ox + (c + 1) * module)), int(round(oy + (r + 1) * module))
            grey[y0:y1, x0:x1] = 0
    white = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255.0
    img = np.array(paper, np.float32) * white + ink * (1 - white)
    return img.astype(np.uint8), np.array([border_mm * px_per_mm, border_mm * px_per_mm])


def lay_stone(card: np.ndarray, stone_rgb: np.ndarray, stone_mask: np.ndarray, centre_px: tuple[float, float],
              length_px: float, angle_deg: float = 0.0) -> tuple[float, float]:
    """Lays a cut-out stone on the card, scaled so that its length is `length_px`; returns its true length and
    width in card pixels (of the scaled mask)."""
    m = (stone_mask > 0).astype(np.uint8)
    (cx, cy), (a, b), _ = cv2.minAreaRect(cv2.findNonZero(m).astype(np.float32))
    native = max(a, b) + 1.0  # the mask's pixels reach half a pixel past their centres on each side
    k = length_px / native
    rot = cv2.getRotationMatrix2D((cx, cy), angle_deg, k)
    rot[:, 2] += np.array(centre_px) - np.array([cx, cy])
    h, w = card.shape[:2]
    soft = cv2.warpAffine(m.astype(np.float32), rot, (w, h), flags=cv2.INTER_LINEAR)
    pix = cv2.warpAffine(stone_rgb, rot, (w, h), flags=cv2.INTER_LINEAR)
    shadow = cv2.GaussianBlur(np.roll(soft, (2, 2), axis=(0, 1)), (0, 0), 2.0) * SHADOW
    out = card.astype(np.float32) * (1 - shadow[..., None])
    out = out * (1 - soft[..., None]) + pix.astype(np.float32) * soft[..., None]
    card[:] = np.clip(out, 0, 255).astype(np.uint8)
    q = cv2.findNonZero((soft >= 0.5).astype(np.uint8))
    (_, _), (a2, b2), _ = cv2.minAreaRect(q.astype(np.float32))
    return max(a2, b2) + 1.0, min(a2, b2) + 1.0


def camera(card: np.ndarray, rng: np.random.Generator, *, tilt: float = 0.08, desk: tuple[int, int, int] = (92, 70, 52),
           out_side: int = 2000, lamp: tuple[float, float, float] = (1.0, 1.0, 1.0), blur: float = 0.0,
           noise: float = 0.0, jpeg: int | None = 90, fill: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """The card seen by a camera: a random perspective of up to `tilt` (share of the side each corner moves),
    the card spanning `fill` of the frame's width, on a desk, under a lamp's colour, with defocus (sigma in
    pixels), noise and JPEG; and the homography from the card image's pixels to the photo's."""
    h, w = card.shape[:2]
    scale = out_side * fill / max(w, h)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src * scale + np.float32([out_side * (1 - fill) / 2, out_side * (1 - fill) / 2])
    dst += rng.uniform(-tilt, tilt, size=(4, 2)).astype(np.float32) * out_side * fill
    oh = int(round(out_side * (h / w * fill + (1 - fill)))) if w >= h else out_side
    hmat = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(card, hmat, (out_side, oh), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=desk)
    img = img.astype(np.float32) * np.array(lamp, np.float32)
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    if noise > 0:
        img += rng.normal(0, noise * 255, img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return img, hmat
