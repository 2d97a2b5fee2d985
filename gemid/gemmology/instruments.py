"""The standard instruments: what each test reads, how precisely, and how likely a reading is for a material.

One model serves both the guidance (simulate each candidate's reading to see which test separates them) and
the re-ranking (likelihood of an actual reading). A property range is taken as uniform and blurred by the
instrument's Gaussian error; categorical tests (polariscope, dichroscope, UV lamp) get soft tables, so a
stone that is a little off its textbook value is penalised, never ruled out outright.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from gemid.gemmology.table import FLUORESCENCE, OPTIC_SIGNS, OPTICS, PLEOCHROISM, Material
from gemid.report import Readings

REFRACTOMETER_LIMIT = 1.81  # contact liquid of a standard refractometer: no edge above this ("OTL")
SIGMA_RI = 0.005  # refractometer, flat polished facet
SIGMA_RI_SPOT = 0.010  # spot (distant-vision) reading on a cabochon or aggregate
SIGMA_BIREF = 0.003  # difference of two readings: shared errors cancel
SIGMA_SG = 0.03  # hydrostatic balance, a stone of a carat or more
FLOOR = 0.02  # share of a reading explained by "something went wrong" (bad contact, mis-read scale ...)

# broad densities for the floor: a reading anywhere in the plausible span
_BROAD_RI = 1.0 / (REFRACTOMETER_LIMIT - 1.40)
_BROAD_BIREF = 1.0 / 0.30
_BROAD_SG = 1.0 / 6.6


@dataclass(frozen=True, slots=True)
class InstrumentTest:
    name: str
    instrument: str
    action: str
    precision: str
    sigma: float | None = None
    # weight on the expected gain when ranking: at equal gain, prefer the quick test that works on a
    # mounted stone (RI, polariscope) over the loose-stone, several-minute, small-stone-imprecise SG,
    # the skill-dependent interference figure and the weak-evidence UV lamp
    practicality: float = 1.0


TESTS: Mapping[str, InstrumentTest] = MappingProxyType({
    t.name: t for t in (
        InstrumentTest("refractive_index", "refractometer (contact liquid 1.81)", "Measure the refractive index",
                       "refractometer ±0.005, spot ±0.01, OTL above 1.81", SIGMA_RI, 1.0),
        InstrumentTest("specific_gravity", "hydrostatic balance", "Measure the specific gravity",
                       "hydrostatic balance ±0.03, loose stone", SIGMA_SG, 0.85),
        InstrumentTest("optic_character", "polariscope", "Check the optic character in the polariscope",
                       "polariscope: SR / DR / AGG / ADR", None, 1.0),
        InstrumentTest("birefringence", "refractometer (rotate the stone, read both edges)",
                       "Measure the birefringence (highest minus lowest RI)", "refractometer ±0.003",
                       SIGMA_BIREF, 0.95),
        InstrumentTest("pleochroism", "dichroscope", "Look for pleochroism with the dichroscope",
                       "dichroscope: none / weak / moderate / strong", None, 0.95),
        InstrumentTest("optic_sign", "polariscope with conoscope (interference figure)",
                       "Resolve the interference figure", "conoscope: uniaxial or biaxial, + or -", None, 0.8),
        InstrumentTest("uv_fluorescence", "long-wave UV lamp (365 nm)", "Check long-wave UV fluorescence",
                       "LW UV lamp: weak evidence, varies with locality and treatment", None, 0.75),
    )
})

# outcome axes of the discretised numeric tests
RI_EDGES = np.round(np.arange(1.30, REFRACTOMETER_LIMIT + 1e-9, 0.002), 4)
BIREF_EDGES = np.round(np.arange(0.0, 0.300 + 1e-9, 0.001), 4)
SG_EDGES = np.round(np.arange(0.80, 7.60 + 1e-9, 0.01), 3)
SIGN_OUTCOMES = (*OPTIC_SIGNS, "none")


# --- a uniform range blurred by Gaussian error ------------------------------------------------------


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7); numpy has no erf and scipy is not a runtime dep."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def norm_cdf(z: np.ndarray | float) -> np.ndarray:
    return 0.5 * (1.0 + _erf(np.asarray(z, dtype=float) / math.sqrt(2.0)))


def norm_pdf(z: np.ndarray | float) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def band_cdf(x: np.ndarray | float, low: float, high: float, sigma: float) -> np.ndarray:
    """P(reading <= x) when the true value is uniform on [low, high] and the instrument adds N(0, sigma)."""
    x = np.asarray(x, dtype=float)
    width = high - low
    if width < 1e-9:
        return norm_cdf((x - low) / sigma)

    def g(z: np.ndarray) -> np.ndarray:  # antiderivative of the normal CDF
        return z * norm_cdf(z) + norm_pdf(z)

    return np.clip(sigma / width * (g((x - low) / sigma) - g((x - high) / sigma)), 0.0, 1.0)


def band_pdf(x: np.ndarray | float, low: float, high: float, sigma: float) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    width = high - low
    if width < 1e-9:
        return norm_pdf((x - low) / sigma) / sigma
    return (norm_cdf((x - low) / sigma) - norm_cdf((x - high) / sigma)) / width


def _binned(edges: np.ndarray, low: float, high: float, sigma: float) -> np.ndarray:
    """Probability of each bin between edges; the tails are folded into the end bins."""
    cdf = band_cdf(edges, low, high, sigma)
    probs = np.diff(cdf)
    probs[0] += cdf[0]
    probs[-1] += 1.0 - cdf[-1]
    return probs


def ri_sigma(m: Material) -> float:
    return SIGMA_RI_SPOT if m.aggregate else SIGMA_RI


def ri_bands(m: Material) -> list[tuple[float, float, float]]:
    """(low, high, weight) ranges an RI reading comes from: the whole range, or either end for a blink."""
    assert m.ri is not None
    if m.blink:
        return [(m.ri.low, m.ri.low, 0.5), (m.ri.high, m.ri.high, 0.5)]
    return [(m.ri.low, m.ri.high, 1.0)]


def p_over_limit(m: Material) -> float:
    """Chance the refractometer shows no edge below its limit (opaque stones give no reading either)."""
    if m.ri is None:
        return 1.0
    s = ri_sigma(m)
    return float(sum(w * (1.0 - band_cdf(REFRACTOMETER_LIMIT, lo, hi, s)) for lo, hi, w in ri_bands(m)))


# --- categorical tables -----------------------------------------------------------------------------


def optic_probs(m: Material) -> dict[str, float]:
    """Polariscope reaction: the typical one most of the time, other listed ones often, the rest rarely."""
    listed = m.optic
    main, alt, rest = (0.88, 0.0, 0.12) if len(listed) == 1 else (0.60, 0.32, 0.08)
    probs = {o: 0.0 for o in OPTICS}
    probs[listed[0]] = main
    for o in listed[1:]:
        probs[o] = alt / (len(listed) - 1)
    unlisted = [o for o in OPTICS if o not in listed]
    # SR and anomalous DR (strain) are easily confused; DR and AGG are not
    weights = {o: 2.0 if {o, *listed} >= {"SR", "ADR"} else 1.0 for o in unlisted}
    total = sum(weights.values())
    for o in unlisted:
        probs[o] = rest * weights[o] / total
    return probs


def sign_probs(m: Material) -> dict[str, float]:
    """Interference figure: aggregates and SR stones give none."""
    if not m.optic_sign:
        scores = {o: (1.0 if o == "none" else 0.034) for o in SIGN_OUTCOMES}
    else:
        scores = {}
        for o in OPTIC_SIGNS:
            if o in m.optic_sign:
                scores[o] = 1.0
            elif any(o[:-1] == s[:-1] for s in m.optic_sign):
                scores[o] = 0.10  # right figure, sign misread
            else:
                scores[o] = 0.04
        scores["none"] = 0.5 if m.aggregate else 0.06
    total = sum(scores.values())
    return {o: s / total for o, s in scores.items()}


_PLEO_DECAY = (1.0, 0.25, 0.06, 0.015)
_UV_DECAY = (1.0, 0.45, 0.20, 0.10)  # fluorescence varies with locality and treatment: weak evidence


def ordinal_probs(levels: Sequence[str], listed: Sequence[str], decay: Sequence[float]) -> dict[str, float]:
    idx = [levels.index(v) for v in listed]
    scores = {lv: decay[min(abs(i - j) for j in idx)] for i, lv in enumerate(levels)}
    total = sum(scores.values())
    return {k: v / total for k, v in scores.items()}


def pleochroism_probs(m: Material) -> dict[str, float]:
    return ordinal_probs(PLEOCHROISM, m.pleochroism, _PLEO_DECAY)


def uv_probs(m: Material) -> dict[str, float]:
    return ordinal_probs(FLUORESCENCE, m.uv_lw, _UV_DECAY)


# --- guidance: the distribution of each test's outcome ----------------------------------------------


def outcome_distribution(m: Material, test: str) -> np.ndarray:
    """Probabilities over a fixed outcome axis per test (bins for numeric tests, classes otherwise)."""
    if test == "refractive_index":
        over = p_over_limit(m)
        if m.ri is None:
            bins = np.zeros(len(RI_EDGES) - 1)
        else:
            bins = sum(w * _binned(RI_EDGES, lo, hi, ri_sigma(m)) for lo, hi, w in ri_bands(m))
            bins[-1] -= over  # the upper tail is the OTL outcome, not the last bin
            bins = np.clip(bins, 0.0, None)
        return np.append(bins, over)
    if test == "birefringence":
        n = len(BIREF_EDGES) - 1
        if m.biref is None or m.ri is None:
            return np.append(np.zeros(n), 1.0)
        na = p_over_limit(m)
        if m.aggregate:  # a spot reading shows one blurred edge: usually no birefringence to read
            na = max(na, 0.7)
        bins = _binned(BIREF_EDGES, m.biref.low, m.biref.high, SIGMA_BIREF) * (1.0 - na)
        return np.append(bins, na)
    if test == "specific_gravity":
        return _binned(SG_EDGES, m.sg.low, m.sg.high, SIGMA_SG)
    if test == "optic_character":
        p = optic_probs(m)
        return np.array([p[o] for o in OPTICS])
    if test == "optic_sign":
        p = sign_probs(m)
        return np.array([p[o] for o in SIGN_OUTCOMES])
    if test == "pleochroism":
        p = pleochroism_probs(m)
        return np.array([p[o] for o in PLEOCHROISM])
    if test == "uv_fluorescence":
        p = uv_probs(m)
        return np.array([p[o] for o in FLUORESCENCE])
    raise KeyError(test)


def mixture_distribution(rows: Sequence[Material], test: str) -> np.ndarray:
    """The weighted outcome distribution of a candidate's rows (read-only array: it is cached)."""
    return _mixture(tuple(rows), test)


