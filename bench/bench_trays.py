"""Tray benchmark (issue 32, "Tray photos"): many stones in one photo through `Identifier.identify_stones`.

    python -m bench.bench_trays                    # 20 trays x 2 variants of real gems68 stones (~2-3 min, 2 cores)
    python -m bench.bench_trays --trays 5 --seed 1
    python -m bench.bench_trays --drawn --bundle DIR --trays 2   # drawn stones and a given bundle (the test)
    python -m bench.bench_trays --singles          # stone counts of real single- and several-stone photos (~20 s)
    python -m bench.bench_trays --alone            # one stone at a time: background against scale (~1 min)
    python -m bench.bench_trays --neighbours       # also each found stone alone at its tray size: what neighbours cost

Each tray is composed in memory, never saved: 5-12 stones drawn from the gems68 **val** photos whose
clarity label (`gemid/datasets/annotations/clarity_gems68.csv`) is eye_clean or included (single faceted
transparent stones; the model shipped before v2 never trained on them, v2 did), each cut out of its photo
with `gemid.vision.segment.segment`'s mask and box (a cut-out that is specks or facet pieces rather than a
stone's outline, under 0.8 of its convex hull, is left out: 6 of 209; `--keep-fragments` keeps them), scaled
to 120-180 px on its longer side, and pasted on a plain light-grey canvas with a one-pixel feathered edge.
Every tray has two variants with the same stones:
**apart** (a jittered grid, gaps of at least ~40 px) and **touching** (rows in which each stone is slid
against its neighbour until their masks meet, then pressed 2 px further; rows apart).

Per variant: a stone is **found** when one of the reports' `stone.bbox` centres lies inside its placed box,
matched one to one (nearest centre first); it has the **same top-1** when that report's
`species.top[0].label` equals `Identifier.identify(original photo).species.top[0].label`, the stone
photographed alone (a stone not found counts as a miss). Extra detections (reports matched to no stone) are
counted too. Time per stone: the wall time of `identify_stones` (PNG bytes in, full graded reports out;
`--screen` for grade=False) divided by the stones placed. Targets: >= 95 % found, >= 90 % same top-1.

`--singles` counts the stones `identify_stones` finds (its decode, `segment` and `find_stones`, no model) in
real photos: every single faceted stone of the clarity annotations (eye_clean or included; train, on which
`gemid.vision.stones`' rules were chosen, and val, the tray bench's own stones) must give one, and the 21
photos of several stones (cannot_judge, reason several) are compared with their count seen by eye (SEVERAL).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import cpu_description  # noqa: E402

GEMS68 = Path(os.environ.get("GEMID_GEMS68", REPO.parent / "shared" / "data" / "gems68" / "train"))
LABELS_CSV = REPO / "gemid" / "datasets" / "annotations" / "clarity_gems68.csv"
SHAPES_CSV = LABELS_CSV.with_name("shape_gems68.csv")
TARGET_FOUND = 95.0
TARGET_SAME = 90.0
SIDE = (120, 180)  # pixels, the longer side of a placed stone
GAP = 40  # pixels, the least gap between stones of the apart variant
PRESS = 2  # pixels the touching variant presses a stone into its neighbour
MARGIN = 50  # pixels of canvas around the stones
# a cut-out under this share of its convex hull is specks or facet pieces, not a stone's outline: 6 of the 209
# val cut-outs (0.11-0.61; every whole stone's is above 0.8, a heart's notch included)
FRAGMENT_SOLIDITY = 0.8


@dataclass
class Cutout:
    name: str
    rgb: np.ndarray  # the stone's box out of its photo
    alpha: np.ndarray  # float32 0..1, the mask in that box
    reference: str | None  # top-1 of the photo alone
    photo: bytes  # the photo as identified alone
    shape: str | None = None  # its cut shape where the shape annotation labels the photo (shape_gems68.csv)

    @property
    def truth(self) -> str:
        """The species it is: its gems68 folder ("Ruby/ruby_3.jpg"), or the drawn stone's colour name."""
        return self.name.split("/")[0] if "/" in self.name else self.name.split("-")[1]


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _top1(report) -> str | None:
    return report.species.top[0].label if report.species and report.species.top else None


