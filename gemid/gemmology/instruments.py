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
from gemid.readings import REFRACTOMETER_LIMIT

SIGMA_RI = 0.005  # refractometer, flat polished facet
SIGMA_RI_SPOT = 0.010  # spot (distant-vision) reading on a cabochon or aggregate
SIGMA_BIREF = 0.003  # difference of two readings: shared errors cancel
# Birefringence is under-read when the stone is not turned through both extremes: below the range the
# reading may fall far; above it only by the instrument's error.
SIGMA_BIREF_UNDER = 0.012
SIGMA_SG = 0.03  # hydrostatic balance: the best it does, on a large stone
# A weighing error of ~0.01 ct in air and in water moves SG by about 0.08 at 1 ct and 0.13 at 0.5 ct
# (SG = w / (w - w_water): the error grows as the stone gets lighter); fitted as 0.08 * w^-0.7.
SG_ERROR_1CT = 0.08
SG_ERROR_EXPONENT = 0.7
ASSUMED_WEIGHT_CT = 0.5  # no weight given: assume a small stone, whose SG is imprecise, not a large one
# Two RI edges this far apart show the stone doubly refractive: singly refractive rows cannot give them.
TWO_EDGES_MIN = 0.004
FLOOR = 0.02  # share of a reading explained by "something went wrong" (bad contact, mis-read scale ...)

# broad densities for the floor: a reading anywhere in the plausible span
BROAD_RI = 1.0 / (REFRACTOMETER_LIMIT - 1.40)
BROAD_BIREF = 1.0 / 0.30
BROAD_SG = 1.0 / 6.6


def sigma_sg(weight_ct: float | None = None) -> float:
    """The hydrostatic balance's SG error for a stone of `weight_ct` carats (a small stone when unknown)."""
    w = weight_ct if weight_ct else ASSUMED_WEIGHT_CT
    return max(SIGMA_SG, SG_ERROR_1CT * w ** -SG_ERROR_EXPONENT)


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
                       "hydrostatic balance: ±0.03 on a large stone, ±0.08 at 1 ct, ±0.13 at 0.5 ct; loose stone",
                       SIGMA_SG, 0.85),
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
        # the same lamp's other tube: benitoite glows blue under it and is inert under long-wave, flame-fusion
        # blue sapphire shows a chalky blue-white (an outside gemmologist: the table's column went unused)
        InstrumentTest("uv_fluorescence_sw", "short-wave UV lamp (254 nm)", "Check short-wave UV fluorescence",
                       "SW UV lamp: weak evidence, varies with locality and treatment", None, 0.7),
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
        if m.ri.high > REFRACTOMETER_LIMIT:  # the high edge is off the scale: a desk reads the low one
            return [(m.ri.low, m.ri.low, 1.0)]
        return [(m.ri.low, m.ri.low, 0.5), (m.ri.high, m.ri.high, 0.5)]
    return [(m.ri.low, m.ri.high, 1.0)]


def p_over_limit(m: Material, limit: float = REFRACTOMETER_LIMIT) -> float:
    """Chance the refractometer shows no edge below its limit (opaque stones give no reading either)."""
    if m.ri is None:
        return 1.0
    s = ri_sigma(m)
    return float(sum(w * (1.0 - band_cdf(limit, lo, hi, s)) for lo, hi, w in ri_bands(m)))


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


def uv_probs(m: Material, short: bool = False) -> dict[str, float]:
    """Long-wave (365 nm) fluorescence, or with `short` short-wave (254 nm)."""
    return ordinal_probs(FLUORESCENCE, m.uv_sw if short else m.uv_lw, _UV_DECAY)


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
        return _binned(SG_EDGES, m.sg.low, m.sg.high, sigma_sg())
    if test == "optic_character":
        p = optic_probs(m)
        return np.array([p[o] for o in OPTICS])
    if test == "optic_sign":
        p = sign_probs(m)
        return np.array([p[o] for o in SIGN_OUTCOMES])
    if test == "pleochroism":
        p = pleochroism_probs(m)
        return np.array([p[o] for o in PLEOCHROISM])
    if test in ("uv_fluorescence", "uv_fluorescence_sw"):
        p = uv_probs(m, short=test == "uv_fluorescence_sw")
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
    if test == "uv_fluorescence_sw":
        return _levels_text(FLUORESCENCE, m.uv_sw)
    raise KeyError(test)


def expected_for(rows: Sequence[Material], test: str) -> str:
    """What a candidate's rows read on `test`, each outcome once ("DR or ADR or SR", not an outside try's
    "DR or DR or ADR or SR or ADR or DR" for zircon's rows)."""
    texts: list[str] = []
    for m in rows:
        for t in expected_text(m, test).split(" or "):
            if t not in texts:
                texts.append(t)
    return " or ".join(texts)


# what `expected_for` says of a test the stone cannot be given ("0.254 (aggregate: usually not measurable)" too)
UNREADABLE = ("not measurable", "no reading")


def unreadable(rows: Sequence[Material], test: str) -> bool:
    """Whether a stone of these rows cannot be given this test at all (the birefringence of an opaque stone,
    an aggregate or a stone over the refractometer's limit; the RI of a metallic one). Guidance does not
    recommend it for the likeliest candidate, nor a conclusion name it to exclude a look-alike, whatever it
    would rule out (an outside gemmologist: "Measure the birefringence: Diamond not measurable (OTL) — confirms
    Diamond")."""
    return bool(rows) and all(any(w in expected_for((m,), test) for w in UNREADABLE) for m in rows)