@lru_cache(maxsize=4096)
def _mixture(rows: tuple[Material, ...], test: str) -> np.ndarray:
    # a pure function of frozen table rows, asked for the same few dozen candidates on every photo
    weights = np.array([m.weight for m in rows], dtype=float)
    dists = np.stack([outcome_distribution(m, test) for m in rows])
    out = (weights[:, None] * dists).sum(axis=0) / weights.sum()
    out.flags.writeable = False
    return out


# --- what a candidate should read, in words ---------------------------------------------------------


def _levels_text(levels: Sequence[str], listed: Sequence[str]) -> str:
    ordered = sorted(listed, key=levels.index)
    return ordered[0] if len(ordered) == 1 else f"{ordered[0]} to {ordered[-1]}"


def expected_text(m: Material, test: str) -> str:
    if test == "refractive_index":
        if m.ri is None:
            return "no reading (opaque)"
        if m.ri.low >= REFRACTOMETER_LIMIT:
            return f"OTL (true RI {m.ri.text(3)})"
        high = "OTL" if m.ri.high > REFRACTOMETER_LIMIT else f"{m.ri.high:.3f}"
        if m.blink:
            return f"{m.ri.low:.3f} or {high} (spot, birefringence blink)"
        text = f"{m.ri.low:.3f}-{high}" if m.ri.high - m.ri.low > 5e-4 else high
        return f"{text} (spot)" if m.aggregate else text
    if test == "birefringence":
        if m.ri is None:
            return "not measurable (opaque)"
        if m.ri.low >= REFRACTOMETER_LIMIT:
            return "not measurable (OTL)"
        if m.biref is None:
            return "not measurable (aggregate)"
        if m.biref.high == 0:
            return "none (SR)"
        return m.biref.text(3) + (" (aggregate: usually not measurable)" if m.aggregate else "")
    if test == "specific_gravity":
        return m.sg.text(2)
    if test == "optic_character":
        return " or ".join(m.optic)
    if test == "optic_sign":
        if not m.optic_sign:
            return "no figure (aggregate)" if m.aggregate else "no figure (SR)"
        return " or ".join(m.optic_sign)
    if test == "pleochroism":
        return _levels_text(PLEOCHROISM, m.pleochroism)
    if test == "uv_fluorescence":
        text = _levels_text(FLUORESCENCE, m.uv_lw)
        return f"{text} ({m.uv_note})" if m.uv_note and m.uv_lw != ("inert",) else text
    raise KeyError(test)


