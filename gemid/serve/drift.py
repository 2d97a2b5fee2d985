"""Drift: are the photos coming in still like the ones the model was trained on, and if not, in what way?

Each stored report has its photo's capture statistics (gemid.vision.capture, table `report_intake`). The
reference is the same statistics over the training photos, computed once (`gemid drift-reference`, a
committed JSON file: per statistic the training deciles as bin edges and the share of training photos in
each bin; per camera its share). Each week of reports is compared with it, statistic by statistic:

- PSI, the population stability index sum((p - q) * ln(p / q)) over the reference's decile bins (p: the
  week's share, smoothed by half a photo per bin so an empty bin stays finite; q: the training share). A
  statistic has MOVED when PSI >= PSI_MOVED (0.25, the usual "major shift" line) AND above what sampling
  noise alone gives a week of n photos: n * PSI is about chi-square with bins - 1 degrees of freedom when
  nothing moved, so PSI must also pass its 99.9th percentile / n (28 / n for 10 bins: 0.28 at 100 photos,
  0.7 at 40). A week with fewer than MIN_PHOTOS photos is shown but never flagged.
- KS, the largest gap between the week's and the training's cumulative shares at the bin edges (shown, not
  gating: it says how much of the week lies beyond the training range, in plain shares).
- the week's median beside the training's, so "brightness moved" reads "darker: median 71 vs 174".

The camera model is compared the same way over categories (each camera's share; "" = no EXIF).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from gemid.serve.models_db import IntakeRow
from gemid.serve.store import ReportStore
from gemid.vision.capture import NUMERIC

PSI_MOVED = 0.25
MIN_PHOTOS = 30
Z_999 = 3.0902  # standard normal 99.9th percentile
CAMERA = "camera"
DEFAULT_REFERENCE = Path(__file__).resolve().parent / "data" / "capture_reference.json"
WORDS = {  # how a moved statistic reads, (lower, higher)
    "brightness": ("darker", "brighter"), "warmth": ("cooler (bluer) cast", "warmer (yellower) cast"),
    "tint": ("greener tint", "more magenta tint"), "stone_px": ("smaller stones", "larger stones"),
    "sharpness": ("blurrier", "sharper"), "confidence": ("less confident", "more confident"),
}


def chi2_999(df: int) -> float:
    """99.9th percentile of chi-square with `df` degrees of freedom (Wilson-Hilferty, within 1 % for df >= 3)."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + Z_999 * math.sqrt(a)) ** 3


@dataclass(frozen=True)
class IntakeSample:
    """Capture statistics of a set of reports, row-aligned: the numeric ones as arrays (NaN where unknown:
    no stone found), and the cameras."""

    created_at: list[datetime]
    values: dict[str, np.ndarray]
    cameras: list[str]


def intake_rows(store: ReportStore, *, created_from: datetime | None = None,
                created_to: datetime | None = None) -> IntakeSample:
    """The capture statistics of reports photographed in [created_from, created_to), from one indexed query."""
    cols = [getattr(IntakeRow, name) for name in NUMERIC]
    stmt = select(IntakeRow.created_at, IntakeRow.camera, *cols)
    if created_from is not None:
        stmt = stmt.where(IntakeRow.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(IntakeRow.created_at < created_to)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return sample_of([r[0] for r in rows], [r[1] for r in rows], [r[2:] for r in rows])


def sample_of(created: list[datetime], cameras: Sequence[str | None], stats: Sequence[Sequence[float | None]]) -> IntakeSample:
    arr = np.array([[np.nan if v is None else v for v in row] for row in stats], dtype=np.float64).reshape(
        len(stats), len(NUMERIC))
    values = {name: arr[:, i] for i, name in enumerate(NUMERIC)}
    return IntakeSample(created_at=list(created), values=values, cameras=[c or "" for c in cameras])


# --- the reference ---------------------------------------------------------------------------------------

def build_reference(values: dict[str, np.ndarray], cameras: Sequence[str], **about: Any) -> dict[str, Any]:
    """The reference file's content from the training photos' statistics: deciles as bin edges, the share of
    photos in each bin (ties make some bins fuller than a tenth), medians, and the cameras' shares."""
    stats = {}
    for name in NUMERIC:
        v = np.asarray(values[name], dtype=np.float64)
        v = np.sort(v[~np.isnan(v)])
        edges = _edges(v)
        counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=edges.size + 1)
        stats[name] = {"n": int(v.size), "edges": [round(float(e), 7) for e in edges],
                       "shares": [round(float(c) / max(1, v.size), 5) for c in counts],
                       "median": round(float(np.median(v)), 4) if v.size else None,
                       "p10": round(float(np.quantile(v, 0.1)), 4) if v.size else None,
                       "p90": round(float(np.quantile(v, 0.9)), 4) if v.size else None}
    n = max(1, len(cameras))
    shares = {cam: round(c / n, 5) for cam, c in Counter(cameras).most_common()}
    return {**about, "photos": len(cameras), "stats": stats, CAMERA: shares}


