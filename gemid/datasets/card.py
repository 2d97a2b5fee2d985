"""Photos of stones on gemid's scale card, or on paper beside a coin or a ruler, composed with a known size in
millimetres: what the size measurement (gemid.vision.size, gemid.vision.coin, gemid.vision.ruler) is tested and
benchmarked on (`python -m bench.bench_size`, `--coin`, `--ruler`).

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


COINS = ((186, 170, 128), (192, 192, 196), (168, 120, 84))  # brass, nickel, copper


def draw_sheet(px_per_mm: float, width_mm: float, height_mm: float,
               paper: tuple[int, int, int] = (246, 246, 242)) -> np.ndarray:
    """A plain sheet of paper (RGB) for stones photographed beside a coin instead of on the card."""
    return np.full((int(round(height_mm * px_per_mm)), int(round(width_mm * px_per_mm)), 3), paper, np.uint8)


def lay_coin(sheet: np.ndarray, centre_px: tuple[float, float], diameter_px: float,
             metal: tuple[int, int, int] = COINS[0], seed: int = 0) -> None:
    """Lays a coin on the sheet: a metal disc lit from one side, a raised rim, worn relief and a soft shadow,
    drawn four times finer and reduced by area so its edge falls between pixels as a photo's does."""
    fine = 4
    rng = np.random.default_rng(seed)
    h, w = sheet.shape[:2]
    r = diameter_px / 2.0
    x0, y0 = max(0, int(centre_px[0] - r - 8)), max(0, int(centre_px[1] - r - 8))
    x1, y1 = min(w, int(centre_px[0] + r + 9)), min(h, int(centre_px[1] + r + 9))
    yy, xx = np.mgrid[0:(y1 - y0) * fine, 0:(x1 - x0) * fine].astype(np.float32)
    dx, dy = (xx + 0.5) / fine + x0 - centre_px[0], (yy + 0.5) / fine + y0 - centre_px[1]
    rho = np.hypot(dx, dy) / r
    inside = (rho <= 1.0).astype(np.float32)
    light = 0.85 + 0.25 * (-(dx + dy) / (np.sqrt(2.0) * r))  # brighter towards the top left
    rim = np.where(rho > 0.9, 0.8 + 0.4 * (rho > 0.95), 1.0)
    relief = cv2.GaussianBlur(rng.normal(0, 1, (dx.shape[0] // 8 + 1, dx.shape[1] // 8 + 1)).astype(np.float32),
                              (0, 0), 1.5)
    relief = cv2.resize(relief, dx.shape[::-1], interpolation=cv2.INTER_CUBIC) * 0.08
    shade = (light * rim * (1.0 + relief))[..., None]
    disc = np.clip(np.array(metal, np.float32) * shade, 0, 255)
    def small(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)

    alpha = small(inside)[..., None]
    shadow = cv2.GaussianBlur(np.roll(alpha[..., 0], (2, 2), axis=(0, 1)), (0, 0), 2.0)[..., None] * SHADOW
    region = sheet[y0:y1, x0:x1].astype(np.float32) * (1 - shadow)
    region = region * (1 - alpha) + small(disc * inside[..., None]) / np.maximum(alpha, 1e-6) * alpha
    sheet[y0:y1, x0:x1] = np.clip(region, 0, 255).astype(np.uint8)


RULERS = ((250, 250, 248), (214, 186, 140), (200, 202, 206), (236, 240, 238))  # white, wood, steel, clear plastic


def lay_ruler(sheet: np.ndarray, centre_px: tuple[float, float], angle_deg: float, px_per_mm: float, *,
              length_mm: float = 150.0, width_mm: float = 26.0, body: tuple[int, int, int] = RULERS[0],
              inches: bool = False, metric: bool = True, ink: int = 30) -> None:
    """Lays a ruler on the sheet: a body with a millimetre scale along one long edge (ticks 0.2 mm wide, 3 mm
    long, 4.5 mm at the half centimetres, 6 mm at the centimetres, numbered) and, with `inches`, sixteenths
    of an inch along the other (`metric` False: the inch scale alone); drawn four times finer and reduced by
    area, then turned by `angle_deg` about `centre_px` (counter-clockwise as the sheet is seen)."""
    fine = 4
    f = px_per_mm * fine
    w, h = int(round(length_mm * f)), int(round(width_mm * f))
    ink_mask = np.zeros((h, w), np.uint8)
    start = 5.0  # the zero tick, this far from the ruler's end
    for i in range(int(length_mm - 2 * start) + 1 if metric else 0):
        tick = 6.0 if i % 10 == 0 else 4.5 if i % 5 == 0 else 3.0
        x = (start + i) * f
        cv2.rectangle(ink_mask, (int(round(x - 0.1 * f)), 0), (int(round(x + 0.1 * f)), int(round(tick * f))), 255, -1)
        if i % 10 == 0:
            text = str(i // 10)
            scale = 2.6 * f / 30.0
            (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(0.25 * f)))
            cv2.putText(ink_mask, text, (int(x - tw / 2), int(10.5 * f)), cv2.FONT_HERSHEY_SIMPLEX, scale, 255,
                        max(1, int(0.25 * f)), cv2.LINE_AA)
    if inches:
        sixteenth = 25.4 / 16.0
        for i in range(int((length_mm - 2 * start) / sixteenth) + 1):
            tick = 6.0 if i % 16 == 0 else 4.5 if i % 8 == 0 else 3.5 if i % 4 == 0 else 2.5 if i % 2 == 0 else 1.8
            x = (start + i * sixteenth) * f
            cv2.rectangle(ink_mask, (int(round(x - 0.1 * f)), h - int(round(tick * f))),
                          (int(round(x + 0.1 * f)), h - 1), 255, -1)
    small = cv2.resize(ink_mask, (int(round(length_mm * px_per_mm)), int(round(width_mm * px_per_mm))),
                       interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    face = np.array(body, np.float32) * (1.0 - small[..., None]) + ink * small[..., None]
    rot = cv2.getRotationMatrix2D((length_mm * px_per_mm / 2.0, width_mm * px_per_mm / 2.0), angle_deg, 1.0)
    rot[:, 2] += np.array(centre_px) - np.array([length_mm, width_mm]) * px_per_mm / 2.0
    sh, sw = sheet.shape[:2]
    alpha = cv2.warpAffine(np.ones(small.shape, np.float32), rot, (sw, sh), flags=cv2.INTER_LINEAR)
    pix = cv2.warpAffine(face, rot, (sw, sh), flags=cv2.INTER_LINEAR)
    shadow = cv2.GaussianBlur(np.roll(alpha, (2, 2), axis=(0, 1)), (0, 0), 2.0) * SHADOW
    out = sheet.astype(np.float32) * (1 - shadow[..., None])
    out = out * (1 - alpha[..., None]) + pix * alpha[..., None]
    sheet[:] = np.clip(out, 0, 255).astype(np.uint8)


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
    return exposed(card, hmat, (out_side, oh), rng, desk=desk, lamp=lamp, blur=blur, noise=noise, jpeg=jpeg), hmat


def pinhole(px_per_mm: float, target_mm: tuple[float, float], *, distance_mm: float, tilt_deg: float,
            azimuth_deg: float, focal_px: float, out_size: tuple[int, int]) -> np.ndarray:
    """The homography from a flat sheet's pixels (`px_per_mm`) to a pinhole camera's: the camera `distance_mm`
    from `target_mm` on the sheet (which lands in the frame's centre), its axis `tilt_deg` from the sheet's
    normal towards `azimuth_deg`. A true perspective, as a phone held over a desk sees it: the scale changes
    across the frame, which a coin's one ellipse cannot undo (the card's four markers can)."""
    a, f = np.radians(tilt_deg), np.radians(azimuth_deg)
    target = np.array([target_mm[0], target_mm[1], 0.0])
    centre = target + distance_mm * np.array([np.sin(a) * np.cos(f), np.sin(a) * np.sin(f), -np.cos(a)])
    forward = (target - centre) / np.linalg.norm(target - centre)  # the sheet's z points away from the camera
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])
    k = np.array([[focal_px, 0, out_size[0] / 2.0], [0, focal_px, out_size[1] / 2.0], [0, 0, 1.0]])
    to_mm = np.diag([1.0 / px_per_mm, 1.0 / px_per_mm, 1.0])
    plane = np.column_stack([rot[:, 0], rot[:, 1], -rot @ centre])  # (X, Y, 1) on the sheet -> camera
    h = k @ plane @ to_mm
    return h / h[2, 2]


def exposed(card: np.ndarray, hmat: np.ndarray, size: tuple[int, int], rng: np.random.Generator, *,
            desk: tuple[int, int, int] = (92, 70, 52), lamp: tuple[float, float, float] = (1.0, 1.0, 1.0),
            blur: float = 0.0, noise: float = 0.0, jpeg: int | None = 90) -> np.ndarray:
    """The sheet seen through `hmat` in a frame of `size` (w, h), on a desk, under a lamp's colour, with
    defocus (sigma in pixels), noise and JPEG."""
    img = cv2.warpPerspective(card, hmat, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT,
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
    return img
