"""Small statistics shared by training (model cards, evaluation) and the service (field accuracy)."""

from __future__ import annotations

import math


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion `p` seen in `n` trials: honest on small counts (a handful of
    validation photos a class, a few confirmed stones a species). (nan, nan) when n is 0."""
    if n <= 0:
        return float("nan"), float("nan")
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)
