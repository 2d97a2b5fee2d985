"""A parcel on every core: `gemid identify --jobs N` gives what one process gives, in order, and a photo that
kills its worker costs only its own entry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from analysis_targets import (
    parcel_crash_on_marker,
    parcel_fail_on_marker,
    parcel_init_fails,
    parcel_worker_pid,
)
from bundle_fixture import LABELS, STONE_COLOURS, build_bundle, draw_stone, encode

from gemid.cli import main
from gemid.vision import parcel, workers

VOLATILE = ("report_id", "created_at")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """20 files: drawn stones of every label, a PNG named .jpg, and two bad files in the middle."""
    d = tmp_path_factory.mktemp("parcel")
    out = []
    for i in range(18):
        label = LABELS[i % len(LABELS)]
        ext = ".jpg" if i % 3 else ".png"
        path = d / f"{i:02d}_{label.lower()}{'.jpg' if i == 4 else ext}"
        path.write_bytes(encode(draw_stone(STONE_COLOURS[label], seed=i), ext))
        out.append(path)
    (d / "07b_notes.jpg").write_bytes(b"parcel 42: three stones\n")
    (d / "11b_empty.png").write_bytes(b"")
    out.insert(8, d / "07b_notes.jpg")
    out.insert(13, d / "11b_empty.png")
    return out


def spec(bundle: Path) -> workers.ModelSpec:
    return workers.ModelSpec(bundle_dir=bundle, variant="fp32", threads=1, top_k=5)


def items(photos: list[Path]) -> list[tuple[str, Path]]:
    return [(p.name, p) for p in photos]


def flat(per_file: list[list] | None) -> list:
    """run_parallel's entries, file by file (each file's list holds a report per stone, or its refusal)."""
    assert per_file is not None
    assert all(len(entries) >= 1 for entries in per_file)
    return [e for entries in per_file for e in entries]


def stable(entries: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in VOLATILE} for e in entries]


def test_two_workers_give_what_one_process_gives_in_order(capsys, bundle, photos):
    # no readings: they describe one stone, and a parcel of photos with them is refused (test_cli_identify)
    argv = ["identify", *map(str, photos), "--model", str(bundle), "--json", "--reference", "P-42"]
    assert main([*argv, "--jobs", "1"]) == 1  # the two bad files
    one = json.loads(capsys.readouterr().out)
    assert main([*argv, "--jobs", "2"]) == 1
    out, err = capsys.readouterr()
    two = json.loads(out)
    assert [e["file"] for e in two] == [str(p) for p in photos]
    assert stable(two) == stable(one)
    assert [e["error"]["code"] for e in two if "error" in e] == ["unsupported_type", "empty_file"]
    assert all(e["reference"] == "P-42" and e["tests"]["reranking"] is None for e in two if "error" not in e)
    assert "Traceback" not in err


def test_the_chunks_run_in_separate_worker_processes(bundle, photos):
    seen = []
    entries = flat(parcel.run_parallel(spec(bundle), items(photos), parcel.Request(None, None, True), 2,
                                       advance=seen.append, runner=parcel_worker_pid))
    assert [e.file for e in entries] == [p.name for p in photos]
    pids = {int(e.error.message) for e in entries}
    assert len(pids) == 2 and os.getpid() not in pids
    assert sum(seen) == len(photos)


def test_a_photo_that_kills_its_worker_costs_only_its_own_entry(bundle, photos):
    crafted = photos[:]
    crafted.insert(5, photos[0].with_name("05b_crash.jpg"))
    crafted[5].write_bytes(photos[0].read_bytes())
    seen = []
    entries = flat(parcel.run_parallel(spec(bundle), items(crafted), parcel.Request(None, None, False), 2,
                                       advance=seen.append, runner=parcel_crash_on_marker))
    assert [e.file for e in entries] == [p.name for p in crafted]
    failed = {e.file: e.error.code for e in entries if getattr(e, "error", None)}
    assert failed == {"05b_crash.jpg": "analysis_failed", "07b_notes.jpg": "unsupported_type",
                      "11b_empty.png": "empty_file"}
    assert "damaged or crafted" in next(e for e in entries if e.file == "05b_crash.jpg").error.message
    assert sum(seen) == len(crafted)


def test_a_crash_costs_only_its_own_workers_chunk_and_the_parcel_keeps_its_workers(bundle, photos, monkeypatch):
    # finding 12: a parcel with one crashing file fell back to one photo at a time (14.4 s instead of 4.2 s)
    pools = []

    class Counted(workers.WorkerPool):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(parcel, "WorkerPool", Counted)
    crafted = photos[:]
    crafted.insert(5, photos[0].with_name("05b_crash.jpg"))
    crafted[5].write_bytes(photos[0].read_bytes())
    entries = flat(parcel.run_parallel(spec(bundle), items(crafted), parcel.Request(None, None, False), 2,
                                       runner=parcel_crash_on_marker))
    assert [e.file for e in entries] == [p.name for p in crafted]
    assert [e.file for e in entries if getattr(e, "error", None) and e.error.code == "analysis_failed"] == \
           ["05b_crash.jpg"]
    # the crashed chunk's files went back to the same two-worker pool, not to a pool of one run after the rest
    assert [pool.processes for pool in pools] == [2]


def test_a_batch_that_fails_in_a_worker_refuses_its_files_and_keeps_the_rest(bundle, photos):
    odd = photos[:]
    odd.insert(3, photos[0].with_name("03b_boom.jpg"))
    odd[3].write_bytes(photos[0].read_bytes())
    entries = flat(parcel.run_parallel(spec(bundle), items(odd), parcel.Request(None, None, False), 2,
                                       runner=parcel_fail_on_marker))
    assert [e.file for e in entries] == [p.name for p in odd]
    size = parcel.chunk_size(len(odd), 2)
    refused = {e.file for e in entries if getattr(e, "error", None) and e.error.code == "internal_error"}
    first = 3 // size * size
    assert refused == {p.name for p in odd[first : first + size]}  # the chunk that held the file, no more
    assert "RuntimeError" in next(e for e in entries if e.file == "03b_boom.jpg").error.message
    assert sum(1 for e in entries if getattr(e, "species", None)) == len(odd) - size - 2  # minus the two bad files


def test_workers_that_cannot_load_the_model_hand_the_parcel_back_and_say_why(photos, tmp_path, caplog):
    broken = workers.ModelSpec(bundle_dir=tmp_path / "no-bundle", variant="fp32", threads=1, top_k=5)
    with caplog.at_level("WARNING", logger="gemid"):
        assert parcel.run_parallel(broken, items(photos), parcel.Request(None, None, True), 2) is None
    assert "could not start (ModelError: no model bundle at" in caplog.text


def test_a_parcel_whose_workers_cannot_start_is_identified_in_one_process(capsys, bundle, photos, monkeypatch):
    """What the technician sees: the reports, and one warning line, no traceback from the pool."""
    monkeypatch.setattr(workers, "_init", parcel_init_fails)  # pickled by reference: the workers run it
    assert main(["identify", *map(str, photos), "--model", str(bundle), "--json", "--jobs", "2"]) == 1
    out, err = capsys.readouterr()
    assert [e["file"] for e in json.loads(out)] == [str(p) for p in photos]
    assert err.strip() == ("warning: the analysis workers could not start (RuntimeError: no model in this "
                           "worker); identifying in this process")


@pytest.mark.parametrize(("files", "cores", "jobs"), [(32, 2, 1), (33, 2, 2), (33, 8, 5), (500, 1, 1), (500, 4, 4)])
def test_workers_only_for_a_parcel_that_repays_their_start(files, cores, jobs):
    assert parcel.default_jobs(files, cores) == jobs


def test_chunks_keep_every_worker_busy_to_the_end():
    assert parcel.chunk_size(80, 2) == 8  # 10 chunks: 5 per worker
    assert parcel.chunk_size(20, 2) == 3  # 7 chunks, not 3 of 8 with one worker idle at the end
    assert parcel.chunk_size(3, 4) == 1
