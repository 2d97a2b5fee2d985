"""Eye-visible clarity labels on real photos: read and check the manifest, and measure annotator agreement.

The renders teach the clarity scale, but only real photos show what a facet reflection looks like next to a
real inclusion, so issue 27 judges real gems68 photos by eye at their own resolution (the protocol is
`annotations/CLARITY_PROTOCOL.md`). The photos stay out of the repository; the labels live beside their
paths in `annotations/clarity_gems68.csv` (first pass, every transparent-species photo) and
`annotations/clarity_gems68_pass2.csv` (a blind second pass on a random sample, for agreement).

Columns: path (relative to the gems68 train folder), species, width, height (pixels after EXIF orientation,
as `gemid.vision.decode` gives them), label (`eye_clean`, `included`, `cannot_judge`), reason (why not
judgeable; empty otherwise), boxes (JSON `[[x, y, w, h], ...]` in those pixels, only on `included` rows),
pass (1 or 2), split (`train`/`val`: the species model's own split, so near-duplicates stay together) and
group (the near-duplicate group's key, its smallest path; empty for a photo without near copies).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ANNOTATIONS = Path(__file__).resolve().parent / "annotations"
FIRST_PASS = ANNOTATIONS / "clarity_gems68.csv"
SECOND_PASS = ANNOTATIONS / "clarity_gems68_pass2.csv"

COLUMNS = ("path", "species", "width", "height", "label", "reason", "boxes", "pass", "split", "group")
LABELS = ("eye_clean", "included", "cannot_judge")
# why a photo cannot be judged for eye-visible clarity on the faceted scale
REASONS = ("cabochon", "rough", "carved", "several", "opaque", "too_small", "glare", "blurry", "other")
SPLITS = ("train", "val")

Box = tuple[int, int, int, int]  # x, y, width, height in the photo's pixels


class ClarityLabelError(ValueError):
    """A clarity manifest that breaks its schema (the message names the file and line)."""


@dataclass(frozen=True)
class ClarityLabel:
    path: str
    species: str
    width: int
    height: int
    label: str
    reason: str
    boxes: tuple[Box, ...]
    annotator_pass: int
    split: str
    group: str

    @property
    def judgeable(self) -> bool:
        return self.label != "cannot_judge"


def read_labels(path: Path | str = FIRST_PASS) -> list[ClarityLabel]:
    """Every row, checked: labels, reasons, boxes inside the image, one split per path and per group."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ClarityLabelError(f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(COLUMNS)}")
        out = [_row(rec, f"{path}:{i}") for i, rec in enumerate(reader, start=2)]
    check_labels(out, source=str(path))
    return out


def _int(text: str | None, where: str, name: str) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        raise ClarityLabelError(f"{where}: {name} '{text}' is not a whole number") from None


def _row(rec: Mapping[str, str | None], where: str) -> ClarityLabel:
    val = {k: (rec.get(k) or "").strip() for k in COLUMNS}
    if not val["path"] or not val["species"]:
        raise ClarityLabelError(f"{where}: empty path or species")
    if Path(val["path"]).is_absolute() or ".." in Path(val["path"]).parts:
        raise ClarityLabelError(f"{where}: path '{val['path']}' must be relative to the gems68 train folder")
    width, height = _int(val["width"], where, "width"), _int(val["height"], where, "height")
    if width <= 0 or height <= 0:
        raise ClarityLabelError(f"{where}: image size {width}x{height} must be positive")
    label, reason = val["label"], val["reason"]
    if label not in LABELS:
        raise ClarityLabelError(f"{where}: label '{label}' is not one of {', '.join(LABELS)}")
    if label == "cannot_judge" and reason not in REASONS:
        raise ClarityLabelError(f"{where}: cannot_judge needs a reason, one of {', '.join(REASONS)} "
                                f"(got '{reason}')")
    if label != "cannot_judge" and reason:
        raise ClarityLabelError(f"{where}: only cannot_judge rows carry a reason (got '{reason}' on {label})")
    boxes = _boxes(val["boxes"], width, height, where)
    if label == "included" and not boxes:
        raise ClarityLabelError(f"{where}: an included stone needs at least one box around what is seen")
    if label != "included" and boxes:
        raise ClarityLabelError(f"{where}: boxes belong only on included rows (this one is {label})")
    if val["split"] not in SPLITS:
        raise ClarityLabelError(f"{where}: split '{val['split']}' is not train or val")
    annotator_pass = _int(val["pass"], where, "pass")
    if annotator_pass not in (1, 2):
        raise ClarityLabelError(f"{where}: pass must be 1 or 2, got {annotator_pass}")
    return ClarityLabel(path=val["path"], species=val["species"], width=width, height=height, label=label,
                        reason=reason, boxes=boxes, annotator_pass=annotator_pass, split=val["split"],
                        group=val["group"])


