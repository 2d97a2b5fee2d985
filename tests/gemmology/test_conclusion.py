"""One conclusion from the photo and the readings: published cases, the referral rules, guidance that moves
on, and the instrument model a desk's readings need."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_loader import bench_module

from gemid.gemmology.conclusion import conclude
from gemid.gemmology.followup import (
    NEXT_TEST,
    desk_test,
    exclusion_tests,
    lab_note,
    no_test_left,
    repeat_tests,
)
from gemid.gemmology.guidance import recommend
from gemid.gemmology.instruments import TESTS, sigma_sg
from gemid.gemmology.likelihood import Observed, measured_fit
from gemid.gemmology.likelihood import tests_done as done_tests
from gemid.gemmology.likelihood import tests_left as left_tests
from gemid.gemmology.rerank import rerank
from gemid.gemmology.table import default_table
from gemid.report import Candidate, Conclusion, Readings, SpeciesResult

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_readings.py"
CASES = json.loads((BENCH.parent / "data" / "published_readings.json").read_text())["cases"]


@pytest.fixture(scope="module")
def bench():
    with bench_module("bench_readings") as module:
        yield module


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_published_readings_reach_the_published_answer(bench, case):
    """Readings as the literature gives them (not drawn from our own table): each case cites its source."""
    conclusion, misses = bench.published_case(case, default_table())
    assert case["source"] and not misses, misses


def _photo(label: str, p: float = 0.9) -> tuple[SpeciesResult, list[Candidate]]:
    others = [lab for lab in ("Rhodolite", "Almandine", "Sapphire Pink", "Spessartite") if lab != label]
    cands = [Candidate(label=label, probability=p)] + [Candidate(label=o, probability=(1 - p) / 4) for o in others]
    return SpeciesResult(decision="identified" if p >= 0.9 else "uncertain", reason="photo", top=cands), cands


def test_photo_only_conclusion_is_the_photo_and_names_what_a_photo_cannot_exclude():
    species, _ = _photo("Ruby")
    c = conclude(species)
    assert (c.decision, c.label, c.basis) == ("identified", "Ruby", "photo")
    assert "Red spinel" in c.cannot_exclude and "Synthetic corundum (flame-fusion)" in c.cannot_exclude
    rejected = conclude(SpeciesResult(decision="rejected", reason="not a gem", top=species.top))
    assert rejected.decision == "rejected" and rejected.label is None


def test_a_reading_far_outside_the_range_makes_a_candidate_implausible():
    """RI 1.718 on a ruby photo (ruby 1.759-1.779, ±0.005): ruby is never the answer, and a candidate that fits
    ranks above it in the combined list."""
    species, cands = _photo("Ruby", 0.6)
    cands = [cands[0]] + [c.model_copy(update={"probability": 0.05}) for c in cands[1:]]  # 20 % left to the rest
    rr = rerank(cands, Readings(ri=1.718), model_labels=["Ruby", "Rhodolite", "Almandine", "Sapphire Pink",
                                                         "Spessartite", "Kyanite"])
    assert rr.combined[0].label != "Ruby"
    c = conclude(species, rr)
    assert c.label != "Ruby" and c.decision == "refer" and c.fits[0] == "Red spinel"


def test_a_referral_names_the_look_alike_of_the_stones_colour_not_another_colour_of_it():
    """Red-spinel readings on a ruby photo (a user's finding: "Blue spinel" was named beside red spinel for a red
    stone): the look-alikes of the answer first, and no other colour of a mineral already named."""
    species, cands = _photo("Ruby")
    c = conclude(species, rerank(cands, Readings(ri=1.718, sg=3.60)))
    assert c.decision == "refer" and c.fits[:2] == ["Red spinel", "Synthetic spinel"]
    assert "Blue spinel" not in c.fits
    flag = rerank(cands, Readings(ri=1.718, sg=3.60, optic="SR")).flag  # the re-ranking's warning, in the same order
    assert "Readings fit: red spinel" in flag and "blue spinel" not in flag


def test_a_photo_all_but_ruling_out_the_answer_is_a_referral_not_an_answer():
    """Readings that fit only a class the photo gave 2 % of its 90 %: the photo and the readings disagree."""
    cands = [Candidate(label="Ruby", probability=0.9), Candidate(label="Hessonite", probability=0.02)]
    species = SpeciesResult(decision="identified", reason="photo", top=cands)
    c = conclude(species, rerank(cands, Readings(ri=1.742, sg=3.62)))
    assert c.decision == "refer"


def test_readings_that_fit_an_under_rated_candidate_well_overturn_the_photo():
    """Golden beryl photographed as citrine (the photo gave beryl 3 %): beryl's readings fit it far better than
    any look-alike of citrine, so they promote it instead of referring a genuine stone."""
    cands = [Candidate(label="Citrine", probability=0.94), Candidate(label="Beryl Golden", probability=0.034),
             Candidate(label="Quartz Lemon", probability=0.01), Candidate(label="Sapphire Yellow", probability=0.005)]
    species = SpeciesResult(decision="identified", reason="photo", top=cands)
    c = conclude(species, rerank(cands, Readings(ri=1.575, sg=2.72, weight_ct=1.0)))
    assert (c.decision, c.label) == ("identified", "Beryl Golden")
    assert "overturn the photo" in c.reason and c.fits == ["Beryl Golden"]


def test_a_promoted_answer_a_look_alike_explains_too_stays_uncertain():
    """Glass readings on a red stone the photo gave ruby 75 %, carnelian 20 %: carnelian fits, but so does the
    glass the photo cannot tell from ruby, so its probability is its share beside the glass, not the re-ranking's
    near certainty; the same readings with carnelian at 2.5 % are a referral naming glass."""
    glass = Readings(ri=1.52, sg=2.50, weight_ct=1.0)
    cands = [Candidate(label="Ruby", probability=0.75), Candidate(label="Carnelian", probability=0.2),
             Candidate(label="Pyrope", probability=0.02), Candidate(label="Almandine", probability=0.01)]
    species = SpeciesResult(decision="uncertain", reason="photo", top=cands)
    rr = rerank(cands, glass)
    assert rr.combined[0].label == "Carnelian" and rr.combined[0].probability > 0.99
    c = conclude(species, rr)
    assert (c.decision, c.label) == ("uncertain", "Carnelian") and 0.5 < c.probability < 0.8
    assert "photo favoured Ruby and Glass would give such readings too" in c.reason and "Glass" in c.cannot_exclude
    cands = [Candidate(label="Ruby", probability=0.9), Candidate(label="Carnelian", probability=0.025)] + cands[2:]
    referred = conclude(species.model_copy(update={"top": cands}), rerank(cands, glass))
    assert referred.decision == "refer" and referred.fits[0] == "Glass"


def test_the_photos_own_answer_is_weighed_against_a_glass_that_reads_like_it():
    """Crown-glass readings on a carnelian photo: they fit both, so carnelian's probability is at most its share
    beside the glass. At 90 % on the photo it is the likeliest with glass named, but not identified while the
    polariscope, a desk test not yet taken, can exclude the glass (an outside gemmologist: a diamond "identified"
    from OTL alone beside CZ); with the polariscope's aggregate reaction it is identified. At 30 % it drops below
    identified and the reason names the glass. A polariscope's SR (glass, not an aggregate) makes glass likelier
    still: uncertain, the reading named for a repeat (an outside try found "identified Carnelian 99 %" there)."""
    glass = Readings(ri=1.52, sg=2.50, weight_ct=1.0)
    cands = [Candidate(label="Carnelian", probability=0.9), Candidate(label="Onyx Red", probability=0.05),
             Candidate(label="Coral", probability=0.03)]
    species = SpeciesResult(decision="identified", reason="photo", top=cands)
    sure = conclude(species, rerank(cands, glass))
    assert (sure.decision, sure.label) == ("uncertain", "Carnelian") and "Glass" in sure.cannot_exclude
    assert "do not yet exclude every look-alike" in sure.reason and "glass: the polariscope can" in sure.reason
    assert sure.probability < rerank(cands, glass).combined[0].probability
    agg = conclude(species, rerank(cands, glass.model_copy(update={"optic": "AGG"})))
    assert (agg.decision, agg.label) == ("identified", "Carnelian"), agg.reason
    unsure = [Candidate(label="Carnelian", probability=0.3), Candidate(label="Sapphire Pink", probability=0.25),
              Candidate(label="Ruby", probability=0.2)]
    doubted = conclude(species.model_copy(update={"top": unsure}), rerank(unsure, glass))
    assert (doubted.decision, doubted.label) == ("uncertain", "Carnelian") and doubted.probability < 0.8
    assert "Glass would give such readings too" in doubted.reason and doubted.reason.count("Glass") == 1
    assert doubted.cannot_exclude == ["Glass"]  # said once in the reason, still listed
    sr = conclude(species, rerank(cands, glass.model_copy(update={"optic": "SR"})))
    assert (sr.decision, sr.label) == ("uncertain", "Carnelian") and sr.probability < 0.6
    assert "Glass would give such readings too" in sr.reason and "polariscope reading fits none" in sr.reason


def test_eye_judged_readings_that_fit_no_candidate_weigh_and_are_named_for_a_repeat():
    """Quartz's RI and SG with SR and no birefringence: the re-ranking flags that nothing fits; the conclusion
    said "identified Citrine 100 %" beside it. Eye-judged readings only weigh (a quartz seen down its optic axis
    reads SR: a hard rule held 9 % of genuine stones read with a polariscope), so glass, which such readings
    favour, makes citrine uncertain, and the reason asks for the reading again."""
    cands = [Candidate(label="Citrine", probability=0.95), Candidate(label="Quartz Lemon", probability=0.03)]
    species = SpeciesResult(decision="identified", reason="photo", top=cands)
    rr = rerank(cands, Readings(ri=1.544, sg=2.65, optic="SR", birefringence=0.0))
    c = conclude(species, rr)
    assert rr.fits_none and (c.decision, c.label) == ("uncertain", "Citrine") and "Glass" in c.cannot_exclude
    assert "polariscope reading fits none of the photo's candidates: repeat it" in c.reason


def test_a_confident_photo_is_not_identified_while_an_eye_judged_reading_fits_nothing():
    """An outside try: a citrine photo at 99.6 %, quartz's RI and SG and the polariscope's SR was "identified
    Citrine 86 %" while the re-ranking's flag said to refer it. It stays the likeliest, but uncertain until the
    reading is repeated, and the reason does not say the readings confirm the photo."""
    cands = [Candidate(label="Citrine", probability=0.996), Candidate(label="Beryl Golden", probability=0.002),
             Candidate(label="Hessonite", probability=0.002)]
    species = SpeciesResult(decision="identified", reason="photo", top=cands)
    rr = rerank(cands, Readings(ri=1.544, sg=2.65, optic="SR"))
    c = conclude(species, rr)
    assert rr.fits_none and (c.decision, c.label) == ("uncertain", "Citrine"), c
    assert "confirm the photo" not in c.reason and "repeat it, and refer the stone if it stands" in c.reason
    # without the polariscope, one RI edge leaves glass to exclude (it reads 1.544 and 2.65 too); the two
    # edges of a doubly refractive stone settle it
    one_edge = conclude(species, rerank(cands, Readings(ri=1.544, sg=2.65)))
    assert one_edge.decision == "uncertain" and "glass: the refractometer" in one_edge.reason, one_edge.reason
    measured = conclude(species, rerank(cands, Readings(ri=1.544, ri_high=1.553, sg=2.65)))
    assert measured.decision == "identified", measured.reason


def test_every_desk_test_the_reason_names_for_a_look_alike_is_offered():
    """An outside try: an emerald with RI and SG read "the long-wave UV lamp can" exclude flux synthetic emerald
    above an empty list of tests (the look-alike too improbable for the UV test to make the list by itself)."""
    cands = [Candidate(label="Emerald", probability=0.97), Candidate(label="Aquamarine", probability=0.02),
             Candidate(label="Beryl Golden", probability=0.01)]
    species = SpeciesResult(decision="identified", reason="photo", top=cands)
    readings = Readings(ri=1.577, sg=2.72)
    rr = rerank(cands, readings)
    c = conclude(species, rr)
    exclude = exclusion_tests(c, readings)
    assert exclude and all(f"the {TESTS[t].instrument} can" in c.reason for t in exclude), (exclude, c.reason)
    left = left_tests(readings)
    plain = {t.test for t in recommend(list(rr.combined), available=left, readings=readings).recommended}
    assert not set(exclude) <= plain  # the case itself: guidance alone leaves one out
    offered = recommend(list(rr.combined), available=left, readings=readings, exclude=exclude).recommended
    assert set(exclude) <= {t.test for t in offered}
    for t in offered:
        if t.test not in plain:  # an exclusion test says what it excludes
            assert all(n.lower() in t.why.lower() for n in exclude[t.test]) and "do not exclude" in t.why, t.why
    assert exclusion_tests(c, None) == {} and exclusion_tests(c.model_copy(update={"decision": "refer"}), readings) == {}


def test_readings_that_contradict_each_other_are_said_to_and_repeated():
    """An outside gemmologist's cases: topaz birefringence 0.009 beside the polariscope's SR, and a ruby's SR
    beside strong pleochroism, passed unremarked; a quartz dark in the polariscope with a uniaxial+ figure in
    the conoscope (seen down its optic axis) was called a misfit."""
    topaz = [Candidate(label="Topaz", probability=0.97), Candidate(label="Zircon", probability=0.03)]
    species = SpeciesResult(decision="identified", reason="photo", top=topaz)
    clash = Readings(birefringence=0.009, optic="SR")
    c = conclude(species, rerank(topaz, clash))
    assert c.decision == "uncertain" and "SR contradicts the birefringence of 0.009" in c.reason, c.reason
    repeat = repeat_tests(c, rerank(topaz, clash))
    assert set(repeat) == {"optic_character"}
    offered = recommend(topaz, available=left_tests(clash), readings=clash, repeat=repeat).recommended
    assert offered[-1].test == "optic_character" and offered[-1].why.startswith("Repeat:")
    ruby = [Candidate(label="Ruby", probability=0.98), Candidate(label="Pyrope", probability=0.02)]
    eyes = Readings(optic="SR", pleochroism="strong")
    c = conclude(SpeciesResult(decision="identified", reason="photo", top=ruby), rerank(ruby, eyes))
    assert c.decision == "uncertain" and "contradicts the strong pleochroism" in c.reason
    assert "measured readings" not in c.reason  # none were measured
    quartz = [Candidate(label="Amethyst", probability=0.98), Candidate(label="Iolite", probability=0.02)]
    axis = Readings(ri=1.544, ri_high=1.553, sg=2.65, weight_ct=3, optic="SR", optic_sign="uniaxial+")
    c = conclude(SpeciesResult(decision="identified", reason="photo", top=quartz), rerank(quartz, axis))
    assert c.decision == "identified" and "fits none" not in c.reason and "contradicts" not in c.reason, c.reason


def test_readings_that_fit_the_answers_own_synthetic_clearly_better_do_not_identify():
    """Flux synthetic emerald's textbook readings (RI 1.560-1.563, SG 2.65, strong red long-wave UV) on an
    emerald photo were "identified Emerald 94 %". No referral (a synthetic reads like the real stone), but
    uncertain, naming it and the laboratory."""
    cands = [Candidate(label="Emerald", probability=0.99), Candidate(label="Aquamarine", probability=0.01)]
    species = SpeciesResult(decision="identified", reason="photo", top=cands)
    flux = Readings(ri=1.560, ri_high=1.564, sg=2.65, weight_ct=1.0, uv_lw="strong", optic="DR")
    c = conclude(species, rerank(cands, flux))
    assert (c.decision, c.label) == ("uncertain", "Emerald") and "synthetic emerald (flux)" in c.reason, c.reason
    assert "laboratory" in c.reason and "Synthetic emerald (flux)" in c.cannot_exclude
    natural = conclude(species, rerank(cands, Readings(ri=1.577, ri_high=1.583, sg=2.72, uv_lw="inert")))
    assert natural.decision == "identified"


def test_no_birefringence_is_asked_of_a_spot_reading_or_an_aggregate():
    assert "birefringence" not in left_tests(Readings(ri=1.54, ri_spot=True))
    assert "birefringence" not in left_tests(Readings(optic="AGG"))
    assert "birefringence" in left_tests(Readings(ri=1.54))


def test_a_referral_says_when_what_it_names_fits_the_measured_readings_only():
    """Diamond photo, over the limit, SG 3.22 and SR: moissanite fits the measured readings but is DR; the
    referral said "the readings fit" it while the flag said nothing fits."""
    cands = [Candidate(label="Diamond", probability=0.99), Candidate(label="Zircon", probability=0.01)]
    species = SpeciesResult(decision="identified", reason="photo", top=cands)
    c = conclude(species, rerank(cands, Readings(ri_otl=True, sg=3.22, weight_ct=1.0, optic="SR")))
    assert c.decision == "refer" and c.label == "Synthetic moissanite", c
    assert "measured readings fit Synthetic moissanite" in c.reason and "polariscope reading fits none" in c.reason


def test_a_referral_names_the_photos_own_candidate_that_fits_and_why_it_lost():
    """Red-spinel readings on a ruby photo that gave pyrope under 1 %: pyrope fits them too, so the referral names
    it (not kyanite, another mineral's stand-in) and says the photo gave it too little."""
    cands = [Candidate(label="Ruby", probability=0.97), Candidate(label="Sapphire Pink", probability=0.015),
             Candidate(label="Pyrope", probability=0.004)]
    species = SpeciesResult(decision="identified", reason="photo", top=cands)
    c = conclude(species, rerank(cands, Readings(ri=1.718, sg=3.60)))
    assert c.decision == "refer" and c.fits[0] == "Red spinel" and "Pyrope" in c.fits and "Kyanite" not in c.fits
    assert "rule out Ruby" in c.reason and "Pyrope fits them, but the photo gave <1%" in c.reason


def test_a_synthetic_made_to_look_like_the_photos_answer_rivals_a_promoted_candidate_of_its_mineral():
    """Corundum's readings on an alexandrite photo that gave blue sapphire 5 %: colour-change synthetic corundum,
    made to look like alexandrite, explains them as well, so the stone is referred naming it, not "identified Sapphire
    Blue". A synthetic made to look like the answer itself is no rival (it reads like it: cannot_exclude)."""
    cands = [Candidate(label="Alexandrite", probability=0.9), Candidate(label="Sapphire Blue", probability=0.05),
             Candidate(label="Tanzanite", probability=0.03)]
    species = SpeciesResult(decision="identified", reason="photo", top=cands)
    c = conclude(species, rerank(cands, Readings(ri=1.762, sg=4.0, weight_ct=1.0)))
    assert c.decision == "refer" and c.fits[0] == "Colour-change synthetic corundum"
    cands = [Candidate(label="Sapphire Blue", probability=0.9)] + cands[2:]
    own = conclude(species.model_copy(update={"top": cands}), rerank(cands, Readings(ri=1.762, sg=4.0, weight_ct=1.0)))
    assert (own.decision, own.label) == ("identified", "Sapphire Blue")
    assert "Synthetic corundum (flame-fusion)" in own.cannot_exclude


def test_guidance_never_sends_the_technician_back_to_a_test_already_done():
    species, cands = _photo("Ruby", 0.6)
    before = recommend(cands)
    assert before.recommended[0].test == "refractive_index"
    readings = Readings(ri=1.762)
    done = done_tests(readings)
    rr = rerank(cands, readings)
    after = recommend(list(rr.combined), available=set(TESTS) - set(done))
    assert done == ["refractive_index"] and "refractive_index" not in {t.test for t in after.recommended}


def _quartz_photo() -> tuple[SpeciesResult, list[Candidate]]:
    cands = [Candidate(label=lab, probability=p) for lab, p in
             (("Citrine", 0.9), ("Quartz Lemon", 0.04), ("Beryl Golden", 0.03), ("Sapphire Yellow", 0.02),
              ("Chrysoberyl", 0.01))]
    return SpeciesResult(decision="identified", reason="photo", top=cands), cands


def test_guidance_does_not_offer_to_rule_out_what_the_readings_already_ruled_out():
    """A user's finding: after RI 1.544/1.553 and SG 2.65 on a citrine, guidance still offered the polariscope
    to "rule out glass", which the birefringence had. Readings weigh the look-alikes as they weigh the candidates."""
    _, cands = _quartz_photo()
    full = Readings(ri=1.544, ri_high=1.553, sg=2.65)
    after = recommend(list(rerank(cands, full).combined), available=left_tests(full), readings=full)
    assert after.recommended == [], [t.why for t in after.recommended]  # only synthetic quartz is left
    # the same ranking judged without the readings still chases the imitations: what the readings add
    blind = recommend(list(rerank(cands, full).combined), available=left_tests(full))
    assert "optic_character" in {t.test for t in blind.recommended}
    # one edge alone leaves glass of that RI open: a test that shows double refraction is still offered
    edge = Readings(ri=1.544)
    open_tests = recommend(list(rerank(cands, edge).combined), available=left_tests(edge), readings=edge)
    assert {"birefringence", "optic_character"} & {t.test for t in open_tests.recommended}


def test_a_look_alike_a_desk_test_can_still_exclude_is_not_sent_to_the_laboratory():
    """Glass that reads like quartz on one refractometer edge is the polariscope's or the birefringence's to
    exclude; synthetic quartz reads like quartz on every instrument, so only the laboratory's note names it."""
    species, cands = _quartz_photo()
    edge = Readings(ri=1.544)
    c = conclude(species, rerank(cands, edge))
    assert c.label == "Citrine" and {"Glass", "Synthetic quartz"} <= set(c.cannot_exclude)
    assert "do not yet exclude glass: the" in c.reason and "cannot exclude Synthetic quartz" in c.reason
    note = lab_note(c, 1, edge)
    assert note is not None and "Synthetic quartz" in note and "Glass" not in note
    table = default_table()
    assert desk_test("Citrine", "Glass", edge, table) is not None
    assert desk_test("Citrine", "Synthetic quartz", edge, table) is None
    # once the polariscope and the birefringence are read, nothing is left to the desk but the laboratory
    full = Readings(ri=1.544, ri_high=1.553, sg=2.65, optic="DR")
    assert desk_test("Citrine", "Glass", full, table) is None or not measured_fit(
        next(m for m in table.lookalikes() if m.name == "Glass"), Observed.from_readings(full))


def test_a_reading_beyond_two_instrument_errors_of_the_answer_leaves_it_uncertain():
    """An outside try: RI 1.790 (an almandine's) on a confident ruby photo was "identified Ruby"; ruby's range
    ends at 1.779, so the reading lies 2.2 refractometer errors beyond it: the likeliest, not settled."""
    species, cands = _photo("Ruby", 0.995)
    c = conclude(species, rerank(cands, Readings(ri=1.790)))
    assert (c.decision, c.label) == ("uncertain", "Ruby"), c.reason
    assert "outside its range" in c.reason and "Almandine" in c.reason
    assert conclude(species, rerank(cands, Readings(ri=1.776))).decision == "identified"  # within two errors


def test_a_look_alike_a_test_already_taken_separates_is_the_desk_s_not_the_laboratory_s():
    """An outside try: tourmaline readings with birefringence 0.020 (andalusite's ends at 0.013) kept andalusite in
    cannot_exclude, and the lab note said no desk instrument separates them: the birefringence does, read again."""
    cands = [Candidate(label="Tourmaline", probability=0.9)] + [
        Candidate(label=lab, probability=0.025) for lab in ("Peridot", "Emerald", "Chrome Diopside", "Tsavorite")]
    species = SpeciesResult(decision="identified", reason="photo", top=cands)
    readings = Readings(ri=1.624, ri_high=1.644, sg=3.06, weight_ct=2.0, optic="DR", optic_sign="uniaxial-")
    c = conclude(species, rerank(cands, readings))
    assert c.label == "Tourmaline" and "Andalusite" in c.cannot_exclude
    assert "repeat it" in c.reason and "laboratory" not in c.reason
    assert lab_note(c, 1, readings) is None


def test_an_unsettled_conclusion_never_asks_for_a_test_guidance_does_not_give():
    c = Conclusion(decision="uncertain", label="Pyrope", probability=0.5, basis="photo+readings",
                   reason=f"Pyrope is the likeliest, but synthetic spinel would give such readings too: {NEXT_TEST}.")
    assert NEXT_TEST not in no_test_left(c).reason and "laboratory" in no_test_left(c).reason
    settled = c.model_copy(update={"reason": "The readings fit Pyrope."})
    assert no_test_left(settled) == settled


def test_over_the_limit_leaves_no_birefringence_to_measure():
    """A zircon reading over the refractometer's limit shows no edges: guidance must not ask for its
    birefringence next (an outside try was), and it may while the RI is still to be read."""
    otl = Readings(ri_otl=True, sg=4.35)
    assert not {"refractive_index", "birefringence", "specific_gravity"} & left_tests(otl)
    assert "birefringence" in left_tests(Readings(sg=4.35)) and left_tests(None) == set(TESTS)
    cands = [Candidate(label="Zircon", probability=0.6), Candidate(label="Sphene", probability=0.2),
             Candidate(label="Andradite", probability=0.1), Candidate(label="Diamond", probability=0.1)]
    after = recommend(list(rerank(cands, otl).combined), available=left_tests(otl))
    assert "birefringence" not in {t.test for t in after.recommended}


def test_sg_error_grows_as_the_stone_gets_lighter_and_a_small_stone_is_assumed():
    assert sigma_sg(5.0) < sigma_sg(1.0) < sigma_sg(0.5)
    assert sigma_sg(1.0) == pytest.approx(0.08) and sigma_sg(0.5) == pytest.approx(0.13, abs=0.005)
    assert sigma_sg(None) == sigma_sg(0.5)


def test_two_edges_rule_out_singly_refractive_rows_and_one_edge_does_not():
    table = default_table()
    (garnet,) = [m for m in table.rows_for("Rhodolite")][:1]
    one = Observed.from_readings(Readings(ri=1.762))
    two = Observed.from_readings(Readings(ri=1.762, ri_high=1.770))
    assert measured_fit(garnet, one) and not measured_fit(garnet, two)


def test_birefringence_may_be_under_read_but_not_over_read():
    table = default_table()
    (zoisite,) = table.rows_for("Tanzanite")[:1]
    low = Observed.from_readings(Readings(ri=1.692, birefringence=0.002))
    high = Observed.from_readings(Readings(ri=1.692, birefringence=0.030))
    assert measured_fit(zoisite, low) and not measured_fit(zoisite, high)


def test_weight_and_spot_are_how_readings_were_taken_not_readings():
    assert Readings(weight_ct=0.5, ri_spot=True).is_empty() and not Readings(sg=3.9, weight_ct=0.5).is_empty()


def test_the_refractometers_limit_is_the_desks_not_a_constant():
    """Over the limit on a 1.75 refractometer fits ruby (1.76-1.77); on the standard 1.81 it does not."""
    table = default_table()
    (ruby,) = table.rows_for("Ruby")[:1]
    assert not measured_fit(ruby, Observed.from_readings(Readings(ri_otl=True)))
    assert measured_fit(ruby, Observed.from_readings(Readings(ri_otl=True, ri_limit=1.75)))


# --- an outside gemmologist's cases (2026-12-07) -----------------------------------------------------------


def test_a_polariscope_reading_the_answer_cannot_give_keeps_it_from_identified():
    """A confident ruby photo with an almandine's RI and SG and SR was "identified Ruby 99 %": the SR is judged by
    eye, so it does not overturn the photo, but it names what fits every reading, and guidance offers a test
    that separates them and the polariscope again."""
    ruby = [Candidate(label="Ruby", probability=0.984), Candidate(label="Pyrope", probability=0.003),
            Candidate(label="Almandine", probability=0.001), Candidate(label="Rhodolite", probability=0.001)]
    readings = Readings(ri=1.760, sg=4.05, optic="SR", weight_ct=2.0)
    rr = rerank(ruby, readings)
    c = conclude(SpeciesResult(decision="identified", reason="photo", top=ruby), rr)
    assert c.decision == "uncertain" and c.label == "Ruby", c.reason
    assert "polariscope reading does not (Ruby: DR)" in c.reason and "Almandine" in c.fits, c.reason
    exclude = exclusion_tests(c, readings)
    assert any("Almandine" in names for names in exclude.values()), exclude
    repeat = repeat_tests(c, rr)
    assert "optic_character" in repeat and "Ruby cannot give this reading" in repeat["optic_character"]
    offered = [t.test for t in recommend(list(rr.combined), available=left_tests(readings), readings=readings,
                                         exclude=exclude, repeat=repeat).recommended]
    assert offered and offered[-1] == "optic_character" and len(offered) >= 2, offered
    # the same readings with DR: the answer fits every one of them, identified as before
    dr = Readings(ri=1.762, sg=4.00, optic="DR", weight_ct=2.0)
    assert conclude(SpeciesResult(decision="identified", reason="photo", top=ruby), rerank(ruby, dr)).decision \
        == "identified"


def test_readings_whose_likeliest_the_photo_all_but_ruled_out_are_referred_naming_it():
    """Chrome diopside's readings on an emerald photo gave "uncertain Diaspore 1 %" beside a combined ranking of
    chrome diopside 94 %: the answer must not be a far less likely candidate than the readings' own first."""
    labels = default_table().model_labels
    emerald = [Candidate(label="Emerald", probability=0.956), Candidate(label="Onyx Green", probability=0.0101),
               Candidate(label="Ruby", probability=0.0054), Candidate(label="Turquoise", probability=0.0024),
               Candidate(label="Bixbite", probability=0.0011), Candidate(label="Beryl Golden", probability=0.0011),
               Candidate(label="Onyx Red", probability=0.0009), Candidate(label="Diaspore", probability=0.0008),
               Candidate(label="Sapphire Blue", probability=0.0007), Candidate(label="Fluorite", probability=0.0007)]
    readings = Readings(ri=1.675, ri_high=1.701, sg=3.29, optic="DR")
    rr = rerank(emerald, readings, model_labels=labels)
    assert rr.combined[0].label == "Chrome Diopside"
    c = conclude(SpeciesResult(decision="identified", reason="photo", top=emerald), rr)
    assert c.decision == "refer" and c.label == "Chrome Diopside", c.reason
    assert "rule out Emerald, the photo's answer" in c.reason and "Diaspore, the photo's answer" not in c.reason


def test_a_referral_names_only_candidates_that_fit_every_reading_and_not_far_colours():
    """Red spinel's readings on a ruby photo: the referral named chrome diopside (DR) beside the SR, and
    tsavorite, a green garnet the photo gave next to nothing, for a red stone."""
    labels = default_table().model_labels
    ruby = [Candidate(label="Ruby", probability=0.98), Candidate(label="Pyrope", probability=0.008),
            Candidate(label="Chrome Diopside", probability=0.004), Candidate(label="Almandine", probability=0.004),
            Candidate(label="Rhodolite", probability=0.004)]
    for readings in (Readings(ri=1.718, sg=3.60, optic="SR"), Readings(ri=1.718, sg=3.60, optic="SR", uv_lw="strong")):
        c = conclude(SpeciesResult(decision="identified", reason="photo", top=ruby),
                     rerank(ruby, readings, model_labels=labels))
        assert c.decision == "refer" and c.fits[0] == "Red spinel", c.reason
        assert "Tsavorite" not in c.fits and "Chrome Diopside" not in c.reason, c.reason


def test_a_reading_well_inside_the_look_alikes_range_is_not_asked_again():
    """Amber's spot RI 1.540 lies well inside plastic's 1.46-1.70: a second reading cannot come out of it, yet
    the reason and guidance asked to repeat the refractometer."""
    amber = [Candidate(label="Amber", probability=0.95), Candidate(label="Coral", probability=0.05)]
    readings = Readings(ri=1.540, ri_spot=True, sg=1.08, uv_lw="strong")
    rr = rerank(amber, readings)
    c = conclude(SpeciesResult(decision="identified", reason="photo", top=amber), rr)
    assert "Plastic" in c.cannot_exclude
    assert "refractometer (contact liquid 1.81) tells plastic apart" not in c.reason, c.reason
    assert "refractive_index" not in repeat_tests(c, rr)


def test_a_rival_an_eye_reading_argues_against_is_not_said_to_give_the_readings():
    """Zircon's readings with the polariscope's DR on a diamond photo: "YAG would give such readings too", yet
    YAG is cubic. It fits the measured ones only; it stays in cannot_exclude, and a test that tells it apart
    is offered rather than "no standard test left"."""
    diamond = [Candidate(label=label, probability=p) for label, p in (
        ("Diamond", 0.96658), ("Topaz", 0.00996), ("Zircon", 0.00437), ("Aquamarine", 0.00243),
        ("Prehnite", 0.00087), ("Alexandrite", 0.00073), ("Coral", 0.00071), ("Pyrope", 0.00068))]
    readings = Readings(ri_otl=True, sg=4.70, optic="DR")
    rr = rerank(diamond, readings)
    c = conclude(SpeciesResult(decision="identified", reason="photo", top=diamond), rr)
    assert c.decision == "uncertain" and c.label == "Zircon", c.reason
    assert "YAG would give such readings too" not in c.reason, c.reason
    assert "YAG fits the measured ones (the polariscope reading argues against it)" in c.reason, c.reason
    assert "YAG" in c.cannot_exclude
    offered = recommend(list(rr.combined), available=left_tests(readings), readings=readings,
                        exclude=exclusion_tests(c, readings), repeat=repeat_tests(c, rr)).recommended
    assert offered, c.reason


def test_a_referral_whose_readings_fit_a_material_says_so_in_the_lab_note():
    """Textbook cubic zirconia readings on a diamond photo: referred, fitting cubic zirconia, under a lab note
    that said "Standard tests cannot settle this stone"."""
    diamond = [Candidate(label="Diamond", probability=0.97), Candidate(label="Zircon", probability=0.03)]
    readings = Readings(ri_otl=True, sg=5.80, optic="SR")
    c = conclude(SpeciesResult(decision="identified", reason="photo", top=diamond), rerank(diamond, readings))
    assert c.decision == "refer" and c.fits[0] == "Cubic zirconia", c.reason
    note = lab_note(c, 0, readings)
    assert note.startswith("The readings fit Cubic zirconia") and "cannot settle" not in note, note
    nothing = Conclusion(decision="refer", basis="photo+readings", reason="r", fits=[])
    assert "cannot settle" in lab_note(nothing, 0, readings)


def test_a_diamond_is_not_identified_while_a_desk_test_could_still_exclude_cubic_zirconia():
    """A second outside review: a diamond photo and OTL alone (or with SR) were "identified Diamond 91 %", yet
    cubic zirconia, YAG, GGG and strontium titanate read OTL and SR too; the balance tells them apart. With
    an SG of 3.52 they are excluded and the diamond is identified."""
    diamond = [Candidate(label="Diamond", probability=0.97), Candidate(label="Zircon", probability=0.03)]
    species = SpeciesResult(decision="identified", reason="photo", top=diamond)
    for readings in (Readings(ri_otl=True), Readings(ri_otl=True, optic="SR")):
        rr = rerank(diamond, readings)
        c = conclude(species, rr)
        assert (c.decision, c.label) == ("uncertain", "Diamond"), c.reason
        assert "do not yet exclude every look-alike" in c.reason and "Cubic zirconia" in c.cannot_exclude
        assert "specific_gravity" in exclusion_tests(c, readings)
    settled = conclude(species, rerank(diamond, Readings(ri_otl=True, sg=3.52, optic="SR", weight_ct=1.0)))
    assert settled.decision == "identified", settled.reason


def test_the_high_edge_is_checked_against_the_range_too():
    """Edges 1.640/1.680 on a tourmaline photo were "identified Tourmaline >99 %": the low edge and the
    birefringence fit, but tourmaline's top is near 1.655, so the high edge rules it out."""
    from gemid.gemmology.likelihood import Observed, measured_fit

    table = default_table()
    tourmaline = table.rows_for("Tourmaline")
    assert any(measured_fit(m, Observed.from_readings(Readings(ri=1.624, ri_high=1.644))) for m in tourmaline)
    assert not any(measured_fit(m, Observed.from_readings(Readings(ri=1.640, ri_high=1.680))) for m in tourmaline)
    cands = [Candidate(label="Tourmaline", probability=0.99), Candidate(label="Peridot", probability=0.01)]
    c = conclude(SpeciesResult(decision="identified", reason="photo", top=cands),
                 rerank(cands, Readings(ri=1.654, ri_high=1.690, sg=3.34)))
    assert c.label == "Peridot" and "Tourmaline" not in c.reason.split("overturn")[0], c.reason


@pytest.mark.parametrize(("photo", "readings", "named"), [
    ("Chalcedony", Readings(ri=1.45, sg=2.10, optic="SR"), "Opal"),
    ("Onyx Black", Readings(ri_otl=True, sg=5.20), "Hematite"),
])
def test_opal_and_hematite_readings_are_named(photo, readings, named):
    """A second outside review: opal's readings on a chalcedony photo were referred as "sodalite", hematite's on
    a black onyx as "pyrite"; the table had neither."""
    cands = [Candidate(label=photo, probability=0.95), Candidate(label="Sodalite", probability=0.03),
             Candidate(label="Pyrite", probability=0.02)]
    c = conclude(SpeciesResult(decision="identified", reason="photo", top=cands), rerank(cands, readings))
    assert c.decision == "refer" and c.fits[0] == named, c.reason
