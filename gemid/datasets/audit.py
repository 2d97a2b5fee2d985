"""Audit a dataset before it trains anything: what each file really is, and which photos are the same photo.

`scan` decodes every file by content and hashes it; `build_report` turns the scan into one JSON-able dict
(class counts, sizes, formats, extension mismatches, unusable files, near-duplicate groups within a class,
across classes and across splits); `render` prints that same dict as tables. The CLI, the importer and the
exploration notebook all read this one report, so the table and the JSON can never disagree.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemid.datasets.importers import DatasetImportError, import_folder
from gemid.datasets.manifest import Row, read_manifest
from gemid.datasets.phash import (
    DEFAULT_COLOUR_THRESHOLD,
    DEFAULT_THRESHOLD,
    HASH_BITS,
    group_near_duplicates,
    max_distance,
)
from gemid.datasets.probe import ImageInfo, probe

REPORT_VERSION = 1


@dataclass(frozen=True)
class Scan:
    rows: list[Row]
    infos: list[ImageInfo]  # same order as rows; info.path is the resolved file path
    groups: list[list[int]]  # near-duplicate groups (row indices), clean images only
    threshold: int
    colour_threshold: float
    root: Path  # paths in reports are shown relative to this folder when below it
    elapsed_s: float

    def display_path(self, i: int) -> str:
        p = Path(self.infos[i].path)
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return str(p)

    @property
    def usable(self) -> list[int]:
        return [i for i, info in enumerate(self.infos) if info.ok]


def scan(
    rows: Sequence[Row],
    paths: Sequence[Path],
    *,
    root: Path,
    threshold: int = DEFAULT_THRESHOLD,
    colour_threshold: float = DEFAULT_COLOUR_THRESHOLD,
    jobs: int = 2,
    on_progress: Callable[[int], None] | None = None,
) -> Scan:
    """Probe and hash every file (threads: Pillow and OpenCV release the GIL while decoding and resizing),
    then group near-duplicates."""
    if not 0 <= threshold <= HASH_BITS:
        raise ValueError(f"threshold must be 0..{HASH_BITS} bits, got {threshold}")
    t0 = time.perf_counter()
    infos: list[ImageInfo] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for info in pool.map(probe, paths):
            infos.append(info)
            if on_progress:
                on_progress(1)
    hashes = [info.phash if info.ok else None for info in infos]
    exact = [info.sha256 if info.ok else "" for info in infos]
    colours = [info.colour if info.ok else None for info in infos]
    variants = [info.phash_variants if info.ok else None for info in infos]
    groups = group_near_duplicates(hashes, threshold, colours=colours, colour_threshold=colour_threshold,
                                   exact=exact, variants=variants)
    return Scan(rows=list(rows), infos=infos, groups=groups, threshold=threshold,
                colour_threshold=colour_threshold, root=Path(root),
                elapsed_s=time.perf_counter() - t0)


def rows_from(source: Path | str) -> tuple[list[Row], list[Path], Path, list[str]]:
    """(rows, resolved paths, display root, ignored files) of a folder-per-class or a manifest CSV."""
    source = Path(source)
    if source.is_dir():
        res = import_folder(source)
        return res.rows, [Path(r.path) for r in res.rows], res.root, res.ignored
    if not source.is_file():
        raise DatasetImportError(f"{source}: no such folder or file")
    m = read_manifest(source)
    paths = [m.resolve(r) for r in m.rows]
    return list(m.rows), paths, common_root(paths, m.root), []


def common_root(paths: Sequence[Path], default: Path) -> Path:
    """The folder the photos share (paths in reports read 'Ruby/ruby_1.jpg', not a long absolute path)."""
    if not paths:
        return default
    try:
        return Path(os.path.commonpath([str(Path(p).parent) for p in paths]))
    except ValueError:  # mixed relative/absolute paths
        return default


def scan_source(source: Path | str, **kwargs: Any) -> Scan:
    """Scan a folder-per-class or a manifest CSV (keyword arguments as for `scan`)."""
    rows, paths, root, _ = rows_from(source)
    return scan(rows, paths, root=root, **kwargs)


def _stats(values: list[int]) -> dict[str, float | int | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _group_entry(s: Scan, g: list[int]) -> dict[str, Any]:
    hashes = [info.phash for info in s.infos]
    variants = [info.phash_variants for info in s.infos]
    return {
        "size": len(g),
        "species": sorted({s.rows[i].species for i in g}),
        "splits": sorted({s.rows[i].split for i in g} - {""}),
        "max_distance": max_distance(hashes, g, variants),
        "exact": len({s.infos[i].sha256 for i in g}) == 1,
        "members": [{"path": s.display_path(i), "species": s.rows[i].species, "split": s.rows[i].split,
                     "width": s.infos[i].width, "height": s.infos[i].height} for i in g],
    }


def build_report(s: Scan, *, source: str) -> dict[str, Any]:
    """Everything the audit found, as plain JSON types. `problems_found` is what `--strict` fails on."""
    ok = s.usable
    classes: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(s.rows):
        c = classes.setdefault(r.species, {"files": 0, "usable": 0, "splits": Counter()})
        c["files"] += 1
        c["usable"] += int(s.infos[i].ok)
        if r.split:
            c["splits"][r.split] += 1
    for c in classes.values():
        c["splits"] = dict(sorted(c["splits"].items()))

    groups = [_group_entry(s, g) for g in s.groups]
    within = [g for g in groups if len(g["species"]) == 1]
    across_classes = [g for g in groups if len(g["species"]) > 1]
    across_splits = [g for g in groups if len(g["splits"]) > 1]
    unusable = [{"path": s.display_path(i), "species": s.rows[i].species, "problem": info.problem,
                 "message": info.message} for i, info in enumerate(s.infos) if not info.ok]
    mismatches = [{"path": s.display_path(i), "extension": Path(info.path).suffix.lower(),
                   "extension_format": info.extension_format, "content_format": info.content_format,
                   "has_alpha": info.has_alpha}
                  for i, info in enumerate(s.infos) if info.extension_mismatch]
    splits = Counter(r.split for r in s.rows if r.split)
    return {
        "report_version": REPORT_VERSION,
        "source": source,
        "hash_bits": HASH_BITS,
        "threshold_bits": s.threshold,
        "colour_threshold": s.colour_threshold,
        "elapsed_s": round(s.elapsed_s, 2),
        "files": len(s.rows),
        "usable": len(ok),
        "n_classes": len(classes),
        "classes": dict(sorted(classes.items())),
        "splits": dict(sorted(splits.items())),
        "sizes": {"width": _stats([s.infos[i].width for i in ok]), "height": _stats([s.infos[i].height for i in ok])},
        "formats": dict(sorted(Counter(info.content_format or "unknown" for info in s.infos).items())),
        "with_alpha": [s.display_path(i) for i in ok if s.infos[i].has_alpha],
        "extension_mismatches": mismatches,
        "unusable": unusable,
        "duplicates": {
            "within_class": within,
            "across_classes": across_classes,
            "across_splits": across_splits,
            "photos_in_groups": sum(g["size"] for g in groups),
        },
        "problems_found": bool(unusable or across_classes or across_splits),
    }


def render(report: dict[str, Any], console: Any) -> None:
    """Print the report as rich tables (the same content as the JSON)."""
    from rich.table import Table

    console.print(f"[bold]Audit of {report['source']}[/bold]: {report['files']} files, {report['usable']} usable, "
                  f"{report['n_classes']} classes, near-duplicate threshold {report['threshold_bits']}/{report['hash_bits']} bits "
                  f"and {report['colour_threshold']:g} delta-E, "
                  f"{report['elapsed_s']} s")
    has_splits = bool(report["splits"])
    t = Table(title="Photos per class", show_lines=False)
    t.add_column("species")
    t.add_column("files", justify="right")
    t.add_column("usable", justify="right")
    if has_splits:
        for name in report["splits"]:
            t.add_column(name, justify="right")
    for species, c in report["classes"].items():
        extra = [str(c["splits"].get(name, 0)) for name in report["splits"]] if has_splits else []
        t.add_row(species, str(c["files"]), str(c["usable"]), *extra)
    counts = [c["files"] for c in report["classes"].values()]
    t.caption = f"min {min(counts)} / median {statistics.median(counts):g} / max {max(counts)} files per class"
    console.print(t)

    sz = report["sizes"]
    t = Table(title="Image sizes and formats")
    t.add_column("")
    t.add_column("min", justify="right")
    t.add_column("median", justify="right")
    t.add_column("max", justify="right")
    for axis in ("width", "height"):
        t.add_row(axis, *(f"{sz[axis][k]:g}" if sz[axis][k] is not None else "-" for k in ("min", "median", "max")))
    console.print(t)
    console.print("formats by content: " + ", ".join(f"{k} {v}" for k, v in report["formats"].items())
                  + f"; with alpha: {len(report['with_alpha'])}")

    if report["extension_mismatches"]:
        t = Table(title="Extension does not match content")
        for col in ("path", "named", "really", "alpha"):
            t.add_column(col, overflow="fold")
        for m in report["extension_mismatches"]:
            t.add_row(m["path"], m["extension"] or "(none)", m["content_format"], "yes" if m["has_alpha"] else "")
        console.print(t)
    if report["unusable"]:
        t = Table(title="Unusable files (excluded from training)", style="red")
        for col in ("path", "problem", "detail"):
            t.add_column(col, overflow="fold")
        for u in report["unusable"]:
            t.add_row(u["path"], u["problem"], u["message"])
        console.print(t)

    dup = report["duplicates"]
    for key, title in (("across_classes", "Near-duplicates ACROSS CLASSES (label conflicts?)"),
                       ("across_splits", "Near-duplicates ACROSS SPLITS (leaks)"),
                       ("within_class", "Near-duplicates within a class")):
        groups = dup[key]
        if not groups:
            console.print(f"{title}: none")
            continue
        t = Table(title=f"{title}: {len(groups)} group(s)", show_lines=True)
        for col in ("#", "species", "members", "max bits", "exact"):
            t.add_column(col, overflow="fold")
        for n, g in enumerate(groups, 1):
            members = "\n".join(f"{m['path']}" + (f" [{m['split']}]" if m["split"] else "") for m in g["members"])
            t.add_row(str(n), ", ".join(g["species"]), members, str(g["max_distance"]), "yes" if g["exact"] else "")
        console.print(t)
    verdict = "[red]problems found[/red]" if report["problems_found"] else "[green]no blocking problems[/green]"
    console.print(f"{verdict} ({dup['photos_in_groups']} photos in near-duplicate groups)")
