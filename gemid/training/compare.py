"""`gemid evaluate --compare OLD_BUNDLE NEW_BUNDLE`: a new model must earn its place.

Both bundles run through the runtime itself (`gemid.vision.pipeline.Identifier`, ONNX Runtime, no torch) on the
same held-out photos of a manifest (`--split val` by default): decode → segment → crop → classify, exactly as
`gemid identify` answers a desk. Top-1 is the photo-only first candidate (`species.top[0]`), whatever the
abstain decision, as `gemid evaluate`'s top-1 is; a photo the runtime refuses (a corrupt file) counts as wrong
for that model.

Why paired: both models see the same photos, so their errors are correlated, and comparing two independent
Wilson intervals would be far too cautious. The difference new − old in top-1 gets Newcombe's hybrid score
interval for paired proportions (Newcombe 1998, "Improved confidence intervals for the difference between
binomial proportions based on paired data", method 10): the two Wilson 95 % intervals
(`gemid.stats.wilson`) combined with the correlation of the paired outcomes. It is exact arithmetic (no
resampling, no seed), stays inside [−1, 1] and behaves on the small counts a species has, where a bootstrap's
percentile interval is too narrow. McNemar's exact two-sided p-value on the discordant pairs is printed beside
it for those who prefer a test.

The verdict: exit 1 when the new model is clearly worse — the upper bound of the difference's interval is
below 0 — overall, or on any species with at least `--min-photos` photos (default 10; fewer move the
difference by 10+ points per photo); exit 0 otherwise; exit 2 when it could not compare (a missing manifest, an
invalid bundle). Species with fewer photos are shown in --json and count in the overall figure.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from gemid.stats import wilson

DEFAULT_MIN_PHOTOS = 10
Z = 1.96


def paired_difference(old: list[bool], new: list[bool], z: float = Z) -> dict[str, Any]:
    """Top-1 of each model with its Wilson interval, and new − old with Newcombe's paired interval (method 10).

    Pure: tested on hand-made outcomes. Counts: both right, only new right, only old right, both wrong."""
    if len(old) != len(new):
        raise ValueError("paired outcomes need the same photos for both models")
    n = len(old)
    both = sum(1 for a, b in zip(old, new, strict=True) if a and b)
    new_only = sum(1 for a, b in zip(old, new, strict=True) if b and not a)
    old_only = sum(1 for a, b in zip(old, new, strict=True) if a and not b)
    neither = n - both - new_only - old_only
    out: dict[str, Any] = {"n": n, "both_right": both, "only_new_right": new_only, "only_old_right": old_only,
                           "both_wrong": neither}
    if n == 0:
        nan = float("nan")
        return {**out, "old_top1": nan, "new_top1": nan, "old_ci": [nan, nan], "new_ci": [nan, nan],
                "difference": nan, "difference_ci": [nan, nan], "mcnemar_p": 1.0}
    p_new, p_old = (both + new_only) / n, (both + old_only) / n
    l1, u1 = wilson(p_new, n, z)
    l2, u2 = wilson(p_old, n, z)
    a = (both + new_only) * (old_only + neither) * (both + old_only) * (new_only + neither)
    phi = (both * neither - new_only * old_only) / math.sqrt(a) if a > 0 else 0.0
    d = p_new - p_old
    dl = math.sqrt(max(0.0, (p_new - l1) ** 2 - 2 * phi * (p_new - l1) * (u2 - p_old) + (u2 - p_old) ** 2))
    du = math.sqrt(max(0.0, (u1 - p_new) ** 2 - 2 * phi * (u1 - p_new) * (p_old - l2) + (p_old - l2) ** 2))
    return {**out, "old_top1": p_old, "new_top1": p_new, "old_ci": [l2, u2], "new_ci": [l1, u1],
            "difference": d, "difference_ci": [max(-1.0, d - dl), min(1.0, d + du)],
            "mcnemar_p": mcnemar_exact(new_only, old_only)}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs against a fair coin."""
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2 ** m
    return min(1.0, 2 * tail)


