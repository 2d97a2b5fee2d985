"""Turn labelled photos into manifest rows: a folder per class, or a CSV whose columns we map.

Importers only list and label; they never decide a file is good by its name. Decoding and the audit
(`gemid.datasets.audit`) decide what is usable, so a PNG named .jpg is kept and a zero-byte .jpg is reported.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from gemid.datasets.manifest import SPLITS, ManifestError, Row
from gemid.datasets.probe import EXTENSION_FORMAT, HEAD_BYTES, sniff_format

_GENERIC_NAMES = {"train", "training", "val", "valid", "validation", "test", "images", "data", "photos"}


class DatasetImportError(ManifestError):
    """The source layout or CSV cannot be imported as asked."""


@dataclass(frozen=True)
class ImportResult:
    rows: list[Row]
    root: Path  # folder the source lives in; relative paths in reports are shown against it
    ignored: list[str] = field(default_factory=list)  # files that are neither named nor shaped like images


def default_source(root: Path) -> str:
    """A short name for where photos came from: gems68/train -> 'gems68'."""
    root = root.resolve()
    return root.parent.name if root.name.lower() in _GENERIC_NAMES and root.parent.name else root.name


def _looks_like_image(path: Path) -> bool:
    """Named like an image, or starts like one (an image with no or a wrong extension is still an image)."""
    if path.suffix.lower() in EXTENSION_FORMAT:
        return True
    try:
        with open(path, "rb") as f:
            return sniff_format(f.read(HEAD_BYTES)) is not None
    except OSError:
        return False


def import_folder(root: Path | str, *, source: str | None = None) -> ImportResult:
    """One row per file under `<root>/<Species>/` (any depth); the top folder name is the label, verbatim."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetImportError(f"{root}: not a folder (expected <folder>/<Species>/<photo>)")
    root = root.resolve()
    source = source if source is not None else default_source(root)
    rows: list[Row] = []
    ignored: list[str] = []
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for stray in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        ignored.append(str(stray.relative_to(root)))
    for cls in class_dirs:
        for p in sorted(cls.rglob("*")):
            rel = p.relative_to(root)
            if any(part.startswith(".") for part in rel.parts) or not p.is_file():
                continue
            if _looks_like_image(p):
                rows.append(Row(path=str(p), species=cls.name, source=source))
            else:
                ignored.append(str(rel))
    if not rows:
        raise DatasetImportError(f"{root}: no photos found; expected one sub-folder per species holding its photos")
    return ImportResult(rows=rows, root=root, ignored=ignored)


def import_csv(
    csv_path: Path | str,
    *,
    path_column: str = "path",
    species_column: str = "species",
    colour_column: str | None = None,
    clarity_column: str | None = None,
    split_column: str | None = None,
    source_column: str | None = None,
    source: str | None = None,
    root: Path | str | None = None,
) -> ImportResult:
    """Rows from any CSV with a path and a label column; relative paths resolve against `root` (CSV folder)."""
    csv_path = Path(csv_path)
    base = Path(root).resolve() if root else csv_path.parent.resolve()
    source = source if source is not None else default_source(csv_path.parent.resolve())
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetImportError(f"{csv_path}: cannot read as UTF-8 text ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    have = set(reader.fieldnames or ())
    # A manifest-shaped CSV keeps its grades, splits and sources without being told the column names.
    colour_column = colour_column or ("colour_grade" if "colour_grade" in have else None)
    clarity_column = clarity_column or ("clarity_grade" if "clarity_grade" in have else None)
    split_column = split_column or ("split" if "split" in have else None)
    source_column = source_column or ("source" if "source" in have else None)
    wanted = [c for c in (path_column, species_column, colour_column, clarity_column, split_column,
                          source_column) if c]
    missing = [c for c in wanted if c not in have]
    if missing:
        raise DatasetImportError(f"{csv_path}: no column(s) {', '.join(missing)}; it has {', '.join(sorted(have))}")
    rows: list[Row] = []
    for line, rec in enumerate(reader, start=2):
        path = (rec.get(path_column) or "").strip()
        species = (rec.get(species_column) or "").strip()
        if not path or not species:
            raise DatasetImportError(f"{csv_path}:{line}: empty {path_column!r} or {species_column!r}")
        split = (rec.get(split_column) or "").strip().lower() if split_column else ""
        split = {"valid": "val", "validation": "val", "training": "train"}.get(split, split)
        if split not in SPLITS:
            raise DatasetImportError(f"{csv_path}:{line}: split {split!r} is not train, val, test or empty")
        p = Path(path).expanduser()
        rows.append(Row(
            path=str(p if p.is_absolute() else (base / p).resolve()),
            species=species,
            colour_grade=(rec.get(colour_column) or "").strip() if colour_column else "",
            clarity_grade=(rec.get(clarity_column) or "").strip() if clarity_column else "",
            split=split,
            source=((rec.get(source_column) or "").strip() if source_column else "") or source,
        ))
    if not rows:
        raise DatasetImportError(f"{csv_path}: no rows")
    return ImportResult(rows=rows, root=base)
