"""Real-photo clarity benchmark (issue 27): the runtime grader against eye-visible labels on gems68 photos.

    python -m bench.bench_clarity_real                 # the annotated val part (238 photos, about 1 min on 2 cores)
    python -m bench.bench_clarity_real --split all --json /tmp/clarity_real.json
    python -m bench.bench_clarity_real fit-real        # refit gemid/vision/data/clarity_real.json (train part + renders)

Labels: `gemid/datasets/annotations/clarity_gems68.csv`, judged by eye at each photo's own resolution (protocol
in CLARITY_PROTOCOL.md beside it); the val part is the species model's own validation split, so neither the
species model nor anything fitted on the clarity train part has seen these photos or their near copies.

Every photo goes through the runtime path a user gets, `gemid.vision.pipeline.Identifier().identify(path)`.
A stone the eye could judge (eye_clean or included) that comes back without a graded clarity (no clarity
section, a `status` other than "graded", or `eye_clean` unset) is an abstention and counts as a miss in both
recall figures, as the issue's targets say. Targets: >= 85 % of eye-clean stones reported eye-clean,
>= 70 % of visibly included stones graded and not eye-clean. Needs ../shared/data/gems68/train (skips
without it). The agreement of the two annotation passes is printed too (it needs no photo).

`fit-real` fits the photo-level decisions of `gemid.vision.clarity_status` (faceted or not; eye-clean or
visibly included) on the annotations' **train** part only, plus rendered stones of seeds disjoint from the
render benchmark's (`bench.bench_grading`, seed 0) and its tuning seeds 1-5; the fit lives in
`bench/clarity_fit.py` and writes `gemid/vision/data/clarity_real.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]
GEMS68 = Path(os.environ.get("GEMID_GEMS68", REPO.parent / "shared" / "data" / "gems68" / "train"))
TARGET_CLEAN = 85.0
TARGET_INCLUDED = 70.0


def answer(report: Any) -> tuple[str, str | None]:
    """('eye_clean' | 'included' | 'abstain', grade): what the report says about the stone's clarity.
    `status` is read with getattr so a report from before grade statuses existed still reads."""
    c = getattr(report, "clarity", None)
    if c is None:
        return "abstain", None
    status = getattr(c, "status", "graded")
    eye_clean = getattr(c, "eye_clean", None)
    if status != "graded" or eye_clean is None:
        return "abstain", None
    return ("eye_clean" if eye_clean else "included"), getattr(c, "grade", None)


def pct(num: int, den: int) -> float | None:
    return 100.0 * num / den if den else None


def score(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """pairs: (truth, answer). Truth is eye_clean / included / cannot_judge; answer eye_clean / included /
    abstain. Precision is over the judgeable stones the grader called that way."""
    judge = [(t, a) for t, a in pairs if t != "cannot_judge"]
    c = Counter(judge)
    truth = Counter(t for t, _ in judge)
    said = Counter(a for _, a in judge)
    cj = [a for t, a in pairs if t == "cannot_judge"]
    return {
        "judgeable": len(judge),
        "eye_clean": truth["eye_clean"], "included": truth["included"],
        "eye_clean_recall": pct(c[("eye_clean", "eye_clean")], truth["eye_clean"]),
        "eye_clean_precision": pct(c[("eye_clean", "eye_clean")], said["eye_clean"]),
        "included_recall": pct(c[("included", "included")], truth["included"]),
        "included_precision": pct(c[("included", "included")], said["included"]),
        "abstention_rate": pct(said["abstain"], len(judge)),
        "confusion": {f"{t}->{a}": n for (t, a), n in sorted(c.items())},
        "cannot_judge": len(cj),
        "cannot_judge_abstained": pct(sum(a == "abstain" for a in cj), len(cj)),
    }


def clarity_cost(path: Path, species: str | None) -> list[float]:
    """Seconds of `grade_clarity` alone on one photo (decode, segment and stone area done beforehand, as the
    pipeline shares them); empty when no stone is found."""
    from gemid.vision.clarity import grade_clarity
    from gemid.vision.decode import decode
    from gemid.vision.segment import segment
    from gemid.vision.stone_area import locate

    rgb = decode(path).rgb
    seg = segment(rgb)
    if not seg.found:
        return []
    area = locate(rgb, seg)
    t0 = time.perf_counter()
    grade_clarity(rgb, seg, species, area=area)
    return [time.perf_counter() - t0]


def run(split: str, limit: int | None) -> dict[str, Any]:
    from gemid.datasets.clarity_labels import FIRST_PASS, SECOND_PASS, agreement, read_labels
    from gemid.vision.pipeline import Identifier

    labels = [lab for lab in read_labels(FIRST_PASS) if split == "all" or lab.split == split]
    if limit:
        labels = labels[:limit]
    ident = Identifier(threads=2)
    pairs: list[tuple[str, str]] = []
    grades: dict[str, Counter] = {"eye_clean": Counter(), "included": Counter(), "cannot_judge": Counter()}
    failed: list[str] = []
    t0 = time.perf_counter()
    clarity_s: list[float] = []
    for lab in labels:
        try:
            report = ident.identify(GEMS68 / lab.path)
            ans, grade = answer(report)
            clarity_s += clarity_cost(GEMS68 / lab.path, report.species.top[0].label if report.species.top else None)
        except Exception as exc:  # a refusal is an abstention; say which photo and why
            failed.append(f"{lab.path}: {exc.__class__.__name__}: {exc}")
            ans, grade = "abstain", None
        pairs.append((lab.label, ans))
        grades[lab.label][grade or ans] += 1
    elapsed = time.perf_counter() - t0
    ag = agreement(read_labels(FIRST_PASS), read_labels(SECOND_PASS))
    return {"split": split, "photos": len(labels), **score(pairs),
            "grades_by_truth": {k: dict(sorted(v.items())) for k, v in grades.items()},
            "failed": failed, "seconds_per_photo": elapsed / max(1, len(labels)),
            "clarity_ms_median": 1000 * float(sorted(clarity_s)[len(clarity_s) // 2]) if clarity_s else None,
            "clarity_ms_p95": 1000 * float(sorted(clarity_s)[int(0.95 * (len(clarity_s) - 1))]) if clarity_s else None,
            "agreement": {"n": ag.n, "percent": ag.percent, "kappa": ag.kappa,
                          "boxes_matched": ag.boxes_matched, "boxes_first_only": ag.boxes_first_only,
                          "boxes_second_only": ag.boxes_second_only, "iou": ag.iou}}


def show(r: dict[str, Any], cpu: str) -> None:
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f} %"

    ok = {True: "met", False: "MISSED"}
    print(f"real-photo clarity, gems68 '{r['split']}' part: {r['photos']} photos, {r['judgeable']} judgeable "
          f"({r['eye_clean']} eye-clean, {r['included']} included), {r['cannot_judge']} cannot_judge")
    print(f"  eye-clean recall    {f(r['eye_clean_recall'])}   (target >= {TARGET_CLEAN:.0f} %: "
          f"{ok[(r['eye_clean_recall'] or 0) >= TARGET_CLEAN]})")
    print(f"  eye-clean precision {f(r['eye_clean_precision'])}")
    print(f"  included recall     {f(r['included_recall'])}   (target >= {TARGET_INCLUDED:.0f} %: "
          f"{ok[(r['included_recall'] or 0) >= TARGET_INCLUDED]})")
    print(f"  included precision  {f(r['included_precision'])}")
    print(f"  abstention rate     {f(r['abstention_rate'])} of judgeable stones (counted as misses above)")
    print(f"  cannot_judge photos the grader abstained on: {f(r['cannot_judge_abstained'])}")
    print(f"  truth -> answer: {r['confusion']}")
    for truth, g in r["grades_by_truth"].items():
        print(f"  grades given to {truth} stones: {g}")
    if r["failed"]:
        print(f"  refused photos ({len(r['failed'])}): " + "; ".join(r["failed"][:5]))
    a = r["agreement"]
    print(f"annotation agreement (pass 1 vs blind pass 2, same annotator): {a['n']} photos, "
          f"{a['percent']:.1f} %, Cohen's kappa {a['kappa']:.3f}; boxes matched at IoU >= {a['iou']}: "
          f"{a['boxes_matched']}, pass-1 only {a['boxes_first_only']}, pass-2 only {a['boxes_second_only']}")
    print(f"{r['seconds_per_photo'] * 1000:.0f} ms per photo (whole identify, 2 threads, the clarity timing "
          f"included) on {cpu}")
    if r.get("clarity_ms_median") is not None:
        print(f"clarity alone (grade_clarity after the shared segment and stone area): median "
              f"{r['clarity_ms_median']:.1f} ms, p95 {r['clarity_ms_p95']:.1f} ms per photo (target <= 15 ms)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="run", choices=("run", "fit-real"))
    ap.add_argument("--renders", type=int, default=600, help="fit-real: rendered stones added to the fit")
    ap.add_argument("--cache", type=Path, help="fit-real: keep the extracted cues here and reuse them")
    ap.add_argument("--split", choices=("val", "train", "all"), default="val",
                    help="which annotated part to measure (default: %(default)s)")
    ap.add_argument("--limit", type=int, help="only the first N photos (a quick look)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    if not GEMS68.is_dir():
        print(f"skipped: needs the gems68 photos at {GEMS68} (set GEMID_GEMS68)", file=sys.stderr)
        return 0  # `make bench` runs every benchmark; without the photos there is nothing to measure
    sys.path.insert(0, str(REPO))
    from bench.machine import cpu_description

    if args.command == "fit-real":
        from bench.clarity_fit import fit_real

        return fit_real(GEMS68, args.renders, args.cache)

    r = run(args.split, args.limit)
    r["cpu"] = cpu_description()
    show(r, r["cpu"])
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