def _boxes(text: str, width: int, height: int, where: str) -> tuple[Box, ...]:
    if not text:
        return ()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClarityLabelError(f"{where}: boxes are not JSON ({exc.msg})") from None
    if not isinstance(raw, list):
        raise ClarityLabelError(f"{where}: boxes must be a JSON list of [x, y, w, h]")
    out: list[Box] = []
    for b in raw:
        if not (isinstance(b, list) and len(b) == 4 and all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in b)):
            raise ClarityLabelError(f"{where}: box {b!r} is not [x, y, w, h] in whole pixels")
        x, y, w, h = b
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
            raise ClarityLabelError(f"{where}: box {b} is not inside the {width}x{height} image")
        out.append((x, y, w, h))
    return tuple(out)


def check_labels(labels: Sequence[ClarityLabel], *, source: str = "labels") -> None:
    """Manifest-wide rules: each path once, one pass per file, and a near-duplicate group in one split."""
    dupes = [p for p, n in Counter(lab.path for lab in labels).items() if n > 1]
    if dupes:
        raise ClarityLabelError(f"{source}: path(s) listed twice: {', '.join(sorted(dupes)[:5])}")
    passes = {lab.annotator_pass for lab in labels}
    if len(passes) > 1:
        raise ClarityLabelError(f"{source}: one file holds one annotator pass, found passes {sorted(passes)}")
    leaks = straddling_groups(labels)
    if leaks:
        raise ClarityLabelError(f"{source}: near-duplicate group(s) split across train and val: "
                                f"{', '.join(leaks[:5])}")


def straddling_groups(labels: Iterable[ClarityLabel]) -> list[str]:
    """Group keys whose members sit in more than one split (a validation photo whose copy is trained on)."""
    splits: dict[str, set[str]] = {}
    for lab in labels:
        if lab.group:
            splits.setdefault(lab.group, set()).add(lab.split)
    return sorted(g for g, s in splits.items() if len(s) > 1)


def split_mismatches(labels: Iterable[ClarityLabel], species_splits: Mapping[str, str]) -> list[str]:
    """Paths whose split differs from the species model's manifest (`species_splits`: path -> split), or
    that the manifest does not list: the clarity validation part must be the species model's too."""
    return sorted(lab.path for lab in labels if species_splits.get(lab.path) != lab.split)


# --- agreement between two passes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    n: int
    percent: float  # share of photos with the same label, in %
    kappa: float  # Cohen's kappa over the three labels (chance-corrected)
    confusion: dict[tuple[str, str], int]  # (first, second) -> count
    boxes_matched: int = 0  # boxes of photos both passes call included, matched at IoU >= iou
    boxes_first_only: int = 0
    boxes_second_only: int = 0
    iou: float = 0.3


def cohen_kappa(first: Sequence[str], second: Sequence[str], labels: Sequence[str] = LABELS) -> float:
    """(p_o - p_e) / (1 - p_e); 1.0 when both raters used a single identical label throughout."""
    if len(first) != len(second):
        raise ValueError(f"the two raters labelled {len(first)} and {len(second)} items")
    n = len(first)
    if n == 0:
        raise ValueError("no items to compare")
    p_o = sum(a == b for a, b in zip(first, second, strict=True)) / n
    ca, cb = Counter(first), Counter(second)
    p_e = sum(ca[k] * cb[k] for k in set(labels) | set(ca) | set(cb)) / (n * n)
    if p_e >= 1.0:
        return 1.0 if p_o >= 1.0 else 0.0
    return (p_o - p_e) / (1.0 - p_e)


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def match_boxes(first: Sequence[Box], second: Sequence[Box], threshold: float = 0.3) -> tuple[int, int, int]:
    """(matched, first only, second only): greedy one-to-one matching, best IoU first, at IoU >= threshold."""
    pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(first) for j, b in enumerate(second)), reverse=True)
    used_a: set[int] = set()
    used_b: set[int] = set()
    for score, i, j in pairs:
        if score < threshold:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
    m = len(used_a)
    return m, len(first) - m, len(second) - m


def agreement(first: Sequence[ClarityLabel], second: Sequence[ClarityLabel], *, iou_threshold: float = 0.3
              ) -> Agreement:
    """Agreement on the photos both passes labelled (joined by path)."""
    by_path = {lab.path: lab for lab in first}
    pairs = [(by_path[s.path], s) for s in second if s.path in by_path]
    if not pairs:
        raise ValueError("the two passes share no photo")
    a = [p.label for p, _ in pairs]
    b = [s.label for _, s in pairs]
    matched = only_a = only_b = 0
    for p, s in pairs:
        if p.label == s.label == "included":
            m, x, y = match_boxes(p.boxes, s.boxes, iou_threshold)
            matched, only_a, only_b = matched + m, only_a + x, only_b + y
    return Agreement(n=len(pairs), percent=100.0 * sum(x == y for x, y in zip(a, b, strict=True)) / len(pairs),
                     kappa=cohen_kappa(a, b), confusion=dict(Counter(zip(a, b, strict=True))),
                     boxes_matched=matched, boxes_first_only=only_a, boxes_second_only=only_b,
                     iou=iou_threshold)
