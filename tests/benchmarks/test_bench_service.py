"""The service benchmark's own HTTP client against a real `gemid serve`: it must count what the server
answered (a report is a success, a refusal a failure), or the benchmark's figures mean nothing."""

from __future__ import annotations

import asyncio
import os

import pytest
from bench_loader import bench_module

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def bench():
    with bench_module("bench_service") as module:
        yield module


@pytest.fixture(scope="module")
def server(bench, tmp_path_factory):
    from gemid.vision.bundle import DEFAULT_BUNDLE_DIR

    tmp = tmp_path_factory.mktemp("bench-service")
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    proc = bench.start_server(port, tmp / "data", DEFAULT_BUNDLE_DIR, "int8", 1)
    try:
        bench.wait_ready(proc, base)
        yield base, tmp / "data", proc.pid, bench.cli_key(tmp / "data", "technician", "bench")
    finally:
        bench.stop(proc)


def test_every_identification_is_counted_and_stored(bench, server):
    base, data_dir, _, key = server
    photos = bench.photos(256, 5)
    level = asyncio.run(bench.run_level(base, photos, 2, 7, 60.0, grade=False, key=key))
    assert (level.sent, level.failed, len(level.latencies_ms)) == (7, 0, 7)
    assert level.throughput > 0 and 0 < level.pct(50) <= level.pct(99)
    stored = [p for p in (data_dir / "images").glob("??/??/*.jpg")]
    assert len(stored) == 5  # 7 requests of 5 distinct photos: content-addressed, one file each


def test_refusals_count_as_failures(bench, server):
    base, _, _, key = server
    not_a_photo = b"%PDF-1.4 this is no photo" * 10
    level = asyncio.run(bench.run_level(base, [not_a_photo], 2, 4, 60.0, grade=False, key=key))
    assert (level.sent, level.failed) == (4, 4)
    unsigned = asyncio.run(bench.run_level(base, bench.photos(256, 1), 1, 2, 60.0, grade=False))
    assert (unsigned.sent, unsigned.failed) == (2, 2)  # a 401 is no identification


def test_the_request_is_a_valid_multipart_upload(bench):
    request = bench.identify_request(8000, b"\xff\xd8JPEG", grade=False)
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/identify?grade=false HTTP/1.1\r\n")
    length = int(next(ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")).split(b":")[1])
    assert length == len(body)
    assert b'name="images"; filename="stone.jpg"' in body and b"\xff\xd8JPEG" in body


def test_peak_memory_of_the_server_and_of_each_worker(bench, server):
    _, _, pid, _ = server
    own, kids = bench.tree_peak_memory_mb(pid)
    # the server process imports the app and reads the bundle; each analysis worker (one per core) also holds
    # an ONNX Runtime session of the int8 model; the resource tracker is a bare interpreter
    workers = max(1, os.cpu_count() or 1)
    assert own > 50
    assert len(kids) == workers + 1 and all(k > 50 for k in kids[:workers]) and kids[-1] < kids[workers - 1]
    assert bench.tree_peak_memory_mb(2**22 + 12345) is None  # no such process


def test_phone_photo_copies_differ_in_bytes_not_in_pixels(bench):
    import numpy as np

    from gemid.datasets.synth import StoneSpec
    from gemid.datasets.synth.phone import encode_photo, phone_frame
    from gemid.vision.decode import decode

    frame = phone_frame(StoneSpec(cut="oval", aspect=1.3), size=(1600, 1200))
    for fmt in ("jpeg", "heic"):
        copies = bench.distinct(encode_photo(frame, fmt), 3)
        decoded = [decode(c, working=True) for c in copies]
        assert len({d.sha256 for d in decoded}) == 3  # a new photo for the store each time
        assert all(np.array_equal(d.rgb, decoded[0].rgb) for d in decoded)
        assert decoded[0].format == ("JPEG" if fmt == "jpeg" else "HEIF") and decoded[0].width == 1600
