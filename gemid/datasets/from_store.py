"""Confirmed desk photos → a training manifest.

The service's store (gemid.serve.field) lists the confirmed photos; this module, which knows nothing of the
service, copies them under `OUT/photos/<species>/<report id>.<ext>` and writes `OUT/manifest.csv` in the format
`gemid train` reads (paths relative to the manifest, split `train`, `source` = `field:<report id>:<date>`).

Near-duplicates are found with the splitter's own rule (gemid.datasets.audit.scan: rotation-aware pHash, the
colour guard, byte-identical files): a photo near one of the `against` manifest's photos is dropped (it would
train on what that manifest validates on, or teach nothing new), and of field photos near each other only the
oldest is kept. With `against`, `OUT/combined.csv` holds that manifest's rows and the kept field photos, ready
to train on.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gemid.datasets.audit import scan
from gemid.datasets.manifest import Row, read_manifest, write_manifest
from gemid.datasets.thresholds import DEFAULT_COLOUR_THRESHOLD, DEFAULT_THRESHOLD


@dataclass(frozen=True)
class FieldPhoto:
    path: Path  # the stored photo
    species: str
    report_id: str
    date: str  # ISO date the stone was photographed


@dataclass
class Export:
    manifest: Path
    combined: Path | None
    kept: list[FieldPhoto] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # report id → why


def _folder(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "unnamed"


def export(photos: Sequence[FieldPhoto], out: Path, *, against: Path | None = None,
           threshold: int = DEFAULT_THRESHOLD, colour_threshold: float = DEFAULT_COLOUR_THRESHOLD) -> Export:
    """Copy the photos that are not near-duplicates and write the manifest(s); oldest photos first."""
    out = Path(out)
    base = read_manifest(against) if against is not None else None
    base_rows = list(base.rows) if base else []
    base_paths = [base.resolve(r) for r in base_rows] if base else []
    n = len(photos)
    rows = [Row(path=str(p.path), species=p.species) for p in photos] + base_rows
    s = scan(rows, [p.path for p in photos] + base_paths, root=out, threshold=threshold,
             colour_threshold=colour_threshold)
    dropped: dict[str, str] = {}
    for i, info in enumerate(s.infos[:n]):
        if not info.ok:
            dropped[photos[i].report_id] = f"unusable photo ({info.message or info.problem})"
    for g in s.groups:
        field_members = [i for i in g if i < n and photos[i].report_id not in dropped]
        known = [i for i in g if i >= n]
        if known:
            for i in field_members:
                dropped[photos[i].report_id] = f"near-duplicate of {base_rows[known[0] - n].path} in {against}"
            continue
        for i in field_members[1:]:
            dropped[photos[i].report_id] = f"near-duplicate of report {photos[field_members[0]].report_id}"
    result = Export(manifest=out / "manifest.csv", combined=None, dropped=dropped)
    written: list[Row] = []
    for p in photos:
        if p.report_id in dropped:
            continue
        target = out / "photos" / _folder(p.species) / f"{p.report_id}{p.path.suffix.lower()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p.path, target)
        written.append(Row(path=str(target.resolve()), species=p.species, split="train",
                           source=f"field:{p.report_id}:{p.date}"))
        result.kept.append(p)
    write_manifest(written, result.manifest)
    if base is not None:
        result.combined = out / "combined.csv"
        absolute = [replace(r, path=str(path)) for r, path in zip(base_rows, base_paths, strict=True)]
        write_manifest(absolute + written, result.combined)
    return result
