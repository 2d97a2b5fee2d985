"""bench_robustness's arithmetic: top-1 / top-5 per condition, the drop from clean and the worst condition."""

from __future__ import annotations

import numpy as np
from bench_loader import bench_module
from bundle_fixture import LABELS, build_bundle

from gemid.vision.bundle import load_bundle


def test_summary_counts_hits_and_finds_the_worst_drop(tmp_path) -> None:
    bundle = load_bundle(build_bundle(tmp_path / "b", int8=False))
    n, c = 10, len(LABELS)
    y = np.arange(n) % c
    logits = np.zeros((n, 3, 1, c))
    for i in range(n):
        logits[i, 0, 0, y[i]] = 9.0  # clean: all right
        logits[i, 1, 0, (y[i] + 1) % c if i < 4 else y[i]] = 9.0  # warm: 4 wrong
        logits[i, 2, 0, (y[i] + 1) % c if i < 1 else y[i]] = 9.0  # blur: 1 wrong
    with bench_module("bench_robustness") as bench:
        res = bench.summarise(logits, y, bundle, ("clean", "warm_lamp", "blur"), ("off",))["off"]
    rows = res["conditions"]
    assert rows["clean"]["top1"] == 1.0 and rows["warm_lamp"]["top1"] == 0.6 and rows["blur"]["top1"] == 0.9
    assert rows["warm_lamp"]["drop_pt"] == 40.0 and res["worst"] == "warm_lamp" and res["worst_drop_pt"] == 40.0
    assert rows["warm_lamp"]["top5"] == 1.0 and rows["warm_lamp"]["top1_ci"][0] < 0.6 < rows["warm_lamp"]["top1_ci"][1]
