"""How likely actual readings are for a material, and whether they fit it at all: what re-ranking and the
conclusion weigh. The instruments' errors and the outcome model they share with the guidance are
gemid.gemmology.instruments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gemid.gemmology.instruments import (
    BROAD_BIREF,
    BROAD_RI,
    BROAD_SG,
    FLOOR,
    REFRACTOMETER_LIMIT,
    SIGMA_BIREF,
    SIGMA_BIREF_UNDER,
    SIGMA_RI,
    SIGMA_RI_SPOT,
    SIGMA_SG,
    SIGN_OUTCOMES,
    TESTS,
    TWO_EDGES_MIN,
    band_pdf,
    expected_text,
    optic_probs,
    p_over_limit,
    pleochroism_probs,
    ri_bands,
    ri_sigma,
    sigma_sg,
    sign_probs,
    uv_probs,
)
from gemid.gemmology.table import FLUORESCENCE, OPTICS, PLEOCHROISM, Material
from gemid.report import CONTEXT_FIELDS, Readings


def tests_done(readings: Readings | None) -> list[str]:
    """The tests whose readings were entered, in TESTS order: guidance does not send the technician back."""
    if readings is None:
        return []
    read = {
        "refractive_index": readings.ri is not None or bool(readings.ri_otl),
        "birefringence": readings.birefringence is not None or readings.ri_high is not None,
        "specific_gravity": readings.sg is not None,
        "optic_character": readings.optic is not None,
        "optic_sign": readings.optic_sign is not None,
        "pleochroism": readings.pleochroism is not None,
        "uv_fluorescence": readings.uv_lw is not None,
        "uv_fluorescence_sw": readings.uv_sw is not None,
    }
    return [t for t in TESTS if read[t]]


def tests_left(readings: Readings | None) -> set[str]:
    """The tests guidance may still recommend: not those done, and not birefringence once the RI read over the
    refractometer's limit, nor on a spot reading or an aggregate (there are no edges to read; an outside try
    was told to measure it on a zircon)."""
    left = set(TESTS) - set(tests_done(readings))
    if readings is not None and readings.ri_otl and readings.ri is None:
        left.discard("birefringence")
    if readings is not None and (readings.ri_spot or readings.optic == "AGG"):
        # a spot reading on a curved surface, or an aggregate, has no two edges to read (an outside try was
        # offered birefringence on a chalcedony cabochon)
        left.discard("birefringence")
    return left


def contradictions(r: Readings) -> list[str]:
    """Readings that contradict each other whatever the material: a singly refractive stone shows one RI edge
    and no pleochroism, so the polariscope's SR beside a birefringence or a pleochroism is a misjudged reading
    (an outside try: topaz birefringence 0.009 with SR, ruby SR with strong pleochroism passed unremarked)."""
    if r.optic != "SR" or r.optic_sign is not None:
        return []
    found = []
    biref = r.birefringence if r.birefringence is not None else (
        r.ri_high - r.ri if r.ri is not None and r.ri_high is not None else None)
    if biref is not None and biref >= TWO_EDGES_MIN:
        found.append(f"the polariscope's SR contradicts the birefringence of {biref:.3f} (a singly refractive "
                     "stone shows one RI edge)")
    if r.pleochroism in ("weak", "moderate", "strong"):
        found.append(f"the polariscope's SR contradicts the {r.pleochroism} pleochroism (a singly refractive "
                     "stone shows none)")
    return found


# --- re-ranking: the likelihood of actual readings --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observed:
    """Readings normalised for the likelihood: birefringence derived from two RI edges when not given."""

    ri: float | None
    ri_two_edges: bool
    ri_otl: bool
    biref: float | None
    sg: float | None
    optic: str | None
    optic_sign: str | None
    pleochroism: str | None
    uv_lw: str | None
    uv_sw: str | None = None
    ri_spot: bool = False
    sigma_sg: float = SIGMA_SG
    ri_limit: float = REFRACTOMETER_LIMIT  # the refractometer's: 1.81 with standard contact liquid

    @classmethod
    def from_readings(cls, r: Readings) -> Observed:
        biref = r.birefringence
        if biref is None and r.ri is not None and r.ri_high is not None:
            biref = round(r.ri_high - r.ri, 4)
        optic = r.optic
        if optic == "SR" and r.optic_sign is not None:
            # dark through a turn in the polariscope, and an interference figure in the conoscope: a doubly
            # refractive stone seen down its optic axis (a gemmologist's reading; an outside one saw a quartz with
            # a uniaxial+ figure called a misfit)
            optic = "DR"
        return cls(
            ri=r.ri, ri_two_edges=r.ri is not None and r.ri_high is not None and r.ri_high - r.ri >= TWO_EDGES_MIN,
            ri_otl=bool(r.ri_otl) and r.ri is None, biref=biref, sg=r.sg, optic=optic,
            optic_sign=r.optic_sign, pleochroism=r.pleochroism, uv_lw=r.uv_lw, uv_sw=r.uv_sw,
            ri_spot=bool(r.ri_spot),
            sigma_sg=sigma_sg(r.weight_ct), ri_limit=r.ri_limit or REFRACTOMETER_LIMIT,
        )

    def ri_sigma(self, m: Material) -> float:
        """The RI error follows how the stone was read (a spot reading on a curved surface is coarser), and an
        aggregate gives only a spot reading however it was read."""
        return SIGMA_RI_SPOT if (self.ri_spot or m.aggregate) else SIGMA_RI

    def neutral_likelihood(self) -> float:
        """What a material of unknown properties scores: the broad density of every reading."""
        p = 1.0
        if self.ri is not None:
            p *= BROAD_RI
        if self.ri_otl:
            p *= 0.5
        if self.biref is not None:
            p *= BROAD_BIREF
        if self.sg is not None:
            p *= BROAD_SG
        if self.optic:
            p *= 1.0 / len(OPTICS)
        if self.optic_sign:
            p *= 1.0 / len(SIGN_OUTCOMES)
        if self.pleochroism:
            p *= 1.0 / len(PLEOCHROISM)
        if self.uv_lw:
            p *= 1.0 / len(FLUORESCENCE)
        if self.uv_sw:
            p *= 1.0 / len(FLUORESCENCE)
        return p


def _ri_windows(m: Material, obs: Observed) -> list[tuple[float, float, float]]:
    """Where the (low) RI reading should fall: with two edges read, below the top by the birefringence."""
    assert m.ri is not None
    if obs.ri_two_edges and m.biref is not None and not m.aggregate:
        return [(m.ri.low, max(m.ri.low, m.ri.high - m.biref.low), 1.0)]
    return ri_bands(m)


def _high_edge(obs: Observed) -> float | None:
    """The high RI edge, where two were read (the low one plus the birefringence they give)."""
    return round(obs.ri + obs.biref, 4) if obs.ri is not None and obs.ri_two_edges and obs.biref is not None else None


def _high_edge_factor(m: Material, obs: Observed, s: float) -> float:
    """How far the high edge lies above the material's top RI, as a Gaussian tail of the instrument error: 1
    inside the range. The low edge and the birefringence already carry the two readings' evidence; this only
    keeps their sum from passing the top unremarked."""
    high = _high_edge(obs)
    if high is None or m.ri is None:
        return 1.0
    over = high - max(hi for _, hi, _ in ri_bands(m))
    return 1.0 if over <= 0 else math.exp(-0.5 * (over / s) ** 2)


def likelihood(m: Material, obs: Observed) -> float:
    """p(readings | material): product over the readings, each with a floor for robustness."""
    p = 1.0
    if obs.ri is not None:
        if m.ri is None:
            p *= FLOOR * BROAD_RI
        else:
            s = obs.ri_sigma(m)
            dens = sum(w * float(band_pdf(obs.ri, lo, hi, s)) for lo, hi, w in _ri_windows(m, obs))
            p *= (1 - FLOOR) * dens * _high_edge_factor(m, obs, s) + FLOOR * BROAD_RI
        if obs.ri_two_edges and _singly_refractive(m):
            p *= FLOOR  # two edges: the stone is doubly refractive
    elif obs.ri_otl:
        p *= (1 - FLOOR) * p_over_limit(m, obs.ri_limit) + FLOOR
    if obs.biref is not None:
        if m.ri is None or m.ri.low >= obs.ri_limit:
            p *= FLOOR * BROAD_BIREF
        elif m.biref is None:
            p *= 0.1 * BROAD_BIREF  # an aggregate shows no measurable birefringence
        else:
            dens = float(band_pdf(obs.biref, m.biref.low, m.biref.high, _biref_sigma(m, obs.biref)))
            p *= (1 - FLOOR) * dens + FLOOR * BROAD_BIREF
    if obs.sg is not None:
        p *= (1 - FLOOR) * float(band_pdf(obs.sg, m.sg.low, m.sg.high, obs.sigma_sg)) + FLOOR * BROAD_SG
    if obs.optic:
        p *= optic_probs(m)[obs.optic]
    if obs.optic_sign:
        p *= sign_probs(m)[obs.optic_sign]
    if obs.pleochroism:
        p *= pleochroism_probs(m)[obs.pleochroism]
    if obs.uv_lw:
        p *= uv_probs(m)[obs.uv_lw]
    if obs.uv_sw:
        p *= uv_probs(m, short=True)[obs.uv_sw]
    return p


def _singly_refractive(m: Material) -> bool:
    return m.biref is not None and m.biref.high == 0 and "DR" not in m.optic


def _biref_sigma(m: Material, biref: float) -> float:
    assert m.biref is not None
    return SIGMA_BIREF_UNDER if biref < m.biref.low else SIGMA_BIREF


def mixture_likelihood(rows: Sequence[Material], obs: Observed) -> float:
    total = sum(m.weight for m in rows)
    return sum(m.weight * likelihood(m, obs) for m in rows) / total


def fits(m: Material, obs: Observed) -> bool:
    """Every reading within the material's range plus three instrument errors (UV only when flatly opposed)."""
    return measured_fit(m, obs) and _observed_fit(m, obs)


