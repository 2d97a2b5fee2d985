"""The manifest: one CSV row per photo, the single source of truth for what trains and what validates.

Columns: path, species, colour_grade, clarity_grade, split, source. Grades may be empty. Paths are written
relative to the manifest's folder (`../photos/Ruby/r1.jpg` when the photos sit beside it), so a folder
holding a manifest and its photos can move or be copied to another machine. Reading also accepts absolute
paths, which manifests written before held for photos outside their folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path

COLUMNS = ("path", "species", "colour_grade", "clarity_grade", "split", "source")
SPLITS = ("train", "val", "test", "")
FOLD_PREFIX = "fold"  # K-fold manifests (`gemid dataset split --kfold K --fold all`) name each row's fold: fold0, fold1…


def is_split(name: str) -> bool:
    """train / val / test / empty, or a cross-validation fold `fold<i>`."""
    return name in SPLITS or is_fold(name)


def is_fold(name: str) -> bool:
    return name.startswith(FOLD_PREFIX) and name[len(FOLD_PREFIX):].isdigit()


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
        """The photo's absolute path. `root` is resolved (no symbolic links in it) and written paths climb
        with `..` before they descend, so collapsing the `..` by name is what the file system would do."""
        p = Path(row.path)
        return p if p.is_absolute() else Path(os.path.normpath(self.root / p))

    def split(self, name: str) -> list[Row]:
        return [r for r in self.rows if r.split == name]

    @property
    def folds(self) -> list[str]:
        """The cross-validation folds this manifest names (fold0, fold1, …), in order; empty for a hold-out split."""
        return sorted({r.split for r in self.rows if is_fold(r.split)}, key=lambda f: int(f[len(FOLD_PREFIX):]))

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
            if not is_split(split):
                raise ManifestError(f"{path}:{i}: split '{split}' is not one of train, val, test, fold<i> or empty")
            rows.append(Row(**{k: (rec.get(k) or "").strip() for k in COLUMNS}))
    return Manifest(rows=tuple(rows), root=path.parent.resolve())


def write_manifest(manifest: Manifest | list[Row], path: Path | str, root: Path | str | None = None) -> Path:
    """Write rows with paths relative to the manifest's folder.

    Relative paths in the rows are taken relative to the Manifest's own root, or for bare rows to `root`
    (default: the current folder, as Python would open them)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = manifest.rows if isinstance(manifest, Manifest) else tuple(manifest)
    base = Path(root) if root is not None else manifest.root if isinstance(manifest, Manifest) else Path.cwd()
    folder = path.parent.resolve()
    photos = [(base / r.path).absolute() for r in rows]
    # Folders resolved (the manifest's folder is read back resolved), the file's own name kept: a photo
    # that is a link into a cache keeps its name.
    photos = [p.parent.resolve() / p.name for p in photos]
    path.write_bytes(_render(rows, photos, lambda p: _relative(p, folder)))
    return path


def _relative(photo: Path, folder: Path) -> str:
    try:
        return Path(os.path.relpath(photo, folder)).as_posix()
    except ValueError:  # another drive (Windows): there is no relative path
        return str(photo)


def _render(rows: Iterable[Row], photos: Iterable[Path], path_text: Callable[[Path], str]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    for r, p in zip(rows, photos, strict=True):
        w.writerow({f.name: (path_text(p) if f.name == "path" else getattr(r, f.name)) for f in fields(Row)})
    return buf.getvalue().encode("utf-8")


def manifest_sha256(path: Path | str) -> str:
    """Hash of the manifest file: recorded in the bundle so a model names the exact data it saw."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def legacy_manifest_sha256(path: Path | str) -> str:
    """The hash the same rows had when manifests held absolute paths for photos outside their folder (and
    paths relative to it below it), as bundles trained before relative paths record it."""
    m = read_manifest(path)
    photos = [m.resolve(r).resolve() for r in m.rows]

    def old_text(p: Path) -> str:
        try:
            return str(p.relative_to(m.root))
        except ValueError:
            return str(p)

    return hashlib.sha256(_render(m.rows, photos, old_text)).hexdigest()


def manifest_matches(path: Path | str, sha256: str | None) -> bool:
    """Is the manifest at `path` the one a model or an evaluation recorded as `sha256`? Its bytes' hash, or
    for a manifest that names photos outside its folder with `..`, the hash of those rows written the way
    manifests were before paths became relative: a shipped model's manifest, imported again, still matches.

    Only then: rows below the folder are written alike either way, and re-rendering them would let a copy of
    the file in another folder, naming other photos, pass for the original."""
    path = Path(path)
    if not sha256 or not path.is_file():
        return False
    if manifest_sha256(path) == sha256:
        return True
    try:
        if not any(Path(r.path).parts[:1] == ("..",) for r in read_manifest(path).rows):
            return False
        return legacy_manifest_sha256(path) == sha256
    except (ManifestError, OSError, ValueError):
        return False
