"""The gemmological property table: what each material reads on the standard instruments.

`gem_properties.csv` holds one row per material with its source; several rows may describe one model
label (a trade name that covers two materials, e.g. Sunstone = oligoclase or labradorite), and rows without
a label are look-alikes and simulants a desk meets (spinel, glass, CZ, moissanite ...). `gems68_labels.json`
lists the labels the shipped model predicts; every one must map to a row. The loader validates everything,
so a typo in the CSV fails at load time instead of silently skewing a likelihood.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

DATA_DIR = Path(__file__).resolve().parent / "data"
PROPERTIES_CSV = DATA_DIR / "gem_properties.csv"
LABELS_JSON = DATA_DIR / "gems68_labels.json"

OPTICS = ("SR", "DR", "AGG", "ADR")
OPTIC_SIGNS = ("uniaxial+", "uniaxial-", "biaxial+", "biaxial-")
PLEOCHROISM = ("none", "weak", "moderate", "strong")
FLUORESCENCE = ("inert", "weak", "moderate", "strong")
ORIGINS = ("natural", "synthetic", "imitation")

# plausible physical bounds: a value outside is a typo, not a gem
RI_BOUNDS = (1.3, 2.9)
SG_BOUNDS = (0.9, 7.5)
BIREF_BOUNDS = (0.0, 0.3)
HARDNESS_BOUNDS = (1.0, 10.0)

COLUMNS = (
    "name", "label", "weight", "mineral", "family", "origin", "lookalike_of", "ri_low", "ri_high",
    "biref_low", "biref_high", "optic", "optic_sign", "sg_low", "sg_high", "hardness_low", "hardness_high",
    "pleochroism", "uv_lw", "uv_sw", "uv_note", "source", "note",
)


class PropertyTableError(ValueError):
    """The property table (or a labels file) is malformed; the message names the row and column."""


@dataclass(frozen=True, slots=True)
class Span:
    """A closed range of values, low <= high."""

    low: float
    high: float

    def text(self, digits: int) -> str:
        if abs(self.high - self.low) < 10 ** (-digits) / 2:
            return f"{self.low:.{digits}f}"
        return f"{self.low:.{digits}f}-{self.high:.{digits}f}"

    def overlaps(self, other: Span) -> bool:
        return self.low <= other.high and other.low <= self.high


@dataclass(frozen=True, slots=True)
class Material:
    """One row of the table. Tuples of levels list what is normal for it, the first being most typical."""

    name: str
    label: str | None
    weight: float
    mineral: str
    family: str
    origin: str
    lookalike_of: tuple[str, ...]
    ri: Span | None  # None: opaque, no refractometer reading
    biref: Span | None  # None: not measurable (aggregate)
    optic: tuple[str, ...]
    optic_sign: tuple[str, ...]
    sg: Span
    hardness: Span
    pleochroism: tuple[str, ...]
    uv_lw: tuple[str, ...]
    uv_sw: tuple[str, ...]
    uv_note: str
    source: str
    note: str

    def __hash__(self) -> int:
        # by name, not by all 19 fields and their spans: the guidance's caches are keyed on rows, and
        # hashing every field cost more than the rest of a recommendation. Equal rows share a name.
        return hash(self.name)

    @property
    def aggregate(self) -> bool:
        """Usually an aggregate: read as a spot RI on a curved surface, no birefringence."""
        return self.optic[0] == "AGG"

    @property
    def blink(self) -> bool:
        """Aggregate of a strongly birefringent mineral (carbonates, malachite): on a spot reading the shadow
        edge jumps between the two extreme indices, so a reading sits at one end, not in between."""
        return self.aggregate and self.ri is not None and self.biref is not None and self.biref.high >= 0.1

    @property
    def opaque(self) -> bool:
        return self.ri is None

    @property
    def display(self) -> str:
        return self.label if self.label and self.label == self.name else self.name


@dataclass(frozen=True)
class PropertyTable:
    materials: tuple[Material, ...]
    model_labels: tuple[str, ...]
    _by_label: Mapping[str, tuple[Material, ...]] = field(repr=False, default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(cls, materials: Iterable[Material], model_labels: Iterable[str]) -> PropertyTable:
        materials = tuple(materials)
        by_label: dict[str, list[Material]] = {}
        for m in materials:
            if m.label:
                by_label.setdefault(m.label, []).append(m)
        frozen = MappingProxyType({k: tuple(v) for k, v in by_label.items()})
        return cls(materials=materials, model_labels=tuple(model_labels), _by_label=frozen)

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label the table maps (the model's and any extra)."""
        return tuple(self._by_label)

    def lookalikes(self) -> tuple[Material, ...]:
        """Rows that are not a model label: look-alikes and simulants."""
        return tuple(m for m in self.materials if not m.label)

    def rows_for(self, label: str) -> tuple[Material, ...]:
        """The rows a candidate label stands for; empty when the table does not know it.

        Looks up the model label first, then a row name ("Red spinel"), then a mineral or family
        ("Spinel", "Garnet"), so a model retrained with other class names still gets properties.
        """
        if label in self._by_label:
            return self._by_label[label]
        key = label.strip().lower()
        for attr in ("name", "mineral", "family"):
            rows = tuple(m for m in self.materials if getattr(m, attr).lower() == key and m.origin == "natural")
            if not rows and attr == "name":
                rows = tuple(m for m in self.materials if m.name.lower() == key)
            if rows:
                return rows
        return ()

    def mineral_of(self, label: str) -> str | None:
        rows = self.rows_for(label)
        return rows[0].mineral if rows else None

    def family_of(self, label: str) -> str | None:
        rows = self.rows_for(label)
        return rows[0].family if rows else None