def _cut(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    from gemid.vision.segment import segment

    seg = segment(rgb)
    if not seg.found:
        return None
    x, y, w, h = seg.bbox
    return rgb[y : y + h, x : x + w].copy(), (seg.mask[y : y + h, x : x + w] > 0).astype(np.float32)


def fragmentary(alpha: np.ndarray) -> bool:
    """A cut-out that is not a stone's outline: its photo's segmentation kept facet pieces or specks (more than
    one piece, or under FRAGMENT_SOLIDITY of its convex hull). Laid on a tray it is a stone no desk has."""
    m = (alpha > 0.5).astype(np.uint8)
    n = cv2.connectedComponents(m)[0] - 1
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.contourArea(cv2.convexHull(np.concatenate(contours))) if contours else 0.0
    return n != 1 or float(m.sum()) < FRAGMENT_SOLIDITY * hull


def held_out(spec: str) -> set[str]:
    """The photos ("Species/file.jpg") of one split of a manifest, from "MANIFEST:SPLIT" (e.g.
    data/gems68-k5.csv:fold0, the photos a fold's model never trained on)."""
    path, _, split = spec.rpartition(":")
    with Path(path).open(newline="") as f:
        return {"/".join(r["path"].replace("\\", "/").split("/")[-2:]) for r in csv.DictReader(f) if r["split"] == split}


def real_cutouts(ident, limit: int | None = None, keep_fragments: bool = False, split: str = "val",
                 only: set[str] | None = None) -> tuple[list[Cutout], int]:
    """The `split` photos (train, val or all) labelled eye_clean or included, and among `only` when given, cut
    out; and how many photos were skipped (no stone, or a fragmentary cut-out unless `keep_fragments`)."""
    with LABELS_CSV.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if split in ("all", r["split"]) and r["label"] in ("eye_clean", "included")
                and (only is None or r["path"] in only)]
    with SHAPES_CSV.open(newline="") as f:
        shapes = {r["path"]: r["shape"] for r in csv.DictReader(f)}
    out, skipped = [], 0
    for r in rows[:limit]:
        path = GEMS68 / r["path"]
        data = path.read_bytes()
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        cut = _cut(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) if bgr is not None else None
        if cut is None or (not keep_fragments and fragmentary(cut[1])):
            skipped += 1
            continue
        ref = _top1(ident.identify(data, filename=path.name, grade=False))
        out.append(Cutout(r["path"], cut[0], cut[1], ref, data, shapes.get(r["path"])))
    return out, skipped


def drawn_cutouts(ident, n: int = 12, seed: int = 0) -> list[Cutout]:
    """Drawn stones of the tiny test bundle's colours (tests/support/bundle_fixture.py), for runs without photos."""
    sys.path.insert(0, str(REPO / "tests" / "support"))
    from bundle_fixture import STONE_COLOURS, draw_stone

    names = list(STONE_COLOURS)
    out = []
    for i in range(n):
        label = names[i % len(names)]
        rgb = draw_stone(STONE_COLOURS[label], seed=seed + i)
        cut = _cut(rgb)
        assert cut is not None
        data = _png(rgb)
        out.append(Cutout(f"drawn-{label}-{i}", cut[0], cut[1], _top1(ident.identify(data, grade=False)), data))
    return out


