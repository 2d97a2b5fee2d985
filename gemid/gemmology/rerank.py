"""Combine the photo's probabilities with the technician's readings into a new ranking.

Posterior ∝ photo^τ × p(readings | candidate). The photo is tempered (τ < 1) because a network is never as
sure as its softmax on a stone from a new mine or under new light, so a clear reading can overturn a
confident photo. Readings likelihoods come from the property table with each instrument's error
(`gemmology.instruments`). Readings that fit none of the candidates raise a flag naming what they do fit
(glass, CZ, spinel ...): a simulant, a synthetic, a treated stone or a species the model does not know.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from gemid.errors import GemidInputError
from gemid.gemmology.likelihood import Observed, describe, fits, likelihood, measured_fit, mixture_likelihood
from gemid.gemmology.table import Material, PropertyTable, default_table
from gemid.report import Candidate, Readings, Reranking

TEMPER = 0.75  # exponent on the photo probabilities
# A candidate whose readings lie beyond three instrument errors of its range is implausible, not merely less
# likely: its score is cut by this much more, so any candidate that fits ranks above it. The likelihood's own
# floor (instruments.FLOOR) stays the allowance for a misread instrument among the implausible.
IMPLAUSIBLE = 1e-3
LOOKALIKE_BETTER = 3.0  # a look-alike fitting this many times better than every candidate is worth a flag
MAX_NAMED = 3


class ReadingsError(GemidInputError):
    code, status = "bad_readings", 422


def _check(candidates: Sequence[Candidate], readings: Readings) -> None:
    if not candidates:
        raise ReadingsError("no candidates to re-rank: identify the photo first")
    total = sum(c.probability for c in candidates)
    if total > 1.0 + 1e-3:
        raise ReadingsError(f"candidate probabilities add up to {total:.3f}, more than 1")
    labels = [c.label for c in candidates]
    if len(set(labels)) != len(labels):
        raise ReadingsError("a candidate label appears twice")
    if readings.ri_high is not None and readings.ri is None:
        raise ReadingsError("ri_high given without ri: enter the low reading as ri and the high one as ri_high")
    if readings.ri is not None and readings.ri_high is not None and readings.ri_high < readings.ri:
        raise ReadingsError(f"ri_high {readings.ri_high} is below ri {readings.ri}: swap them")


def _has_readings(obs: Observed) -> bool:
    return any(
        v not in (None, False)
        for v in (obs.ri, obs.ri_otl, obs.biref, obs.sg, obs.optic, obs.optic_sign, obs.pleochroism, obs.uv_lw,
                  obs.uv_sw)
    )


def display_name(name: str) -> str:
    """A material's name mid-sentence: 'Glass' -> 'glass', but 'YAG' stays 'YAG'."""
    return name if name[:2].isupper() else name[:1].lower() + name[1:]


def _universe(candidates: Sequence[Candidate], model_labels: Sequence[str] | None) -> list[str]:
    """Labels outside the photo's top-k that share its leftover probability (so a reading can promote them).

    Only the model's own label list can say what the rest is: without it, no label outside the top-k is
    invented (a custom model's label set need not be the shipped one)."""
    if model_labels is None:
        return []
    given = {c.label for c in candidates}
    return [lab for lab in dict.fromkeys(model_labels) if lab not in given]


def rerank(
    candidates: Sequence[Candidate],
    readings: Readings,
    *,
    model_labels: Sequence[str] | None = None,
    table: PropertyTable | None = None,
    temper: float = TEMPER,
) -> Reranking:
    """Re-rank the photo's candidates (the report's top 10) with the readings; flag misfits.

    `model_labels` (the bundle's labels) lets a label outside the top-k that alone fits the readings share
    the photo's leftover probability and rise; without it only the given candidates are ranked.
    """
    _check(candidates, readings)
    table = table or default_table()
    photo = sorted((Candidate(label=c.label, probability=c.probability) for c in candidates),
                   key=lambda c: -c.probability)
    obs = Observed.from_readings(readings)
    if not _has_readings(obs):
        return Reranking(readings=readings, photo_only=photo, combined=list(photo), fits_none=False)

    # labels outside the photo's top-k join only when they fit every reading: a reading can then promote
    # a class the photo under-rated (red tourmaline taken for garnet), but misfit readings cannot pull an
    # arbitrary class from the long tail to the top
    tail = _universe(photo, model_labels)
    others = [lab for lab in tail if any(fits(m, obs) for m in table.rows_for(lab))]
    residual = max(0.0, 1.0 - sum(c.probability for c in photo))
    priors: dict[str, float] = {c.label: c.probability for c in photo}
    if others and residual > 0:
        priors.update({lab: residual / len(tail) for lab in others})

    neutral = obs.neutral_likelihood()
    lik: dict[str, float] = {}
    for lab in priors:
        rows = table.rows_for(lab)
        lik[lab] = mixture_likelihood(rows, obs) if rows else neutral
        if rows and not any(measured_fit(m, obs) for m in rows):
            lik[lab] *= IMPLAUSIBLE
    score = {lab: (p ** temper if p > 0 else 0.0) * lik[lab] for lab, p in priors.items()}
    total = sum(score.values())
    if total <= 0:  # every prior was zero: fall back to the readings alone
        score = dict(lik)
        total = sum(score.values())
    ranked = sorted(score.items(), key=lambda kv: -kv[1])[: len(photo)]
    combined = [Candidate(label=lab, probability=min(1.0, s / total)) for lab, s in ranked]

    candidate_rows = {c.label: table.rows_for(c.label) for c in photo}
    fit = {lab: any(fits(m, obs) for m in rows) if rows else None for lab, rows in candidate_rows.items()}
    fits_none = not any(v is None or v for v in fit.values())
    if fits_none:
        flag = _misfit_flag(photo, obs, table)
    else:
        best = max((lik[lab] for lab, ok in fit.items() if ok), default=0.0)
        flag = _lookalike_flag(photo, obs, table, best)
    return Reranking(readings=readings, photo_only=photo, combined=combined, fits_none=fits_none, flag=flag)