# --- loading ------------------------------------------------------------------------------------------


def _float(row: dict[str, str], col: str, where: str, *, optional: bool = False) -> float | None:
    raw = (row.get(col) or "").strip()
    if not raw:
        if optional:
            return None
        raise PropertyTableError(f"{where}: column '{col}' is empty")
    try:
        return float(raw)
    except ValueError:
        raise PropertyTableError(f"{where}: column '{col}' is not a number: {raw!r}") from None


def _span(row: dict[str, str], prefix: str, where: str, bounds: tuple[float, float], *, optional: bool) -> Span | None:
    low = _float(row, f"{prefix}_low", where, optional=optional)
    high = _float(row, f"{prefix}_high", where, optional=optional)
    if low is None and high is None:
        return None
    if low is None or high is None:
        raise PropertyTableError(f"{where}: {prefix}_low and {prefix}_high must both be given or both empty")
    if low > high:
        raise PropertyTableError(f"{where}: {prefix}_low {low} > {prefix}_high {high}")
    if low < bounds[0] or high > bounds[1]:
        raise PropertyTableError(f"{where}: {prefix} {low}-{high} outside plausible {bounds[0]}-{bounds[1]}")
    return Span(low, high)


def _levels(row: dict[str, str], col: str, where: str, allowed: tuple[str, ...], *, optional: bool = False) -> tuple[str, ...]:
    raw = (row.get(col) or "").strip()
    values = tuple(v.strip() for v in raw.split("|") if v.strip())
    if not values and not optional:
        raise PropertyTableError(f"{where}: column '{col}' is empty")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise PropertyTableError(f"{where}: column '{col}' has {bad}, allowed: {', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise PropertyTableError(f"{where}: column '{col}' repeats a value")
    return values


def _material(row: dict[str, str], line: int) -> Material:
    name = (row.get("name") or "").strip()
    where = f"gem_properties.csv line {line} ({name or 'no name'})"
    if not name:
        raise PropertyTableError(f"{where}: no name")
    for col in ("mineral", "family", "source"):
        if not (row.get(col) or "").strip():
            raise PropertyTableError(f"{where}: column '{col}' is empty (every row needs it)")
    origin = (row.get("origin") or "").strip()
    if origin not in ORIGINS:
        raise PropertyTableError(f"{where}: origin {origin!r} not one of {ORIGINS}")
    weight = _float(row, "weight", where)
    assert weight is not None
    if weight <= 0:
        raise PropertyTableError(f"{where}: weight must be > 0")
    optic = _levels(row, "optic", where, OPTICS)
    signs = _levels(row, "optic_sign", where, OPTIC_SIGNS, optional=True)
    if ("DR" in optic) != bool(signs):
        raise PropertyTableError(f"{where}: an optic sign is required exactly when DR is among the optics")
    ri = _span(row, "ri", where, RI_BOUNDS, optional=True)
    note = (row.get("note") or "").strip()
    if ri is None and "opaque" not in note.lower():
        raise PropertyTableError(f"{where}: RI may be empty only for an opaque material (say so in the note)")
    biref = _span(row, "biref", where, BIREF_BOUNDS, optional=True)
    if optic[0] == "DR" and biref is None:
        raise PropertyTableError(f"{where}: a DR material needs a birefringence range")
    if optic == ("SR",) and biref is not None and biref.high > 0:
        raise PropertyTableError(f"{where}: a singly refractive material has birefringence 0")
    sg = _span(row, "sg", where, SG_BOUNDS, optional=False)
    hardness = _span(row, "hardness", where, HARDNESS_BOUNDS, optional=False)
    assert sg is not None and hardness is not None
    label = (row.get("label") or "").strip() or None
    lookalike_of = tuple(v.strip() for v in (row.get("lookalike_of") or "").split("|") if v.strip())
    return Material(
        name=name, label=label, weight=weight, mineral=row["mineral"].strip(), family=row["family"].strip(),
        origin=origin, lookalike_of=lookalike_of, ri=ri, biref=biref, optic=optic, optic_sign=signs, sg=sg,
        hardness=hardness, pleochroism=_levels(row, "pleochroism", where, PLEOCHROISM),
        uv_lw=_levels(row, "uv_lw", where, FLUORESCENCE), uv_sw=_levels(row, "uv_sw", where, FLUORESCENCE),
        uv_note=(row.get("uv_note") or "").strip(), source=row["source"].strip(), note=note,
    )


def load_labels(path: Path = LABELS_JSON) -> tuple[str, ...]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        labels = data["labels"] if isinstance(data, dict) else data
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PropertyTableError(f"cannot read the labels list {path}: {exc}") from None
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise PropertyTableError(f"{path}: 'labels' must be a list of non-empty strings")
    return tuple(labels)


def load_table(path: Path = PROPERTIES_CSV, labels_path: Path = LABELS_JSON) -> PropertyTable:
    """Read and validate the table; every model label must be mapped, every look-alike must point at labels."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise PropertyTableError(f"{path.name}: missing columns {missing}")
            materials = [_material(row, i + 2) for i, row in enumerate(reader)]
    except OSError as exc:
        raise PropertyTableError(f"cannot read the property table {path}: {exc}") from None
    names = [m.name for m in materials]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PropertyTableError(f"{path.name}: duplicate names {dupes}")
    model_labels = load_labels(labels_path)
    table = PropertyTable.build(materials, model_labels)
    unmapped = [lab for lab in model_labels if lab not in table.labels]
    if unmapped:
        raise PropertyTableError(f"{path.name}: model labels with no row: {unmapped}")
    known = set(table.labels)
    for m in materials:
        if m.label and m.lookalike_of:
            raise PropertyTableError(f"{m.name}: lookalike_of is for rows without a label")
        bad = [x for x in m.lookalike_of if x != "*" and x not in known]
        if bad:
            raise PropertyTableError(f"{m.name}: lookalike_of names unknown labels {bad}")
    return table


@lru_cache(maxsize=1)
def default_table() -> PropertyTable:
    """The packaged table (read-only, loaded once)."""
    return load_table()
