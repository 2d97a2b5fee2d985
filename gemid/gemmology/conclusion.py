"""One conclusion from all the evidence: the photo's species result and, when there are any, the readings.

The photo alone can identify, stay uncertain or reject (gemid.vision.classify decides, with the model's
calibrated thresholds). Readings then settle or overturn it, by these rules:

- A candidate whose readings fall outside its range by more than three instrument errors (`measured_fit`) is
  implausible, whatever the photo says: it is never the conclusion. The allowance for a misread instrument
  is the likelihood's floor (gemid.gemmology.instruments.FLOOR), which only orders the implausible.
- A candidate the photo all but ruled out is weighed against the look-alikes the model does not know
  (`PRIOR_LOOKALIKE`): readings that fit it well can overturn the photo (golden beryl taken for citrine), but a
  reading that a look-alike of the photo's answer explains as well makes it a referral, not a promotion.
- Readings that fit no candidate left in the running, or that fit a look-alike the model does not know clearly
  better than any candidate (spinel for ruby, glass, CZ), make the conclusion **refer**: send it to a
  laboratory. It names what the readings fit.
- Readings that fit the answer are identified when its probability reaches IDENTIFY_COMBINED: the combined
  one, at most its share beside the likeliest look-alike of another mineral, and when no look-alike that
  reads nearly as well (`DESK_FIRST`) is left for a desk test not yet taken to exclude. Readings judged by eye
  only weigh (they are often misjudged); one that fits none of the candidates, or one the answer cannot give,
  keeps it uncertain and is named for a repeat.
- Look-alikes that read like the answer (a synthetic of the same species, a glass of the same RI and SG)
  cannot be excluded by a photo and standard readings: `cannot_exclude` names them, and no conclusion ever
  calls a stone natural.
"""

from __future__ import annotations

from collections.abc import Sequence

from gemid.gemmology.followup import NEXT_TEST, desk_test_key
from gemid.gemmology.instruments import TESTS
from gemid.gemmology.likelihood import (
    Observed,
    contradictions,
    describe,
    eye_against,
    fits,
    likelihood,
    measured_fit,
    mixture_likelihood,
    only_tests,
    tests_done,
)
from gemid.gemmology.rerank import display_name, what_fits
from gemid.gemmology.table import Material, PropertyTable, default_table
from gemid.messages import join_names, percent
from gemid.report import Candidate, Conclusion, Readings, Reranking, SpeciesResult

# The prior share of look-alikes the model does not know (glass, CZ, spinel for ruby ...) among the stones a
# desk photographs, set high on purpose. A photo candidate other than the first choice stays in the running only
# while photo probability x readings likelihood reaches this share of the likeliest such look-alike's: then a
# reading that fits a class the photo under-rated promotes it (golden beryl at 3 % behind citrine), while one
# that a look-alike explains as well is a referral. bench_readings measures both sides (genuine stones referred,
# simulants referred): the README has the figures against the fixed photo floor this replaced.
PRIOR_LOOKALIKE = 0.1
IDENTIFY_COMBINED = 0.80  # photo + readings: the answer's combined probability to call it identified
# A look-alike this many times likelier than the answer makes it a referral. Both fit the readings then (else
# the first rule refers), so this is only for a reading that sits in the look-alike's narrow range and at the
# edge of the answer's: a smaller factor referred genuine stones whose reading fell near their range's end.
LOOKALIKE_BETTER = 20.0
MAX_NAMED = 3  # what the readings fit: the likeliest few, in a referral's words
MAX_PHOTO_LOOKALIKES = 6  # a photo-only conclusion names this many look-alikes it cannot tell apart
# a look-alike a desk test still to take would exclude, that explains the readings at least this share as well
# as the answer, is excluded before the answer is identified (cubic zirconia beside a diamond read OTL: 1;
# a lead-free glass beside quartz read 1.544 and 2.65: about 1/50, named but no bar)
DESK_FIRST = 0.1
# tests whose reaction varies with locality and treatment: they argue, but a stone is not held back for them (a
# natural emerald may fluoresce red as its flux synthetic does)
WEAK_TESTS = frozenset({"uv_fluorescence", "uv_fluorescence_sw"})
IN_RANGE = 2.0  # instrument errors beyond the answer's range that a measured reading may lie and still identify it