def measured_fit(m: Material, obs: Observed, k: float = 3.0) -> bool:
    """The measured readings (RI, birefringence, SG) within the material's range plus `k` instrument errors
    (three: what makes a material implausible, a number off the scale by several errors; two: what an answer
    needs to be called identified). The polariscope, dichroscope and UV lamp are judged by eye and often
    misjudged, so they only weigh (the likelihood's soft tables), never rule out."""
    if obs.ri is not None:
        if m.ri is None:
            return False
        s = k * obs.ri_sigma(m)
        if not any(lo - s <= obs.ri <= hi + s for lo, hi, _ in ri_bands(m)):
            return False
        high = _high_edge(obs)
        if high is not None and not any(lo - s <= high <= hi + s for lo, hi, _ in ri_bands(m)):
            return False  # an outside try: tourmaline "identified" from edges 1.640/1.680, its top near 1.655
        if obs.ri_two_edges and _singly_refractive(m):
            return False
    elif obs.ri_otl and m.ri is not None and m.ri.high < obs.ri_limit - 2 * ri_sigma(m):
        return False
    if obs.biref is not None:
        if m.biref is None or m.ri is None or m.ri.low >= obs.ri_limit:
            return False
        if not m.biref.low - k * SIGMA_BIREF_UNDER <= obs.biref <= m.biref.high + k * SIGMA_BIREF:
            return False
    return obs.sg is None or m.sg.low - k * obs.sigma_sg <= obs.sg <= m.sg.high + k * obs.sigma_sg


