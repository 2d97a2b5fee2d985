"""The fault benchmark's own measurements, at a small size against a real `gemid serve`: what it reports as
held must be what happened (the figures themselves live in the README, from `python -m bench.bench_faults`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_loader import bench_module

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def bench():
    with bench_module("bench_faults") as module:
        yield module


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from bundle_fixture import build_bundle

    return build_bundle(tmp_path_factory.mktemp("bundle"), int8=False)


def test_a_padded_photo_is_the_same_stone_at_the_size_asked(bench):
    from gemid.vision.decode import decode

    small, big, other = bench._stone(), bench.padded_photo(3.0), bench.padded_photo(3.0, tag=1)
    assert abs(len(big) / 1e6 - 3.0) < 0.1 and big != other
    assert (decode(big).rgb == decode(small).rgb).all()


def test_kill_minus_9_leaves_no_workers_and_loses_no_acknowledged_report(bench, tiny, tmp_path):
    env = {"GEMID_INFERENCE_CONCURRENCY": "2"}
    result = bench.kill_and_restart(tiny, tmp_path / "data", env, requests=6)
    assert result["workers_before"] >= 2
    assert result["acknowledged"] >= 3  # killed once half of them were answered
    assert (result["orphans_after_5s"], result["lost_after_restart"]) == (0, 0)


def test_an_idle_flood_is_measured_while_readyz_answers(bench, tiny, tmp_path):
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    proc = bench.start(tmp_path / "data", tiny, port, GEMID_INFERENCE_CONCURRENCY="1", GEMID_HEADER_TIMEOUT="2",
                       GEMID_ANALYSIS="threads")
    try:
        bench.wait_ready(proc, base)
        result = bench.idle_flood(base, port, 40, 2.0)
    finally:
        bench.stop(proc)
        proc.stdout.close()
    assert result["readyz"] == [200] * 5 and result["refused_by_os"] == 0
    assert 1.5 < result["unfinished_head_closed_after_s"] < 5
    assert result["flood_still_open_after"] == 0  # the flood had waited past the 2 s head deadline too