def _name(m: Material) -> str:
    return m.name if m.label is None else m.label


def _imitates(m: Material, label: str) -> bool:
    return "*" in m.lookalike_of or label in m.lookalike_of


def photo_cannot_exclude(label: str | None, table: PropertyTable) -> list[str]:
    """Look-alikes made or chosen to look like `label`: a photo cannot tell them from it."""
    if label is None:
        return []
    return [m.name for m in table.lookalikes() if label in m.lookalike_of][:MAX_PHOTO_LOOKALIKES]


def _fitting_lookalikes(label: str, obs: Observed, table: PropertyTable) -> list[Material]:
    # the measured readings only: one judged by eye is often misjudged, and dropping a look-alike from this
    # caution list on a misjudged polariscope lost 9-12 % of them (bench_readings' simulants, read with one)
    good = [m for m in table.lookalikes() if _imitates(m, label) and m.name != label and measured_fit(m, obs)]
    return sorted(good, key=lambda m: -likelihood(m, obs))


def _eye_instruments(readings: Readings) -> str:
    """The instruments of the readings taken that are judged by eye (no numeric error: instruments.TESTS)."""
    return join_names([TESTS[t].instrument for t in tests_done(readings) if TESTS[t].sigma is None])


def _what_fits(obs: Observed, table: PropertyTable, photo_top: str | None,
               candidates: Sequence[str]) -> tuple[list[str], bool]:
    """The names of what the readings fit, in a referral's words and order (`rerank.what_fits`), and whether
    they fit every reading: what fits every reading, or failing that what fits the measured ones (a misjudged
    polariscope leaves something to name, but the referral must not say it fits the polariscope too)."""
    found = what_fits(obs, table, photo_top, prefer=candidates, fit=fits)
    every = bool(found)
    found = found or what_fits(obs, table, photo_top, prefer=candidates)
    return [_name(m) for m in found][:MAX_NAMED], every


def _rivals(top: str, obs: Observed, table: PropertyTable) -> list[tuple[float, Material]]:
    """Look-alikes of the photo's first choice, or of anything, the model does not know: likeliest first."""
    found = [(likelihood(m, obs), m) for m in table.lookalikes() if _imitates(m, top)]
    return sorted(found, key=lambda lm: -lm[0])


def _bar(label: str, rivals: Sequence[tuple[float, Material]], table: PropertyTable,
         prior: float) -> tuple[float, Material | None]:
    """`prior` x the likelihood of the likeliest rival, and that rival. A synthetic made to look like `label`,
    of its own mineral, is no rival: it reads like it, and cannot_exclude names it. One of the same mineral made
    to look like the photo's answer instead is (colour-change synthetic corundum when readings promote a blue
    sapphire over the photo's alexandrite)."""
    minerals = {m.mineral for m in table.rows_for(label)}
    lik, m = next(((lik, m) for lik, m in rivals if not (m.mineral in minerals and _imitates(m, label))),
                  (0.0, None))
    return prior * lik, m


def _weak(rr: Reranking, considered: set[str], obs: Observed, table: PropertyTable,
          lead: Candidate | None, every: bool) -> list[tuple[str, str]]:
    """The candidates the readings fit but the photo gave too little to stay in the running, with what the
    photo gave each: those that fit every reading if any do, else (unless something else fits every reading,
    `every`) those that fit the measured ones (an outside try was told "Pyrope or Chrome Diopside fit the
    measured ones" beside an SR that chrome diopside cannot give); the readings' likeliest among them, though
    it may lie below the photo's listed candidates."""
    def fit_all(label: str) -> bool:
        return any(fits(m, obs) for m in table.rows_for(label))

    out = [c for c in rr.photo_only if c.label not in considered and
           any(measured_fit(m, obs) for m in table.rows_for(c.label))]
    given = {c.label: percent(c.probability) for c in rr.photo_only}
    if lead is not None and lead.label not in considered and lead.label not in given and rr.photo_only:
        out.insert(0, lead)
        last = percent(rr.photo_only[-1].probability)
        given[lead.label] = last if last.startswith("<") else f"under {last}"
    out = [c for c in out if fit_all(c.label)] or ([] if every else out)
    return [(c.label, given[c.label]) for c in out[:MAX_NAMED]]