def _observed_fit(m: Material, obs: Observed) -> bool:
    """What is judged by eye agrees with the material, allowing the usual confusions."""
    if obs.optic and obs.optic not in m.optic:
        strain_pair = {obs.optic, *m.optic} >= {"SR", "ADR"} and obs.optic in ("SR", "ADR")
        if not strain_pair:
            return False
    if obs.optic_sign and obs.optic_sign not in m.optic_sign:
        return False
    if obs.pleochroism:
        d = min(abs(PLEOCHROISM.index(obs.pleochroism) - PLEOCHROISM.index(v)) for v in m.pleochroism)
        if d > 1:
            return False
    for seen, expected in ((obs.uv_lw, m.uv_lw), (obs.uv_sw, m.uv_sw)):
        if seen and min(abs(FLUORESCENCE.index(seen) - FLUORESCENCE.index(v)) for v in expected) > 2:
            return False
    return True


def describe(m: Material, obs: Observed) -> str:
    """The material's values for the properties that were read, e.g. 'RI 1.470-1.700, SR or ADR'."""
    parts = []
    if obs.ri is not None or obs.ri_otl:
        parts.append(f"RI {expected_text(m, 'refractive_index')}")
    if obs.biref is not None:
        parts.append(f"birefringence {expected_text(m, 'birefringence')}")
    if obs.sg is not None:
        parts.append(f"SG {expected_text(m, 'specific_gravity')}")
    if obs.optic:
        parts.append(expected_text(m, "optic_character"))
    if obs.optic_sign:
        parts.append(expected_text(m, "optic_sign"))
    if obs.pleochroism:
        parts.append(f"pleochroism {expected_text(m, 'pleochroism')}")
    if obs.uv_lw:
        parts.append(f"LWUV {expected_text(m, 'uv_fluorescence')}")
    if obs.uv_sw:
        parts.append(f"SWUV {expected_text(m, 'uv_fluorescence_sw')}")
    return ", ".join(parts)


