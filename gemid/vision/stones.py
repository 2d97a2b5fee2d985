"""Every stone in a tray or parcel photo: one `Segmentation` each, separated where stones touch, numbered
in reading order (rows, then columns).

`gemid.vision.segment` finds the stones' pixels against the border's background (the shipped model's
training crops depend on it, so it stays as it is); here its mask is split into stones. Separate components
are separate stones. Touching stones form one component with a neck: the distance transform has one peak
per stone and a low saddle between them, so a marker-based watershed of the distance map splits them, and
neighbouring regions whose saddle is nearly as high as the lower peak are merged again (one elongated
stone, an emerald cut's ridge, a heart's two lobes are one stone, not two) unless their colours differ
(COLOUR_APART): a narrow marquise pressed against a square, or an emerald cut against an oval, meets it along
a neck as wide as itself, and only its colour says it is another stone.

One stone's mask also breaks into pieces that are not stones (issue 32: 18 of the 794 single-stone gems68
train photos came out as 2-16 stones): a dark facet band or a bright highlight cuts a pale stone's mask, a
shadow or a reflection on the table hangs below it, tweezers hold it, or a stone fills the frame so that its
own facets make the border the background is modelled from. Two rules keep those whole. Inside a component,
the flood's pieces that are small beside the component's largest piece (a shadow tail, a reflection, a sliver a
highlight cuts off) join the piece they share most border with: touching stones are of comparable size. And
when the border is not a plain background (`Segmentation.border_spread`: a stone filling the frame, a busy
cloth) the pieces cannot be told from facets, and the photo is one stone.

A photo with one stone (or none) gives back segment's own `Segmentation`, untouched: a single-stone
photo is analysed exactly as before. With several, each stone's `Segmentation` holds only that stone
(`n_stones` 1) and the model sees it alone: `isolated` paints the other stones out of its crop with the
background's colour.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import cv2
import numpy as np

from gemid.report import Quality, Stone, StoneShape
from gemid.vision.arrays import border_pixels
from gemid.vision.crop import crop_mask, crop_square, square_box
from gemid.vision.decode import DecodedImage
from gemid.vision.segment import WORK_SIDE, Segmentation, segment
from gemid.vision.shape import ShapeModel

log = logging.getLogger(__name__)

# Two peaks of the distance map are one stone when the saddle between them is at least this share of the
# lower peak. Two round stones touching at a point: saddle/peak below 0.3; pressed together so their
# outlines overlap by a fifth of a diameter, about 0.6; a heart's lobes or a marquise's ridge, above 0.8.
MERGE_SADDLE = 0.7
# A region smaller than this share of the largest stone in the photo is a fleck, a shadow's tip or a
# reflection's fragment, not a stone (segment itself keeps components down to 12 % of the largest).
MIN_STONE_AREA = 0.04
# Two regions of the flood whose colours so far differ by more than this (CIELAB, lightness weighted by
# LIGHTNESS_WEIGHT) are two stones even where the saddle between them is high: a narrow marquise pressed
# against a square, an emerald cut against an oval. None: the distance map alone. Chosen on trays of the
# train cut-outs (`python -m bench.bench_trays --split train --screen`, seed 0, 360 stones): found 97.5 %
# without, 99.2 / 99.4 / 99.7 % at 40 / 30 / 22, with 0 of the 794 train single-stone photos split at any of
# them; 22 split one of the 209 val single-stone photos (seen in the same sweep), so 30.
COLOUR_APART: float | None = 30.0
LIGHTNESS_WEIGHT = 0.5
MIN_COLOUR_PIXELS = 8  # a region's colour is judged from this many pixels on
# Stones whose centres are within this share of the median stone height are on the same row.
ROW_TOLERANCE = 0.5


SHAPE_OTHERS = 0.05  # the report names the other shapes at least this probable (the weight's range spans them)
FLOOD_SIDE = 128  # the flooding runs on the component at most this many pixels across: saddles survive it
# A component at least this convex (area over its convex hull's) has no neck, so it is one stone and the flood
# (the costliest step of a screen) is skipped. Two round stones whose saddle is at MERGE_SADDLE of their radius
# (centres 1.43 radii apart) have a solidity of 0.955; pressed further apart they are less convex and flooded.
# Measured on 2026-12-06: no component the flood split in 16 composed trays reached 0.93, while on the gems68
# photos 514 of 601 components passed this gate and 6 of those the flood would have split (facet pieces).
SOLID = 0.95
# A piece of a flooded component smaller than this share of the component's largest piece is not a stone: it
# joins the piece it shares most border with. Chosen on the 794 single-stone gems68 train photos, whose
# satellites (a shadow tail, a reflection on the table, tweezers, a notch a highlight cuts) are 0.02-0.096 of
# their stone; of the 142 pieces the flood cuts in the tray bench's touching trays, 6 are under it (irregular
# cut-outs of stones that themselves segmented as facet pieces), and 2 of those trays lose a stone to it.
SATELLITE = 0.1
# A border that varies more than this (95th percentile of CIELAB distance to its median) is not a plain
# background, and the photo is one stone: the bench's trays measure 0.4-1.1, the gems68 multi-stone photos 0-9
# (one pair on a shadowed gradient, 38), a rendered grey-to-white gradient 13.3, while the 13 single-stone train
# photos split for this reason (a stone filling the frame) measure 21-60.
BORDER_SPREAD = 15.0


def _flood(dist: np.ndarray, lab: np.ndarray | None = None) -> np.ndarray:
    """Watershed of the distance map by flooding from its peaks downwards (pixels in order of decreasing
    distance, union-find): two regions meeting at level s merge when s >= MERGE_SADDLE x the lower of their
    peaks, unless (with `lab`, the component's CIELAB pixels) their colours so far differ by more than
    COLOUR_APART; otherwise the pixel joins the region of the higher peak. Returns a label per pixel (0: outside)."""
    h, w = dist.shape
    flat = dist.ravel()
    order = np.argsort(-flat, kind="stable")
    order = order[flat[order] > 0]
    label = np.zeros(h * w, np.int64)
    parent: list[int] = [0]
    peak: list[float] = [0.0]
    # each region's summed colour and pixel count (plain floats: the loop runs per pixel)
    colours = lab.reshape(-1, 3).tolist() if lab is not None else None
    total: list[list[float]] = [[0.0, 0.0, 0.0, 0.0]]

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def apart(a: int, b: int) -> bool:
        ta, tb = total[a], total[b]
        if colours is None or ta[3] < MIN_COLOUR_PIXELS or tb[3] < MIN_COLOUR_PIXELS:
            return False
        dl = (ta[0] / ta[3] - tb[0] / tb[3]) * LIGHTNESS_WEIGHT  # facets make a stone's lightness vary most
        da, db = ta[1] / ta[3] - tb[1] / tb[3], ta[2] / ta[3] - tb[2] / tb[3]
        return dl * dl + da * da + db * db > COLOUR_APART * COLOUR_APART

    for i in order.tolist():
        y, x = divmod(i, w)
        level = float(flat[i])
        roots = set()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                yy, xx = y + dy, x + dx
                if (dy or dx) and 0 <= yy < h and 0 <= xx < w and label[yy * w + xx]:
                    roots.add(root(int(label[yy * w + xx])))
        if not roots:
            parent.append(len(parent))
            peak.append(level)
            total.append([0.0, 0.0, 0.0, 0.0])
            top = len(parent) - 1
        else:
            ranked = sorted(roots, key=lambda r: -peak[r])
            top = ranked[0]
            for r in ranked[1:]:
                if level >= MERGE_SADDLE * min(peak[top], peak[r]) and not apart(top, r):
                    parent[r] = top
                    t, o = total[top], total[r]
                    t[0] += o[0]
                    t[1] += o[1]
                    t[2] += o[2]
                    t[3] += o[3]
        label[i] = top
        if colours is not None:
            c, t = colours[i], total[top]
            t[0] += c[0]
            t[1] += c[1]
            t[2] += c[2]
            t[3] += 1.0
    roots_of = np.array([root(k) for k in range(len(parent))])
    return roots_of[label].reshape(h, w)


def _solidity(comp: np.ndarray) -> float:
    """The component's outline area over its convex hull's: 1 for a convex stone, lower where stones meet."""
    contours, _ = cv2.findContours(comp.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(contours, key=cv2.contourArea)
    hull = cv2.contourArea(cv2.convexHull(c))
    return cv2.contourArea(c) / hull if hull > 0 else 1.0


def _split(comp: np.ndarray, lab: np.ndarray | None = None) -> list[np.ndarray]:
    """One connected component (bool mask) → one bool mask per stone in it (`lab`: the image's CIELAB pixels at
    the mask's size, which keeps touching stones of different colours apart)."""
    if _solidity(comp) >= SOLID:
        return [comp]
    return _regroup(_flood_split(comp, lab), comp)


def _regroup(parts: list[np.ndarray], comp: np.ndarray) -> list[np.ndarray]:
    """The flood's pieces of `comp` as stones: a piece under SATELLITE of the largest joins the piece it shares
    the longest border with (pieces touching only other small ones join in later rounds)."""
    if len(parts) <= 1:
        return [comp]
    areas = [float(p.sum()) for p in parts]
    largest = max(areas)
    big = [i for i, a in enumerate(areas) if a >= SATELLITE * largest]
    if len(big) <= 1:
        return [comp]
    groups = {i: parts[i].copy() for i in big}
    weak = [i for i in range(len(parts)) if i not in groups]
    ring = np.ones((3, 3), np.uint8)
    while weak:
        left = []
        for i in weak:
            grown = cv2.dilate(parts[i].astype(np.uint8), ring) > 0
            shared = {g: int((grown & m).sum()) for g, m in groups.items()}
            g = max(shared, key=shared.__getitem__)
            if shared[g]:
                groups[g] |= parts[i]
            else:
                left.append(i)
        if len(left) == len(weak):  # cut off from every stone (not expected in one component): the largest takes them
            g = max(groups, key=lambda k: int(groups[k].sum()))
            for i in left:
                groups[g] |= parts[i]
            left = []
        weak = left
    return [groups[i] for i in big]


def _flood_split(comp: np.ndarray, lab: np.ndarray | None = None) -> list[np.ndarray]:
    """The distance-map flood's pieces of one component (bool masks; the component itself when one)."""
    ys, xs = np.nonzero(comp)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    box = np.pad(comp[y0:y1, x0:x1], 1).astype(np.uint8)
    s = min(1.0, FLOOD_SIDE / max(box.shape))
    size = (max(3, round(box.shape[1] * s)), max(3, round(box.shape[0] * s)))
    small = box if s == 1.0 else cv2.resize(box, size, interpolation=cv2.INTER_NEAREST)
    dist = cv2.distanceTransform(small, cv2.DIST_L2, 5)
    box_lab = None
    if lab is not None:
        box_lab = np.pad(lab[y0:y1, x0:x1], ((1, 1), (1, 1), (0, 0)), mode="edge")
        if s != 1.0:
            box_lab = cv2.resize(box_lab, size, interpolation=cv2.INTER_AREA)
    labels = _flood(dist, box_lab)
    kinds = [k for k in np.unique(labels) if k]
    if len(kinds) <= 1:
        return [comp]
    # the flood finds the stones; the border between two is drawn between their inscribed circles (each
    # pixel to the stone whose circle it is least outside of), which cuts touching round stones at the neck
    centres = []
    for k in kinds:
        d = np.where(labels == k, dist, -1.0)
        cy, cx = np.unravel_index(int(np.argmax(d)), d.shape)
        centres.append((cx / s, cy / s, float(d[cy, cx]) / s))
    inside = comp[y0:y1, x0:x1]
    gy, gx = np.mgrid[0 : y1 - y0, 0 : x1 - x0].astype(np.float32)
    outside = np.stack([np.hypot(gx + 1 - cx, gy + 1 - cy) - r for cx, cy, r in centres])
    labels = np.array(kinds)[np.argmin(outside, axis=0)]
    out = []
    for k in kinds:
        m = np.zeros_like(comp)
        m[y0:y1, x0:x1] = inside & (labels == k)
        if m.any():
            out.append(m)
    return out


def _reading_order(boxes: list[tuple[int, int, int, int]]) -> list[int]:
    """Indices of `boxes` (x, y, w, h) in reading order: rows top to bottom, then left to right."""
    if not boxes:
        return []
    tol = ROW_TOLERANCE * float(np.median([b[3] for b in boxes]))
    by_y = sorted(range(len(boxes)), key=lambda i: boxes[i][1] + boxes[i][3] / 2)
    rows: list[list[int]] = []
    row_y = None
    for i in by_y:
        cy = boxes[i][1] + boxes[i][3] / 2
        if row_y is None or cy - row_y > tol:
            rows.append([])
            row_y = cy
        rows[-1].append(i)
    return [i for row in rows for i in sorted(row, key=lambda j: boxes[j][0] + boxes[j][2] / 2)]


def find_stones(rgb: np.ndarray, seg: Segmentation, *, side: int = WORK_SIDE,
                min_share: float = MIN_STONE_AREA) -> list[Segmentation]:
    """Every stone of `seg` (segment's result for `rgb`), in reading order; `[seg]` itself for one stone or
    none (unchanged: a single-stone photo is analysed exactly as before).

    On the scale card (gemid.vision.scale) the segmentation already dropped what is smaller than a 2 mm stone,
    so the stones are split as finely as they were segmented (`side`) and none is dropped for being small
    beside the largest (`min_share` 0: a 3 mm stone beside a 15 mm one is a stone)."""
    if not seg.found or seg.border_spread > BORDER_SPREAD:  # no stone, or no plain background to tell stones by
        return [seg]
    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(seg.mask, (sw, sh), interpolation=cv2.INTER_NEAREST) > 0
    n, comps = cv2.connectedComponents(small.astype(np.uint8), connectivity=8)
    lab = None
    if COLOUR_APART is not None and n > 1:
        shrunk = rgb if (sw, sh) == (w, h) else cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(shrunk.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    parts: list[np.ndarray] = []
    for k in range(1, n):
        parts.extend(_split(comps == k, lab))
    if not parts:
        return [seg]
    areas = np.array([p.sum() for p in parts], np.float64)
    parts = [p for p, a in zip(parts, areas, strict=True) if a >= min_share * areas.max()]
    if len(parts) <= 1:
        return [seg]
    inv = 1.0 / scale
    found: list[Segmentation] = []
    for p in parts:
        u8 = p.astype(np.uint8) * 255
        contours, _ = cv2.findContours(u8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        c = max(contours, key=cv2.contourArea)
        x, y, bw, bh = cv2.boundingRect(c)
        bbox = (int(x * inv), int(y * inv), min(w, int(np.ceil(bw * inv))), min(h, int(np.ceil(bh * inv))))
        poly = cv2.approxPolyDP(c, 0.01 * cv2.arcLength(c, True), True).reshape(-1, 2)
        mask = cv2.resize(u8, (w, h), interpolation=cv2.INTER_NEAREST)
        found.append(replace(seg, mask=mask, bbox=bbox, outline=[(int(px * inv), int(py * inv)) for px, py in poly],
                             area_fraction=float(p.mean()), n_stones=1))
    return [found[i] for i in _reading_order([s.bbox for s in found])]


HALO_PX = 7  # working pixels: a neighbour's anti-aliased rim and shadow edge are painted over with it


def background_rgb(rgb: np.ndarray) -> tuple[int, int, int]:
    """The border's median colour: what the other stones are painted with in a stone's crop."""
    h, w = rgb.shape[:2]
    return tuple(int(v) for v in np.median(border_pixels(rgb, max(1, min(h, w) // 50)), axis=0))


def isolated(rgb: np.ndarray, stones: list[Segmentation], i: int, margin: float,
             fill: tuple[int, int, int] | None = None) -> tuple[np.ndarray, Segmentation]:
    """Stone `i`'s square neighbourhood with the other stones painted over in the background's colour, and
    its `Segmentation` in that neighbourhood's pixels: what the classifier's crop is cut from. One stone:
    the photo and its segmentation, unchanged."""
    if len(stones) == 1:
        return rgb, stones[i]
    return isolated_fine(rgb, 1.0, stones, i, margin, (rgb.shape[1], rgb.shape[0]), fill)


def isolated_fine(fine: np.ndarray, k: float, stones: list[Segmentation], i: int, margin: float,
                  working_size: tuple[int, int], fill: tuple[int, int, int] | None = None
                  ) -> tuple[np.ndarray, Segmentation]:
    """`isolated`, cut from the same photo decoded `k` times finer than the working image the stones were
    found on (a scale card's photo at full resolution, where a 3 mm stone has the pixels the model needs; k = 1:
    the working image itself): stone `i`'s square neighbourhood, the other stones painted out with the
    background's colour from their working-image masks. `working_size` is the working image's (width, height)."""
    seg = stones[i]
    fill = fill or background_rgb(fine)
    x0, y0, side = square_box(seg.bbox, margin, working_size)
    side += 2  # a pixel of slack each side: the crop's own rounding stays inside
    x0, y0 = x0 - 1, y0 - 1
    own = crop_mask(seg.mask, (x0, y0, side)) > 0
    paint = np.zeros_like(own)
    halo = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (HALO_PX, HALO_PX))
    for j, other in enumerate(stones):
        if j != i:
            paint |= cv2.dilate(crop_mask(other.mask, (x0, y0, side)), halo) > 0  # and their soft rims
    paint &= ~own
    fside = max(1, int(round(side * k)))
    sub = crop_square(fine, (int(round(x0 * k)), int(round(y0 * k)), fside), fill=fill)
    if k != 1.0:
        own = cv2.resize(own.astype(np.uint8), (fside, fside), interpolation=cv2.INTER_NEAREST) > 0
        paint = cv2.resize(paint.astype(np.uint8), (fside, fside), interpolation=cv2.INTER_NEAREST) > 0
    sub[paint] = fill
    x, y, bw, bh = seg.bbox
    local = replace(seg, mask=own.astype(np.uint8) * 255,
                    bbox=(int(round((x - x0) * k)), int(round((y - y0) * k)), max(1, int(round(bw * k))),
                          max(1, int(round(bh * k)))),
                    outline=[(int(round((px - x0) * k)), int(round((py - y0) * k))) for px, py in seg.outline],
                    small=None)  # not the crop's pixels
    return sub, local


SAME_STONE_IOU = 0.5  # the finer segmentation is the stone's own when it overlaps the coarse mask this much


def resegmented(sub: np.ndarray, local: Segmentation) -> Segmentation:
    """A stone's segmentation in a finer view of its neighbourhood: segmented again there (the working image's
    mask, enlarged, would give the outline its blocks), or `local` when that finds another object or only a
    part of this one. On the scale card a 3 mm stone is about 13 px in the working image and 40 in the full
    view: read on the working image, 62.9 % of the shape-labelled val stones composed onto the card kept
    their shape."""
    again = segment(sub)
    a, b = again.mask > 0, local.mask > 0
    if not again.found or a.shape != b.shape:
        return local
    overlap = np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum())
    return again if overlap >= SAME_STONE_IOU else local


def describe(stones: list[Segmentation], i: int, near: tuple[np.ndarray, Segmentation], count: int | None = None,
             *, shapes: ShapeModel | None = None, fine: bool = False, card: bool = False) -> Stone | None:
    """The report's `stone` section for stone `i` (None when no stone was found); `count` overrides how many
    stones the photo holds (the whole photo analysed as one: the pieces segmentation kept). The cut shape
    comes from `shapes`, read on `near`: the stone's neighbourhood with the others painted out, as the
    classifier's crop is cut from (`isolated`), or with `fine` its finer view (`isolated_fine` of the scale
    card's full-resolution photo), segmented again there; `card`: the stones lie on the scale card or beside a coin
    (small stones in a desk's photo), where the shape model's probabilities are tempered further
    (`ShapeModel.classify`; the temperature was chosen on card photos). Without a shape model the section has no
    shape."""
    seg = stones[i]
    if not seg.found:
        return None
    shape: StoneShape | None = None
    if shapes is not None:
        try:
            sub, local = near
            label, p, probs = shapes.classify(sub, resegmented(sub, local) if fine else local, card=card)
            others = {k: round(v, 4) for k, v in sorted(probs.items(), key=lambda kv: -kv[1])
                      if k != label and v >= SHAPE_OTHERS}
            shape = StoneShape(label=label, probability=round(p, 4), others=others)
        except Exception:  # the shape is a description: an odd outline must not cost the photo its report
            log.exception("the cut shape could not be classified")
    return Stone(index=i + 1, count=max(1, count or len(stones)), bbox=seg.bbox, outline=seg.outline, shape=shape)


def in_photo_pixels(image: DecodedImage, quality: Quality, stone: Stone | None) -> tuple[Quality, Stone | None]:
    """The stone's box and outline, measured on the working image, in the photo's own pixels (the report's)."""
    if image.scale == 1.0:
        return quality, stone

    def box(b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x, y = min(image.width - 1, image.to_photo(b[0])), min(image.height - 1, image.to_photo(b[1]))
        return x, y, max(1, min(image.width - x, image.to_photo(b[2]))), max(1, min(image.height - y, image.to_photo(b[3])))

    def line(pts: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(min(image.width - 1, image.to_photo(x)), min(image.height - 1, image.to_photo(y))) for x, y in pts]

    if quality.stone is not None:
        region = quality.stone
        quality = quality.model_copy(update={"stone": region.model_copy(
            update={"bbox": box(region.bbox), "outline": line(region.outline)})})
    if stone is not None:
        stone = stone.model_copy(update={"bbox": box(stone.bbox), "outline": line(stone.outline)})
    return quality, stone