def outcomes(bundle_dir: Path | str, items: list[tuple[str, Path]], truth: list[str], *, variant: str = "fp32",
             threads: int | None = None) -> tuple[list[bool], list[str], dict[str, str]]:
    """Run one bundle on the photos: (correct per photo, top-1 label or '' when refused, bundle's name/version)."""
    from gemid.report import FileError
    from gemid.vision.pipeline import Identifier

    ident = Identifier(bundle_dir, variant=variant, threads=threads)
    reports = ident.identify_many(items, grade=False)
    top = ["" if isinstance(r, FileError) or not r.species.top else r.species.top[0].label for r in reports]
    b = ident.bundle
    info = {"path": str(Path(bundle_dir).resolve()), "name": b.name, "version": b.version, "variant": variant}
    return [t == s for t, s in zip(top, truth, strict=True)], top, info


def compare(old_dir: Path | str, new_dir: Path | str, manifest: Path | str, *, split: str = "val",
            min_photos: int = DEFAULT_MIN_PHOTOS, variant: str = "fp32", threads: int | None = None) -> dict[str, Any]:
    """Both bundles on the manifest's `split`: overall and per-species paired figures, and the verdict."""
    from gemid.datasets.manifest import ManifestError, manifest_sha256, read_manifest

    manifest = Path(manifest)
    if not manifest.is_file():
        raise ManifestError(f"manifest {manifest} not found")
    m = read_manifest(manifest)
    rows = m.split(split)
    if not rows:
        raise ManifestError(f"{manifest} has no rows with split={split}")
    items = [(r.path, m.resolve(r)) for r in rows]
    truth = [r.species for r in rows]
    old_ok, old_top, old_info = outcomes(old_dir, items, truth, variant=variant, threads=threads)
    new_ok, new_top, new_info = outcomes(new_dir, items, truth, variant=variant, threads=threads)

    overall = paired_difference(old_ok, new_ok)
    species = []
    for name in sorted(set(truth)):
        idx = [i for i, s in enumerate(truth) if s == name]
        row = paired_difference([old_ok[i] for i in idx], [new_ok[i] for i in idx])
        species.append({"species": name, "judged": len(idx) >= min_photos, **row})
    reasons = []
    if overall["difference_ci"][1] < 0:
        reasons.append(f"the new model is clearly worse overall: top-1 {_pct(overall['new_top1'])} vs "
                       f"{_pct(overall['old_top1'])}, difference {_diff(overall)} on {overall['n']} {split} photos")
    for s in species:
        if s["judged"] and s["difference_ci"][1] < 0:
            reasons.append(f"the new model is clearly worse on {s['species']}: top-1 {_pct(s['new_top1'])} vs "
                           f"{_pct(s['old_top1'])}, difference {_diff(s)} on {s['n']} photos")
    return {"manifest": {"path": str(manifest.resolve()), "sha256": manifest_sha256(manifest)}, "split": split,
            "old": old_info, "new": new_info, "min_photos": min_photos,
            "interval": "Newcombe paired score interval (method 10) from Wilson 95 % intervals",
            "overall": overall, "species": species, "worse": bool(reasons), "reasons": reasons,
            "not_in_old_labels": sorted(set(truth) - set(_labels(old_dir))),
            "not_in_new_labels": sorted(set(truth) - set(_labels(new_dir)))}


def _labels(bundle_dir: Path | str) -> list[str]:
    from gemid.vision.bundle import load_bundle

    return load_bundle(bundle_dir, verify=False).labels


def _pct(v: float) -> str:
    return "—" if v != v else f"{v * 100:.1f} %"


def _diff(r: dict[str, Any]) -> str:
    lo, hi = r["difference_ci"]
    if r["difference"] != r["difference"]:
        return "—"
    return f"{r['difference'] * 100:+.1f} points (95 % CI {lo * 100:+.1f} to {hi * 100:+.1f})"