def _edges(v: np.ndarray) -> np.ndarray:
    """The deciles of sorted `v`, and just above each value that holds over 5 % of the photos on its own (a
    plain white background's a* of exactly 0): that value gets a bin of its own, so a shift off it (a cast
    of a few units) leaves the bin instead of hiding in a wide one."""
    if not v.size:
        return np.array([])
    edges = set(np.quantile(v, np.linspace(0.1, 0.9, 9)).tolist())
    values, counts = np.unique(v, return_counts=True)
    for value, count in zip(values, counts, strict=True):
        if count > 0.05 * v.size:
            edges |= {float(value), float(value) + 1e-6 * max(1.0, abs(float(value)))}
    return np.array(sorted(edges))


def load_reference(path: Path | None = None) -> dict[str, Any]:
    return json.loads((path or DEFAULT_REFERENCE).read_text())


# --- comparing -----------------------------------------------------------------------------------------

def _psi(counts: np.ndarray, ref_shares: np.ndarray) -> float:
    p = (counts + 0.5) / (counts.sum() + 0.5 * counts.size)
    q = np.maximum(ref_shares, 1e-4)
    return float(np.sum((p - q) * np.log(p / q)))


def _verdict(psi: float, n: int, bins: int) -> tuple[bool, float]:
    """(moved, the PSI this window had to pass): PSI_MOVED, or sampling noise's line when that is higher."""
    line = max(PSI_MOVED, chi2_999(max(1, bins - 1)) / max(1, n))
    return n >= MIN_PHOTOS and psi >= line, round(line, 4)


def compare_stat(name: str, values: np.ndarray, ref: dict[str, Any]) -> dict[str, Any]:
    """One numeric statistic of a window against the training reference (NaN values are left out)."""
    values = values[~np.isnan(values)]
    n = int(values.size)
    out: dict[str, Any] = {"n": n, "ref_median": ref["median"], "median": None, "psi": None, "ks": None,
                           "moved": False, "line": None, "direction": None}
    if n == 0 or not ref["edges"]:
        return out
    edges, shares = np.asarray(ref["edges"]), np.asarray(ref["shares"])
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    psi = _psi(counts, shares)
    ks = float(np.max(np.abs(np.cumsum(counts)[:-1] / n - np.cumsum(shares)[:-1]))) if edges.size else 0.0
    moved, line = _verdict(psi, n, edges.size + 1)
    median = float(np.median(values))
    lower, higher = WORDS.get(name, ("lower", "higher"))
    # which way: more of the window above the training median than below it, or the reverse (the medians
    # alone can tie when a part of the window moved, e.g. a warm lamp on some desks of a week)
    tilt = float(np.mean(values > ref["median"]) - np.mean(values < ref["median"]))
    out.update(median=round(median, 4), psi=round(psi, 4), ks=round(ks, 4), moved=moved, line=line,
               direction=(lower if tilt < 0 else higher) if moved else None)
    return out


def compare_cameras(cameras: Sequence[str], ref: dict[str, float]) -> dict[str, Any]:
    """The cameras of a window against the training's: PSI over the cameras seen in either."""
    n = len(cameras)
    seen = Counter(cameras)
    names = sorted(set(ref) | set(seen))
    out: dict[str, Any] = {"n": n, "psi": None, "moved": False, "line": None, "direction": None,
                           "top": [{"camera": c or "(no EXIF)", "share": round(k / n, 4),
                                    "ref_share": ref.get(c, 0.0)} for c, k in seen.most_common(5)] if n else []}
    if n == 0:
        return out
    psi = _psi(np.array([seen.get(c, 0) for c in names], dtype=np.float64),
               np.array([ref.get(c, 0.0) for c in names], dtype=np.float64))
    moved, line = _verdict(psi, n, len(names))
    new = [c for c, _ in seen.most_common() if ref.get(c, 0.0) < 0.01]
    out.update(psi=round(psi, 4), moved=moved, line=line,
               direction=("new cameras: " + ", ".join(c or "(no EXIF)" for c in new[:3])) if moved and new
               else ("a different mix of cameras" if moved else None))
    return out


