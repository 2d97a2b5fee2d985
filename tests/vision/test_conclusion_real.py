"""Issue 28's targets on real photos with the shipped model: a ruby, a zircon and an amber photographed for
gems68, with the readings a desk would take of the real stone and of its imitations."""

from __future__ import annotations

import pytest

from gemid.report import Readings

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def identifier():
    from gemid.vision.pipeline import Identifier

    return Identifier()


def _photo(gems68_dir, species: str):
    return sorted((gems68_dir / species).glob("*.jpg"))[3]


CASES = [  # (photo, readings, decision, label or the name the referral must give)
    ("Ruby", Readings(ri=1.762, sg=4.00), "identified", "Ruby"),
    ("Ruby", Readings(ri=1.718, sg=3.60), "refer", "Red spinel"),
    ("Ruby", Readings(ri=1.52, sg=2.50), "refer", "Glass"),
    ("Ruby", Readings(ri_otl=True, sg=5.80), "refer", "Cubic zirconia"),
    ("Ruby", Readings(ri=1.762, ri_high=1.770, sg=3.85), "identified", "Ruby"),
    ("Ruby", Readings(ri=1.762, ri_high=1.770, sg=3.80, weight_ct=0.5), "identified", "Ruby"),
    ("Zircon", Readings(ri_otl=True, sg=4.35), "identified", "Zircon"),
]


@pytest.mark.parametrize(("species", "readings", "decision", "label"), CASES,
                         ids=[f"{c[0]}-{c[3]}-{c[2]}" for c in CASES])
def test_readings_settle_or_overturn_the_photo(identifier, gems68_dir, species, readings, decision, label):
    r = identifier.identify(_photo(gems68_dir, species), readings=readings, grade=False)
    assert r.species.top[0].label == species  # the photo alone is right about these photos
    c = r.conclusion
    assert (c.decision, c.basis) == (decision, "photo+readings"), c.reason
    assert c.label == label and (decision != "refer" or label in c.fits)
    assert "refractive_index" not in {t.test for t in r.tests.recommended}  # after an RI reading


def test_amber_readings_cannot_exclude_copal(identifier, gems68_dir):
    r = identifier.identify(_photo(gems68_dir, "Amber"), readings=Readings(ri=1.54, sg=1.06), grade=False)
    assert r.conclusion.label == "Amber" and "Copal" in r.conclusion.cannot_exclude
    assert r.tests.lab_note and "laboratory" in r.tests.lab_note


def test_new_readings_move_the_clarity_words_to_the_new_answer(identifier, gems68_dir):
    """The species-dependent clarity sentence follows the conclusion, not the photo alone."""
    first = identifier.identify(_photo(gems68_dir, "Ruby"))
    assert first.clarity is not None and first.clarity.status == "graded"
    second = identifier.add_readings(first, Readings(ri=1.762, sg=4.0))
    assert second.conclusion.label == "Ruby" and "Ruby" in (second.clarity.type_meaning or "Ruby")
    moved = identifier.add_readings(first, Readings(ri=1.624, ri_high=1.644, sg=3.06))  # tourmaline readings
    assert "Ruby" not in (moved.clarity.type_meaning or "")
