"""The weight: the desk's scale reading when entered; otherwise the standard formula's estimate from the
measured size, the cut shape and the SG of what the stone is concluded to be, as a range."""

from __future__ import annotations

import pytest

from gemid.gemmology.table import default_table
from gemid.gemmology.weight import BULGE, DEPTH, SHAPE_FACTOR, estimate_weight
from gemid.report import Candidate, Conclusion, Readings, Stone, StoneShape, StoneSize


def stone(shape: str = "oval", length: float = 8.0, width: float = 6.0, u: float = 0.2,
          others: dict[str, float] | None = None) -> Stone:
    return Stone(index=1, count=1, bbox=(0, 0, 10, 10),
                 shape=StoneShape(label=shape, probability=0.9, others=others or {}),
                 size=StoneSize(status="measured", length_mm=length, width_mm=width, uncertainty_mm=u,
                                method="gemid scale card"))


def conclusion(decision: str = "identified", label: str | None = "Ruby") -> Conclusion:
    return Conclusion(decision=decision, label=label, probability=0.9, basis="photo", reason="test")


TOP = [Candidate(label="Ruby", probability=0.5), Candidate(label="Pyrope", probability=0.45),
       Candidate(label="Spinel", probability=0.05)]


def test_an_identified_oval_ruby_follows_the_standard_formula():
    w = estimate_weight(stone(), conclusion(), TOP, None)
    sg = default_table().rows_for("Ruby")[0].sg
    lo, mid, hi = DEPTH["faceted"]
    assert w.basis == "estimate"
    assert SHAPE_FACTOR["oval"] == (0.0020, 0.0020)
    assert w.carats == pytest.approx(8.0 * 6.0 * mid * 6.0 * (sg.low + sg.high) / 2 * 0.0020, abs=0.01)
    assert w.low == pytest.approx(7.8 * 5.8 * lo * 5.8 * sg.low * 0.0020, abs=0.01)
    assert w.high == pytest.approx(8.2 * 6.2 * hi * 6.2 * sg.high * 0.0020 * BULGE, abs=0.01)
    assert w.low < w.carats < w.high
    assert "estimate" in w.method and "SG 3.9" in w.method and "Ruby" in w.method


def test_the_scale_reading_replaces_the_estimate():
    w = estimate_weight(stone(), conclusion(), TOP, Readings(weight_ct=1.87))
    assert (w.basis, w.carats, w.low, w.high) == ("scale", 1.87, None, None)
    # even without a size or a conclusion: the reading is the weight
    w = estimate_weight(None, conclusion("refer"), TOP, Readings(weight_ct=0.5))
    assert w is not None and w.carats == 0.5


def test_an_uncertain_stone_takes_the_sg_of_its_likely_candidates():
    ruby = estimate_weight(stone(), conclusion(), TOP, None)
    unsure = estimate_weight(stone(), conclusion("uncertain", "Ruby"), TOP, None)
    assert "2 likely candidates" in unsure.method  # 0.5 + 0.45 reach the 0.9 mass
    assert unsure.low < ruby.low  # pyrope's SG reaches lower
    assert unsure.high >= ruby.high - 0.01


def test_no_estimate_without_a_known_material_a_size_or_a_shape_factor():
    assert estimate_weight(stone(), conclusion("refer", "Ruby"), TOP, None) is None  # what it is is in question
    assert estimate_weight(stone(), conclusion("rejected", None), TOP, None) is None
    assert estimate_weight(stone("tumbled_or_rough"), conclusion(), TOP, None) is None
    unmeasured = stone().model_copy(update={"size": StoneSize(status="cannot_measure", method="card", reason="x")})
    assert estimate_weight(unmeasured, conclusion(), TOP, None) is None
    assert estimate_weight(stone().model_copy(update={"size": None}), conclusion(), TOP, None) is None


def test_an_sg_reading_is_used_even_when_the_stone_is_referred():
    w = estimate_weight(stone(), conclusion("refer", "Ruby"), TOP, Readings(sg=3.61))
    assert w is not None and "SG 3.61 as read" in w.method
    spinel_like = 8.0 * 6.0 * DEPTH["faceted"][1] * 6.0 * 3.61 * 0.0020
    assert w.carats == pytest.approx(spinel_like, abs=0.01)


def test_a_cabochon_is_estimated_with_a_cabochons_depth():
    cab = estimate_weight(stone("cabochon"), conclusion(), TOP, None)
    facet = estimate_weight(stone("oval"), conclusion(), TOP, None)
    ratio = (DEPTH["cabochon"][1] * SHAPE_FACTOR["cabochon"][0]) / (DEPTH["faceted"][1] * SHAPE_FACTOR["oval"][0])
    assert cab.carats == pytest.approx(facet.carats * ratio, rel=0.02)


def test_the_range_spans_the_other_likely_shapes_but_not_the_unlikely():
    alone = estimate_weight(stone(), conclusion(), TOP, None)
    unsure = estimate_weight(stone(others={"cabochon": 0.3, "marquise": 0.1}), conclusion(), TOP, None)
    assert unsure.carats == alone.carats  # the middle stays the most probable shape's
    assert unsure.low < alone.low  # as a cabochon it may be as shallow as 30 % of its width
    assert unsure.high >= alone.high
    assert "also as cabochon" in unsure.method and "marquise" not in unsure.method  # 0.1 is under SHAPE_SPAN


def test_a_shape_whose_name_covers_two_cuts_gives_both_factors():
    w = estimate_weight(stone("cushion", 6.0, 6.0, 0.0), conclusion(), TOP, None)
    assert "0.0018-0.0022 (cushion)" in w.method
    sg = default_table().rows_for("Ruby")[0].sg
    assert w.low == pytest.approx(6 * 6 * DEPTH["faceted"][0] * 6 * sg.low * 0.0018, abs=0.01)
    assert w.high == pytest.approx(6 * 6 * DEPTH["faceted"][2] * 6 * sg.high * 0.0022 * BULGE, abs=0.01)