# --- which readings tell what: the conclusion's questions of single tests ----------------------------------


MEASURED_FIELDS = {"refractive_index": ("ri", "ri_high", "ri_otl"), "birefringence": ("birefringence", "ri", "ri_high"),
                   "specific_gravity": ("sg",)}  # a measured test's reading, and the fields it is read from


def well_inside(rows: Sequence[Material], readings: Readings, test: str) -> bool:
    """Whether the measured test's reading lies inside the materials' range by more than one instrument error."""
    if test not in MEASURED_FIELDS:
        return False
    kept = {f: getattr(readings, f) for f in (*MEASURED_FIELDS[test], *CONTEXT_FIELDS)}
    obs = Observed.from_readings(Readings.model_construct(**kept))
    return any(measured_fit(m, obs, k=-1.0) for m in rows)


EYE_FIELDS = {"optic_character": "optic", "optic_sign": "optic_sign", "pleochroism": "pleochroism",
              "uv_fluorescence": "uv_lw", "uv_fluorescence_sw": "uv_sw"}  # the tests judged by eye, and their reading's field


def only_tests(readings: Readings, tests: Sequence[str]) -> Observed:
    """The readings of these tests judged by eye, alone."""
    return Observed.from_readings(Readings(**{EYE_FIELDS[t]: getattr(readings, EYE_FIELDS[t]) for t in tests}))


def eye_against(rows: Sequence[Material], readings: Readings) -> list[str]:
    """The tests judged by eye whose reading none of the answer's rows can give, beyond the usual confusions.
    An SR beside an optic figure is a stone seen down its optic axis, not a misread polariscope."""
    axis = readings.optic == "SR" and readings.optic_sign is not None
    return [t for t in tests_done(readings) if t in EYE_FIELDS and rows and not (axis and t == "optic_character")
            and not any(fits(m, only_tests(readings, [t])) for m in rows)]
