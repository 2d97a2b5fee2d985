"""A stone's weight in carats: the desk's scale reading when entered, otherwise estimated from its measured
face-up size, its cut shape and the specific gravity of what it is.

The estimate is the trade's standard formula for loose or mounted coloured stones (the one GIA teaches,
collected by R. J. Williams and discussed by C. I. Carmona, "Estimating weights of mounted colored stones",
Gems & Gemology 34(3), 1998): carats = length x width x depth x SG x a shape factor, lengths in millimetres.
A photo taken from above shows length and width, not depth, so the depth is a typical share of the width
(DEPTH: faceted stones 55-80 %, the range of commercial and native cuts; cabochons 30-60 %), and the range
states it: the low end takes the shallow depth, the low SG, the low shape factor and the size's lower bound,
the high end the opposite and the formula's own allowance for bulge (BULGE). The shape is read from above
and is sometimes wrong between neighbours (90.6 % top-1 on held-out photos, less on the scale card), so the
range spans every shape the report names as at least SHAPE_SPAN probable; the middle figure is the most
probable shape's. A tumbled or rough stone has no shape factor and gets no estimate; a stone referred to a laboratory
gets none either (what it is, and so its SG, is in question) unless an SG reading was entered.

It is an estimate, labelled as one everywhere: bulging pavilions, thick girdles and deep native cuts weigh
more (the formula's own authors add 2-6 % for bulge), and only a scale reading is a weight.
"""

from __future__ import annotations

from collections.abc import Sequence

from gemid.gemmology.table import PropertyTable, Span, default_table
from gemid.report import Candidate, Conclusion, Readings, Stone, StoneWeight

# carats per (mm^3 x SG) for each face-up shape, low and high: the standard formula's factors (see the module's
# docstring) where one name covers two of its shapes: a cushion is the square cushion's 0.0018 to the
# rectangular cushion's 0.0022, a square the square cut's 0.0023 to the square step cut's 0.0025, an emerald
# cut the step cut's 0.0025 to the rectangle's 0.0026, a marquise 0.0016-0.0017; trillion from the
# triangular brilliant's diamond factor 0.0057 over diamond's SG 3.52
SHAPE_FACTOR = {"round": (0.0018, 0.0018), "oval": (0.0020, 0.0020), "cushion": (0.0018, 0.0022),
                "emerald_cut": (0.0025, 0.0026), "square": (0.0023, 0.0025), "pear": (0.0018, 0.0018),
                "marquise": (0.0016, 0.0017), "heart": (0.0018, 0.0018), "trillion": (0.0016, 0.0016),
                "cabochon": (0.0027, 0.0027)}
DEPTH = {"faceted": (0.55, 0.65, 0.80), "cabochon": (0.30, 0.45, 0.60)}  # low, typical, high: depth / width
BULGE = 1.06  # the high end allows the formula's own 2-6 % for bulging pavilions and thick girdles
SG_READING = 0.02  # a hydrostatic SG reading's spread, either side
CANDIDATE_MASS = 0.9  # an uncertain stone's SG spans the candidates that hold this much probability
SHAPE_SPAN = 0.15  # the range also spans the other shapes at least this probable (the shape is read from above)


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
    found = _sg(conclusion, candidates, readings, table or default_table())
    if shape not in SHAPE_FACTOR or found is None:
        return None
    sg, sg_words = found
    size = stone.size
    assert size.length_mm is not None and size.width_mm is not None
    length, width, u = size.length_mm, size.width_mm, size.uncertainty_mm or 0.0
    shapes = [shape] + [k for k, p in stone.shape.others.items() if p >= SHAPE_SPAN and k in SHAPE_FACTOR]
    lows, highs = [], []
    for k in shapes:
        (f_low, f_high), (d_low, _, d_high) = SHAPE_FACTOR[k], DEPTH["cabochon" if k == "cabochon" else "faceted"]
        w_low, w_high = max(0.0, width - u), width + u
        lows.append(max(0.0, length - u) * w_low * (d_low * w_low) * sg.low * f_low)
        highs.append((length + u) * w_high * (d_high * w_high) * sg.high * f_high * BULGE)
    (f_low, f_high), (d_low, d_mid, d_high) = SHAPE_FACTOR[shape], DEPTH["cabochon" if shape == "cabochon" else "faceted"]
    mid = length * width * (d_mid * width) * (sg.low + sg.high) / 2 * (f_low + f_high) / 2
    factor = f"{f_low}" if f_low == f_high else f"{f_low}-{f_high}"
    also = [k.replace("_", " ") for k in shapes[1:]]
    return StoneWeight(basis="estimate", carats=round(mid, 2), low=round(min(lows), 2), high=round(max(highs), 2),
                       method=(f"estimate: length x width x depth x SG x {factor} ({shape.replace('_', ' ')}"
                               + (f"; the range also as {' or '.join(also)}" if also else "")
                               + f"), depth {d_low:.0%}-{d_high:.0%} of the width (not seen from above), {sg_words}, "
                               "up to 6 % for bulge; weigh the stone to replace it"))
