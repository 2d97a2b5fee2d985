"""The photo's scale reference and its stones: gemid's printed card (`gemid.vision.scale`), a coin whose
diameter the user entered (`gemid.vision.coin`), a millimetre ruler the user said is there
(`gemid.vision.ruler`), or none; and each stone's size on it.

`locate_stones` segments the working image the way the reference needs (on the card: the card painted out and
segmented finer, down to a 2 mm stone; beside a coin or a ruler: as finely, the coin or the ruler's pieces
taken out of the stones), and measures the stones on the photo decoded again at full resolution
(`ReferenceView`: at most FULL_SIDE on its long side), where a 3 mm stone has the pixels its outline needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from gemid.errors import GemidInputError
from gemid.report import StoneSize
from gemid.vision.coin import (
    COIN_METHOD,
    CoinReference,
    coin_diameter,
    find_coin,
    fit_coin,
    stones_beside,
)
from gemid.vision.decode import DecodedImage, finer
from gemid.vision.ruler import RULER_METHOD, search_ruler, split_off
from gemid.vision.scale import (
    BESIDE_SEGMENTATION,
    CARD_SPLITTING,
    MIN_MARKER_PX,
    PlaneMap,
    ScaleReference,
    card_segmentation,
    clear_card,
    find_card,
)
from gemid.vision.segment import Segmentation, segment
from gemid.vision.size import fine_outline, measure_stones
from gemid.vision.stones import find_stones

FULL_SIDE = 4096  # a reference's photo is measured at the finest power-of-two reduction within this side


@dataclass(frozen=True)
class ReferenceView:
    """The photo at full resolution (the card cleared away, as in the working image), the reference found
    there, and how many times finer it is than the working image."""

    rgb: np.ndarray
    ref: PlaneMap  # the card (ScaleReference), a coin (CoinReference) or a ruler (RulerReference)
    k: float


@dataclass(frozen=True)
class Located:
    """The working image (the card painted out when there is one), its stones, and what the reference gives."""

    image: DecodedImage
    stones: list[Segmentation]
    painted: list[Segmentation]  # what a stone's crop paints out besides itself: the other stones, a coin, a ruler
    view: ReferenceView | None  # None: no reference in the photo
    sizes: list[StoneSize] | None  # each stone's, or None without a reference
    reference: str | None  # "card", "coin" or "ruler": the stones lie on the card or beside a coin or a ruler


TWO_SCALES = "coin_mm and ruler: give a coin's diameter or say a ruler lies beside the stones, not both"


def locate_stones(image: DecodedImage, *, first_only: bool, coin_mm: float | None, max_bytes: int,
                  max_pixels: int, ruler: bool = False) -> Located:
    """The stones of the photo and their sizes. `first_only`: the photo analysed whole (`Identifier.identify`),
    one segmentation for all; `coin_mm`: a coin of this diameter lies beside the stones; `ruler`: a millimetre
    ruler does (the card, when it is in the photo, is used instead of either)."""
    if coin_mm is not None:
        coin_mm = coin_diameter(coin_mm)
        if ruler:
            raise GemidInputError(TWO_SCALES, code="invalid_scale", status=422)
    card = find_card(image.rgb, min_marker_px=MIN_MARKER_PX * image.scale)  # its size in the photo counts
    if card is not None:  # the stones lie on gemid's scale card: segment them on its plain paper, finer, to 2 mm
        image = replace(image, rgb=clear_card(image.rgb, card))
        seg = segment(image.rgb, **card_segmentation(card, image.rgb.shape))
    elif ruler and not first_only:
        return _beside_ruler(image, max_bytes, max_pixels)
    elif coin_mm is not None:  # a coin beside the stones: segmented as finely, stones far smaller than it kept
        seg = segment(image.rgb, **BESIDE_SEGMENTATION)
    else:
        seg = segment(image.rgb)
    splitting = CARD_SPLITTING if card is not None or coin_mm is not None else {}
    stones = [seg] if first_only else find_stones(image.rgb, seg, **splitting)
    limits = {"max_bytes": max_bytes, "max_pixels": max_pixels}
    coins: list[Segmentation] = []
    coin = None
    if coin_mm is not None and not first_only:  # the coins are left out of the stones, even on the card
        coin = find_coin(image.rgb, stones, coin_mm)
        coins = [stones[i] for i in coin.coins]
        stones = [s for i, s in enumerate(stones) if i not in coin.coins]
        if card is None and coin.ref is not None:
            stones = stones_beside(stones, coin.ref)
        stones = stones or [_nothing(seg)]
    painted = stones + coins  # what a stone's crop paints out: the other stones, and the coins
    if card is not None:
        view = card_view(image, card, **limits)
        return Located(image, stones, painted, view, _sizes(view, stones, first_only, coins), "card")
    if coin is None:
        return Located(image, stones, stones, None, None, None)
    if coin.ref is None:  # asked for and not found (or slanted, or two coins): every stone says why
        why = StoneSize(status="cannot_measure", reason=coin.reason, method=COIN_METHOD)
        return Located(image, stones, painted, None, [why] * len(stones), "coin")
    view = coin_view(image, coins[0], coin.ref, stones, **limits)
    return Located(image, stones, painted, view, _sizes(view, stones, first_only, coins), "coin")


def _beside_ruler(image: DecodedImage, max_bytes: int, max_pixels: int) -> Located:
    """The stones beside a millimetre ruler, found on the photo at full resolution (its ticks are a millimetre
    apart: a quarter-size working image does not resolve them). Without one, the stones as finely segmented,
    less the pieces much smaller than the largest (`find_stones`' own rule: without a scale, a stray tick or
    speck cannot be told from a 2 mm stone) and those on a row of ticks that is no millimetre scale (an inch
    ruler), each saying why it is not measured."""
    full = _full(image, max_bytes, max_pixels)
    k, rgb = (1.0, image.rgb) if full is None else (full.scale / image.scale, full.rgb)
    found = search_ruler(rgb)
    seg = segment(image.rgb, **BESIDE_SEGMENTATION)
    ruler = found.ref
    if ruler is None:
        stones = find_stones(image.rgb, seg, side=CARD_SPLITTING["side"])
        pieces: list[Segmentation] = []
        if found.band_px is not None:  # a row of ticks that is no millimetre scale: still not stones
            stones, pieces = split_off(stones, found.band_px, k)
        stones = stones or [_nothing(seg)]
        why = StoneSize(status="cannot_measure", reason=found.reason, method=RULER_METHOD)
        return Located(image, stones, stones + pieces, None, [why] * len(stones), "ruler")
    stones, pieces = ruler.stones(find_stones(image.rgb, seg, **CARD_SPLITTING), k)
    stones = stones or [_nothing(seg)]
    view = ReferenceView(rgb=rgb, ref=ruler, k=k)
    return Located(image, stones, stones + pieces, view, _sizes(view, stones, False, pieces), "ruler")


def _full(image: DecodedImage, max_bytes: int, max_pixels: int) -> DecodedImage | None:
    """The photo decoded again at the finest power-of-two reduction within FULL_SIDE, or None when the working
    image already is that (or cannot be refined)."""
    step = 1  # a 40 MP photo is measured at half its side: 3,600 px hold a 3 mm stone in about 50 px
    while max(image.width, image.height) / step > FULL_SIDE:
        step *= 2
    if image.scale >= 1.0 / step or image.data is None:
        return None
    return finer(image, step, max_bytes=max_bytes, max_pixels=max_pixels)


def card_view(image: DecodedImage, card: ScaleReference, *, max_bytes: int, max_pixels: int) -> ReferenceView:
    """The photo of the scale card at full resolution, cleared like the working image: the card found again there
    (the working image's card, scaled, stands in when its markers are not found at full size)."""
    full = _full(image, max_bytes, max_pixels)
    if full is None:
        return ReferenceView(rgb=image.rgb, ref=card, k=1.0)
    k = full.scale / image.scale
    ref = find_card(full.rgb) or card.scaled(k)
    return ReferenceView(rgb=clear_card(full.rgb, ref), ref=ref, k=k)


def coin_view(image: DecodedImage, coin_seg: Segmentation, coin: CoinReference, stones: list[Segmentation], *,
              max_bytes: int, max_pixels: int) -> ReferenceView:
    """The photo with the coin at full resolution, the coin's outline measured again there (the working image's
    ellipse, scaled, stands in when that fails)."""
    full = _full(image, max_bytes, max_pixels)
    k, rgb = (1.0, image.rgb) if full is None else (full.scale / image.scale, full.rgb)
    points = fine_outline(rgb, coin_seg, stones, k)
    again = fit_coin(points, coin.diameter_mm, float(max(rgb.shape[:2]))) if points is not None else None
    return ReferenceView(rgb=rgb, ref=again if isinstance(again, CoinReference) else coin.scaled(k), k=k)


def _sizes(view: ReferenceView, stones: list[Segmentation], first_only: bool,
           also: Sequence[Segmentation] = ()) -> list[StoneSize]:
    """Each stone's length and width on the reference (`also`: a coin, painted out like the neighbours)."""
    if first_only and stones[0].n_stones > 1:  # identify's whole photo: several stones as one
        return [StoneSize(status="cannot_measure", method=view.ref.method, reason=(
            "the photo holds several stones: each is measured when every stone is identified"))]
    return measure_stones(view.rgb, view.ref, stones[:1] if first_only else stones, view.k, also)


def _nothing(seg: Segmentation) -> Segmentation:
    """No stone: what segment gives a photo without one (here, a photo of the coin alone)."""
    h, w = seg.mask.shape
    return replace(seg, mask=np.zeros_like(seg.mask), bbox=(0, 0, w, h), outline=[], area_fraction=0.0, n_stones=0,
                   found=False)
