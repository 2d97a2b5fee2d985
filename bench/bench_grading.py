"""Colour and clarity grading benchmark on rendered stones with known truth (issue 4), and the fit of the
clarity estimator (inclusion-map network, facet-vs-inclusion network, visibility fit).

    python -m bench.bench_grading                      # 600 stones, seed 0, 256 px (about 3 min on 2 cores)
    python -m bench.bench_grading --n 1000 --seed 7 --real 12
    python -m bench.bench_grading fit                  # refit clarity_net.onnx + clarity_blobs.json (~37 min, needs torch)
    python -m bench.bench_grading tune                 # choose the runtime thresholds on seeds 1-5 (~5 min)

Stones come from `gemid.datasets.synth.random_spec`: six cuts, six backgrounds (white, grey, black,
coloured, gradient, textured), illuminants 5000-8000 K (6500 K +/- 1500 K), a neutral reference card in
about a fifth of the scenes, 0-30 inclusions of four kinds, blur, noise and JPEG. Every stone goes through
the runtime path: `segment` -> `grade_colour` / `grade_clarity` (estimators as shipped, nothing is tuned on
the benchmark's seeds; the clarity networks are fitted on seeds 1,000,000, 4,000,000 and
7,000,000, and their thresholds chosen on seeds 1-5).

Colour figures are over the stones that were white-balanced (background or card), as the issue's targets
say; the stones left uncorrected (coloured or black background without a card) are reported apart.
Where ../shared/data/gems68/train exists, real photos of single-colour species are graded and the measured
hue is checked against the species' colour family (agreement rate).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gemid.datasets.synth import StoneSpec

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

FIT_SEED = 1_000_000
THRESHOLD_NOTE = (
    "the visibility fit is made at candidate threshold 0.85 and map threshold 0.7; the runtime thresholds are then "
    "chosen by `python -m bench.bench_grading tune` on 3,476 rendered stones of seeds 1-5 (700 each, disjoint from "
    "the fit's seeds and the benchmark's seed 0; 1,018 facet-only) as the best grade-within-one with facet-only sto"
    "nes eye-clean >= 98 % (97 % on seed 1 alone once gave 92 % on seed 0, so the bar is set above the target; the "
    "same choice maximises the smaller margin to the two targets): candidate threshold 0.75 / 0.8 / 0.85 / 0.9 / 0."
    "95 at map 0.6 -> within one 0.929 / 0.926 / 0.925 / 0.917 / 0.910, eye-clean 97.6 / 98.0 / 98.2 / 98.6 / 99.2 "
    "%; map 0.6 / 0.7 / 0.8 at 0.8 -> within one 0.926 / 0.925 / 0.920, eye-clean 98.0 / 98.0 / 98.3 %")
THRESHOLD = 0.8  # runtime candidate decision threshold; chosen on seeds 1-5 (see threshold_note in the model file)
VIS_FIT_THRESHOLD = 0.85  # candidate threshold at which the visibility fit is made
VIS_FIT_MAP_THRESHOLD = 0.7  # map threshold at which the visibility fit is made
MAP_THRESHOLD = 0.6  # inclusion-map probability that counts a pixel as inclusion (chosen with THRESHOLD on seeds 1-5)
MODEL_PATH = Path(__file__).resolve().parents[1] / "gemid" / "vision" / "data" / "clarity_blobs.json"
NET_PATH = MODEL_PATH.with_name("clarity_net.onnx")
GEMS68 = Path(os.environ.get("GEMID_GEMS68", Path(__file__).resolve().parents[2] / "shared" / "data" / "gems68" / "train"))

# species whose colour is one hue family, and the GIA hue codes that count as agreeing
SINGLE_COLOUR = {
    "Ruby": {"stpR", "slpR", "R", "oR", "RP"},
    "Emerald": {"slyG", "G", "vslbG", "bG", "vstbG", "BG"},
    "Peridot": {"gY", "YG", "styG", "yG", "slyG", "G"},
    "Sapphire Blue": {"vstgB", "gB", "vslgB", "B", "vB", "bV"},
    "Amethyst": {"V", "vP", "P", "rP", "bV", "RP"},
    "Citrine": {"O", "yO", "oY", "Y", "gY", "rO"},
    "Tsavorite": {"yG", "slyG", "G", "vslbG", "bG", "styG"},
    "Aquamarine": {"BG", "vstgB", "gB", "vslgB", "B", "vstbG"},
    "Tanzanite": {"B", "vB", "bV", "V", "vP"},
    "Chrome Diopside": {"yG", "slyG", "G", "vslbG", "bG", "styG"},
    "Spessartite": {"R", "oR", "RO", "rO", "O", "yO"},
    "Rhodolite": {"P", "rP", "RP", "stpR", "slpR", "R"},
    "Quartz Lemon": {"yO", "oY", "Y", "gY", "YG"},
}


# --- fit ---------------------------------------------------------------------------------------------


def _fit_mlp(x: np.ndarray, y: np.ndarray, w: np.ndarray, hidden: int = 8, epochs: int = 4000,
             lr: float = 3e-3, l2: float = 1e-4, seed: int = 0) -> dict:
    """One-hidden-layer tanh network, weighted cross-entropy, full-batch Adam (numpy only)."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / std
    rng = np.random.default_rng(seed)
    k = z.shape[1]
    params = [rng.normal(0, 1 / math.sqrt(k), (k, hidden)), np.zeros(hidden),
              rng.normal(0, 1 / math.sqrt(hidden), hidden), np.zeros(())]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    wn = w / w.sum()
    for t in range(1, epochs + 1):
        h = np.tanh(z @ params[0] + params[1])
        p = 1.0 / (1.0 + np.exp(-np.clip(h @ params[2] + params[3], -40, 40)))
        g = (p - y) * wn
        gh = np.outer(g, params[2]) * (1.0 - h**2)
        grads = [z.T @ gh + l2 * params[0], gh.sum(axis=0), h.T @ g + l2 * params[2], np.array(g.sum())]
        for i, gr in enumerate(grads):
            m1[i] = 0.9 * m1[i] + 0.1 * gr
            m2[i] = 0.999 * m2[i] + 0.001 * gr**2
            params[i] = params[i] - lr * (m1[i] / (1 - 0.9**t)) / (np.sqrt(m2[i] / (1 - 0.999**t)) + 1e-8)
    return {"mean": mean.tolist(), "std": std.tolist(), "w1": params[0].tolist(), "b1": params[1].tolist(),
            "w2": params[2].tolist(), "b2": float(params[3])}


