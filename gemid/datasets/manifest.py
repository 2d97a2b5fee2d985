"""The manifest: one CSV row per photo, the single source of truth for what trains and what validates.

Columns: path, species, colour_grade, clarity_grade, split, source. Paths are stored relative to the
manifest's folder when they live below it, absolute otherwise. Grades may be empty.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, fields, replace
from pathlib import Path

COLUMNS = ("path", "species", "colour_grade", "clarity_grade", "split", "source")
SPLITS = ("train", "val", "test", "")


@dataclass(frozen=True)
class Row:
    path: str
    species: str
    colour_grade: str = ""
    clarity_grade: str = ""
    split: str = ""
    source: str = ""

    def with_split(self, split: str) -> Row:
        return replace(self, split=split)


@dataclass(frozen=True)
class Manifest:
    rows: tuple[Row, ...]
    root: Path  # folder relative paths are resolved against

    def resolve(self, row: Row) -> Path:
        p = Path(row.path)
        return p if p.is_absolute() else (self.root / p)

    def split(self, name: str) -> list[Row]:
        return [r for r in self.rows if r.split == name]

    @property
    def labels(self) -> list[str]:
        return sorted({r.species for r in self.rows})


class ManifestError(ValueError):
    pass


def read_manifest(path: Path | str) -> Manifest:
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "species"} - set(reader.fieldnames or ())
        if missing:
            raise ManifestError(f"{path}: missing column(s) {', '.join(sorted(missing))}; need {', '.join(COLUMNS)}")
        rows = []
        for i, rec in enumerate(reader, start=2):
            if not (rec.get("path") or "").strip() or not (rec.get("species") or "").strip():
                raise ManifestError(f"{path}:{i}: empty path or species")
            split = (rec.get("split") or "").strip()
            if split not in SPLITS:
                raise ManifestError(f"{path}:{i}: split '{split}' is not one of train, val, test or empty")
            rows.append(Row(**{k: (rec.get(k) or "").strip() for k in COLUMNS}))
    return Manifest(rows=tuple(rows), root=path.parent.resolve())


def write_manifest(manifest: Manifest | list[Row], path: Path | str, root: Path | str | None = None) -> Path:
    """Write rows; paths below `root` (default: the manifest's folder) are written relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = manifest.rows if isinstance(manifest, Manifest) else tuple(manifest)
    src_root = manifest.root if isinstance(manifest, Manifest) else None
    out_root = Path(root).resolve() if root else path.parent.resolve()
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            p = Path(r.path)
            if not p.is_absolute() and src_root is not None:
                p = src_root / p
            p = p.resolve() if p.is_absolute() else p
            try:
                rel = p.relative_to(out_root)
            except ValueError:
                rel = p
            w.writerow({f.name: (str(rel) if f.name == "path" else getattr(r, f.name)) for f in fields(Row)})
    return path


def manifest_sha256(path: Path | str) -> str:
    """Hash of the manifest file: recorded in the bundle so a model names the exact data it saw."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
