"""Gemmological reference data: the property table, the model's label list, and the instrument model.

`table` loads and validates `gem_properties.csv`; `instruments` turns a property range and an instrument's
precision into reading probabilities (used by `gemid.vision.guidance` and `gemid.vision.rerank`).
"""

from gemid.vision.gemdata.table import (
    Material,
    PropertyTable,
    PropertyTableError,
    Span,
    default_table,
    load_table,
)

__all__ = ["Material", "PropertyTable", "PropertyTableError", "Span", "default_table", "load_table"]
