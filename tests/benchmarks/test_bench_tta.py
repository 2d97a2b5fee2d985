"""bench_tta's arithmetic: the 8 dihedral views are distinct, and the means and gained / lost counts are right."""

from __future__ import annotations

import numpy as np
from bench_loader import bench_module


def test_views_are_the_eight_symmetries_of_the_square() -> None:
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    with bench_module("bench_tta") as bench:
        v = bench.views(x)
    assert len(v) == 8 and all(a.shape == x.shape for a in v.values())
    flat = {k: a.tobytes() for k, a in v.items()}
    assert len(set(flat.values())) == 8  # no two views alike on an asymmetric crop
    np.testing.assert_array_equal(v["rot90"][0, 0], np.rot90(x[0, 0]))
    np.testing.assert_array_equal(v["anti_transpose"][0, 0], np.rot90(x[0, 0], 2).T)


def test_summary_scores_each_view_and_counts_what_the_mean_changes() -> None:
    y = np.array([0, 1, 2, 0])
    right = np.eye(3)[y] * 5.0
    logits = {k: right.copy() for k in ("identity", "flip_lr", "flip_ud", "rot90", "rot180", "rot270",
                                         "transpose", "anti_transpose")}
    logits["identity"][3] = [0.0, 5.0, 0.0]  # one view wrong on photo 3: the other seven outvote it
    for k in ("flip_lr", "flip_ud", "rot90", "rot180", "rot270", "transpose", "anti_transpose"):
        logits[k][2] = [9.0, 0.0, 0.0]  # seven views wrong on photo 2, the identity right
    with bench_module("bench_tta") as bench:
        res = bench.summarise(logits, y, 1.0)
    assert res["view identity"]["top1"] == 0.75 and res["view flip_lr"]["top1"] == 0.75
    assert res["8 views (dihedral), mean logits"]["top1"] == 0.75
    assert res["8 views vs 1"] == {"gained": 1, "lost": 1}
    lo, hi = res["view identity"]["top1_ci"]
    assert lo < 0.75 < hi
