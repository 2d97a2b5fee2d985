"""Size benchmark (issue 32, "Size in millimetres"): stones on gemid's scale card through
`Identifier.identify_stones`, against their true length and width.

    python -m bench.bench_size                      # 24 photos of the val stones (~2 min, 2 cores)
    python -m bench.bench_size --split train        # the stones the edge constants were chosen on
    python -m bench.bench_size --photos 4 --drawn   # drawn stones, without ../shared (what the test runs)
    python -m bench.bench_size --coin               # stones on paper beside a coin instead of on the card

Each photo is composed in memory, never saved: the card drawn as printed (`gemid.datasets.card.draw_card`,
14 px/mm), 5-9 stones cut out of gemid's shape-labelled gems68 photos (`shape_gems68.csv`, split `--split`)
with `segment`'s mask (not the photos whose mask is facet pieces or specks: their true outline is no
stone's), each scaled to a random true length of 3-14 mm and turned at random, laid apart on the
card with a soft shadow, its bounding circle 1 mm clear of the card's edge and of the markers' 2 mm margins
(as the card asks). Two errors of a real desk are simulated: the print's scale (normal, sigma 0.25 %: the
card drawn that much larger or smaller while the stones keep their size) and parallax (the stone's girdle
0.22 of its length above the paper, the camera 200-350 mm above: the stone drawn 0.2-1.5 % larger than it
is). Then a camera: a perspective tilt of up to 8 % of the side, a desk around the card, a
lamp (daylight, warm 3000 K-like or cool), defocus up to 1.2 px, noise up to 1.5 %, JPEG 80-95, the photo
2400-4000 px wide (a phone's 12 MP frame is 4000). The truth is the laid mask's minimum-area rectangle.

A stone is **found** when a report's `stone.bbox` holds its centre (one to one) and **measured** when that
report's `stone.size.status` is measured. Printed: found and measured shares, the error of length and width
(median and 95th percentile of |error|, in mm and in % of the true size, and the mean signed error: the
bias), how often the stated 95 % interval holds the true value (both sides), the share of stones whose
top-1 species on the card is the one `identify` gives their own photo (the model sees a stone 3-14 mm on
the card at the photo's resolution, not the product photo), and the time per photo.

With `--coin` each photo is 3-6 stones on a sheet of paper beside a coin of 18-27 mm (brass, nickel or copper,
its face 1.5 mm above the paper), taken by a pinhole camera 120-250 mm above, tilted 0-12°, 70° across its long
side (`compose_coin`): a true perspective, which one coin cannot undo as the card's four markers do; its
diameter is passed as `coin_mm`.

The photos are composed from real stone photos, but the card, the coin and the camera are simulated: no real
photo of a stone on the card or beside a coin exists yet, so these figures check the method, not a desk's
photos.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.gems68 import GEMS  # noqa: E402
from bench.machine import cpu_description  # noqa: E402

SHAPES_CSV = REPO / "gemid" / "datasets" / "annotations" / "shape_gems68.csv"
PPM = 14.0  # pixels per mm of the card as drawn
LENGTH_MM = (3.0, 14.0)
AREA_MM = ((10.0, 140.0), (10.0, 90.0))  # where stone centres are drawn from (then kept clear of the markers)
PRINT_SIGMA = 0.0025  # a print's scale error, 1 sigma: a print checked with a ruler to 0.5 mm over 100 mm
DISTANCE_MM = (200.0, 350.0)  # the camera's height above the card (a phone held over a desk)
GIRDLE = 0.22  # the girdle's height above the paper, per mm of the stone's length (table up)
CLEARANCE_MM = 1.0  # a stone's bounding circle keeps this far from the markers' margins and the card's edge
LAMPS = ((1.0, 1.0, 1.0), (1.0, 0.84, 0.62), (0.88, 0.95, 1.06))
DESKS = ((92, 70, 52), (160, 150, 140), (40, 40, 45))


@dataclass
class Cutout:
    name: str
    rgb: np.ndarray
    mask: np.ndarray  # uint8 0/255
    photo: bytes  # the stone's own photo, identified alone for "same top-1"
    shape: str | None = None  # its cut shape, labelled by eye (shape_gems68.csv); None for a drawn stone


def real_cutouts(split: str, keep_fragments: bool = False) -> list[Cutout]:
    """The `split` photos of the shape annotation cut out by `segment`'s mask: one whole stone each (not cut by
    the frame and, unless `keep_fragments`, not a photo whose mask is facet pieces or specks: `fragmentary`, as
    the tray bench leaves out)."""
    from bench.bench_trays import fragmentary
    from gemid.vision.segment import segment

    with SHAPES_CSV.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    out = []
    for r in rows:
        bgr = cv2.imread(str(GEMS / r["path"]), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        seg = segment(rgb)
        if not seg.found or seg.n_stones != 1:
            continue
        x, y, w, h = seg.bbox
        H, W = seg.mask.shape
        if x <= 0 or y <= 0 or x + w >= W or y + h >= H:  # cut by the frame: its true outline is unknown
            continue
        if not keep_fragments and fragmentary(seg.mask[y:y + h, x:x + w].astype(np.float32) / 255.0):
            continue  # its true outline is unknown too: laid on the card it is a stone no desk has
        out.append(Cutout(r["path"], rgb[y:y + h, x:x + w].copy(), seg.mask[y:y + h, x:x + w].copy(),
                          (GEMS / r["path"]).read_bytes(), r["shape"]))
    return out


def drawn_cutouts(n: int = 8, seed: int = 0) -> list[Cutout]:
    sys.path.insert(0, str(REPO / "tests" / "support"))
    from bundle_fixture import STONE_COLOURS, draw_stone

    from gemid.vision.segment import segment

    names = list(STONE_COLOURS)
    out = []
    for i in range(n):
        rgb = draw_stone(STONE_COLOURS[names[i % len(names)]], seed=seed + i)
        seg = segment(rgb)
        x, y, w, h = seg.bbox
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        out.append(Cutout(f"drawn-{i}", rgb[y:y + h, x:x + w].copy(), seg.mask[y:y + h, x:x + w].copy(), png.tobytes()))
    return out


@dataclass
class Truth:
    length: float
    width: float
    centre_photo: tuple[float, float]
    cutout: int  # which cutout was laid there


def _clear(cx: float, cy: float, r: float) -> bool:
    """A stone of radius `r` (mm) centred here keeps clear of the card's edge and of every marker's margin,
    as the card tells the user (a stone cut by the painted-out margin is not measured, by design)."""
    from gemid.vision.scale import CARD, MARKER_IDS, QUIET_MM

    if not (r <= cx <= CARD.width_mm - r and r <= cy <= CARD.height_mm - r):
        return False
    for marker in MARKER_IDS:
        ox, oy = CARD.origin(marker)
        dx = max(ox - QUIET_MM - cx, 0.0, cx - (ox + CARD.marker_mm + QUIET_MM))
        dy = max(oy - QUIET_MM - cy, 0.0, cy - (oy + CARD.marker_mm + QUIET_MM))
        if np.hypot(dx, dy) < r:
            return False
    return True


def compose(cutouts: list[Cutout], rng: np.random.Generator) -> tuple[bytes, list[Truth]]:
    """One photo of 5-9 stones on the card (JPEG bytes) and their true sizes."""
    from gemid.datasets.card import camera, draw_card, lay_stone

    printed = PPM * (1.0 + float(rng.normal(0.0, PRINT_SIGMA)))  # the card as this printer printed it
    distance = float(rng.uniform(*DISTANCE_MM))  # the camera above the card
    card, origin = draw_card(printed)
    k = int(rng.integers(5, 10))
    picks = rng.choice(len(cutouts), size=min(k, len(cutouts)), replace=False)
    placed: list[tuple[float, float, float]] = []
    truths_card = []
    for j in picks:
        length = float(rng.uniform(*LENGTH_MM))
        for _ in range(200):
            cx, cy = rng.uniform(*AREA_MM[0]), rng.uniform(*AREA_MM[1])
            if all(np.hypot(cx - px, cy - py) > (length + pl) / 2 + 3.0 for px, py, pl in placed) \
                    and _clear(cx, cy, length / 2 + CLEARANCE_MM):
                break
        else:
            continue
        placed.append((cx, cy, length))
        c = cutouts[j]
        centre_px = (origin[0] + cx * printed, origin[1] + cy * printed)
        # the girdle stands ~0.28 of the width (~0.22 of the length) above the paper, nearer the camera
        near = 1.0 + GIRDLE * length / distance
        lp, wp = lay_stone(card, c.rgb, c.mask, centre_px, length * PPM * near, angle_deg=float(rng.uniform(0, 180)))
        truths_card.append((lp / PPM / near, wp / PPM / near, centre_px, int(j)))
    side = int(rng.integers(2400, 4001))
    photo, hmat = camera(card, rng, tilt=float(rng.uniform(0.0, 0.08)), desk=DESKS[int(rng.integers(len(DESKS)))],
                         out_side=side, lamp=LAMPS[int(rng.integers(len(LAMPS)))], blur=float(rng.uniform(0, 1.2)),
                         noise=float(rng.uniform(0, 0.015)), jpeg=int(rng.integers(80, 96)))
    truths = []
    for length, width, (px, py), j in truths_card:
        q = cv2.perspectiveTransform(np.array([[[px, py]]], np.float64), hmat).reshape(2)
        truths.append(Truth(length, width, (float(q[0]), float(q[1])), j))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes(), truths


COIN_MM = (18.0, 27.0)  # coins of the world's common sizes
COIN_RAISED_MM = 1.5  # the coin's face above the paper
COIN_TILT_DEG = (0.0, 12.0)  # a phone held over the desk "from above"
COIN_DISTANCE_MM = (120.0, 250.0)
FIELD_DEG = 70.0  # a phone's main camera across its long side
SHEET_MM = (300.0, 240.0)


def compose_coin(cutouts: list[Cutout], rng: np.random.Generator) -> tuple[bytes, list[Truth], float]:
    """One photo of 3-6 stones on paper beside a coin (JPEG bytes), their true sizes and the coin's diameter:
    a pinhole camera 120-250 mm above, tilted 0-12° (a true perspective, which one coin's ellipse cannot
    undo); the coin's face 1.5 mm and each girdle 0.22 of the stone's length above the paper, drawn that much
    nearer the camera (larger)."""
    from gemid.datasets.card import COINS, draw_sheet, lay_coin

    sheet = draw_sheet(PPM, *SHEET_MM)
    distance = float(rng.uniform(*COIN_DISTANCE_MM))
    centre = np.array(SHEET_MM) / 2.0
    coin_mm = float(rng.uniform(*COIN_MM))
    coin_at = centre + rng.uniform(-25.0, 25.0, 2)
    lay_coin(sheet, tuple(coin_at * PPM), coin_mm * PPM * (1.0 + COIN_RAISED_MM / distance),
             metal=COINS[int(rng.integers(len(COINS)))], seed=int(rng.integers(1 << 30)))
    laid = _lay_stones(sheet, cutouts, rng, centre, distance, [(coin_at[0], coin_at[1], coin_mm)])
    return (*_phone_photo(sheet, centre, distance, laid, rng), coin_mm)


def _lay_stones(sheet: np.ndarray, cutouts: list[Cutout], rng: np.random.Generator, centre: np.ndarray,
                distance: float, placed: list[tuple[float, float, float]],
                clear: Callable[[float, float, float], bool] = lambda cx, cy, length: True,
                tries: int = 60) -> list[tuple[float, float, tuple[float, float], int]]:
    """Lays 3-6 cut-outs on the sheet within 55 mm of `centre`, 3 mm clear of each other and of what is
    `placed` ((x, y, diameter) in mm), where `clear` allows; each drawn larger by its girdle's height over the
    camera's distance. Returns (true length mm, true width mm, centre on the sheet px, cut-out index) each."""
    from gemid.datasets.card import lay_stone

    laid = []
    for _ in range(int(rng.integers(3, 7))):
        j = int(rng.integers(len(cutouts)))
        length = float(rng.uniform(*LENGTH_MM))
        for _try in range(tries):
            cx, cy = centre + rng.uniform(-55.0, 55.0, 2)
            if clear(cx, cy, length) and all(np.hypot(cx - px, cy - py) > (length + pl) / 2 + 3.0
                                             for px, py, pl in placed):
                break
        else:
            continue
        placed.append((cx, cy, length))
        near = 1.0 + GIRDLE * length / distance
        c = cutouts[j]
        lp, wp = lay_stone(sheet, c.rgb, c.mask, (cx * PPM, cy * PPM), length * PPM * near,
                           angle_deg=float(rng.uniform(0, 180)))
        laid.append((lp / PPM / near, wp / PPM / near, (cx * PPM, cy * PPM), j))
    return laid


