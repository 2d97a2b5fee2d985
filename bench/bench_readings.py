"""How much do cheap confirmatory readings add to the photo? Top-1 photo-only vs photo + RI vs photo + RI + SG;
and does the conclusion refer the simulants and name the look-alikes it cannot exclude?

For every validation stone the true species' property range (gemid/gemmology/data/gem_properties.csv) gives a
simulated reading: a value drawn uniformly from the range plus the instrument's Gaussian error (refractometer
±0.005, spot ±0.01 on aggregates, OTL above 1.81; hydrostatic SG ±0.03; the polariscope from its soft table).
SG is read on a stone of random weight (log-uniform 0.2-5 ct) with the weight's error, and the weight is
entered. The photo's top-k candidates are re-ranked with `gemid.gemmology.rerank.rerank` and concluded with
`gemid.gemmology.conclusion.conclude`, exactly as the service does. Then every look-alike in the table is
photographed as each species it imitates (the photo says that species at 90 %) with its own readings: those
outside the species' ranges must be referred, those inside must be named in `cannot_exclude`.
Accuracy is reported per label, per mineral (corundum, beryl, quartz, pyrope ...) and per family (garnet ...).

    python bench/bench_readings.py --predictions predictions.json   # the model's validation predictions
    python bench/bench_readings.py --synthetic                      # plausible confusions, no model needed

--predictions takes
  * JSON: a list of {"label": true_label, "probs": {label: p, ...}}, or {"predictions": [that list]}, or
    {"classes": [C names], "labels": [N true labels], "probs": [N x C]};
  * NPZ: arrays `probs` (N x C), `labels` (N: class indices or names) and `classes` (C names).
--synthetic draws stones of all 68 labels with photo probabilities that confuse stones of similar colour
(ruby with garnets, sapphire with iolite and tanzanite ...); its photo accuracy is a setting, not a claim.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gemid.gemmology.conclusion import PRIOR_LOOKALIKE, conclude  # noqa: E402
from gemid.gemmology.followup import exclusion_tests, repeat_tests  # noqa: E402
from gemid.gemmology.guidance import recommend  # noqa: E402
from gemid.gemmology.instruments import (  # noqa: E402
    REFRACTOMETER_LIMIT,
    optic_probs,
    ri_bands,
    ri_sigma,
    sigma_sg,
)
from gemid.gemmology.likelihood import Observed, measured_fit, tests_left  # noqa: E402
from gemid.gemmology.rerank import rerank  # noqa: E402
from gemid.gemmology.table import OPTICS, Material, PropertyTable, default_table  # noqa: E402
from gemid.report import Candidate, Readings, SpeciesResult  # noqa: E402
from gemid.vision.classify import MIN_TOP_K  # noqa: E402

WEIGHTS_CT = (0.2, 5.0)  # desk stones: log-uniform weights; the SG error follows the weight

# body colours of the 68 classes, only to make the synthetic photo confuse what a photo would confuse
COLOURS: dict[str, tuple[str, ...]] = {
    "Alexandrite": ("green",), "Almandine": ("red",), "Amazonite": ("green", "blue"), "Amber": ("orange", "yellow"),
    "Amethyst": ("purple",), "Ametrine": ("purple", "yellow"), "Andradite": ("green", "brown"),
    "Aquamarine": ("blue",), "Aventurine Green": ("green",), "Aventurine Yellow": ("yellow", "brown"),
    "Benitoite": ("blue",), "Beryl Golden": ("yellow",), "Bixbite": ("red", "pink"), "Bloodstone": ("green", "black"),
    "Blue Lace Agate": ("blue", "white"), "Carnelian": ("orange", "red"), "Chalcedony": ("white", "blue"),
    "Chalcedony Blue": ("blue",), "Chrome Diopside": ("green",), "Chrysoberyl": ("yellow", "green"),
    "Chrysocolla": ("blue", "green"), "Chrysoprase": ("green",), "Citrine": ("yellow", "orange"),
    "Coral": ("red", "orange", "pink"), "Diamond": ("white",), "Diaspore": ("green", "brown"),
    "Dumortierite": ("blue",), "Emerald": ("green",), "Fluorite": ("purple", "green"), "Hessonite": ("orange", "brown"),
    "Iolite": ("blue", "purple"), "Jasper": ("red", "brown"), "Kunzite": ("pink", "purple"), "Kyanite": ("blue",),
    "Lapis Lazuli": ("blue",), "Malachite": ("green",), "Onyx Black": ("black",), "Onyx Green": ("green",),
    "Onyx Red": ("red", "orange"), "Peridot": ("green", "yellow"), "Prehnite": ("green", "yellow"),
    "Pyrite": ("metallic", "yellow"), "Pyrope": ("red",), "Quartz Beer": ("brown", "orange"),
    "Quartz Lemon": ("yellow", "green"), "Quartz Rutilated": ("white", "yellow"), "Quartz Smoky": ("brown", "grey"),
    "Rhodochrosite": ("pink", "red"), "Rhodolite": ("red", "purple"), "Rhodonite": ("pink", "black"),
    "Ruby": ("red", "pink"), "Sapphire Blue": ("blue",), "Sapphire Pink": ("pink",),
    "Sapphire Purple": ("purple", "pink"), "Sapphire Yellow": ("yellow",), "Serpentine": ("green", "yellow"),
    "Sodalite": ("blue", "white"), "Spessartite": ("orange",), "Sphene": ("yellow", "green"), "Sunstone": ("orange",),
    "Tanzanite": ("blue", "purple"), "Tigers Eye": ("brown", "yellow"), "Topaz": ("blue", "white"),
    "Tourmaline": ("green", "pink"), "Tsavorite": ("green",), "Turquoise": ("blue", "green"),
    "Zircon": ("blue", "white"), "Zoisite": ("green",),
}


@dataclass
class Stone:
    label: str
    probs: dict[str, float]


# --- inputs -------------------------------------------------------------------------------------------


def load_predictions(path: Path) -> list[Stone]:
    if path.suffix == ".npz":
        data = np.load(path, allow_pickle=False)
        classes = [str(c) for c in data["classes"]]
        probs, labels = np.asarray(data["probs"], float), data["labels"]
        names = [classes[int(x)] if np.issubdtype(labels.dtype, np.integer) else str(x) for x in labels]
        return [Stone(n, dict(zip(classes, map(float, row), strict=True))) for n, row in zip(names, probs, strict=True)]
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "predictions" in data:
        data = data["predictions"]
    if isinstance(data, dict):  # columnar form
        classes = data["classes"]
        return [Stone(lab, dict(zip(classes, map(float, row), strict=True)))
                for lab, row in zip(data["labels"], data["probs"], strict=True)]
    return [Stone(d["label"], {k: float(v) for k, v in d["probs"].items()}) for d in data]


def synthetic_predictions(labels: list[str], per_class: int, rng: np.random.Generator, strength: float) -> list[Stone]:
    """Softmax of noisy logits: the true class high, classes of a shared colour in between, the rest low."""
    stones = []
    for true in labels:
        confusers = np.array([lab != true and bool(set(COLOURS.get(lab, ())) & set(COLOURS.get(true, ())))
                              for lab in labels])
        for _ in range(per_class):
            logits = rng.normal(-1.0, 1.0, len(labels))
            logits[confusers] = rng.normal(1.5, 1.0, int(confusers.sum()))
            logits[labels.index(true)] = rng.normal(strength, 1.0)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            stones.append(Stone(true, dict(zip(labels, map(float, p), strict=True))))
    return stones


# --- simulated readings ---------------------------------------------------------------------------------


def _pick_row(rows: tuple[Material, ...], rng: np.random.Generator) -> Material:
    w = np.array([m.weight for m in rows])
    return rows[int(rng.choice(len(rows), p=w / w.sum()))]


def simulate(m: Material, rng: np.random.Generator, *, sg: bool, optic: bool) -> Readings:
    kwargs: dict = {}
    if m.ri is None:
        kwargs["ri_otl"] = True
    else:
        bands = ri_bands(m)  # the whole range, or either end of a birefringence blink
        lo, hi, _ = bands[int(rng.choice(len(bands), p=[w for _, _, w in bands]))]
        ri = rng.uniform(lo, hi) + rng.normal(0.0, ri_sigma(m))
        if ri >= REFRACTOMETER_LIMIT:
            kwargs["ri_otl"] = True
        else:
            kwargs["ri"] = round(float(np.clip(ri, 1.3, 3.0)), 3)
    if sg:
        weight = float(np.exp(rng.uniform(*np.log(WEIGHTS_CT))))
        kwargs["weight_ct"] = round(weight, 2)
        sg_value = rng.uniform(m.sg.low, m.sg.high) + rng.normal(0.0, sigma_sg(weight))
        kwargs["sg"] = round(float(np.clip(sg_value, 0.5, 8.0)), 2)
    if optic:
        p = optic_probs(m)
        kwargs["optic"] = OPTICS[int(rng.choice(len(OPTICS), p=[p[o] for o in OPTICS]))]
    return Readings(**kwargs)


# --- the benchmark ----------------------------------------------------------------------------------------


def run(stones: list[Stone], table: PropertyTable, top_k: int, rng: np.random.Generator,
        prior: float = PRIOR_LOOKALIKE, polariscope: bool = False) -> dict:
    unknown = sorted({s.label for s in stones if not table.rows_for(s.label)})
    if unknown:
        raise SystemExit(f"true labels with no row in the property table: {unknown}")
    configs = {"photo": None, "photo+RI": dict(sg=False, optic=False), "photo+RI+SG": dict(sg=True, optic=False),
               "photo+RI+SG+polariscope": dict(sg=True, optic=True)}
    levels = ("label", "mineral", "family")
    hits = {c: dict.fromkeys(levels, 0) for c in configs}
    flags = {"true_in_top_k": [0, 0], "true_not_in_top_k": [0, 0]}  # [flagged, total] with photo+RI+SG
    referred = {True: [0, 0], False: [0, 0]}  # photo right / wrong: [referred, stones] with photo+RI+SG
    confused: collections.Counter[tuple[str, str]] = collections.Counter()  # photo+RI wrong, truth a candidate
    decisions: collections.Counter[str] = collections.Counter()  # the genuine stones' conclusions (photo+RI+SG)
    identified_right = 0

    def level_of(label: str, level: str) -> str:
        if level == "label":
            return label
        return (table.mineral_of(label) if level == "mineral" else table.family_of(label)) or label

    for s in stones:
        ranked = sorted(s.probs.items(), key=lambda kv: -kv[1])[:top_k]
        cands = [Candidate(label=lab, probability=min(1.0, max(0.0, p))) for lab, p in ranked]
        row = _pick_row(table.rows_for(s.label), rng)
        in_cands = s.label in {c.label for c in cands}
        for name, cfg in configs.items():
            if cfg is None:
                pred = cands[0].label
            else:
                result = rerank(cands, simulate(row, rng, **cfg), model_labels=list(s.probs))
                pred = result.combined[0].label
                if name == ("photo+RI+SG+polariscope" if polariscope else "photo+RI+SG"):
                    key = "true_in_top_k" if in_cands else "true_not_in_top_k"
                    flags[key][0] += int(result.fits_none)
                    flags[key][1] += 1
                    right = cands[0].label == s.label
                    c = conclude(_photo_result(cands), result, table=table, prior_lookalike=prior)
                    referred[right][0] += int(c.decision == "refer")
                    referred[right][1] += 1
                    decisions[c.decision] += 1
                    identified_right += int(c.decision == "identified" and c.label == s.label)
            for lv in levels:
                hits[name][lv] += int(level_of(pred, lv) == level_of(s.label, lv))
            if name == "photo+RI" and in_cands and level_of(pred, "mineral") != level_of(s.label, "mineral"):
                confused[(s.label, pred)] += 1  # a mineral one RI cannot split from the truth
    n = len(stones)
    in_top = flags["true_in_top_k"][1]
    return {
        "stones": n, "top_k": top_k, "true_in_top_k": in_top / n if n else 0.0,
        "top1": {c: {lv: hits[c][lv] / n for lv in levels} for c in configs},
        "fits_none_rate": {k: (v[0] / v[1] if v[1] else None) for k, v in flags.items()},
        "fits_none_counts": flags,
        "genuine_referred": (referred[True][0] + referred[False][0]) / n if n else None,
        "genuine_referred_counts": {"photo_right": referred[True], "photo_wrong": referred[False]},
        "genuine_decisions": dict(decisions), "genuine_identified_right": identified_right,
        "ri_confusions": [{"truth": t, "called": c, "stones": k}
                          for (t, c), k in sorted(confused.items(), key=lambda kv: (-kv[1], kv[0]))],
    }


def _photo_result(cands: list[Candidate]) -> SpeciesResult:
    return SpeciesResult(decision="identified" if cands[0].probability >= 0.9 else "uncertain", reason="", top=cands)


PUBLISHED = Path(__file__).resolve().parent / "data" / "published_readings.json"


def published_photo(label: str, table: PropertyTable) -> list[Candidate]:
    """The photo a desk takes of a stone shown as `label`: that label at 90 %, four classes sharing its colour
    (COLOURS) with the rest, so the readings, not the simulation, decide."""
    labels = list(table.model_labels)
    same = [lab for lab in labels if lab != label and set(COLOURS.get(lab, ())) & set(COLOURS.get(label, ()))]
    return [Candidate(label=label, probability=0.9)] + [Candidate(label=lab, probability=0.025) for lab in same[:4]]


def published_case(case: dict, table: PropertyTable):
    """The conclusion for one published case, and the expectations it misses (empty when it holds)."""
    cands = published_photo(case["photo"], table)
    readings = Readings(**case["readings"])
    c = conclude(_photo_result(cands), rerank(cands, readings, model_labels=list(table.model_labels), table=table),
                 table=table)
    want = case["expect"]
    misses = [f"{key} {getattr(c, key)!r}, expected {want[key]!r}" for key in ("decision", "label")
              if key in want and getattr(c, key) != want[key]]
    misses += [f"{key} {getattr(c, key)} lacks {name}" for key in ("fits", "cannot_exclude")
               for name in want.get(key, []) if name not in getattr(c, key)]
    return c, misses


def simulants(table: PropertyTable, rng: np.random.Generator, repeats: int, any_labels: int,
              prior: float = PRIOR_LOOKALIKE, polariscope: bool = False) -> dict:
    """Every look-alike in the table photographed as the stone it imitates (the photo says that species at
    90 %), with its own readings (RI, SG at a random weight) drawn within instrument error.

    Readings outside the imitated species' ranges by more than the instrument error must end in `refer`;
    readings that overlap them must name the look-alike in `cannot_exclude` (a photo and these readings cannot
    tell them apart). Look-alikes of anything (glass, CZ) are photographed as `any_labels` random labels."""
    labels = list(table.model_labels)
    out = {"distinct": [0, 0], "overlapping": [0, 0], "misses": []}
    for m in table.lookalikes():
        targets = [lab for lab in m.lookalike_of if lab in labels]
        if "*" in m.lookalike_of:
            targets += [str(x) for x in rng.choice(labels, size=any_labels, replace=False)]
        for target in targets:
            others = [lab for lab in labels if lab != target]
            for _ in range(repeats):
                confusers = [str(x) for x in rng.choice(others, size=4, replace=False)]
                cands = [Candidate(label=target, probability=0.9)] + [Candidate(label=c, probability=0.02)
                                                                       for c in confusers]
                readings = simulate(m, rng, sg=True, optic=polariscope)
                obs = Observed.from_readings(readings)
                rr = rerank(cands, readings, model_labels=labels, table=table)
                c = conclude(_photo_result(cands), rr, table=table, prior_lookalike=prior)
                if any(measured_fit(row, obs) for row in table.rows_for(target)):
                    kind, ok = "overlapping", m.name in c.cannot_exclude or (c.decision == "refer" and m.name in c.fits)
                else:
                    kind, ok = "distinct", c.decision == "refer"
                out[kind][0] += int(ok)
                out[kind][1] += 1
                if not ok and len(out["misses"]) < (24 if kind == "overlapping" else 12):  # overlaps (target 100 %) get more room
                    out["misses"].append(f"{m.name} as {target} ({kind}): {c.decision} {c.label}")
    return out


def guidance_after_readings(stones: list[Stone], table: PropertyTable, top_k: int,
                            rng: np.random.Generator) -> dict:
    """What guidance offers after the readings (simulated RI, then RI + SG, as in `run`): tests per stone, and
    the look-alikes a recommended test says it "also rules out" that the readings have already ruled out
    (measured_fit fails), with the readings given to guidance and, for comparison, without them."""
    lookalikes = sorted(table.lookalikes(), key=lambda m: -len(m.name))  # "lead glass" before "glass"
    out = {mode: {"advice": 0, "tests": 0, "named": 0, "already_out": 0, "empty_named": 0}
           for mode in ("readings", "blind")}
    for s in stones:
        ranked = sorted(s.probs.items(), key=lambda kv: -kv[1])[:top_k]
        cands = [Candidate(label=lab, probability=min(1.0, max(0.0, p))) for lab, p in ranked]
        row = _pick_row(table.rows_for(s.label), rng)
        for sg in (False, True):
            r = simulate(row, rng, sg=sg, optic=False)
            obs = Observed.from_readings(r)
            rr = rerank(cands, r, model_labels=list(s.probs))
            combined = list(rr.combined)
            # as the report does: the tests the conclusion's reason names for its look-alikes are offered too
            conclusion = conclude(_photo_result(cands), rr, table=table)
            exclude = exclusion_tests(conclusion, r, table)
            repeat = repeat_tests(conclusion, rr, table)
            for mode in out:
                res = recommend(combined, available=tests_left(r), readings=r if mode == "readings" else None,
                                exclude=exclude if mode == "readings" else None,
                                repeat=repeat if mode == "readings" else None)
                o = out[mode]
                o["advice"] += 1
                o["tests"] += len(res.recommended)
                offered = {t.test for t in res.recommended}
                # a reason that says "the <instrument> can" above a list without that test (an outside try)
                o["empty_named"] += int(bool(set(exclude) - offered))
                for t in res.recommended:
                    clause = re.search(r"Also rules out (.*?)\. Expected", t.why)
                    for part in re.split(r", | and ", clause.group(1)) if clause else []:
                        m = next((m for m in lookalikes if part.lower().startswith(m.name.lower() + " ")), None)
                        if m is not None:
                            o["named"] += 1
                            o["already_out"] += int(not measured_fit(m, obs))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--predictions", type=Path, help="validation predictions (JSON or NPZ, see module doc)")
    src.add_argument("--synthetic", action="store_true", help="generate plausible confusable predictions")
    ap.add_argument("--per-class", type=int, default=20, help="synthetic stones per class")
    ap.add_argument("--strength", type=float, default=3.5, help="synthetic: mean logit of the true class")
    ap.add_argument("--top-k", type=int, default=MIN_TOP_K, help="candidates passed to the re-ranking (the report's, as the service passes them)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--simulant-repeats", type=int, default=5, help="stones per look-alike and imitated label")
    ap.add_argument("--any-labels", type=int, default=8, help="labels a look-alike of anything is photographed as")
    ap.add_argument("--prior-lookalike", type=float, default=PRIOR_LOOKALIKE,
                    help="the conclusion's prior share of look-alikes the model does not know (the shipped value)")
    ap.add_argument("--polariscope", action="store_true",
                    help="genuine referrals and simulants with a polariscope reading too (misjudged as often as the "
                         "instrument model says)")
    ap.add_argument("--guidance", action="store_true",
                    help="also: the tests guidance offers after the readings, and what they offer to rule out")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    table = default_table()
    rng = np.random.default_rng(args.seed)
    if args.synthetic:
        stones = synthetic_predictions(list(table.model_labels), args.per_class, rng, args.strength)
        source = f"synthetic ({args.per_class}/class, strength {args.strength}, seed {args.seed})"
    else:
        stones = load_predictions(args.predictions)
        source = str(args.predictions)
    t0 = time.perf_counter()
    res = run(stones, table, args.top_k, rng, args.prior_lookalike, args.polariscope)
    res["source"] = source
    res["seconds"] = round(time.perf_counter() - t0, 1)

    print(f"readings benchmark: {res['stones']} stones from {source}; top-{args.top_k} candidates re-ranked; "
          f"one simulated reading per test per stone (seed {args.seed})")
    print(f"{'top-1 accuracy':<26}{'label':>8}{'mineral':>9}{'family':>8}")
    for name, acc in res["top1"].items():
        print(f"{name:<26}{acc['label']:>8.1%}{acc['mineral']:>9.1%}{acc['family']:>8.1%}")
    print(f"true species within the photo's top-{args.top_k} (the ceiling for re-ranking): {res['true_in_top_k']:.1%}")
    fr = res["fits_none_rate"]
    if fr["true_in_top_k"] is not None:
        print(f"fits_none raised on genuine stones whose species was in the top-{args.top_k}: "
              f"{fr['true_in_top_k']:.1%} (false alarms)")
    if fr["true_not_in_top_k"] is not None:
        print(f"fits_none raised when the true species was outside the top-{args.top_k}: {fr['true_not_in_top_k']:.1%}")
    wrong = res["ri_confusions"]
    print(f"photo+RI wrong at the mineral level with the true species among the candidates: "
          f"{sum(w['stones'] for w in wrong)} stones; most often: "
          + (", ".join(f"{w['truth']} as {w['called']} {w['stones']}" for w in wrong[:6]) or "none"))
    target = res["top1"]["photo+RI"]["mineral"]
    print(f"target photo+RI >= 96% top-1 at the mineral level: {'met' if target >= 0.96 else 'NOT met'} ({target:.1%})")
    gr = res["genuine_referred"]
    rc = res["genuine_referred_counts"]
    print(f"genuine stones referred (photo+RI+SG{'+polariscope' if args.polariscope else ''} conclusion): {gr:.1%} (target <= 3%: {'met' if gr <= 0.03 else 'NOT met'})"
          f"; photo's first choice right: {rc['photo_right'][0]}/{rc['photo_right'][1]}, wrong (the readings "
          f"contradict the photo): {rc['photo_wrong'][0]}/{rc['photo_wrong'][1]}")
    dec, n_st = res["genuine_decisions"], max(1, res["stones"])
    print("genuine stones' conclusions (photo+RI+SG): " + ", ".join(f"{k} {v / n_st:.1%}" for k, v in sorted(dec.items()))
          + f"; identified as their own species {res['genuine_identified_right'] / n_st:.1%}")
    sim = simulants(table, rng, args.simulant_repeats, args.any_labels, args.prior_lookalike, args.polariscope)
    res["simulants"] = sim
    for kind, goal, what in (("distinct", 0.95, "referred"), ("overlapping", 1.0, "named in cannot_exclude")):
        hit, total = sim[kind]
        share = hit / total if total else 0.0
        print(f"look-alikes whose readings are {kind} from the photo's species: {hit}/{total} {what} ({share:.1%}; "
              f"target >= {goal:.0%}: {'met' if share >= goal else 'NOT met'})")
    for miss in sim["misses"]:
        print(f"  missed: {miss}")
    cases = json.loads(PUBLISHED.read_text())["cases"]
    held = 0
    for case in cases:
        c, misses = published_case(case, table)
        held += not misses
        print(f"  published: {case['name']:<40} {c.decision:<10} {c.label or '-':<28} "
              f"{'ok' if not misses else 'MISSED: ' + '; '.join(misses)}")
    print(f"published cases (bench/data/published_readings.json, each with its source): {held}/{len(cases)} hold")
    res["published"] = {"held": held, "cases": len(cases)}
    if args.guidance:
        g = res["guidance"] = guidance_after_readings(stones, table, args.top_k, rng)
        for mode, o in g.items():
            print(f"guidance after the readings ({'readings given to it' if mode == 'readings' else 'blind to them'}): "
                  f"{o['tests'] / max(1, o['advice']):.2f} tests per stone; look-alikes a test offers to rule out "
                  f"that the readings already ruled out: {o['already_out']} of {o['named']}; stones whose "
                  f"conclusion names a desk test for a look-alike that the list lacks: {o['empty_named']}")
    print(f"{time.perf_counter() - t0:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
