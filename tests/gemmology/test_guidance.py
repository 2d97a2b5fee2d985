"""Which test separates the candidates: hand-made cases a gemmologist would recognise."""

from __future__ import annotations

import numpy as np
import pytest

from gemid.gemmology.guidance import UnknownTest, considered_candidates, information_gain, recommend
from gemid.report import Candidate


def _c(**probs: float) -> list[Candidate]:
    return [Candidate(label=k.replace("_", " "), probability=v) for k, v in probs.items()]


def _tests(result) -> list[str]:
    return [r.test for r in result.recommended]


def test_ruby_spinel_pyrope_measure_ri_first():
    cands = [Candidate(label="Red spinel", probability=0.45), Candidate(label="Ruby", probability=0.35),
             Candidate(label="Pyrope", probability=0.20)]
    result = recommend(cands)
    first = result.recommended[0]
    assert first.test == "refractive_index"
    assert "refractometer" in first.instrument
    expected = {e.label: e.expected for e in first.expected}
    assert expected == {"Red spinel": "1.710-1.735", "Ruby": "1.759-1.779", "Pyrope": "1.714-1.756"}
    # plain words with numbers, and the honest caveat that spinel and pyrope overlap on RI
    assert "Ruby 1.759-1.779" in first.why and "separates" in first.why and "overlap" in first.why
    assert 0.3 < first.separation <= 1.0
    assert result.colour_decides is None
    # SG and the polariscope-free birefringence reading also split ruby from the singly refractive pair
    assert {"specific_gravity", "birefringence"} & set(_tests(result)[1:])


def test_blue_stones_sapphire_iolite_tanzanite_kyanite():
    result = recommend(_c(Sapphire_Blue=0.4, Iolite=0.25, Tanzanite=0.2, Kyanite=0.15))
    tests = _tests(result)
    assert tests[0] in ("refractive_index", "specific_gravity")
    assert {"refractive_index", "specific_gravity"} <= set(tests)
    ri = next(r for r in result.recommended if r.test == "refractive_index")
    assert "separates them all" in ri.why and ri.separation > 0.8


def test_sapphire_iolite_tanzanite_without_refractometer_uses_sg_then_dichroscope():
    result = recommend(_c(Sapphire_Blue=0.5, Iolite=0.3, Tanzanite=0.2), available={"specific_gravity", "pleochroism", "uv_fluorescence"})
    assert _tests(result)[0] == "specific_gravity"
    assert set(_tests(result)) <= {"specific_gravity", "pleochroism", "uv_fluorescence"}


def test_green_stones_emerald_tourmaline_peridot():
    result = recommend(_c(Emerald=0.5, Tourmaline=0.3, Peridot=0.2))
    tests = _tests(result)
    assert tests[0] == "refractive_index"
    assert "birefringence" in tests
    biref = next(r for r in result.recommended if r.test == "birefringence")
    expected = {e.label: e.expected for e in biref.expected}
    assert expected["Emerald"] == "0.005-0.009" and expected["Peridot"] == "0.035-0.038"
    assert "separates Emerald from" in biref.why


def test_colour_varieties_of_one_mineral_colour_decides():
    result = recommend(_c(Sapphire_Blue=0.6, Sapphire_Purple=0.39, Iolite=0.01))
    assert result.colour_decides and "corundum" in result.colour_decides
    assert "Sapphire Blue" in result.colour_decides and "Sapphire Purple" in result.colour_decides
    # the tests that remain test corundum against its imitations, not blue against purple; what reads the same
    # (a synthetic corundum) is said, not "confirms corundum" (an outside gemmologist: "SR — confirms Diamond")
    why = result.recommended[0].why
    assert "consistent with corundum" in why and "as with synthetic corundum" in why and "confirms" not in why
    assert "spinel" in result.recommended[0].why


def test_colour_does_not_decide_while_another_mineral_is_in_play():
    assert recommend(_c(Sapphire_Blue=0.45, Sapphire_Purple=0.25, Iolite=0.30)).colour_decides is None
    assert recommend(_c(Ruby=0.99, Sapphire_Pink=0.01)).colour_decides is None  # pink sapphire is noise here
    assert recommend(_c(Hessonite=0.5, Tsavorite=0.5)).colour_decides  # both grossular


def test_tiny_candidates_do_not_drive_the_recommendation():
    cands = _c(Ruby=0.96, Diamond=0.015, Fluorite=0.015, Emerald=0.01)
    assert [c.label for c in considered_candidates(cands)] == ["Ruby"]
    result = recommend(cands)
    assert all([e.label for e in r.expected] == ["Ruby"] for r in result.recommended)
    # a lone confident candidate still gets the test that would expose an imitation
    assert result.recommended[0].test == "refractive_index"
    assert "rules out red spinel" in result.recommended[0].why