def _phone_photo(sheet: np.ndarray, centre: np.ndarray, distance: float,
                 laid: list[tuple[float, float, tuple[float, float], int]],
                 rng: np.random.Generator) -> tuple[bytes, list[Truth]]:
    """The sheet seen by a phone `distance` mm above `centre`, tilted 0-12° (a true perspective), 2400-4000 px
    wide, under a lamp, with defocus, noise and JPEG: the JPEG bytes and each laid stone's truth in the photo."""
    from gemid.datasets.card import exposed, pinhole

    side = int(rng.integers(2400, 4001))
    size = (side, side * 3 // 4)
    hmat = pinhole(PPM, tuple(centre), distance_mm=distance, tilt_deg=float(rng.uniform(*COIN_TILT_DEG)),
                   azimuth_deg=float(rng.uniform(0, 360)), focal_px=side / (2.0 * np.tan(np.radians(FIELD_DEG / 2))),
                   out_size=size)
    photo = exposed(sheet, hmat, size, rng, desk=(246, 246, 242), lamp=LAMPS[int(rng.integers(len(LAMPS)))],
                    blur=float(rng.uniform(0, 1.2)), noise=float(rng.uniform(0, 0.015)), jpeg=int(rng.integers(80, 96)))
    truths = [Truth(length, width, tuple(cv2.perspectiveTransform(np.array([[c]], np.float64), hmat).reshape(2)), j)
              for length, width, c, j in laid]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes(), truths


RULER_RAISED_MM = 2.0  # a ruler's face (its ticks) above the paper
RULER_GAP_MM = 5.0  # the stones at least this far from the ruler, as the report's advice asks (ruler.NO_RULER)


def compose_ruler(cutouts: list[Cutout], rng: np.random.Generator) -> tuple[bytes, list[Truth]]:
    """One photo of 3-6 stones on paper beside a 150 mm ruler (JPEG bytes) and their true sizes: white, wooden,
    steel or clear, at any angle, half of them with an inch scale on the other edge; the camera as for the
    coin (`compose_coin`), the ruler's face 2 mm above the paper."""
    from gemid.datasets.card import RULERS, draw_sheet, lay_ruler

    sheet = draw_sheet(PPM, *SHEET_MM)
    distance = float(rng.uniform(*COIN_DISTANCE_MM))
    centre = np.array(SHEET_MM) / 2.0
    angle = float(rng.uniform(0.0, 180.0))
    at = centre + rng.uniform(-15.0, 15.0, 2)
    along = np.array([np.cos(np.radians(angle)), -np.sin(np.radians(angle))])  # cv2's rotation turns clockwise
    offset = np.array([-along[1], along[0]]) * float(rng.choice([-1.0, 1.0])) * 35.0
    lay_ruler(sheet, tuple((at + offset) * PPM), angle, PPM * (1.0 + RULER_RAISED_MM / distance),
              body=RULERS[int(rng.integers(len(RULERS)))], inches=bool(rng.integers(2)))
    ruler_half = (75.0, 13.0)  # the ruler's half length and half width, mm
    across = np.array([-along[1], along[0]])

    def clear(cx: float, cy: float, length: float) -> bool:  # RULER_GAP_MM clear of the ruler's rectangle
        rel = np.array([cx, cy]) - (at + offset)
        return bool(abs(rel @ along) > ruler_half[0] + length / 2 + RULER_GAP_MM
                    or abs(rel @ across) > ruler_half[1] + length / 2 + RULER_GAP_MM)

    laid = _lay_stones(sheet, cutouts, rng, centre, distance, [], clear, tries=80)
    return _phone_photo(sheet, centre, distance, laid, rng)


def evaluate(ident, cutouts: list[Cutout], photos: int, seed: int, coin: bool = False,
             ruler: bool = False) -> dict[str, float]:
    """Run `photos` composed photos (on the card, or beside a coin or a ruler); returns the figures the benchmark
    prints."""
    rng = np.random.default_rng(seed)
    alone: dict[int, str | None] = {}  # each cutout's top-1 in its own photo, asked once
    n = found = measured = covered = same = shaped = shape_right = extra = 0
    err_l, err_w, rel, signed = [], [], [], []
    seconds = 0.0
    for _ in range(photos):
        if coin:
            data, truths, coin_mm = compose_coin(cutouts, rng)
        elif ruler:
            (data, truths), coin_mm = compose_ruler(cutouts, rng), None
        else:
            (data, truths), coin_mm = compose(cutouts, rng), None
        t0 = time.perf_counter()
        reports = ident.identify_stones(data, grade=False, coin_mm=coin_mm, ruler=ruler)
        seconds += time.perf_counter() - t0
        used: set[int] = set()
        for t in truths:
            n += 1
            hit = None
            for i, r in enumerate(reports):
                if i in used or r.stone is None:
                    continue
                x, y, w, h = r.stone.bbox
                if x <= t.centre_photo[0] <= x + w and y <= t.centre_photo[1] <= y + h:
                    hit = i
                    break
            if hit is None:
                continue
            used.add(hit)
            found += 1
            if t.cutout not in alone:
                top = ident.identify(cutouts[t.cutout].photo, grade=False).species.top
                alone[t.cutout] = top[0].label if top else None
            top = reports[hit].species.top
            same += int(bool(top) and top[0].label == alone[t.cutout])
            if cutouts[t.cutout].shape is not None:
                shaped += 1
                got = reports[hit].stone.shape
                shape_right += int(got is not None and got.label == cutouts[t.cutout].shape)
            size = reports[hit].stone.size
            if size is None or size.status != "measured":
                continue
            measured += 1
            el, ew = size.length_mm - t.length, size.width_mm - t.width
            err_l.append(abs(el))
            err_w.append(abs(ew))
            rel += [abs(el) / t.length, abs(ew) / t.width]
            signed += [el, ew]
            covered += int(abs(el) <= size.uncertainty_mm and abs(ew) <= size.uncertainty_mm)
        # reported stones that are none of the stones laid: a piece of the coin or the ruler, a shadow
        extra += sum(1 for i, r in enumerate(reports) if i not in used and r.stone is not None and r.quality.stone)
    both = np.array(err_l + err_w) if err_l else np.zeros(1)
    return {"stones": n, "extra": extra, "found": 100.0 * found / max(1, n), "measured": 100.0 * measured / max(1, n),
            "same_top1": 100.0 * same / max(1, n), "shaped": shaped,
            "shape_top1": 100.0 * shape_right / max(1, shaped),
            "median_mm": float(np.median(both)), "p95_mm": float(np.percentile(both, 95)),
            "median_pct": 100.0 * float(np.median(rel)) if rel else 0.0,
            "p95_pct": 100.0 * float(np.percentile(rel, 95)) if rel else 0.0,
            "bias_mm": float(np.mean(signed)) if signed else 0.0,
            "coverage": 100.0 * covered / max(1, measured), "covered": covered, "measured_n": measured,
            "seconds_per_photo": seconds / max(1, photos)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="val", choices=("train", "val"))
    ap.add_argument("--drawn", action="store_true", help="drawn stones (no ../shared needed)")
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--coin", action="store_true",
                    help="stones on paper beside a coin (its diameter entered), photographed in true perspective")
    ap.add_argument("--ruler", action="store_true",
                    help="stones on paper beside a millimetre ruler, photographed in true perspective")
    ap.add_argument("--keep-fragments", action="store_true",
                    help="keep the photos whose mask is facet pieces or specks (left out by default)")
    args = ap.parse_args(argv)

    from gemid.stats import wilson
    from gemid.vision.bundle import DEFAULT_BUNDLE_DIR
    from gemid.vision.pipeline import Identifier

    cutouts = drawn_cutouts() if args.drawn else real_cutouts(args.split, args.keep_fragments)
    if not cutouts:
        print(f"no stones: {GEMS} is missing (use --drawn)")
        return 2
    ident = Identifier(args.bundle or DEFAULT_BUNDLE_DIR)
    f = evaluate(ident, cutouts, args.photos, args.seed, coin=args.coin, ruler=args.ruler)
    src = "drawn stones" if args.drawn else f"{len(cutouts)} real gems68 stones ({args.split})"
    where = "beside a coin" if args.coin else "beside a ruler" if args.ruler else "on the scale card"
    print(f"size {where}: {args.photos} composed photos of {src}, seed {args.seed}")
    print(f"CPU: {cpu_description()}")
    print(f"stones {f['stones']}: found {f['found']:.1f} %, measured {f['measured']:.1f} %; "
          f"{f['extra']} reported that are not stones")
    print(f"|error| length and width: median {f['median_mm']:.2f} mm ({f['median_pct']:.1f} %), "
          f"95th pct {f['p95_mm']:.2f} mm ({f['p95_pct']:.1f} %); mean signed error {f['bias_mm']:+.3f} mm")
    lo, hi = wilson(f["coverage"] / 100.0, f["measured_n"])
    print(f"stated 95 % interval holds both sides: {f['coverage']:.1f} % of measured stones ({f['covered']} of "
          f"{f['measured_n']}; Wilson 95 % interval {100 * lo:.1f}-{100 * hi:.1f} %)")
    print(f"same top-1 as the stone's own photo alone: {f['same_top1']:.1f} % of stones")
    if f["shaped"]:
        print(f"cut shape as labelled by eye: {f['shape_top1']:.1f} % of {f['shaped']} stones found")
    print(f"time per photo (identify_stones, grade=False, JPEG in): {f['seconds_per_photo']:.2f} s")
    if not args.drawn and ident.bundle.trained_on_every_photo:
        print(ident.bundle.in_sample_note())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