FIT_CHUNK, FIT_STRIDE = 1600, 3_000_000  # fitting stones come in chunks of 1600, seeds FIT_SEED + k * FIT_STRIDE


def fit_spec(rng: np.random.Generator, hard: bool) -> StoneSpec:
    """A fitting stone. The 'hard' ones come from error analysis on seeds 2-5 (never the benchmark's seed 0):
    40 % facet-only small, soft, noisy stones, step, pear and oval cuts over-represented, whose facet junctions
    pass for crystals; 30 % small, soft stones with ordinary inclusions (so that those are still found); 30 %
    ordinary stones with one to three prominent inclusions (large, high contrast) in otherwise clean material,
    which the ordinary stones (log-uniform sizes, often many overlapping inclusions) rarely show."""
    from dataclasses import replace

    from gemid.datasets.synth import random_inclusions, random_spec

    if not hard:
        return random_spec(rng)
    u = rng.random()
    if u < 0.7:
        small = {"scale": float(rng.uniform(0.38, 0.55)), "blur": float(rng.uniform(0.3, 1.0))}
        if u >= 0.4:
            return random_spec(rng, **small)
        cut = {"cut": str(rng.choice(["emerald", "pear", "oval"]))} if rng.random() < 0.6 else {}
        return random_spec(rng, n_inclusions=0, noise=float(rng.uniform(1.0, 3.0)), **small, **cut)
    spec = random_spec(rng, n_inclusions=0)
    few = random_inclusions(rng, int(rng.integers(1, 4)), spec.aspect, size=(0.04, 0.15), contrast=(0.5, 1.0))
    return replace(spec, inclusions=few)


