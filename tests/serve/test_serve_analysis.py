"""Photos analysed in worker processes (the service's default): same answers as in-process, and a worker
that dies costs neither the service nor, unless it was the photo's doing, the photo."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

pytest.register_assert_rewrite("serve_support")

from analysis_targets import crash_worker, hang_or_pass  # noqa: E402
from serve_support import make_settings, signed_client, stone, stored, upload  # noqa: E402

from gemid.serve.analysis import ProcessAnalysis, ThreadAnalysis  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402

pytest_plugins = ["serve_support"]


def _wait_dead(pid: int, seconds: float = 10.0) -> None:
    """Until the process has ended (a zombie not yet reaped by its parent counts as ended)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.02)


def test_worker_processes_answer_as_the_runtime_and_survive_losing_their_workers(tmp_path, tiny_bundle, identifier):
    settings = make_settings(tmp_path / "data", tiny_bundle)
    assert settings.analysis == "processes"  # the default
    ruby, emerald = stone("Ruby"), stone("Emerald", ".jpg")
    with signed_client(create_app(settings)) as c:
        analysis = c.app.state.analysis
        assert isinstance(analysis, ProcessAnalysis)
        before = analysis.pids()
        assert len(before) == settings.inference_concurrency == 2 and os.getpid() not in before
        assert c.app.state.identifier.classifier.session is None  # only the workers hold the model

        r = c.post("/v1/identify", files=[upload("ruby.png", ruby, "image/png")])
        assert r.status_code == 200, r.text
        (report,) = r.json()["reports"]
        direct = identifier.identify(ruby, filename="ruby.png")
        assert [(t["label"], t["probability"]) for t in report["species"]["top"]] == \
               [(t.label, t.probability) for t in direct.species.top]
        assert report["species"]["decision"] == direct.species.decision == "identified"
        # re-ranking with readings runs in the server process, which needs the bundle but no model session
        r = c.post(f"/v1/reports/{report['report_id']}/readings", json={"ri": 1.765, "sg": 4.0})
        assert r.status_code == 201, r.text
        assert r.json()["revision"] == 2 and r.json()["tests"]["reranking"]["combined"][0]["label"] == "Ruby"

        for pid in before:  # both workers die between two requests (killed, out of memory, a crash)
            os.kill(pid, signal.SIGKILL)
        for pid in before:  # "between": dead before the next request, not dying while it is dispatched
            _wait_dead(pid)
        r = c.post("/v1/identify", files=[upload("emerald.jpg", emerald, "image/jpeg")])
        assert r.status_code == 200, r.text
        assert r.json()["reports"][0]["species"]["top"][0]["label"] == "Emerald"
        # each dead worker is replaced in its own slot; the one this request did not need may still be starting
        deadline = time.monotonic() + 60
        while len(after := analysis.pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(after) == 2 and not set(after) & set(before)
    assert stored(settings) == (2, 3, 2)


def test_threads_serve_an_app_given_a_loaded_model_or_asked_for_them(tmp_path, tiny_bundle, identifier):
    with signed_client(create_app(make_settings(tmp_path / "a", tiny_bundle), identifier=identifier)) as c:
        assert isinstance(c.app.state.analysis, ThreadAnalysis)
    settings = make_settings(tmp_path / "b", tiny_bundle, analysis="threads")
    with signed_client(create_app(settings)) as c:
        assert isinstance(c.app.state.analysis, ThreadAnalysis)
        assert c.app.state.identifier.classifier.session is not None
        r = c.post("/v1/identify", files=[upload("ruby.png", stone("Ruby"), "image/png")])
        assert r.status_code == 200 and r.json()["reports"][0]["species"]["top"][0]["label"] == "Ruby"


def test_a_photo_that_kills_its_worker_twice_is_refused(tmp_path, tiny_bundle):
    settings = make_settings(tmp_path / "data", tiny_bundle)

    async def analyse_once():
        analysis = ProcessAnalysis(settings, 1, target=crash_worker)
        await analysis.start()
        try:
            return await analysis.identify(b"\xff\xd8\xff crafted", filename="crafted.jpg", reference=None,
                                           readings=None, grade=False)
        finally:
            await analysis.close()

    outcome = asyncio.run(analyse_once())
    assert outcome.status == 422
    assert outcome.entry.file == "crafted.jpg" and outcome.entry.error.code == "analysis_failed"
    assert "twice" in outcome.entry.error.message and "nothing" in outcome.entry.error.message


def test_a_photo_whose_analysis_hangs_is_refused_alone_and_the_photos_beside_it_are_answered(tmp_path, tiny_bundle,
                                                                                           caplog):
    # finding 12: with 2 workers, one hanging photo and three ordinary ones, an ordinary photo was refused
    # "stopped twice... may be crafted": the pool failed every photo in flight and the message blamed it
    settings = make_settings(tmp_path / "data", tiny_bundle, analysis_timeout=4.0)

    async def scenario():
        analysis = ProcessAnalysis(settings, 2, target=hang_or_pass)
        await analysis.start()
        try:
            before = analysis.pids()
            call = {"reference": None, "readings": None, "grade": False}

            async def later(data: bytes, name: str, pause: float):
                await asyncio.sleep(pause)
                return await analysis.identify(data, filename=name, **call)

            # the slow photo is still being analysed (3 s) on the other worker when the stuck one is stopped
            outcomes = await asyncio.gather(analysis.identify(b"hang", filename="loop.tif", **call),
                                            later(b"slow", "slow.jpg", 2), later(b"fine", "a.jpg", 5.5),
                                            later(b"step", "b.jpg", 6))
            for _ in range(300):  # the stuck photo's second worker is being replaced in the background
                if len(analysis.pids()) == 2:
                    break
                await asyncio.sleep(0.1)
            after = analysis.pids()
            return before, after, outcomes
        finally:
            await analysis.close()

    before, after, (hung, *ordinary) = asyncio.run(scenario())
    # stopped by its worker's watchdog, tried once more (stopped again), refused by name
    assert hung.status == 422 and hung.entry.file == "loop.tif"
    assert hung.entry.error.code == "analysis_failed" and "over 4 s" in hung.entry.error.message
    assert [(o.entry.file, o.entry.error.code) for o in ordinary] == [("slow.jpg", "done"), ("a.jpg", "done"),
                                                                      ("b.jpg", "done")]
    assert "while analysing loop.tif (attempt 2 of 2)" in caplog.text
    assert "slow.jpg" not in caplog.text and "a.jpg" not in caplog.text  # never lost, never retried
    # the two workers that took the stuck photo were replaced (the same one, or each in turn), and the pool is whole
    assert len(after) == 2 and after != before


def test_the_timeout_counts_analysis_not_the_wait_in_the_queue(tmp_path, tiny_bundle):
    # one worker, four photos of 1.2 s sent at once: the last waits 3.6 s, more than the 3 s timeout
    settings = make_settings(tmp_path / "data", tiny_bundle, analysis_timeout=3.0)

    async def scenario():
        analysis = ProcessAnalysis(settings, 1, target=hang_or_pass)
        await analysis.start()
        try:
            call = {"reference": None, "readings": None, "grade": False}
            return await asyncio.gather(*(analysis.identify(b"step", filename=f"{i}.jpg", **call) for i in range(4)))
        finally:
            await analysis.close()

    outcomes = asyncio.run(scenario())
    assert [o.entry.error.code for o in outcomes] == ["done"] * 4