def what_fits(obs: Observed, table: PropertyTable, photo_top: str | None, *, exclude: Collection[str] = (),
              prefer: Collection[str] = (),
              fit: Callable[[Material, Observed], bool] = measured_fit) -> list[Material]:
    """Table materials the readings fit (`fit`), in the order a referral names them: look-alikes of the photo's
    answer (red spinel for a ruby) and imitations of anything (glass, CZ) first, then the photo's other
    candidates (`prefer`), then the species the model knows, then other species' look-alikes; likeliest first
    within each. Beyond the look-alikes, a material of a mineral already named is left out: it reads the same
    and differs only in colour (blue spinel beside red spinel for a red stone adds only confusion), so the
    photo's own candidate speaks for its mineral (golden beryl, not a synthetic emerald, for a yellow stone).
    One name per material (a model label or a table name); rows of labels in `exclude` are left out. The species
    the photo did not list, and other species' look-alikes, are named only when nothing of the first two tiers
    fits: the photo gave them next to nothing, mostly for their colour (an outside try was given "Red spinel,
    Synthetic spinel or Tsavorite" for a red stone, and massive dumortierite for a transparent green one)."""
    good = [m for m in table.materials if fit(m, obs) and not (m.label and m.label in exclude)]

    def tier(m: Material) -> int:
        if m.label is None and (photo_top in m.lookalike_of or "*" in m.lookalike_of):
            return 0  # look-alikes of the answer and of anything, likeliest first (CZ before a titanate at SG 5.8)
        if m.label is not None and m.label in prefer:
            return 1
        return 2 if m.label is not None else 3

    out: list[Material] = []
    names: set[str] = set()
    minerals: set[str] = set()
    for m in sorted(good, key=lambda m: (tier(m), -likelihood(m, obs))):
        name = m.name if m.label is None else m.label
        if name in names or (tier(m) >= 1 and m.mineral in minerals):
            continue
        out.append(m)
        names.add(name)
        minerals.add(m.mineral)
    near = [m for m in out if tier(m) <= 1]
    return near or out


def _matches(rows: Sequence[Material], obs: Observed) -> list[Material]:
    good = [m for m in rows if fits(m, obs)]
    return sorted(good, key=lambda m: -likelihood(m, obs))


def _misfit_flag(photo: list[Candidate], obs: Observed, table: PropertyTable) -> str:
    names = ", ".join(c.label for c in photo)
    text = (
        f"The readings fit none of the photo's candidates ({names}). The stone may be a simulant, a synthetic, "
        "a treated stone or a species the model does not know: refer it to a full gemmological laboratory."
    )
    own = {c.label for c in photo}
    matches = what_fits(obs, table, photo[0].label if photo else None, exclude=own, fit=fits)[:MAX_NAMED]
    if matches:
        listed = "; ".join(
            f"{m.name if m.label else display_name(m.name)} ({describe(m, obs)})" for m in matches
        )
        text += f" Readings fit: {listed}."
    else:
        text += (" They match no material in the property table either: check the readings (clean stone and "
                 "prism, enough contact liquid, balance calibrated).")
    return text


def _lookalike_flag(photo: list[Candidate], obs: Observed, table: PropertyTable, best: float) -> str | None:
    """A look-alike of the candidates that fits the readings clearly better than any of them."""
    labels = {c.label for c in photo}
    relevant = [
        m for m in table.lookalikes()
        if ("*" in m.lookalike_of or labels & set(m.lookalike_of)) and m.name not in labels
    ]
    better = [m for m in _matches(relevant, obs) if likelihood(m, obs) >= LOOKALIKE_BETTER * best]
    if not better:
        return None
    m = better[0]
    kind = {"synthetic": "a synthetic", "imitation": "an imitation"}.get(m.origin, "a natural look-alike")
    return (
        f"The readings fit {display_name(m.name)} ({describe(m, obs)}) better than any candidate; it is {kind} "
        "the photo model does not know. Confirm the identity (spectroscope, magnification or a full laboratory) "
        "before certifying."
    )
