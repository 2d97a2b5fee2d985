"""Where the benchmarks find the gems68 photos, and the one-photo-per-species sample several of them use."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GEMS = REPO.parent / "shared" / "data" / "gems68" / "train"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def one_per_species(n: int, root: Path = GEMS) -> list[Path]:
    """The first photo of each species folder, in name order, up to `n`; empty without the photos."""
    found: list[Path] = []
    if root.is_dir():
        for species in sorted(p for p in root.iterdir() if p.is_dir()):
            first = next((f for f in sorted(species.iterdir()) if f.suffix.lower() in PHOTO_SUFFIXES), None)
            if first:
                found.append(first)
            if len(found) == n:
                break
    return found