def _support(c: Candidate, obs: Observed, table: PropertyTable) -> float:
    """Photo probability x readings likelihood: a candidate's weight against an unknown look-alike's."""
    rows = table.rows_for(c.label)
    return c.probability * (mixture_likelihood(rows, obs) if rows else obs.neutral_likelihood())


def conclude(species: SpeciesResult, reranking: Reranking | None = None, *,
             table: PropertyTable | None = None, prior_lookalike: float = PRIOR_LOOKALIKE) -> Conclusion:
    """The report's conclusion: the photo's result alone, or the photo's combined with the readings
    (`prior_lookalike` is PRIOR_LOOKALIKE; the benchmark varies it)."""
    table = table or default_table()
    top = species.top[0] if species.top else None
    if reranking is None or reranking.readings.is_empty():
        if species.decision == "rejected" or top is None:
            return Conclusion(decision="rejected", basis="photo", reason=species.reason)
        return Conclusion(decision=species.decision, label=top.label, probability=round(top.probability, 4),
                          basis="photo", reason=species.reason,
                          cannot_exclude=photo_cannot_exclude(top.label, table))
    return _with_readings(species, reranking, table, prior_lookalike)


def _with_readings(species: SpeciesResult, rr: Reranking, table: PropertyTable, prior: float) -> Conclusion:
    obs = Observed.from_readings(rr.readings)
    ranked = list(rr.combined)

    def plausible(c: Candidate) -> bool | None:
        rows = table.rows_for(c.label)
        return any(measured_fit(m, obs) for m in rows) if rows else None

    photo_top = rr.photo_only[0].label if rr.photo_only else None
    rivals = _rivals(photo_top, obs, table) if photo_top is not None else []
    # the photo's first choice is always in the running; another candidate only while its support reaches the
    # bar of the look-alikes the model does not know (PRIOR_LOOKALIKE)
    considered = {c.label for i, c in enumerate(rr.photo_only)
                  if i == 0 or _support(c, obs, table) >= _bar(c.label, rivals, table, prior)[0]}
    fitting = [c for c in ranked if c.label in considered and plausible(c) is not False]
    lead = next((c for c in ranked if plausible(c) is not False), None)
    if (fitting and lead is not None and lead.label not in considered and fitting[0].label != photo_top
            and lead.probability > fitting[0].probability):
        # the readings rule out the photo's answer, and their likeliest is one the photo all but ruled out: an
        # answer from what stays in the running would be far less likely than it (an outside try: chrome
        # diopside readings on an emerald photo gave "uncertain Diaspore 1 %" beside a combined ranking of
        # chrome diopside 94 %), so it is a referral. While the photo's answer fits, the rules below weigh it.
        fitting = []
    if species.decision == "rejected" or not fitting:
        names, every = _what_fits(obs, table, photo_top,
                                  ([lead.label] if lead is not None else []) + [c.label for c in rr.photo_only])
        seen = _eye_instruments(rr.readings)
        if species.decision == "rejected":
            why = f"the photo alone gave no species ({species.reason.rstrip('.')})"
        else:
            ruled_out = [c.label for c in rr.photo_only if c.label in considered and plausible(c) is False]
            weak = _weak(rr, considered, obs, table, lead, every)
            # the photo's answer first, and what else it considered after it (an outside gemmologist read "rule
            # out Kunzite, Amethyst or Ametrine, the photo's answer")
            first = [n for n in ruled_out if n == photo_top] or ruled_out[:1]
            rest = [n for n in ruled_out if n not in first]
            why = (f"the readings rule out {join_names(first)}, the photo's answer"
                   + (f", and {join_names(rest, 'and')}, which it also considered" if rest else ""))
            if weak:
                every_weak = all(any(fits(m, obs) for m in table.rows_for(label)) for label, _ in weak)
                why += (f"; {join_names([label for label, _ in weak])} {'fits' if len(weak) == 1 else 'fit'} "
                        f"{'them' if every_weak or not seen else 'the measured ones'}, but the "
                        f"photo gave {join_names([given for _, given in weak], 'and')}, too little to outweigh "
                        "a look-alike it does not know")
        fit_all = (f"The readings fit {join_names(names)}." if every else
                   # an outside try: "Pyrope or Chrome Diopside fit them" beside an SR that chrome diopside
                   # cannot give, while the flag said nothing fits
                   f"The measured readings fit {join_names(names)}; the {seen} reading fits none of them: repeat it.")
        reason = (f"Refer to a laboratory: {why}. "
                  + (fit_all if names else "They fit no material in the property table either: check the readings."))
        return Conclusion(decision="refer", label=names[0] if names else None, basis="photo+readings",
                          reason=reason, fits=names)

    best = fitting[0]
    best_lik = mixture_likelihood(table.rows_for(best.label), obs) if table.rows_for(best.label) else 0.0
    lookalikes = _fitting_lookalikes(best.label, obs, table)
    if photo_top is not None and photo_top != best.label and any(c.label == photo_top for c in fitting):
        # the photo's answer fits too: what reads like it cannot be excluded either (synthetic quartz for an
        # amethyst photo whose readings rank a chalcedony first)
        lookalikes += [m for m in _fitting_lookalikes(photo_top, obs, table) if m not in lookalikes]
    # a look-alike of the answer the readings fit clearly better than the answer: the model cannot know it.
    # Not one of the answer's own mineral (a synthetic ruby is corundum): it reads like the real thing, so a
    # narrower range is no evidence against the answer; it is named in cannot_exclude instead
    minerals = {m.mineral for m in table.rows_for(best.label)}
    better = [m for m in lookalikes if m.mineral not in minerals and best_lik > 0
              and likelihood(m, obs) >= LOOKALIKE_BETTER * best_lik]
    # one of the answer's own mineral (a synthetic) the readings fit clearly better: no referral (it reads like
    # the real thing, so a narrower range alone is weak evidence), but no identification either (an outside try:
    # flux synthetic emerald's RI, SG and strong red UV were "identified Emerald 94 %")
    closer_own = [m for m in lookalikes if m.mineral in minerals and best_lik > 0
                  and likelihood(m, obs) >= LOOKALIKE_BETTER * best_lik]
    others = [m for m in lookalikes if m not in better]
    cannot_exclude = [m.name for m in others]
    if better:
        names = [m.name for m in better][:MAX_NAMED]
        return Conclusion(
            decision="refer", label=names[0], basis="photo+readings", fits=names, cannot_exclude=cannot_exclude,
            reason=(f"Refer to a laboratory: the readings fit {join_names(names)} better than {best.label}, the photo's "
                    f"answer; the photo model does not know {join_names(names)}."))
    p = best.probability
    moved = best.label != photo_top
    # the answer is weighed against the look-alikes of another mineral that could have given those readings too
    # (a glass that reads like a chalcedony): its probability is at most its share beside them, so it is
    # identified only when it clearly beats them
    bar, rival = _bar(best.label, rivals, table, prior)
    doubted = False
    if bar > 0:
        support = _support(next((c for c in rr.photo_only if c.label == best.label), best), obs, table)
        doubted = support / (support + bar) < min(p, IDENTIFY_COMBINED)
        p = min(p, support / (support + bar))
    decision = "identified" if p >= IDENTIFY_COMBINED else "uncertain"
    if doubted:
        reason = (f"{best.label} is the likeliest with the readings ({percent(p)}), but "
                  + (f"the photo favoured {photo_top} and " if moved else "")
                  + (f"{_name(rival)} would give such readings too" if rival is not None and fits(rival, obs)
                     # a rival the eye-judged readings argue against is said to fit the measured ones only (an
                     # outside try: "YAG would give such readings too" beside a DR that the cubic YAG cannot give)
                     else f"{_name(rival)} fits the measured ones (the {_eye_instruments(rr.readings)} reading argues "
                     "against it)" if rival is not None and measured_fit(rival, obs)
                     else "a look-alike the model does not know fits them nearly as well")
                  + f": {NEXT_TEST}.")
        if rival is not None and measured_fit(rival, obs) and rival.name not in cannot_exclude:
            # what the reason names cannot be excluded: listed, so that a test taken that tells it apart is
            # offered again (the polariscope's DR against YAG) rather than "no standard test left"
            cannot_exclude.append(rival.name)
    elif decision == "identified":
        reason = (f"The readings fit {best.label}" + (" and overturn the photo's first choice" if moved else
                                                      " and confirm the photo")
                  + f" (combined probability {percent(p)}).")
    else:
        alternatives = [c.label for c in fitting[1:MAX_NAMED + 1]]
        reason = (f"{best.label} is the likeliest ({percent(p)} with the readings), but "
                  + (f"{join_names(alternatives)} also {'fits' if len(alternatives) == 1 else 'fit'}" if alternatives
                     else "the evidence is not yet conclusive")
                  + f": {NEXT_TEST}.")
    best_rows = table.rows_for(best.label)
    if not doubted and best_rows and not any(measured_fit(m, obs, k=IN_RANGE) for m in best_rows):
        # a reading more than two instrument errors outside the answer's range (an outside try's RI 1.790, an
        # almandine's, on a confident ruby photo: "identified Ruby"): the likeliest, not settled
        decision = "uncertain"
        closer = [c.label for c in ranked if c.label != best.label and table.rows_for(c.label)
                  and any(measured_fit(m, obs, k=IN_RANGE) for m in table.rows_for(c.label))][:MAX_NAMED]
        reason = (f"{best.label} is the likeliest with the readings ({percent(p)}), but they lie outside its range "
                  f"({describe(best_rows[0], obs)}) by more than two instrument errors: read them again"
                  + (f"; they fit {join_names(closer)}" if closer else "") + ".")
    clash = contradictions(rr.readings)
    against = (eye_against(best_rows, rr.readings) if decision == "identified" and not doubted and not clash
               else [])  # readings that contradict each other are repeated as such (below)
    also: list[str] = []
    if against:
        # a reading judged by eye that the answer cannot give (an outside try: a ruby photo with an almandine's RI
        # and SG and SR was "identified Ruby 99 %"): the photo and the measured readings outweigh it, as it is
        # often misjudged, but a stone is not identified against it; what fits every reading is named
        decision = "uncertain"
        obs_rows = [(m, label) for label in dict.fromkeys([c.label for c in ranked] + ([photo_top] if photo_top else []))
                    for m in table.rows_for(label)]
        also = [label for m, label in obs_rows if label != best.label and fits(m, obs)]
        also += [_name(m) for m in _fitting_lookalikes(best.label, obs, table) if fits(m, obs)]
        also = list(dict.fromkeys(also))[:MAX_NAMED]
        instruments = join_names([TESTS[t].instrument for t in against], "and")
        reason = (("The measured readings fit " if any(TESTS[t].sigma is not None for t in tests_done(rr.readings))
                   else "The photo favours ") + f"{best.label} (combined probability {percent(p)}), but the "
                  f"{instruments} reading does not ({best.label}: {describe(best_rows[0], only_tests(rr.readings, against))})"
                  + (f"; {join_names(also)} {'fits' if len(also) == 1 else 'fit'} every reading" if also else "")
                  + (": repeat it, turning the stone through several positions," if "optic_character" in against
                     else ": repeat it,") + " and take the next recommended test.")
    measured = [t for t in tests_done(rr.readings) if TESTS[t].sigma is not None]
    fit_words = (f"The measured readings fit {best.label}" if measured else f"{best.label} is the likeliest"
                 ) + f" (combined probability {percent(p)}), but "
    if clash:
        # readings that contradict each other, whatever the stone (SR beside a birefringence or a pleochroism):
        # the polariscope was misjudged, or the stone was not turned through enough positions
        problem = (f"{join_names(clash, 'and')}: repeat the polariscope, turning the stone through several positions "
                   "(a doubly refractive stone seen down its optic axis stays dark).")
        if decision == "identified":
            decision = "uncertain"
            reason = fit_words + problem
        else:
            reason += " " + problem[0].upper() + problem[1:]
    elif rr.fits_none:
        # what was judged by eye fits none of the candidates beyond the usual misjudgements (the re-ranking's flag
        # says so): it only weighs, as it is often misjudged (a quartz seen down its optic axis reads SR), so it
        # is named for a repeat rather than overruling the measured readings; but a stone is not "identified"
        # while one of its readings says "refer if it stands" (an outside try: a citrine photo, quartz RI and
        # SG, and SR, was "identified Citrine 86 %" above a flag to refer it)
        seen = _eye_instruments(rr.readings)
        misfit = f"the {seen} reading fits none of the photo's candidates: repeat it, and refer the stone if it stands."
        if decision == "identified":
            decision = "uncertain"
            reason = fit_words + misfit
        else:
            reason += " " + misfit[0].upper() + misfit[1:]
    if closer_own:
        names = [display_name(m.name) for m in closer_own][:MAX_NAMED]
        if decision == "identified":
            decision = "uncertain"
            reason = fit_words + f"they fit {join_names(names)} better"
        else:
            reason += f" The readings fit {join_names(names)} better than {best.label}"
        reason += (f": a synthetic reads like the natural stone, and a laboratory tells {'it' if len(names) == 1 else 'them'} "
                   "apart (magnification, spectroscopy).")
    unsaid = [n for n in cannot_exclude if not (doubted and rival is not None and n == _name(rival))]
    # the rival the reason already named is not said twice (it stays in cannot_exclude); a look-alike a test
    # still to take tells apart is the desk's to exclude, the rest a laboratory's
    keys = {n: desk_test_key(best.label, n, rr.readings, table) for n in unsaid}
    desk = {n: TESTS[k].instrument if k is not None else None for n, k in keys.items()}
    near = {m.name for m in lookalikes if likelihood(m, obs) >= DESK_FIRST * best_lik}
    if decision == "identified" and any(k is not None and k not in WEAK_TESTS and n in near for n, k in keys.items()):
        # a look-alike the readings fit and a test still to take would exclude is the desk's to exclude before
        # the stone is identified (an outside gemmologist: a diamond photo and OTL alone were "identified Diamond
        # 91 %" while cubic zirconia, YAG and strontium titanate read OTL too; the balance tells them apart)
        decision = "uncertain"
        reason = fit_words + f"they do not yet exclude every look-alike: {NEXT_TEST}."
    for instrument in dict.fromkeys(i for i in desk.values() if i is not None):
        names = [display_name(n) for n in unsaid if desk[n] == instrument]
        reason += f" The readings do not yet exclude {join_names(names)}: the {instrument} can."
    # a look-alike a test already taken tells apart, whose reading fell between the two (tourmaline's
    # birefringence 0.020 near andalusite's 0.013): that reading again, not a laboratory
    again = {n: desk_test_key(best.label, n, rr.readings, table, done=True) for n in unsaid if desk[n] is None}
    for key in dict.fromkeys(k for k in again.values() if k is not None):
        names = [display_name(n) for n in unsaid if again.get(n) == key]
        if TESTS[key].sigma is None:
            # judged by eye: it argues against the look-alike, but such readings do not exclude one alone (an
            # outside try read "lies near its values" beside an inert UV against red spinel's strong)
            reason += (f" The {TESTS[key].instrument} reading argues against {join_names(names)}, but a reading judged "
                       "by eye does not exclude it alone: repeat it, or a laboratory confirms.")
        else:
            reason += (f" The {TESTS[key].instrument} tells {join_names(names)} apart, but this reading lies within the "
                       f"instrument's error of {'its' if len(names) == 1 else 'their'} values too: repeat it.")
    lab = [n for n in unsaid if desk[n] is None and again.get(n) is None]
    if lab:
        reason += f" Readings like these cannot exclude {join_names(lab)}: a laboratory can (spectroscopy, magnification)."
    return Conclusion(decision=decision, label=best.label, probability=round(min(1.0, p), 4),
                      basis="photo+readings", reason=reason, fits=[best.label] if moved else also,
                      cannot_exclude=cannot_exclude)