def _fit_chunk(job: tuple[int, int, int, bool]) -> list[dict]:
    """Render and analyse one chunk of fitting stones (no inclusion map yet); truth in normalised pixels."""
    import cv2

    from gemid.datasets.synth import inclusion_truth, render
    from gemid.vision import clarity
    from gemid.vision.segment import segment

    seed, n, size, hard = job
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        spec = fit_spec(rng, hard)
        rgb, _, _ = render(spec, size=size, seed=seed + i)
        a = clarity.analyse(rgb, segment(rgb), inclusion_map=False)
        if a is None:
            continue
        t = a.to_local(inclusion_truth(spec, rgb, size=size, seed=seed + i))
        wide = cv2.dilate(t.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        shares = [float(c.window(wide)[c.mask].mean()) for c in a.candidates]
        out.append({"a": a, "truth": t, "shares": shares, "visibility": spec.visibility})
    return out


def fit(n: int, seed: int, size: int, hidden: int = 16, epochs: int = 12, workers: int = 2, hard: int = 1600) -> int:
    """Refit the clarity estimator on rendered stones (n ordinary ones and `hard` small, soft ones, see
    `fit_spec`): (1) render and analyse, (2) train the inclusion-map
    network (needs the train extra: torch) and export it to ONNX, (3) the facet-vs-inclusion network on the
    candidates' features (with the map's), (4) the visibility fit from the inclusions' pixel share."""
    from multiprocessing import get_context

    from gemid.training.clarity_net import export_onnx, train
    from gemid.vision import clarity
    from gemid.vision.inclusion_net import InclusionNet, net_inputs

    t0 = time.perf_counter()
    plain = math.ceil(n / FIT_CHUNK)
    jobs = [(seed + k * FIT_STRIDE, min(FIT_CHUNK, n - k * FIT_CHUNK), size, False) for k in range(plain)]
    jobs += [(seed + (plain + k) * FIT_STRIDE, min(FIT_CHUNK, hard - k * FIT_CHUNK), size, True)
             for k in range(math.ceil(hard / FIT_CHUNK))]
    with get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        stones = [s for chunk in pool.map(_fit_chunk, jobs) for s in chunk]
    print(f"  rendered and analysed {len(stones)} stones ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    planes = [net_inputs(s["a"].image, s["a"].core, s["a"].residual) for s in stones]
    net = train(planes, [s["truth"] for s in stones], [s["a"].core for s in stones], epochs=epochs,
                log=lambda m: print(m, file=sys.stderr))
    export_onnx(net, NET_PATH)
    runtime = InclusionNet(NET_PATH)
    stones = [{**s, "a": clarity.with_inclusion_map(s["a"], runtime.predict(p))} for s, p in zip(stones, planes, strict=True)]
    del planes

    rows, labels, weights, spans = [], [], [], []
    for s in stones:
        first = len(rows)
        for c, share in zip(s["a"].candidates, s["shares"], strict=True):
            rows.append(c.features)
            labels.append(1.0 if share >= 0.4 else 0.0)
            weights.append(math.sqrt(c.visibility) + 1e-3)
        spans.append((first, len(rows)))
    x, y, w = np.array(rows), np.array(labels), np.array(weights)
    model = {"features": list(clarity.FEATURES), **_fit_mlp(x, y, w, hidden=hidden), "threshold": THRESHOLD,
             "map_threshold": MAP_THRESHOLD}
    p = clarity.inclusion_probability(x, model)

    # visibility from the inclusions' pixel share: least squares in log10 on the included stones
    pts = []
    for s, (a_, b_) in zip(stones, spans, strict=True):
        lab = clarity.inclusion_pixels(s["a"], p[a_:b_] >= VIS_FIT_THRESHOLD, VIS_FIT_MAP_THRESHOLD)
        share = float(np.count_nonzero(lab)) / max(1.0, float(s["a"].core.sum()))
        if s["visibility"] > 5e-4 and share > 0:
            pts.append((math.log10(share), math.log10(s["visibility"])))
    if len(pts) < 10:
        raise SystemExit(f"only {len(pts)} included stones were found by the fitted model: fit on more stones (--n)")
    ls, lv = np.array(pts).T
    slope, intercept = np.polyfit(ls, lv, 1)
    model["visibility_fit"] = {"log10_gain": float(intercept), "exponent": float(slope), "threshold": VIS_FIT_THRESHOLD,
                               "map_threshold": VIS_FIT_MAP_THRESHOLD,
                               "residual_sd_log10": float(np.std(lv - (intercept + slope * ls))), "stones": len(pts)}
    acc = float(((p >= 0.5) == (y > 0.5)).mean())
    MODEL_PATH.write_text(json.dumps({
        "about": "Facet-vs-inclusion network and visibility fit of gemid.vision.clarity, fitted by "
                 f"`python -m bench.bench_grading fit --n {n} --hard {hard} --seed {seed} --size {size} --hidden {hidden} "
                 f"--epochs {epochs}` "
                 "on rendered stones.",
        **model, "threshold_note": THRESHOLD_NOTE,
        "net": {"file": NET_PATH.name, "sha256": runtime.sha256},
        "fit": {"stones": len(stones), "candidates": int(len(y)), "positives": int(y.sum()), "accuracy": round(acc, 4),
                "seconds": round(time.perf_counter() - t0)},
    }, indent=1) + "\n", encoding="utf-8")
    print(f"fitted on {len(stones)} stones / {len(y)} candidates ({int(y.sum())} inclusions): accuracy {acc:.3f}, "
          f"visibility = 10^{intercept:.3f} x share^{slope:.3f} -> {MODEL_PATH}, {NET_PATH} ({time.perf_counter() - t0:.0f} s)")
    return 0


TUNE_SEEDS = (1, 2, 3, 4, 5)
TUNE_PAIRS = tuple((t, mp) for t in (0.7, 0.75, 0.8, 0.85, 0.9, 0.95) for mp in (0.6, 0.7, 0.8))  # candidate x map


def bench_stones(seed: int, n: int, size: int) -> Iterator[tuple[StoneSpec, np.ndarray]]:
    """The benchmark's stones of one seed, (truth, RGB photo): the same for `run --seed` and `tune`."""
    from gemid.datasets.synth import random_spec, render

    rng = np.random.default_rng(seed)
    for i in range(n):
        spec = random_spec(rng)
        yield spec, render(spec, size=size, seed=seed * 1_000_003 + i)[0]


def _tune_chunk(job: tuple[int, int, int]) -> list[tuple[float, int, bool, list[float]]]:
    """Analyse one seed's stones once and measure their severity at every pair of thresholds."""
    from gemid.vision import clarity
    from gemid.vision import clarity_scales as cs
    from gemid.vision.segment import segment

    shipped = clarity._model()
    out = []
    for spec, rgb in bench_stones(*job):
        a = clarity.analyse(rgb, segment(rgb))
        if a is None:
            continue
        sev = [clarity.measure_analysis(a, dict(shipped, threshold=t, map_threshold=mp)).severity
               for t, mp in TUNE_PAIRS]
        out.append((spec.severity, cs.grade_index(spec.clarity_grade), not spec.inclusions, sev))
    return out


def tune(seeds: tuple[int, ...], n: int, size: int, workers: int = 2, bar: float = 0.98) -> int:
    """Sweep the runtime thresholds (candidate x map) on the tuning seeds, never the benchmark's seed 0, and
    print the rule's choice: the best grade-within-one with facet-only stones eye-clean >= `bar`."""
    from multiprocessing import get_context

    from gemid.vision import clarity_scales as cs

    if 0 in seeds:
        raise SystemExit("seed 0 is the benchmark's: tune on other seeds")
    with get_context("spawn").Pool(min(workers, len(seeds))) as pool:
        rows = [r for chunk in pool.map(_tune_chunk, [(s, n, size) for s in seeds]) for r in chunk]
    true_sev = np.array([r[0] for r in rows])
    true_grade = np.array([r[1] for r in rows])
    clean = np.array([r[2] for r in rows])
    print(f"threshold sweep on seeds {','.join(map(str, seeds))}: {len(rows)} stones, {int(clean.sum())} facet-only "
          f"(python -m bench.bench_grading tune --seeds {','.join(map(str, seeds))} --n {n} --size {size})")
    print("candidate   map     rho  within-one  eye-clean")
    best = None
    for k, (t, mp) in enumerate(TUNE_PAIRS):
        sev = np.array([r[3][k] for r in rows])
        grade = np.array([cs.grade_index(cs.grade_of(v)) for v in sev])
        w1 = float(np.mean(np.abs(grade - true_grade) <= 1))
        ec = float(np.mean(grade[clean] <= cs.grade_index("VS")))
        print(f"     {t:.2f}  {mp:.2f}  {spearman(true_sev, sev):.3f}       {w1:.3f}      {ec:.3f}")
        if ec >= bar and (best is None or w1 > best[2]):
            best = (t, mp, w1, ec)
    if best is None:
        print(f"no pair reaches eye-clean >= {bar:.2f}")
        return 1
    print(f"rule (best within-one with eye-clean >= {bar:.2f}): candidate threshold {best[0]}, map threshold {best[1]} "
          f"(within one {best[2]:.3f}, eye-clean {best[3]:.3f}); shipped: {THRESHOLD} / {MAP_THRESHOLD}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="run", choices=("run", "fit", "tune"))
    ap.add_argument("--n", type=int, default=None, help="stones (run: 600, fit: 3200 ordinary ones, tune: 700 per seed)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--real", type=int, default=15, help="real photos per single-colour species (0: skip)")
    ap.add_argument("--hidden", type=int, default=16, help="fit: hidden units of the facet-vs-inclusion network")
    ap.add_argument("--epochs", type=int, default=12, help="fit: epochs of the inclusion-map network")
    ap.add_argument("--workers", type=int, default=2, help="fit, tune: processes that render the stones")
    ap.add_argument("--hard", type=int, default=1600, help="fit: extra small, soft fitting stones (see fit_spec)")
    ap.add_argument("--seeds", default=",".join(map(str, TUNE_SEEDS)), help="tune: the tuning seeds")
    args = ap.parse_args(argv)
    if args.command == "fit":
        return fit(args.n or 3200, FIT_SEED if args.seed is None else args.seed, args.size, args.hidden, args.epochs,
                   args.workers, args.hard)
    if args.command == "tune":
        return tune(tuple(int(v) for v in args.seeds.split(",")), args.n or 700, args.size, args.workers)
    return run(args.n or 600, args.seed or 0, args.size, args.real)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (for Spearman's rho without scipy)."""
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=float)
    xs = x[order]
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        r[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    return float(np.corrcoef(ra, rb)[0, 1])


def _row(name: str, value: float, target: str, ok: bool | None, fmt: str = "{:.2f}") -> str:
    mark = "" if ok is None else ("  ok" if ok else "  MISSED")
    return f"  {name:<44} {fmt.format(value):>8}   target {target}{mark}"


def run(n: int, seed: int, size: int, real: int) -> int:
    from collections import defaultdict

    from gemid.vision import clarity_scales as cs
    from gemid.vision.clarity import grade_clarity
    from gemid.vision.colorimetry import delta_e_2000, hue_difference
    from gemid.vision.colour import grade_colour
    from gemid.vision.colour_scales import grade_lab
    from gemid.vision.segment import segment

    col, cla, held = [], [], []
    t_col, t_cla = [], []
    t0 = time.perf_counter()
    for i, (spec, rgb) in enumerate(bench_stones(seed, n, size)):
        seg = segment(rgb)
        a = time.perf_counter()
        cg = grade_colour(rgb, seg)
        b = time.perf_counter()
        cl = grade_clarity(rgb, seg)
        c = time.perf_counter()
        t_col.append(b - a)
        t_cla.append(c - b)
        g = grade_lab(spec.lab)
        if cg is not None:
            de = float(delta_e_2000(np.array(cg.lab), np.array(spec.lab)))
            dh = float(hue_difference(cg.hue_angle, g.hue_angle)) if g.chroma >= 8.0 else float("nan")
            col.append((spec.background, cg.white_balance, de, dh, cg.tone.value - g.tone,
                        cg.saturation.value - g.saturation, spec.card is not None))
        if cl is not None and cl.status != "graded":
            held.append(spec.cut)  # cannot_judge: several stones, too small, glare, or not faceted
        elif cl is not None:
            cla.append((spec.severity, cl.severity, cs.grade_index(spec.clarity_grade), cs.grade_index(cl.grade),
                        len(spec.inclusions) == 0, cl.eye_clean))
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{n} stones, {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    wb = [r for r in col if r[1] != "none"]
    none = [r for r in col if r[1] == "none"]
    de = np.array([r[2] for r in wb])
    dh = np.array([r[3] for r in wb if not math.isnan(r[3])])
    tone = np.array([r[4] for r in wb])
    sat = np.array([r[5] for r in wb])
    print(f"\nGrading benchmark: {n} rendered stones, seed {seed}, {size} px "
          f"(python -m bench.bench_grading --n {n} --seed {seed} --size {size})")
    print(f"colour: graded {len(col)}/{n}; white-balanced {len(wb)} (background "
          f"{sum(r[1] == 'background' for r in wb)}, card {sum(r[1] == 'card' for r in wb)}), uncorrected {len(none)}")
    print(_row("body colour dE00 median (white-balanced)", float(np.median(de)), "<= 3", np.median(de) <= 3))
    print(_row("body colour dE00 p95 (white-balanced)", float(np.percentile(de, 95)), "<= 8", np.percentile(de, 95) <= 8))
    print(_row("hue angle error median, deg (C* >= 8)", float(np.median(dh)), "<= 5", np.median(dh) <= 5))
    print(_row("tone exact", float(np.mean(tone == 0)), ">= 0.80", np.mean(tone == 0) >= 0.8))
    print(_row("tone within one", float(np.mean(np.abs(tone) <= 1)), ">= 0.98", np.mean(np.abs(tone) <= 1) >= 0.98))
    print(_row("saturation within one", float(np.mean(np.abs(sat) <= 1)), ">= 0.95", np.mean(np.abs(sat) <= 1) >= 0.95))
    if none:
        den = np.array([r[2] for r in none])
        print(_row("uncorrected stones: dE00 median / p95", float(np.median(den)), f"(p95 {np.percentile(den, 95):.2f})", None))
    by = defaultdict(list)
    for r in col:
        by[r[0]].append(r)
    print("  by background: " + "; ".join(
        f"{k} n={len(v)} wb={np.mean([r[1] != 'none' for r in v]):.0%} dE00 med={np.median([r[2] for r in v]):.2f}"
        for k, v in sorted(by.items())))

    ts = np.array([r[0] for r in cla])
    es = np.array([r[1] for r in cla])
    gt = np.array([r[2] for r in cla])
    ge = np.array([r[3] for r in cla])
    clean = np.array([r[4] for r in cla])
    eye = np.array([r[5] for r in cla])
    rho = spearman(ts, es)
    w1 = float(np.mean(np.abs(gt - ge) <= 1))
    ec = float(np.mean(eye[clean])) if clean.any() else float("nan")
    print(f"clarity: graded {len(cla)}/{n}; {int(clean.sum())} facet-only stones; cannot_judge {len(held)} "
          f"({sum(c == 'cabochon' for c in held)} of them cabochons, which have no facets to grade)")
    print(_row("Spearman rho, measured vs true severity", rho, ">= 0.80", rho >= 0.8))
    print(_row("grade within one", w1, ">= 0.90", w1 >= 0.9))
    print(_row("grade exact", float(np.mean(gt == ge)), "(no target)", None))
    print(_row("facet-only stones graded eye-clean", ec, ">= 0.95", ec >= 0.95))
    print(_row("included stones (true I1-I3) graded I1-I3", float(np.mean(ge[gt >= 4] >= 4)) if (gt >= 4).any() else float("nan"),
               "(no target)", None))
    print(f"  time per stone: colour {np.median(t_col) * 1e3:.1f} ms, clarity {np.median(t_cla) * 1e3:.1f} ms (median)")
    if real > 0:
        _real(real)
    return 0


def _real(per_species: int) -> None:
    """Hue agreement with the species' colour family on the gems68 photos (not ours; never committed)."""
    import cv2

    from gemid.vision.colour import grade_colour
    from gemid.vision.colour_scales import HUES, grade_lab
    from gemid.vision.segment import segment

    if not GEMS68.is_dir():
        print(f"real photos: {GEMS68} absent, skipped")
        return
    names = {code: name for code, name, _ in HUES}
    agree = total = 0
    lines = []
    for species, codes in SINGLE_COLOUR.items():
        folder = GEMS68 / species
        if not folder.is_dir():
            continue
        ok = n = 0
        hues: dict[str, int] = {}
        for path in sorted(folder.iterdir())[:per_species]:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            seg = segment(rgb)
            if not seg.found:
                continue
            cg = grade_colour(rgb, seg)
            if cg is None:
                continue
            code = grade_lab(cg.lab).hue_code
            hues[code] = hues.get(code, 0) + 1
            n += 1
            ok += code in codes
        if n:
            agree += ok
            total += n
            common = ", ".join(f"{names.get(k, k)} {v}" for k, v in sorted(hues.items(), key=lambda kv: -kv[1])[:3])
            lines.append(f"  {species:<16} {ok}/{n}  (most often: {common})")
    if total:
        print(f"real photos (gems68, first {per_species} per single-colour species): hue agrees with the species "
              f"for {agree}/{total} = {agree / total:.0%}")
        print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