def expected_for(rows: Sequence[Material], test: str) -> str:
    texts: list[str] = []
    for m in rows:
        t = expected_text(m, test)
        if t not in texts:
            texts.append(t)
    return " or ".join(texts)


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

    @classmethod
    def from_readings(cls, r: Readings) -> Observed:
        biref = r.birefringence
        if biref is None and r.ri is not None and r.ri_high is not None:
            biref = round(r.ri_high - r.ri, 4)
        return cls(
            ri=r.ri, ri_two_edges=r.ri is not None and r.ri_high is not None,
            ri_otl=bool(getattr(r, "ri_otl", None)) and r.ri is None, biref=biref, sg=r.sg, optic=r.optic,
            optic_sign=r.optic_sign, pleochroism=r.pleochroism, uv_lw=r.uv_lw,
        )

    def neutral_likelihood(self) -> float:
        """What a material of unknown properties scores: the broad density of every reading."""
        p = 1.0
        if self.ri is not None:
            p *= _BROAD_RI
        if self.ri_otl:
            p *= 0.5
        if self.biref is not None:
            p *= _BROAD_BIREF
        if self.sg is not None:
            p *= _BROAD_SG
        if self.optic:
            p *= 1.0 / len(OPTICS)
        if self.optic_sign:
            p *= 1.0 / len(SIGN_OUTCOMES)
        if self.pleochroism:
            p *= 1.0 / len(PLEOCHROISM)
        if self.uv_lw:
            p *= 1.0 / len(FLUORESCENCE)
        return p