def test_considered_covers_95_percent():
    cands = _c(Emerald=0.5, Tourmaline=0.3, Peridot=0.16, Tsavorite=0.03, Apatite=0.01)
    assert [c.label for c in considered_candidates(cands)] == ["Emerald", "Tourmaline", "Peridot"]


def test_over_the_limit_is_a_reading():
    result = recommend(_c(Diamond=0.6, Quartz_Smoky=0.4), available={"refractive_index"})
    ri = result.recommended[0]
    expected = {e.label: e.expected for e in ri.expected}
    assert expected["Diamond"].startswith("OTL") and expected["Quartz Smoky"] == "1.544-1.553"
    assert "separates Diamond from Quartz Smoky" in ri.why
    assert ri.separation > 0.7  # the rest is diamond vs its OTL simulants (CZ, moissanite), which RI cannot split


def test_max_tests_unknown_tests_and_unknown_labels():
    assert len(recommend(_c(Emerald=0.5, Tourmaline=0.3, Peridot=0.2), max_tests=1).recommended) == 1
    with pytest.raises(UnknownTest):
        recommend(_c(Ruby=1.0), available={"refractive_index", "x_ray"})
    assert recommend(_c(Moonstone=0.7, Labradorite=0.3)).recommended == []  # labels the table does not know
    # an unknown label next to known ones is skipped, not fatal
    result = recommend(_c(Moonstone=0.5, Ruby=0.3, Pyrope=0.2))
    assert result.recommended and all(e.label != "Moonstone" for e in result.recommended[0].expected)
    assert recommend([]).recommended == []


def test_information_gain_bounds():
    prior = np.array([0.5, 0.5])
    same = np.array([[0.3, 0.7], [0.3, 0.7]])
    disjoint = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert information_gain(prior, same) == pytest.approx(0.0, abs=1e-9)
    assert information_gain(prior, disjoint) == pytest.approx(1.0, abs=1e-9)


def test_all_tests_scored_at_once_match_one_by_one():
    """`recommend` scores every test in one pass over the hypotheses' concatenated outcomes and every pair's
    overlap in one array op; both must be what `information_gain` and a pairwise min-sum give test by test."""
    from gemid.gemmology.guidance import _gains, _hypotheses, _overlaps
    from gemid.gemmology.instruments import TESTS
    from gemid.gemmology.table import default_table

    table = default_table()
    labels = [lab for lab in table.labels if table.rows_for(lab)]
    rng = np.random.default_rng(0)
    for _ in range(40):
        picked = rng.choice(len(labels), size=int(rng.integers(1, 7)), replace=False)
        probs = rng.dirichlet(np.ones(len(picked)))
        hyps = _hypotheses(considered_candidates([Candidate(label=labels[i], probability=float(p))
                                       for i, p in zip(picked, probs, strict=True)]), table)
        prior = np.array([h.prior for h in hyps])
        gains = _gains(prior, np.stack([h.outcomes for h in hyps]))
        assert set(gains) == set(TESTS)
        for test in TESTS:
            dists = np.stack([h.distribution(test) for h in hyps])
            assert gains[test] == pytest.approx(information_gain(prior, dists), rel=1e-12, abs=1e-15)
            overlap = _overlaps(hyps, test)
            for a in hyps:
                for b in hyps:
                    assert overlap[a.key, b.key] == float(np.minimum(a.distribution(test), b.distribution(test)).sum())


def test_a_test_that_only_splits_imitations_is_not_offered_when_candidates_differ():
    # turquoise, chrysocolla and lapis are all aggregates: birefringence is "not measurable" for each
    result = recommend(_c(Turquoise=0.5, Chrysocolla=0.3, Lapis_Lazuli=0.2))
    assert "birefringence" not in _tests(result) and "optic_character" not in _tests(result)
    assert _tests(result)[0] == "refractive_index"
    assert "(spot)" in result.recommended[0].expected[0].expected


@pytest.mark.parametrize("first", ["Diamond", "Lapis Lazuli", "Pyrite", "Malachite"])
def test_a_test_the_likeliest_stone_cannot_be_given_is_not_recommended(first):
    """An outside gemmologist: "Measure the birefringence: Diamond not measurable (OTL) — confirms Diamond", and
    the same for aggregates and opaque stones. Such a test is not offered; a test the stone can be given is."""
    cands = [Candidate(label=first, probability=0.9), Candidate(label="Sapphire Blue", probability=0.1)]
    offered = [t.test for t in recommend(cands).recommended]
    assert "birefringence" not in offered and offered, offered
    assert "refractive_index" not in offered or first != "Pyrite", offered
    ruby = [Candidate(label="Ruby", probability=0.6), Candidate(label="Red spinel", probability=0.4)]
    assert "birefringence" in [t.test for t in recommend(ruby, max_tests=5).recommended]
