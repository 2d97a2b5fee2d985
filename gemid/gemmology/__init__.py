"""Gemmological reference data: the property table, the model's label list, and the instrument model.

`table` loads and validates `gem_properties.csv`; `instruments` turns a property range and an instrument's
precision into reading probabilities (used by `gemid.gemmology.guidance` and `gemid.gemmology.rerank`).
"""

from gemid.gemmology.table import (
    Material,
    PropertyTable,
    PropertyTableError,
    Span,
    default_table,
    load_table,
)

__all__ = ["Material", "PropertyTable", "PropertyTableError", "Span", "default_table", "load_table"]
