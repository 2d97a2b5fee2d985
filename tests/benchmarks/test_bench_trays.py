"""The tray benchmark's own measurements, on drawn stones with the tiny bundle (no ../shared): it composes
trays, finds and matches the stones, and prints figures that parse and agree with each other (the real
figures live in the README, from `python -m bench.bench_trays`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import bench_trays  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from bundle_fixture import build_bundle

    return build_bundle(tmp_path_factory.mktemp("bundle"), int8=False)


def test_two_drawn_trays_print_figures_that_parse(tiny, capsys):
    assert bench_trays.main(["--drawn", "--bundle", str(tiny), "--trays", "2", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CPU: ")
    trays = re.findall(r"^tray +\d+ (apart|touching) +\d+x\d+: placed +(\d+), found +(\d+), same top-1 +(\d+), "
                       r"extra (\d+), (\d+) ms/stone$", out, re.M)
    assert [t[0] for t in trays] == ["apart", "touching"] * 2
    placed = sum(int(t[1]) for t in trays)
    assert all(5 <= int(t[1]) <= 12 for t in trays)
    found = re.search(r"^found: ([\d.]+) % \((\d+)/(\d+)\); target >= 95 %: (met|NOT met)$", out, re.M)
    same = re.search(r"^same top-1 as alone: ([\d.]+) % \((\d+)/(\d+);", out, re.M)
    assert found and same and re.search(r"^time per stone: \d+ ms \(full report\)$", out, re.M)
    assert int(found[3]) == int(same[3]) == placed
    assert int(found[2]) == sum(int(t[2]) for t in trays) and int(same[2]) <= int(found[2])
    # drawn stones on a plain canvas, apart or pressed together: the splitting finds them all, and each
    # keeps the colour (so the tiny model's top-1) it has alone
    assert float(found[1]) == 100.0 and found[4] == "met"
    assert float(same[1]) >= 90.0


def test_neighbours_lay_each_found_stone_alone_and_count_the_same_answer(tiny, capsys):
    assert bench_trays.main(["--drawn", "--bundle", str(tiny), "--trays", "1", "--seed", "1", "--screen",
                             "--neighbours"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"^found: [\d.]+ % \((\d+)/\d+\)", out, re.M)
    alone = re.search(r"^the tray's top-1 for the stone alone at the same size on the same grey: ([\d.]+) % "
                      r"\((\d+)/(\d+) found\)$", out, re.M)
    assert found and alone
    assert int(alone[3]) == int(found[1]) > 0  # every stone found, laid alone once
    assert abs(float(alone[1]) - 100.0 * int(alone[2]) / int(alone[3])) < 0.051
    # a drawn stone keeps its colour alone or among others: the tiny model gives it the same answer
    assert int(alone[2]) >= int(alone[3]) - 1
    # without the flag the line is not printed
    assert bench_trays.main(["--drawn", "--bundle", str(tiny), "--trays", "1", "--seed", "1", "--screen"]) == 0
    assert "the tray's top-1 for the stone alone" not in capsys.readouterr().out


def test_drawn_stones_alone_print_three_figures(tiny, capsys):
    assert bench_trays.main(["--drawn", "--bundle", str(tiny), "--alone", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    got = re.findall(r"^same top-1 as its photo, (grey, own size|grey, tray size|own photo, tray size): "
                     r"([\d.]+) % \((\d+)/12\)$", out, re.M)
    assert [g[0] for g in got] == ["grey, own size", "grey, tray size", "own photo, tray size"]
    assert all(abs(float(g[1]) - 100.0 * int(g[2]) / 12) < 0.051 for g in got)
    # a drawn stone on plain paper keeps its colour wherever it is laid: the tiny model answers the same
    assert all(int(g[2]) >= 11 for g in got)
    assert "placed" not in out  # no trays composed


def test_touching_stones_touch_and_apart_stones_do_not():
    import cv2

    rng = np.random.default_rng(0)
    disc = np.zeros((60, 60), np.float32)
    cv2.circle(disc, (30, 30), 28, 1.0, -1)
    stones = [(np.full((60, 60, 3), 200, np.uint8), disc.copy()) for _ in range(4)]
    for touching in (False, True):
        photo, boxes = bench_trays.compose(stones, touching, rng, 210)
        assert len(boxes) == 4
        occupied = np.zeros(photo.shape[:2], np.int32)
        for x, y, w, h in boxes:
            occupied[y : y + h, x : x + w] += disc > 0.5
        assert (occupied > 1).any() == touching  # pressed masks overlap by PRESS px, apart ones never


def test_matching_is_one_to_one_by_box_centre():
    placed = [(0, 0, 100, 100), (100, 0, 100, 100)]
    found = [(30, 30, 50, 50), (10, 10, 80, 80), (150, 150, 10, 10)]
    assert bench_trays.match(placed, found) == {0: 1}  # the nearer centre wins; one outside every box


def test_a_cut_out_of_specks_or_facet_pieces_is_not_a_stone():
    import cv2

    disc = np.zeros((80, 80), np.float32)
    cv2.circle(disc, (40, 40), 35, 1.0, -1)
    assert not bench_trays.fragmentary(disc)
    heart = disc.copy()
    cv2.circle(heart, (40, 2), 14, 0.0, -1)  # a notch, as a heart's: still one stone's outline
    assert not bench_trays.fragmentary(heart)
    two = np.zeros((80, 160), np.float32)
    cv2.circle(two, (40, 40), 30, 1.0, -1)
    cv2.circle(two, (120, 40), 30, 1.0, -1)
    assert bench_trays.fragmentary(two)
    crescent = disc.copy()
    cv2.circle(crescent, (55, 40), 33, 0.0, -1)  # what is left of a pale stone whose facets read as background
    assert bench_trays.fragmentary(crescent)
