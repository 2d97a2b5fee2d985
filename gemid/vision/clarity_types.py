"""The species' GIA clarity type (I: usually eye-clean, II: usually included, III: almost always included,
or opaque / diamond) and what a photo's clarity grade means for that species, in words for the report.

A grade alone misleads: SI2 is typical for an emerald and unusual for an aquamarine. The types and the
per-species notes are data (`data/clarity_types.json`), so a gemmologist can correct them without code.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from gemid.report import ClarityGrade, Conclusion, SpeciesResult
from gemid.vision import clarity_scales


@lru_cache(maxsize=1)
def _types() -> tuple[dict[str, str], dict[str, str]]:
    data = json.loads(resources.files("gemid.vision").joinpath("data/clarity_types.json").read_text("utf-8"))
    return ({k.lower(): v for k, v in data["types"].items()}, {k.lower(): v for k, v in data["notes"].items()})


def clarity_type(species: str | None) -> str | None:
    """'I' | 'II' | 'III' | 'opaque' | 'diamond' for a known species label, else None."""
    if not species:
        return None
    return _types()[0].get(species.strip().lower())


_TYPE_WORDS = {"I": "usually eye-clean", "II": "usually included", "III": "almost always included"}


def type_meaning(species: str | None, grade: str) -> str | None:
    """What the grade means for this species, e.g. 'typical for Emerald (Type III: almost always included)'."""
    t = clarity_type(species)
    if t is None or species is None:
        return None
    name = species.strip()
    note = _types()[1].get(name.lower())
    if t == "opaque":
        return (f"Clarity grading does not apply to {name}: an opaque, aggregate or organic material; "
                "the map only shows surface features.")
    if t == "diamond":
        return ("Diamonds are graded on the diamond clarity scale (FL to I3) under 10x magnification; "
                "this photo estimate is not a diamond clarity grade.")
    g = clarity_scales.grade_index(grade)
    tag = f"{name} (Type {t}: {_TYPE_WORDS[t]})"
    if t == "I":
        text = (f"typical for {tag}" if g <= 1 else f"more included than usual for {tag}" if g <= 3
                else f"unusually included for {tag}")
    elif t == "II":
        text = (f"cleaner than usual for {tag}" if g == 0 else f"typical for {tag}" if g <= 4
                else f"heavily included even for {tag}")
    else:
        text = (f"unusually clean for {tag}: exceptional, or worth checking for a synthetic" if g <= 1
                else f"typical for {tag}" if g <= 5 else f"heavily included even for {tag}")
    text = text[0].upper() + text[1:]
    return f"{text}; {note}." if note else f"{text}."


def retype(clarity: ClarityGrade, species: str | None) -> ClarityGrade:
    """The same graded clarity, its species words following another answer (after readings moved it)."""
    if clarity.status != "graded" or clarity.grade is None:
        return clarity
    t = clarity_type(species)
    return clarity.model_copy(update={"clarity_type": t if t in ("I", "II", "III") else None,
                                      "type_meaning": type_meaning(species, clarity.grade)})


def species_words(conclusion: Conclusion, species: SpeciesResult) -> str | None:
    """The species whose words the grades use (the clarity type, "does not apply to an opaque ..."): the
    conclusion's, else the photo's first choice; none for a photo rejected as no gemstone (an outside try read
    "Clarity grading does not apply to Blue Lace Agate" on a photo of a fork), whose grades describe the object
    by its pixels alone."""
    if conclusion.decision == "rejected":
        return None
    return conclusion.label or (species.top[0].label if species.top else None)