def report_text(res: dict[str, Any]) -> str:
    o = res["overall"]
    old, new = res["old"], res["new"]
    lines = [
        f"{res['split']} split of {res['manifest']['path']}: {o['n']} photos, {len(res['species'])} species",
        f"old {old['name']} {old['version']} ({old['path']}): top-1 {_pct(o['old_top1'])} "
        f"(95 % CI {_pct(o['old_ci'][0])}–{_pct(o['old_ci'][1])})",
        f"new {new['name']} {new['version']} ({new['path']}): top-1 {_pct(o['new_top1'])} "
        f"(95 % CI {_pct(o['new_ci'][0])}–{_pct(o['new_ci'][1])})",
        f"new − old: {_diff(o)}; {o['only_new_right']} photos only the new model gets right, "
        f"{o['only_old_right']} only the old; McNemar exact p = {o['mcnemar_p']:.3g}",
        f"interval: {res['interval']}",
    ]
    for side in ("old", "new"):
        missing = res[f"not_in_{side}_labels"]
        if missing:
            lines.append(f"note: the {side} model does not know {', '.join(missing[:8])}"
                         + (" …" if len(missing) > 8 else "") + " (always wrong on those photos)")
    judged = sorted((s for s in res["species"] if s["judged"]), key=lambda s: (s["difference"], s["species"]))
    lines += ["", f"species with ≥ {res['min_photos']} photos ({len(judged)} of {len(res['species'])}), worst first:",
              f"  {'species':<24}{'n':>5}{'old':>9}{'new':>9}   new − old (95 % CI)"]
    lines += [f"  {s['species']:<24}{s['n']:>5}{_pct(s['old_top1']):>9}{_pct(s['new_top1']):>9}   "
              f"{s['difference'] * 100:+.1f} ({s['difference_ci'][0] * 100:+.1f} to {s['difference_ci'][1] * 100:+.1f})"
              for s in judged]
    few = len(res["species"]) - len(judged)
    if few:
        lines.append(f"  {few} species with fewer photos are not judged one by one (they count in the overall "
                     "figure; see --json)")
    lines.append("")
    lines.append("FAIL: " + res["reasons"][0] if res["worse"] else
                 "OK: the new model is not clearly worse overall or on any species with enough photos")
    lines += [f"FAIL: {r}" for r in res["reasons"][1:]]
    return "\n".join(lines)


# --- the command (registered by gemid.training.evaluate) -------------------------------------------------------

def add_arguments(p) -> None:
    p.add_argument("--compare", nargs=2, metavar=("OLD_BUNDLE", "NEW_BUNDLE"), default=None,
                   help="compare two exported bundles on the same held-out photos of --manifest with the runtime "
                        "(no torch); exit 1 when the new one is clearly worse (default: off, evaluate a checkpoint)")
    p.add_argument("--min-photos", type=int, default=DEFAULT_MIN_PHOTOS,
                   help="with --compare: species with at least this many photos are judged one by one "
                        "(default: %(default)s)")
    p.add_argument("--variant", choices=("fp32", "int8"), default="fp32",
                   help="with --compare: which ONNX model of each bundle runs (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="with --compare: print the figures as JSON")


def dispatch(evaluate_checkpoint):
    """The `gemid evaluate` handler: --compare runs here, anything else is the checkpoint evaluation."""
    def call(args) -> int:
        if args.compare:
            return main(args)
        if not args.checkpoint or not args.out:
            print("error: gemid evaluate needs --checkpoint and --out (or --compare OLD_BUNDLE NEW_BUNDLE "
                  "--manifest M)", file=sys.stderr)
            return 2
        return evaluate_checkpoint(args)
    return call


def main(args) -> int:
    from gemid.datasets.manifest import ManifestError
    from gemid.errors import GemidInputError, ModelError

    if not args.manifest:
        print("error: --compare needs --manifest (the photos both models are measured on)", file=sys.stderr)
        return 2
    try:
        res = compare(args.compare[0], args.compare[1], args.manifest, split=args.split,
                      min_photos=args.min_photos, variant=args.variant, threads=args.threads)
    except (ManifestError, ModelError, GemidInputError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print(report_text(res))
    if res["worse"]:
        print(f"error: {res['reasons'][0]}", file=sys.stderr)
        return 1
    return 0
