"""Colour invariance on real photos (issue 27): the same gems68 photo under a warm lamp, in cool shade and one
stop under, graded by the runtime colour path, against the original photo's own grade.

    python -m bench.bench_colour_real                   # the annotated val part (about 1 min on 2 cores)
    python -m bench.bench_colour_real --split train     # the part the thresholds may be tuned on
    python -m bench.bench_colour_real --json /tmp/colour_real.json

Photos: the gems68 photos of `gemid/datasets/annotations/clarity_gems68.csv` (transparent species, judged by
eye) whose label is not `cannot_judge` (no cabochons, tumbles, pairs), in the given split (the species model's
own split, near copies kept together): tune on `train`, report on `val`.

Versions, made the way a camera white-balanced for D65 records another light, in linear light (decode sRGB,
multiply, encode to 8 bits):
  warm  a 3500 K Planckian lamp: gains R 1.00, G 0.571, B 0.259
  cool  7500 K shade: gains 0.828, 0.842, 1.00
  dim   one stop under: x 0.5
  dark  20 % of the light (x 0.2): only its exposure warning is counted

Every version goes through the path the pipeline runs: `segment` -> `assess` (quality warnings) ->
`locate` -> `grade_colour`. Over the photos whose original is graded, per version: the share with the very
same hue name (modifier included, e.g. "slightly bluish green"), the share whose body colour is within
ΔE76 8 of the original's, the median ΔE76, and how many versions were not graded (`cannot_judge`; counted as
misses in both shares). Targets: hue name >= 80 % under each version, ΔE76 <= 8 for >= 80 % under warm and
cool. Also: the spread of the confidence, and how often each version gets an `underexposed` warning (the
originals should not). Needs ../shared/data/gems68/train (skips without it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]
GEMS68 = Path(os.environ.get("GEMID_GEMS68", REPO.parent / "shared" / "data" / "gems68" / "train"))
LABELS = REPO / "gemid" / "datasets" / "annotations" / "clarity_gems68.csv"
VERSIONS: dict[str, tuple[float, float, float]] = {
    "warm": (1.00, 0.571, 0.259),
    "cool": (0.828, 0.842, 1.00),
    "dim": (0.5, 0.5, 0.5),
    "dark": (0.2, 0.2, 0.2),
}
SCORED = ("warm", "cool", "dim")
TARGET = 80.0
DE_LIMIT = 8.0


def photos(split: str) -> list[str]:
    with LABELS.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["pass"] == "1" and r["label"] != "cannot_judge"]
    return sorted(r["path"] for r in rows if split == "all" or r["split"] == split)


def cast(rgb: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """The photo as recorded under other light: gains on linear sRGB, encoded back to 8 bits."""
    from gemid.vision.colorimetry import linear_to_srgb, srgb8_to_linear

    lin = srgb8_to_linear(rgb) * np.asarray(gains)
    return np.round(linear_to_srgb(lin) * 255.0).astype(np.uint8)


def grade(rgb: np.ndarray) -> tuple[Any, set[str]]:
    """(colour grade or None, quality warning codes), as the pipeline computes them."""
    from gemid.vision.colour import grade_colour
    from gemid.vision.quality import assess
    from gemid.vision.segment import segment
    from gemid.vision.stone_area import locate

    seg = segment(rgb)
    codes = {w.code for w in assess(rgb, seg).warnings}
    if not seg.found:
        return None, codes
    return grade_colour(rgb, seg, area=locate(rgb, seg)), codes


def graded(g: Any) -> bool:
    return g is not None and getattr(g, "status", "graded") == "graded" and g.lab is not None


def run(split: str, limit: int | None) -> dict[str, Any]:
    from gemid.vision.decode import decode

    paths = photos(split)
    if limit:
        paths = paths[:limit]
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for p in paths:
        rgb = decode(GEMS68 / p).rgb
        g0, w0 = grade(rgb)
        row: dict[str, Any] = {"path": p, "graded": graded(g0), "warnings": sorted(w0),
                               "status": getattr(g0, "status", None) if g0 is not None else "none",
                               "hue": g0.hue if graded(g0) else None,
                               "confidence": g0.confidence if g0 is not None else None}
        for name, gains in VERSIONS.items():
            g, w = grade(cast(rgb, gains))
            v: dict[str, Any] = {"underexposed": "underexposed" in w, "graded": graded(g),
                                 "status": getattr(g, "status", None) if g is not None else "none"}
            if graded(g0) and graded(g):
                v["same_hue"] = g.hue == g0.hue
                v["de76"] = float(np.linalg.norm(np.subtract(g.lab, g0.lab)))
                v["hue"] = g.hue
            row[name] = v
        rows.append(row)
    elapsed = time.perf_counter() - t0
    return {"split": split, "photos": len(paths), "rows": rows,
            "seconds_per_photo": elapsed / max(1, len(paths)), **summarise(rows)}


def pct(num: int, den: int) -> float | None:
    return 100.0 * num / den if den else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    base = [r for r in rows if r["graded"]]
    out: dict[str, Any] = {"originals_graded": len(base),
                           "originals_status": dict(Counter(r["status"] for r in rows)),
                           "originals_underexposed": pct(sum("underexposed" in r["warnings"] for r in rows),
                                                         len(rows))}
    conf = np.array([r["confidence"] for r in base if r["confidence"] is not None])
    out["confidence"] = ({"min": float(conf.min()), "p10": float(np.percentile(conf, 10)),
                          "median": float(np.median(conf)), "p90": float(np.percentile(conf, 90)),
                          "max": float(conf.max()), "distinct": int(len(np.unique(conf)))} if len(conf) else None)
    for name in VERSIONS:
        vs = [r[name] for r in base]
        de = np.array([v["de76"] for v in vs if "de76" in v])
        out[name] = {
            "same_hue": pct(sum(v.get("same_hue", False) for v in vs), len(vs)),
            "within_de8": pct(int((de <= DE_LIMIT).sum()), len(vs)),
            "de76_median": float(np.median(de)) if len(de) else None,
            "de76_p90": float(np.percentile(de, 90)) if len(de) else None,
            "not_graded": sum(not v["graded"] for v in vs),
            "underexposed_warning": pct(sum(r[name]["underexposed"] for r in rows), len(rows)),
        }
    return out


def show(r: dict[str, Any], cpu: str) -> None:
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:5.1f} %"

    ok = {True: "met", False: "MISSED"}
    print(f"real-photo colour invariance, gems68 '{r['split']}' part: {r['photos']} photos, "
          f"{r['originals_graded']} originals graded ({r['originals_status']})")
    for name in VERSIONS:
        v = r[name]
        line = f"  {name:<5} {'x'.join(f'{g:g}' for g in VERSIONS[name])}: "
        if name in SCORED:
            hue_ok = ok[(v["same_hue"] or 0) >= TARGET]
            line += f"same hue name {f(v['same_hue'])} (target >= {TARGET:.0f} %: {hue_ok}); "
            de_target = ok[(v["within_de8"] or 0) >= TARGET] if name != "dim" else "no target"
            line += f"within dE76 {DE_LIMIT:g} {f(v['within_de8'])} ({de_target}); "
            med = v["de76_median"]
            line += f"dE76 median {med:.1f}, p90 {v['de76_p90']:.1f}; " if med is not None else ""
            line += f"not graded {v['not_graded']}; "
        line += f"underexposed warning {f(v['underexposed_warning'])}"
        print(line)
    print(f"  originals with an underexposed warning: {f(r['originals_underexposed'])}")
    c = r["confidence"]
    if c:
        print(f"  confidence on the originals: min {c['min']:.2f}, p10 {c['p10']:.2f}, median {c['median']:.2f}, "
              f"p90 {c['p90']:.2f}, max {c['max']:.2f} ({c['distinct']} distinct values)")
    print(f"{r['seconds_per_photo'] * 1000:.0f} ms per photo (5 versions: segment, quality, colour) on {cpu}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="val", choices=("val", "train", "all"))
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos (a quick look)")
    ap.add_argument("--json", type=Path, default=None, help="write every photo's figures here")
    args = ap.parse_args(argv)
    if not GEMS68.is_dir():
        print(f"real photos: {GEMS68} absent, skipped")
        return 0
    from bench.machine import cpu_description

    r = run(args.split, args.limit)
    show(r, cpu_description())
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
