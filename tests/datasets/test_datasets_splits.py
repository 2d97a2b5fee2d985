"""Splits: stratified by species, seeded, deterministic, and a near-duplicate group is never cut."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gemid.datasets.manifest import Row
from gemid.datasets.splits import SplitError, assign_splits, straddling_groups

SIZES = {"Ruby": 50, "Emerald": 30, "Aquamarine Blue": 12, "Topaz": 5, "Lonely": 1}


def _rows() -> list[Row]:
    return [Row(path=f"/d/{s}/{k:03d}.jpg", species=s) for s, n in SIZES.items() for k in range(n)]


def _groups(rows: list[Row], seed: int = 1, *, cross: bool = False) -> list[list[int]]:
    """Random near-duplicate groups of 2-6 photos within a species (with `cross`, across species too)."""
    rng = random.Random(seed)
    idx = list(range(len(rows)))
    rng.shuffle(idx)
    if not cross:
        idx.sort(key=lambda i: rows[i].species)  # stable: shuffled within each species
    groups, k = [], 0
    while k < 60:
        size = rng.randint(2, 6)
        g = idx[k:k + size]
        if not cross:
            g = [i for i in g if rows[i].species == rows[g[0]].species]
        if len(g) > 1:
            groups.append(sorted(g))
        k += size
    return groups


def _by_path(rows: list[Row]) -> dict[str, str]:
    return {r.path: r.split for r in rows}


def test_holdout_is_stratified_and_keeps_groups_whole():
    rows = _rows()
    groups = _groups(rows)
    out = assign_splits(rows, groups, val_fraction=0.2, seed=0)
    assert straddling_groups(out, groups) == []
    for species, n in SIZES.items():
        val = sum(1 for r in out if r.species == species and r.split == "val")
        if n == 1:
            assert val == 0  # a lone photo must train
        else:
            target = min(max(round(0.2 * n), 1), n - 1)
            assert target - 5 <= val <= target  # never over; short by less than one group (max size 6)
    assert {r.split for r in out} == {"train", "val"}
    assert Counter(r.split for r in out)["val"] == pytest.approx(0.2 * len(rows), abs=8)


def test_without_groups_counts_are_exact():
    out = assign_splits(_rows(), val_fraction=0.25, seed=3)
    for species, n in SIZES.items():
        val = sum(1 for r in out if r.species == species and r.split == "val")
        assert val == (0 if n == 1 else min(max(round(0.25 * n), 1), n - 1))


def test_same_inputs_and_seed_give_the_same_split_whatever_the_row_order():
    rows, groups = _rows(), _groups(_rows())
    a = assign_splits(rows, groups, seed=7)
    assert a == assign_splits(rows, groups, seed=7)
    perm = list(range(len(rows)))
    random.Random(0).shuffle(perm)
    where = {old: new for new, old in enumerate(perm)}
    shuffled = [rows[i] for i in perm]
    b = assign_splits(shuffled, [[where[i] for i in g] for g in groups], seed=7)
    assert _by_path(a) == _by_path(b)
    assert _by_path(a) != _by_path(assign_splits(rows, groups, seed=8))


def test_a_new_species_does_not_reshuffle_the_others():
    rows = _rows()
    more = rows + [Row(path=f"/d/New/{k}.jpg", species="New") for k in range(10)]
    a, b = _by_path(assign_splits(rows, seed=0)), _by_path(assign_splits(more, seed=0))
    assert all(b[p] == s for p, s in a.items())


def test_kfold_puts_every_photo_in_val_exactly_once_and_keeps_groups_whole():
    rows, groups = _rows(), _groups(_rows())
    k = 4
    folds = [assign_splits(rows, groups, kfold=k, fold=f, seed=2) for f in range(k)]
    for f in folds:
        assert straddling_groups(f, groups) == []
    times_in_val = Counter(r.path for f in folds for r in f if r.split == "val")
    assert set(times_in_val.values()) == {1}
    assert len(times_in_val) == len(rows)
    ruby_val = [sum(1 for r in f if r.species == "Ruby" and r.split == "val") for f in folds]
    assert max(ruby_val) - min(ruby_val) <= 6  # balanced up to one group


def test_fold_all_names_each_row_by_the_fold_in_which_it_is_val():
    rows, groups = _rows(), _groups(_rows())
    named = assign_splits(rows, groups, kfold=3, fold=None, seed=2)
    assert straddling_groups(named, groups) == []
    for f in range(3):
        val = {r.path for r in assign_splits(rows, groups, kfold=3, fold=f, seed=2) if r.split == "val"}
        assert val == {r.path for r in named if r.split == f"fold{f}"}


def test_test_rows_stay_and_their_near_duplicates_are_held_out():
    rows = _rows()
    rows[0] = rows[0].with_split("test")
    groups = [[0, 1, 2], [3, 4]]
    out = assign_splits(rows, groups, seed=0)
    assert out[0].split == "test"
    assert out[1].split == "" and out[2].split == ""  # neither trains nor validates on a test look-alike
    assert out[3].split == out[4].split != ""
    assert straddling_groups(out, groups) == []


def test_straddling_groups_finds_leaks():
    rows = [Row("a", "X", split="train"), Row("b", "X", split="val"), Row("c", "X", split="train")]
    assert straddling_groups(rows, [[0, 1], [0, 2]]) == [[0, 1]]


@pytest.mark.parametrize("kwargs", [{"val_fraction": 0.0}, {"val_fraction": 1.0}, {"val_fraction": -0.1},
                                    {"kfold": 1}, {"kfold": 5, "fold": 5}, {"kfold": 3, "fold": -1}])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(SplitError):
        assign_splits(_rows(), **kwargs)


def test_many_random_group_layouts_never_leak():
    rows = _rows()
    for seed in range(25):
        groups = _groups(rows, seed, cross=True)
        assert any(len({rows[i].species for i in g}) > 1 for g in groups)
        out = assign_splits(rows, groups, val_fraction=0.3, seed=seed)
        assert straddling_groups(out, groups) == []
