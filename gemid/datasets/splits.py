"""Stratified, seeded, near-duplicate-aware train/validation splits (hold-out or k-fold).

A validation score means something only if no validation photo (or a resized copy of it) was trained on.
So the unit we split is a near-duplicate *group* (a lone photo is a group of one): each group goes whole to
one side, and groups are dealt per species so every species keeps its share. The shuffle is seeded from the
seed and the species name (a string seed, hashed with SHA-512 by `random`), so the result does not depend on
PYTHONHASHSEED, on the order classes are listed, or on other species being added.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gemid.datasets.manifest import FOLD_PREFIX, Row


class SplitError(ValueError):
    """Split parameters that cannot work (fraction outside (0, 1), fold outside 0..K-1, ...)."""


@dataclass(frozen=True)
class Unit:
    members: tuple[int, ...]  # row indices, kept together
    species: str  # the species the unit is counted under (its most common one)
    key: str  # smallest path: a stable base order before the seeded shuffle


def _units(rows: Sequence[Row], groups: Iterable[Sequence[int]], movable: set[int]) -> list[Unit]:
    seen: set[int] = set()
    units: list[Unit] = []
    for g in groups:
        members = tuple(sorted(i for i in g if i in movable))
        seen.update(g)
        if members:
            units.append(_unit(rows, members))
    units.extend(_unit(rows, (i,)) for i in sorted(movable - seen))
    return units


def _unit(rows: Sequence[Row], members: tuple[int, ...]) -> Unit:
    counts = Counter(rows[i].species for i in members)
    top = max(counts.values())
    species = min(s for s, c in counts.items() if c == top)
    return Unit(members=members, species=species, key=min(rows[i].path for i in members))


def _by_species(units: list[Unit], seed: int) -> dict[str, list[Unit]]:
    out: dict[str, list[Unit]] = {}
    for u in sorted(units, key=lambda u: u.key):
        out.setdefault(u.species, []).append(u)
    for species, us in out.items():
        random.Random(f"gemid-split:{seed}:{species}").shuffle(us)
    return out


def _holdout(units: list[Unit], val_fraction: float) -> set[int]:
    """Units dealt to validation until the species' target is met; a group too big to fit stays in train."""
    n = sum(len(u.members) for u in units)
    target = min(max(round(n * val_fraction), 1), n - 1) if n >= 2 else 0
    val: set[int] = set()
    taken = 0
    for u in units:
        if taken + len(u.members) <= target:
            val.update(u.members)
            taken += len(u.members)
    return val


def _kfold(units: list[Unit], k: int, rng: random.Random) -> dict[int, int]:
    """Each photo's fold: largest units first, each to the fold with fewest photos so far (ties broken by the
    seeded rng). The same (units, k, rng) always deal the same folds, so fold I of one call is fold I of any."""
    loads = [0] * k
    fold_of: dict[int, int] = {}
    for u in sorted(units, key=lambda u: -len(u.members)):  # stable: the shuffle orders equal sizes
        low = min(loads)
        f = rng.choice([i for i, load in enumerate(loads) if load == low])
        loads[f] += len(u.members)
        fold_of.update(dict.fromkeys(u.members, f))
    return fold_of


def assign_splits(
    rows: Sequence[Row],
    groups: Iterable[Sequence[int]] = (),
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    kfold: int | None = None,
    fold: int | None = 0,
) -> list[Row]:
    """Rows with `split` set to train/val. Rows already in `test` stay there; a photo that is a
    near-duplicate of a test photo gets an empty split (used by neither side) rather than leaking it.

    `groups` are near-duplicate groups as lists of row indices (from `phash.group_near_duplicates`).
    With `kfold=K`, fold `fold` (0-based) is validation and the other K-1 folds are training; with
    `fold=None` every row is named by its fold instead (`fold0` … `fold<K-1>`), for `gemid train --cv`.
    """
    if kfold is None:
        if not 0.0 < val_fraction < 1.0:
            raise SplitError(f"--val-fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    else:
        if kfold < 2:
            raise SplitError(f"--kfold needs at least 2 folds, got {kfold}")
        if fold is not None and not 0 <= fold < kfold:
            raise SplitError(f"--fold must be in 0..{kfold - 1}, got {fold}")
    groups = [list(g) for g in groups]
    test = {i for i, r in enumerate(rows) if r.split == "test"}
    near_test = {i for g in groups if test.intersection(g) for i in g} - test
    movable = set(range(len(rows))) - test - near_test

    val: set[int] = set()
    fold_of: dict[int, int] = {}
    for species, units in _by_species(_units(rows, groups, movable), seed).items():
        if kfold is None:
            val |= _holdout(units, val_fraction)
        else:
            dealt = _kfold(units, kfold, random.Random(f"gemid-kfold:{seed}:{species}"))
            fold_of |= dealt
            val |= {i for i, f in dealt.items() if f == fold}

    def split_of(i: int) -> str:
        if i in test:
            return "test"
        if i in near_test:
            return ""
        if kfold is not None and fold is None:
            return f"{FOLD_PREFIX}{fold_of[i]}"
        return "val" if i in val else "train"

    return [r.with_split(split_of(i)) for i, r in enumerate(rows)]


def straddling_groups(rows: Sequence[Row], groups: Iterable[Sequence[int]]) -> list[list[int]]:
    """Groups whose members sit in more than one non-empty split: leaks between train, val and test."""
    return [list(g) for g in groups if len({rows[i].split for i in g} - {""}) > 1]