def compare(sample: IntakeSample, reference: dict[str, Any]) -> dict[str, Any]:
    """Every statistic of `sample` against the reference; `moved` lists the statistics that moved."""
    stats = {name: compare_stat(name, sample.values[name], reference["stats"][name]) for name in NUMERIC}
    stats[CAMERA] = compare_cameras(sample.cameras, reference.get(CAMERA, {}))
    return {"photos": len(sample.cameras), "stats": stats, "moved": [k for k, v in stats.items() if v["moved"]]}


def week_start(at: datetime) -> datetime:
    """Monday 00:00 UTC of the ISO week holding `at`."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def drift_report(store: ReportStore, reference: dict[str, Any], *, weeks: int = 8,
                 now: datetime | None = None) -> dict[str, Any]:
    """The last `weeks` ISO weeks (the current one included), each against the reference, oldest first."""
    now = now or datetime.now(UTC)
    first = week_start(now) - timedelta(weeks=weeks - 1)
    sample = intake_rows(store, created_from=first)
    week_of = np.array([(week_start(t) - first).days // 7 for t in sample.created_at], dtype=np.int64)
    out = []
    for w in range(weeks):
        pick = week_of == w
        start = first + timedelta(weeks=w)
        sub = IntakeSample(created_at=[], cameras=[c for c, k in zip(sample.cameras, pick, strict=True) if k],
                           values={name: v[pick] for name, v in sample.values.items()})
        iso = start.isocalendar()
        out.append({"week": f"{iso.year}-W{iso.week:02d}", "from": start.date().isoformat(),
                    **compare(sub, reference)})
    return {"reference": {k: reference.get(k) for k in ("source", "photos", "made", "model")},
            "psi_moved": PSI_MOVED, "min_photos": MIN_PHOTOS, "weeks": out,
            "moved": sorted({name for w in out for name in w["moved"]})}


def reference_from_folder(folder: Path, bundle_dir: Path, variant: str = "fp32") -> dict[str, Any]:
    """The capture statistics of every photo under `folder` (the species screen of the served model: the same
    decode, segmentation, quality and classifier the service runs), as `build_reference` stores them."""
    from gemid.errors import GemidInputError
    from gemid.vision.pipeline import Identifier

    identifier = Identifier(bundle_dir, variant=variant)
    photos = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    rows, cameras, refused = [], [], 0
    for path in photos:
        try:
            _report, capture = identifier.identify_captured(path, grade=False)
        except GemidInputError:
            refused += 1
            continue
        rows.append([getattr(capture, name) for name in NUMERIC])
        cameras.append(capture.camera)
    sample = sample_of([], cameras, rows)
    info = identifier.model_info
    return build_reference(sample.values, cameras, source=f"{folder.parent.name}/{folder.name}",
                           made=datetime.now(UTC).date().isoformat(), refused=refused,
                           model=f"{info.name} {info.version} {variant}",
                           command=f"gemid drift-reference {folder.parent.name}/{folder.name}")


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def render_drift(report: dict[str, Any]) -> str:
    """The weeks as a table of PSI per statistic ('!' where it moved), then what moved, in words."""
    ref = report["reference"]
    names = [*NUMERIC, CAMERA]
    lines = [f"Drift against the training photos ({ref.get('source')}, {ref.get('photos')} photos): PSI per "
             f"statistic, '!' = moved (PSI >= {report['psi_moved']} and above sampling noise; weeks of "
             f">= {report['min_photos']} photos)", ""]
    lines.append(f"  {'week':<9} {'photos':>6}  " + " ".join(f"{n:>11}" for n in names))
    for w in report["weeks"]:
        cells = []
        for n in names:
            s = w["stats"][n]
            cells.append(f"{('!' if s['moved'] else '') + (_num(s['psi']) if s['psi'] is not None else '-'):>11}")
        lines.append(f"  {w['week']:<9} {w['photos']:>6}  " + " ".join(cells))
    moved = [(w, n) for w in report["weeks"] for n in w["moved"]]
    lines.append("")
    if not moved:
        lines.append("  nothing moved: the photos look like the training photos")
    for w, n in moved:
        s = w["stats"][n]
        if n == CAMERA:
            lines.append(f"  {w['week']}: camera moved (PSI {_num(s['psi'])}): {s['direction']}")
        else:
            lines.append(f"  {w['week']}: {n} moved (PSI {_num(s['psi'])}, KS {_num(s['ks'])}): {s['direction']}, "
                         f"median {_num(s['median'])} vs {_num(s['ref_median'])} in training")
    return "\n".join(lines)


def window_drift(store: ReportStore, reference: dict[str, Any], *, days: int = 7,
                 now: datetime | None = None) -> dict[str, Any]:
    """The last `days` days against the reference: what /metrics shows."""
    now = now or datetime.now(UTC)
    return compare(intake_rows(store, created_from=now - timedelta(days=days)), reference)
