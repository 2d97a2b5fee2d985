"""A stone's weight in carats: the desk's scale reading when entered, otherwise estimated from its measured
face-up size, its cut shape and the specific gravity of what it is.

The estimate is the trade's standard formula for loose or mounted coloured stones (the one GIA teaches,
collected by R. J. Williams and discussed by C. I. Carmona, "Estimating weights of mounted colored stones",
Gems & Gemology 34(3), 1998): carats = length x width x depth x SG x a shape factor, lengths in millimetres.
A photo taken from above shows length and width, not depth, so the depth is a typical share of the width
(DEPTH: faceted stones 55-80 %, the range of commercial and native cuts; cabochons 30-60 %), and the range
states it: the low end takes the shallow depth, the low SG and the size's lower bound, the high end the
opposite. A tumbled or rough stone has no shape factor and gets no estimate; a stone referred to a laboratory
gets none either (what it is, and so its SG, is in question) unless an SG reading was entered.

It is an estimate, labelled as one everywhere: bulging pavilions, thick girdles and deep native cuts weigh
more (the formula's own authors add 2-6 % for bulge), and only a scale reading is a weight.
"""

from __future__ import annotations

from collections.abc import Sequence

from gemid.gemmology.table import PropertyTable, Span, default_table
from gemid.report import Candidate, Conclusion, Readings, Stone, StoneWeight

# carats per (mm^3 x SG) for each face-up shape: the standard formula's factors (see the module's docstring);
# trillion from the triangular brilliant's diamond factor 0.0057 over diamond's SG 3.52
SHAPE_FACTOR = {"round": 0.0018, "oval": 0.0020, "cushion": 0.0022, "emerald_cut": 0.0025, "square": 0.0023,
                "pear": 0.0018, "marquise": 0.0016, "heart": 0.0018, "trillion": 0.0016, "cabochon": 0.0027}
DEPTH = {"faceted": (0.55, 0.65, 0.80), "cabochon": (0.30, 0.45, 0.60)}  # low, typical, high: depth / width
SG_READING = 0.02  # a hydrostatic SG reading's spread, either side
CANDIDATE_MASS = 0.9  # an uncertain stone's SG spans the candidates that hold this much probability


def _sg(conclusion: Conclusion, candidates: Sequence[Candidate], readings: Readings | None,
        table: PropertyTable) -> tuple[Span, str] | None:
    """The specific gravity the estimate uses and where it comes from, or None when it is not known."""
    if readings is not None and readings.sg is not None:
        return Span(readings.sg - SG_READING, readings.sg + SG_READING), f"SG {readings.sg:.2f} as read"
    if conclusion.decision == "identified" and conclusion.label:
        names = [conclusion.label]
    elif conclusion.decision == "uncertain":
        names, mass = [], 0.0
        for c in candidates:
            names.append(c.label)
            mass += c.probability
            if mass >= CANDIDATE_MASS:
                break
    else:
        return None
    spans = [m.sg for n in names for m in table.rows_for(n)]
    if not spans:
        return None
    sg = Span(min(s.low for s in spans), max(s.high for s in spans))
    who = names[0] if len(names) == 1 else f"the {len(names)} likely candidates"
    return sg, f"SG {sg.text(2)} of {who}"


def estimate_weight(stone: Stone | None, conclusion: Conclusion, candidates: Sequence[Candidate],
                    readings: Readings | None, table: PropertyTable | None = None) -> StoneWeight | None:
    """The stone's weight section: the scale reading, or the estimate from its size (None when neither)."""
    if readings is not None and readings.weight_ct is not None:
        return StoneWeight(basis="scale", carats=readings.weight_ct, method="the desk's scale reading")
    if stone is None or stone.size is None or stone.size.status != "measured" or stone.shape is None:
        return None
    shape = stone.shape.label
    factor = SHAPE_FACTOR.get(shape)
    found = _sg(conclusion, candidates, readings, table or default_table())
    if factor is None or found is None:
        return None
    sg, sg_words = found
    size = stone.size
    assert size.length_mm is not None and size.width_mm is not None
    length, width, u = size.length_mm, size.width_mm, size.uncertainty_mm or 0.0
    d_low, d_mid, d_high = DEPTH["cabochon" if shape == "cabochon" else "faceted"]
    mid = length * width * (d_mid * width) * (sg.low + sg.high) / 2 * factor
    low = max(0.0, length - u) * max(0.0, width - u) * (d_low * max(0.0, width - u)) * sg.low * factor
    high = (length + u) * (width + u) * (d_high * (width + u)) * sg.high * factor
    depth = f"{d_low:.0%}-{d_high:.0%}"
    return StoneWeight(basis="estimate", carats=round(mid, 2), low=round(low, 2), high=round(high, 2), method=(
        f"estimate: length x width x depth x SG x {factor} ({shape.replace('_', ' ')}), depth {depth} of the width "
        f"(not seen from above), {sg_words}; weigh the stone to replace it"))