def _ri_windows(m: Material, obs: Observed) -> list[tuple[float, float, float]]:
    """Where the (low) RI reading should fall: with two edges read, below the top by the birefringence."""
    assert m.ri is not None
    if obs.ri_two_edges and m.biref is not None and not m.aggregate:
        return [(m.ri.low, max(m.ri.low, m.ri.high - m.biref.low), 1.0)]
    return ri_bands(m)


def likelihood(m: Material, obs: Observed) -> float:
    """p(readings | material): product over the readings, each with a floor for robustness."""
    p = 1.0
    if obs.ri is not None:
        if m.ri is None:
            p *= FLOOR * _BROAD_RI
        else:
            s = ri_sigma(m)
            dens = sum(w * float(band_pdf(obs.ri, lo, hi, s)) for lo, hi, w in _ri_windows(m, obs))
            p *= (1 - FLOOR) * dens + FLOOR * _BROAD_RI
    elif obs.ri_otl:
        p *= (1 - FLOOR) * p_over_limit(m) + FLOOR
    if obs.biref is not None:
        if m.ri is None or m.ri.low >= REFRACTOMETER_LIMIT:
            p *= FLOOR * _BROAD_BIREF
        elif m.biref is None:
            p *= 0.1 * _BROAD_BIREF  # an aggregate shows no measurable birefringence
        else:
            dens = float(band_pdf(obs.biref, m.biref.low, m.biref.high, SIGMA_BIREF))
            p *= (1 - FLOOR) * dens + FLOOR * _BROAD_BIREF
    if obs.sg is not None:
        p *= (1 - FLOOR) * float(band_pdf(obs.sg, m.sg.low, m.sg.high, SIGMA_SG)) + FLOOR * _BROAD_SG
    if obs.optic:
        p *= optic_probs(m)[obs.optic]
    if obs.optic_sign:
        p *= sign_probs(m)[obs.optic_sign]
    if obs.pleochroism:
        p *= pleochroism_probs(m)[obs.pleochroism]
    if obs.uv_lw:
        p *= uv_probs(m)[obs.uv_lw]
    return p


def mixture_likelihood(rows: Sequence[Material], obs: Observed) -> float:
    total = sum(m.weight for m in rows)
    return sum(m.weight * likelihood(m, obs) for m in rows) / total


def fits(m: Material, obs: Observed) -> bool:
    """Every reading within the material's range plus three instrument errors (UV only when flatly opposed)."""
    if obs.ri is not None:
        if m.ri is None:
            return False
        s = 3 * ri_sigma(m)
        if not any(lo - s <= obs.ri <= hi + s for lo, hi, _ in ri_bands(m)):
            return False
    elif obs.ri_otl and m.ri is not None and m.ri.high < REFRACTOMETER_LIMIT - 2 * ri_sigma(m):
        return False
    if obs.biref is not None:
        if m.biref is None or m.ri is None or m.ri.low >= REFRACTOMETER_LIMIT:
            return False
        s = 3 * SIGMA_BIREF
        if not m.biref.low - s <= obs.biref <= m.biref.high + s:
            return False
    if obs.sg is not None and not m.sg.low - 3 * SIGMA_SG <= obs.sg <= m.sg.high + 3 * SIGMA_SG:
        return False
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
    if obs.uv_lw:
        d = min(abs(FLUORESCENCE.index(obs.uv_lw) - FLUORESCENCE.index(v)) for v in m.uv_lw)
        if d > 2:
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
    return ", ".join(parts)