def _scaled(c: Cutout, side: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = c.alpha.shape
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    rgb = cv2.resize(c.rgb, size, interpolation=interp)
    alpha = cv2.resize(c.alpha, size, interpolation=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur((alpha > 0.5).astype(np.float32), (3, 3), 0)  # a one-pixel feathered rim
    return rgb, alpha


def _apart(sizes: list[tuple[int, int]], rng: np.random.Generator) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Canvas (w, h) and top-left corners on a jittered grid, stones at least GAP apart."""
    k = len(sizes)
    cols = int(np.ceil(np.sqrt(k * 4 / 3)))
    rows = int(np.ceil(k / cols))
    cell = max(max(w, h) for w, h in sizes) + GAP + 20
    corners = []
    for i, (w, h) in enumerate(sizes):
        r, c = divmod(i, cols)
        jx, jy = rng.integers(0, cell - GAP - w + 1), rng.integers(0, cell - GAP - h + 1)
        corners.append((MARGIN + c * cell + int(jx), MARGIN + r * cell + int(jy)))
    return (2 * MARGIN + cols * cell - GAP, 2 * MARGIN + rows * cell - GAP), corners


def _touching(alphas: list[np.ndarray], rng: np.random.Generator) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Rows of stones, each slid left against its neighbour until the masks meet, then pressed PRESS px."""
    k = len(alphas)
    per_row = int(rng.integers(2, 5))
    rows = [list(range(i, min(k, i + per_row))) for i in range(0, k, per_row)]
    width = MARGIN * 2 + sum(a.shape[1] for a in alphas) + 10
    height = MARGIN * 2 + sum(max(alphas[i].shape[0] for i in row) for row in rows) + GAP * (len(rows) - 1)
    occ = np.zeros((height, width), bool)
    corners: list[tuple[int, int]] = [(0, 0)] * k
    y = MARGIN
    right = 0
    for row in rows:
        row_h = max(alphas[i].shape[0] for i in row)
        x_prev = MARGIN
        for i in row:
            m = alphas[i] > 0.5
            h, w = m.shape
            top = y + (row_h - h) // 2 + int(rng.integers(-h // 6, h // 6 + 1))
            top = min(max(top, y), y + row_h - h)
            x = x_prev
            if x_prev > MARGIN:  # slide left until the masks meet
                x = x_prev
                while x > MARGIN and not (occ[top : top + h, x - 1 : x - 1 + w] & m).any():
                    x -= 1
                x = max(MARGIN, x - PRESS)
            occ[top : top + h, x : x + w] |= m
            corners[i] = (x, top)
            x_prev = x + w
            right = max(right, x + w)
        y += row_h + GAP
    return (right + MARGIN, y - GAP + MARGIN), corners


def compose(stones: list[tuple[np.ndarray, np.ndarray]], touching: bool, rng: np.random.Generator,
            grey: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A tray photo (RGB) and each stone's placed box (x, y, w, h)."""
    alphas = [a for _, a in stones]
    sizes = [(a.shape[1], a.shape[0]) for a in alphas]
    (cw, ch), corners = _touching(alphas, rng) if touching else _apart(sizes, rng)
    canvas = np.full((ch, cw, 3), grey, np.float32)
    canvas += rng.normal(0, 1.5, canvas.shape).astype(np.float32)
    boxes = []
    for (rgb, a), (x, y) in zip(stones, corners, strict=True):
        h, w = a.shape
        region = canvas[y : y + h, x : x + w]
        region[:] = region * (1 - a[..., None]) + rgb.astype(np.float32) * a[..., None]
        boxes.append((x, y, w, h))
    return np.clip(canvas, 0, 255).astype(np.uint8), boxes


def match(placed: list[tuple[int, int, int, int]], found: list[tuple[int, int, int, int]]) -> dict[int, int]:
    """placed index -> found index, one to one: a found box's centre inside a placed box, nearest centres first."""
    pairs = []
    for i, (x, y, w, h) in enumerate(placed):
        for j, (fx, fy, fw, fh) in enumerate(found):
            cx, cy = fx + fw / 2, fy + fh / 2
            if x <= cx <= x + w and y <= cy <= y + h:
                pairs.append((np.hypot(cx - x - w / 2, cy - y - h / 2), i, j))
    out: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in sorted(pairs):
        if i not in out and j not in used:
            out[i] = j
            used.add(j)
    return out


def run(ident, cutouts: list[Cutout], trays: int, seed: int, grade: bool, neighbours: bool = False) -> dict[str, float]:
    """The trays' figures; `neighbours`: each stone found is also laid alone, at the size and on the grey it had on
    its tray, and its top-1 there compared with the tray's (what the neighbours cost, apart from scale and
    background)."""
    rng = np.random.default_rng(seed)
    totals = {"placed": 0, "found": 0, "same": 0, "extra": 0, "seconds": 0.0, "shaped": 0, "shape right": 0,
              "alone": 0, "alone same": 0, "right": 0, "alone right": 0}
    for variant in ("apart", "touching"):
        totals.update({f"{variant} placed": 0, f"{variant} found": 0, f"{variant} same": 0})
    for t in range(trays):
        k = int(rng.integers(5, 13))
        picks = rng.choice(len(cutouts), size=k, replace=len(cutouts) < k)
        stones = [_scaled(cutouts[p], int(rng.integers(SIDE[0], SIDE[1] + 1))) for p in picks]
        grey = int(rng.integers(195, 221))
        for variant in ("apart", "touching"):
            photo, boxes = compose(stones, variant == "touching", rng, grey)
            data = _png(photo)
            t0 = time.perf_counter()
            reports = ident.identify_stones(data, filename=f"tray{t}-{variant}.png", grade=grade)
            dt = time.perf_counter() - t0
            found = [r.stone.bbox for r in reports if r.stone is not None]
            pairs = match(boxes, found)
            same = sum(1 for i, j in pairs.items() if _top1(reports[j]) == cutouts[picks[i]].reference)
            totals["right"] += sum(1 for i, j in pairs.items() if _top1(reports[j]) == cutouts[picks[i]].truth)
            totals["alone right"] += sum(1 for p in picks if cutouts[p].reference == cutouts[p].truth)
            extra = len(found) - len(pairs)
            if neighbours:
                for i, j in pairs.items():
                    lone = compose([stones[i]], False, np.random.default_rng([seed, t, i]), grey)[0]
                    totals["alone"] += 1
                    totals["alone same"] += int(_top1(ident.identify_stones(_png(lone), grade=False)[0])
                                                == _top1(reports[j]))
            for i, j in pairs.items():
                if cutouts[picks[i]].shape is not None:
                    got = reports[j].stone.shape
                    totals["shaped"] += 1
                    totals["shape right"] += int(got is not None and got.label == cutouts[picks[i]].shape)
            for key, v in (("placed", k), ("found", len(pairs)), ("same", same), ("extra", extra), ("seconds", dt)):
                totals[key] += v
                if key in ("placed", "found", "same"):
                    totals[f"{variant} {key}"] += v
            print(f"tray {t:3d} {variant:8s} {photo.shape[1]}x{photo.shape[0]}: placed {k:2d}, found {len(pairs):2d}, "
                  f"same top-1 {same:2d}, extra {extra}, {1000 * dt / k:.0f} ms/stone", flush=True)
    return totals


def alone(ident, cutouts: list[Cutout], seed: int) -> dict[str, int]:
    """Where a tray loses the same top-1, one stone at a time (`--alone`): each cut-out laid alone on the tray's
    grey at its own size and at the tray's 120-180 px, and its own photo shrunk until the stone is that size.
    Grey against shrunk photo separates the background the stone was cut from its scale; the trays' own figure
    adds the neighbours."""
    rng = np.random.default_rng(seed)
    hits = {"grey, own size": 0, "grey, tray size": 0, "own photo, tray size": 0}
    for c in cutouts:
        side = int(rng.integers(SIDE[0], SIDE[1] + 1))
        grey = int(rng.integers(195, 221))
        feathered = cv2.GaussianBlur((c.alpha > 0.5).astype(np.float32), (3, 3), 0)  # as `_scaled` lays it
        own = compose([(c.rgb, feathered)], False, rng, grey)[0]
        tray = compose([_scaled(c, side)], False, rng, grey)[0]
        bgr = cv2.imdecode(np.frombuffer(c.photo, np.uint8), cv2.IMREAD_COLOR)
        k = side / max(c.alpha.shape)
        shrunk = cv2.resize(bgr, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
        for key, rgb in (("grey, own size", own), ("grey, tray size", tray),
                         ("own photo, tray size", cv2.cvtColor(shrunk, cv2.COLOR_BGR2RGB))):
            hits[key] += int(_top1(ident.identify(_png(rgb), grade=False)) == c.reference)
    return hits


def with_views(classifier, n: int) -> None:
    """Make `classifier` average its logits (and features, heads) over `n` dihedral views of each crop: a
    measurement of test-time augmentation, not the runtime (its calibration and abstention were fitted on one
    view)."""
    from bench.bench_tta import views

    names = {2: ("identity", "flip_lr"), 4: ("identity", "rot90", "rot180", "rot270")}.get(n)
    run_all = classifier.run_all

    def averaged(batch, *, features=None):
        vs = views(batch)
        outs = [run_all(np.ascontiguousarray(vs[k]), features=features) for k in (names or vs)]
        heads = {h: np.mean([o[1][h] for o in outs], axis=0) for h in outs[0][1]}
        feats = None if outs[0][2] is None else np.mean([o[2] for o in outs], axis=0)
        return np.mean([o[0] for o in outs], axis=0), heads, feats

    classifier.run_all = averaged


def summary(totals: dict[str, float], grade: bool) -> list[str]:
    n = max(1, int(totals["placed"]))
    found = 100.0 * totals["found"] / n
    same = 100.0 * totals["same"] / n
    same_found = 100.0 * totals["same"] / max(1, int(totals["found"]))
    return [
        f"stones placed: {int(totals['placed'])}",
        f"found: {found:.1f} % ({int(totals['found'])}/{n}); target >= {TARGET_FOUND:.0f} %: "
        f"{'met' if found >= TARGET_FOUND else 'NOT met'}",
        f"same top-1 as alone: {same:.1f} % ({int(totals['same'])}/{n}; {same_found:.1f} % of those found); "
        f"target >= {TARGET_SAME:.0f} %: {'met' if same >= TARGET_SAME else 'NOT met'}",
        *(f"{v}: found {100.0 * totals[f'{v} found'] / max(1, totals[f'{v} placed']):.1f} %, same top-1 "
          f"{100.0 * totals[f'{v} same'] / max(1, totals[f'{v} placed']):.1f} % of {int(totals[f'{v} placed'])}"
          for v in ("apart", "touching")),
        f"right species on the tray: {100.0 * totals['right'] / n:.1f} % ({int(totals['right'])}/{n}); each stone's "
        f"own photo: {100.0 * totals['alone right'] / n:.1f} % (a stone not found counts as wrong)",
        f"extra detections: {int(totals['extra'])}",
        *([f"cut shape as labelled by eye: {100.0 * totals['shape right'] / totals['shaped']:.1f} % of "
           f"{int(totals['shaped'])} stones found whose photo has a shape label"] if totals["shaped"] else []),
        *([f"the tray's top-1 for the stone alone at the same size on the same grey: "
           f"{100.0 * totals['alone same'] / totals['alone']:.1f} % ({int(totals['alone same'])}/"
           f"{int(totals['alone'])} found)"] if totals["alone"] else []),
        f"time per stone: {1000 * totals['seconds'] / n:.0f} ms ({'full report' if grade else 'screen, grade=False'})",
    ]


# gems68 photos of several stones (clarity label cannot_judge, reason several) and the count seen by eye
SEVERAL = {
    "Alexandrite/alexandrite_15.jpg": 2, "Almandine/almandine_24.jpg": 2, "Chrome Diopside/chrome diopside_11.jpg": 2,
    "Chrome Diopside/chrome diopside_12.jpg": 4, "Chrome Diopside/chrome diopside_19.jpg": 2,
    "Chrome Diopside/chrome diopside_9.jpg": 2, "Emerald/emerald_14.jpg": 2, "Emerald/emerald_31.jpg": 2,
    "Iolite/iolite_31.jpg": 2, "Kunzite/kunzite_4.jpg": 2, "Kyanite/kyanite_28.jpg": 2,
    "Quartz Smoky/quartz smoky_16.jpg": 2, "Rhodolite/rhodolite_37.jpg": 2, "Sunstone/sunstone_11.jpg": 2,
    "Sunstone/sunstone_9.jpg": 2, "Tanzanite/tanzanite_22.jpg": 2, "Topaz/topaz_15.jpg": 2, "Topaz/topaz_17.jpg": 2,
    "Topaz/topaz_2.jpg": 2, "Topaz/topaz_33.jpg": 2, "Topaz/topaz_4.jpg": 2,
}


def stone_count(path: Path) -> int:
    """How many stones `Identifier.identify_stones` reports for a photo (its working image, segmentation and
    `find_stones`; the model plays no part in the count)."""
    from gemid.vision.decode import decode
    from gemid.vision.segment import segment
    from gemid.vision.stones import find_stones

    image = decode(path.read_bytes(), working=True)
    return len(find_stones(image.rgb, segment(image.rgb)))


def singles(gems68: Path = GEMS68) -> dict[str, list[str]]:
    """Per split, the single-stone photos (clarity label eye_clean or included) reported as several stones."""
    with LABELS_CSV.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] in ("eye_clean", "included")]
    out: dict[str, list[str]] = {"train": [], "val": []}
    totals = {"train": 0, "val": 0}
    for r in rows:
        totals[r["split"]] += 1
        n = stone_count(gems68 / r["path"])
        if n != 1:
            out[r["split"]].append(f"{r['path']} ({n})")
    for split, bad in out.items():
        print(f"single-stone photos ({split}): {len(bad)} of {totals[split]} not one stone", flush=True)
        for b in bad:
            print(f"  {b}")
    counts = {p: stone_count(gems68 / p) for p in SEVERAL}
    exact = sum(n == SEVERAL[p] for p, n in counts.items())
    print(f"photos of several stones: {exact} of {len(SEVERAL)} counted exactly; "
          f"{sum(abs(n - SEVERAL[p]) for p, n in counts.items())} stones off in all")
    for p, n in counts.items():
        if n != SEVERAL[p]:
            print(f"  {p}: {n} found, {SEVERAL[p]} seen")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trays", type=int, default=20, help="trays, each composed twice (apart and touching)")
    ap.add_argument("--split", default="val", choices=("train", "val", "all"),
                    help="whose stones: val (the figures), train (where the splitting's constants are chosen)")
    ap.add_argument("--held-out", metavar="MANIFEST:SPLIT",
                    help="only the photos of this manifest split, e.g. data/gems68-k5.csv:fold0 with --bundle of "
                         "the fold-0 model: its same top-1 is then measured on stones it never trained on")
    ap.add_argument("--keep-fragments", action="store_true",
                    help="keep the cut-outs that are specks or facet pieces (before 2026-12-06 every cut-out was used)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--screen", action="store_true", help="grade=False: the quick species screen")
    ap.add_argument("--drawn", action="store_true", help="drawn stones instead of gems68 photos (no ../shared)")
    ap.add_argument("--bundle", type=Path, default=None,
                    help="model bundle (default: the shipped one; with --drawn: a tiny one built in a temp dir)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N val photos")
    ap.add_argument("--alone", action="store_true",
                    help="instead of trays: each stone alone on grey (own size, tray size) and its photo shrunk to "
                         "tray size, the same top-1 of each (what the background costs, apart from scale)")
    ap.add_argument("--neighbours", action="store_true",
                    help="also lay each found stone alone at its tray size on the tray's grey, and count how often "
                         "the tray's top-1 stays (what the neighbours cost)")
    ap.add_argument("--tta", type=int, default=1, choices=(1, 2, 4, 8),
                    help="the classifier's logits averaged over this many dihedral views of each crop, for the "
                         "trays and the stones' own photos alike (bench_tta's sets; 1: the runtime as shipped)")
    ap.add_argument("--singles", action="store_true",
                    help="only count the stones found in real single- and several-stone photos (no model)")
    args = ap.parse_args(argv)
    if args.singles:
        if not GEMS68.is_dir():
            print(f"no gems68 photos at {GEMS68} (set GEMID_GEMS68)", file=sys.stderr)
            return 2
        singles()
        return 0

    from gemid.vision.pipeline import Identifier

    print(f"CPU: {cpu_description()}")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle
        if args.drawn and bundle is None:
            sys.path.insert(0, str(REPO / "tests" / "support"))
            from bundle_fixture import build_bundle

            bundle = build_bundle(Path(tmp) / "bundle", int8=False)
        ident = Identifier(bundle) if bundle is not None else Identifier()
        if args.tta > 1:
            with_views(ident.classifier, args.tta)
        if not args.drawn and ident.bundle.in_sample_note():
            print(ident.bundle.in_sample_note(), flush=True)
        t0 = time.perf_counter()
        if args.drawn:
            cutouts, skipped = drawn_cutouts(ident, seed=args.seed), 0
        else:
            if not GEMS68.is_dir():
                print(f"no gems68 photos at {GEMS68} (set GEMID_GEMS68, or use --drawn)", file=sys.stderr)
                return 2
            only = held_out(args.held_out) if args.held_out else None
            cutouts, skipped = real_cutouts(ident, args.limit, keep_fragments=args.keep_fragments, split=args.split,
                                            only=only)
        why = "without a stone" if args.drawn or args.keep_fragments else "without a stone or with a fragmentary cut-out"
        source = "drawn" if args.drawn else f"gems68 {args.split}" + (f" in {args.held_out}" if args.held_out else "")
        print(f"stones: {len(cutouts)} cut-outs ({source}{'' if args.drawn else ', eye_clean or included'}; "
              f"{skipped} photos {why} skipped), references in {time.perf_counter() - t0:.1f} s")
        if args.alone:
            for key, n in alone(ident, cutouts, args.seed).items():
                print(f"same top-1 as its photo, {key}: {100.0 * n / max(1, len(cutouts)):.1f} % ({n}/{len(cutouts)})")
            return 0
        totals = run(ident, cutouts, args.trays, args.seed, grade=not args.screen, neighbours=args.neighbours)
    for line in summary(totals, grade=not args.screen):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
