"""Photos of drawn stones on gemid's scale card, with their true sizes: for the size tests and the browser test."""

from __future__ import annotations

import cv2
import numpy as np
from bundle_fixture import STONE_COLOURS, draw_stone

from gemid.datasets.card import (
    COINS,
    RULERS,
    camera,
    draw_card,
    draw_sheet,
    exposed,
    lay_coin,
    lay_ruler,
    lay_stone,
    pinhole,
)
from gemid.vision.scale import CARD
from gemid.vision.segment import segment

PPM = 12.0  # pixels per mm of the card as drawn
# (label, true length in mm, centre on the card in mm): four stones of 3.5-11 mm, apart
TRAY = [("Ruby", 8.0, (40.0, 40.0)), ("Emerald", 5.0, (80.0, 35.0)), ("Sapphire Blue", 11.0, (110.0, 60.0)),
        ("Peridot", 3.5, (50.0, 75.0))]


def stone_cutout(label: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rgb = draw_stone(STONE_COLOURS[label], seed=seed)
    seg = segment(rgb)
    x, y, w, h = seg.bbox
    return rgb[y:y + h, x:x + w].copy(), seg.mask[y:y + h, x:x + w].copy()


def card_photo(stones: list[tuple[str, float, tuple[float, float]]], *, seed: int = 0, tilt: float = 0.05,
               lamp=(1.0, 1.0, 1.0), cover: tuple[int, ...] = (), side: int = 1600, fill: float = 0.8,
               blots: tuple[tuple[float, float, float, float], ...] = ()):
    """A photo of drawn stones laid on the card: (label, true length mm, centre mm) each; returns the RGB
    photo, the true (length, width) in mm and each stone's centre in the photo."""
    rng = np.random.default_rng(seed)
    card, origin = draw_card(PPM)
    truths = []
    for i, (label, length, (cx, cy)) in enumerate(stones):
        rgb, mask = stone_cutout(label, seed + i)
        centre = (origin[0] + cx * PPM, origin[1] + cy * PPM)
        lp, wp = lay_stone(card, rgb, mask, centre, length * PPM, angle_deg=25.0 * i)
        truths.append((lp / PPM, wp / PPM, centre))
    for marker in cover:  # a marker hidden under a hand or a tray's edge
        x, y = origin + np.array(CARD.origin(marker)) * PPM
        side_px = int(CARD.marker_mm * PPM) + 4
        card[int(y) - 2:int(y) + side_px, int(x) - 2:int(x) + side_px] = (246, 246, 242)
    for x0, y0, x1, y1 in blots:  # a fingertip: skin over part of the card (mm, card coordinates)
        (px0, py0), (px1, py1) = origin + np.array([x0, y0]) * PPM, origin + np.array([x1, y1]) * PPM
        card[int(py0):int(py1), int(px0):int(px1)] = (214, 160, 130)
    photo, hmat = camera(card, rng, tilt=tilt, out_side=side, lamp=lamp, blur=0.7, noise=0.008, jpeg=92, fill=fill)
    centres = [tuple(cv2.perspectiveTransform(np.array([[c]], np.float64), hmat).reshape(2)) for _, _, c in truths]
    return photo, [(t[0], t[1]) for t in truths], centres


# stones beside a coin on a sheet of paper (mm on the sheet, the frame centred at FRAME_AT): the coin, and three
# stones of 5-10 mm 25-55 mm from it
FRAME_AT = (150.0, 120.0)
COIN_AT = (120.0, 100.0)
COIN_TRAY = [("Ruby", 8.0, (165.0, 105.0)), ("Emerald", 5.0, (140.0, 140.0)), ("Sapphire Blue", 10.0, (175.0, 140.0))]


def coin_photo(stones: list[tuple[str, float, tuple[float, float]]], *, coin_mm: float | None = 20.0,
               coin_at: tuple[float, float] = COIN_AT, seed: int = 0, tilt_deg: float = 3.0,
               distance_mm: float = 150.0, side: int = 2000, more_coins: tuple[tuple[float, float, float], ...] = ()):
    """A photo of drawn stones on a sheet of paper beside a coin of `coin_mm`, taken by a phone-like pinhole
    camera (70° across the long side) `distance_mm` above and tilted `tilt_deg`, the paper filling the frame:
    the RGB photo, the true (length, width) of each stone in mm and each one's centre in the photo."""
    rng = np.random.default_rng(seed)
    sheet = draw_sheet(PPM, 300.0, 240.0)
    if coin_mm is not None:  # None: the photo a desk takes having forgotten the coin
        lay_coin(sheet, (coin_at[0] * PPM, coin_at[1] * PPM), coin_mm * PPM, seed=seed)
    for k, (x, y, mm) in enumerate(more_coins):  # (x mm, y mm, diameter mm) each: another coin on the sheet
        lay_coin(sheet, (x * PPM, y * PPM), mm * PPM, metal=COINS[(k + 1) % len(COINS)], seed=seed + 1 + k)
    return _phone_photo(sheet, stones, rng, seed=seed, tilt_deg=tilt_deg, distance_mm=distance_mm, side=side)


def _phone_photo(sheet: np.ndarray, stones: list[tuple[str, float, tuple[float, float]]], rng: np.random.Generator,
                 *, seed: int, tilt_deg: float, distance_mm: float, side: int):
    """Lays the drawn stones on the sheet and photographs it with a phone-like pinhole camera (70° across the
    long side) `distance_mm` above FRAME_AT, tilted `tilt_deg`, paper all round: the RGB photo, each stone's
    true (length, width) in mm and its centre in the photo."""
    truths = []
    for i, (label, length, (cx, cy)) in enumerate(stones):
        rgb, mask = stone_cutout(label, seed + i)
        centre = (cx * PPM, cy * PPM)
        lp, wp = lay_stone(sheet, rgb, mask, centre, length * PPM, angle_deg=25.0 * i)
        truths.append((lp / PPM, wp / PPM, centre))
    size = (side, side * 3 // 4)
    hmat = pinhole(PPM, FRAME_AT, distance_mm=distance_mm, tilt_deg=tilt_deg, azimuth_deg=30.0 + 40.0 * seed,
                   focal_px=side / (2.0 * np.tan(np.radians(35.0))), out_size=size)
    photo = exposed(sheet, hmat, size, rng, desk=(246, 246, 242), blur=0.7, noise=0.008, jpeg=92)
    centres = [tuple(cv2.perspectiveTransform(np.array([[c]], np.float64), hmat).reshape(2)) for _, _, c in truths]
    return photo, [(t[0], t[1]) for t in truths], centres


def matched(reports, truths, centres):
    """(report, true length, true width) for each stone placed, by the report whose box holds its centre."""
    out = []
    for (length, width), (cx, cy) in zip(truths, centres, strict=True):
        (r,) = [r for r in reports if r.stone.bbox[0] <= cx <= r.stone.bbox[0] + r.stone.bbox[2]
                and r.stone.bbox[1] <= cy <= r.stone.bbox[1] + r.stone.bbox[3]]
        out.append((r, length, width))
    return out


def draw_sheet_with_two_coins() -> np.ndarray:
    """COIN_TRAY beside a 20 mm and a 24 mm coin."""
    return coin_photo(COIN_TRAY, seed=2, more_coins=((120.0, 150.0, 24.0),))[0]


def card_photo_with_coin(stones: list[tuple[str, float, tuple[float, float]]], coin_mm: float = 20.0):
    """Stones on the scale card with a coin lying on it too: the photo and the stones' true sizes."""
    rng = np.random.default_rng(4)
    card, origin = draw_card(PPM)
    truths = []
    for i, (label, length, (cx, cy)) in enumerate(stones):
        rgb, mask = stone_cutout(label, 4 + i)
        centre = (origin[0] + cx * PPM, origin[1] + cy * PPM)
        lp, wp = lay_stone(card, rgb, mask, centre, length * PPM, angle_deg=25.0 * i)
        truths.append((lp / PPM, wp / PPM))
    lay_coin(card, (origin[0] + 115.0 * PPM, origin[1] + 25.0 * PPM), coin_mm * PPM, seed=4)
    photo, _ = camera(card, rng, tilt=0.03, out_side=1600, blur=0.7, noise=0.008, jpeg=92)
    return photo, truths


# stones beside a ruler on a sheet of paper: the ruler's middle and angle (degrees), three stones of 5-10 mm
# 10-45 mm from its edge, the frame centred at FRAME_AT
RULER_AT, RULER_ANGLE = (150.0, 85.0), 188.0  # its millimetre edge towards the stones
RULER_TRAY = [("Ruby", 8.0, (120.0, 120.0)), ("Emerald", 5.0, (160.0, 115.0)), ("Sapphire Blue", 10.0, (190.0, 140.0))]


def ruler_photo(stones: list[tuple[str, float, tuple[float, float]]], *, ruler: bool = True, metric: bool = True,
                inches: bool = False, body: int = 0, seed: int = 0, tilt_deg: float = 3.0,
                distance_mm: float = 150.0, side: int = 2400):
    """A photo of drawn stones on paper beside a 150 mm ruler (RULERS[body]; `metric` False: an inch scale
    alone; `ruler` False: none), taken as `coin_photo` takes its own: the RGB photo, the true (length, width) of
    each stone in mm and each one's centre in the photo."""
    rng = np.random.default_rng(seed)
    sheet = draw_sheet(PPM, 300.0, 240.0)
    if ruler:
        lay_ruler(sheet, (RULER_AT[0] * PPM, RULER_AT[1] * PPM), RULER_ANGLE, PPM, body=RULERS[body],
                  inches=inches, metric=metric)
    return _phone_photo(sheet, stones, rng, seed=seed, tilt_deg=tilt_deg, distance_mm=distance_mm, side=side)
