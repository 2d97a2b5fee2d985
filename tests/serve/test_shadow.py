"""Shadow mode: a real second bundle (the tiny model with Ruby and Emerald swapped) answers every stored
photo beside the served one, unseen by the client; `gemid field-report` compares the two on confirmed
reports. A full queue skips photos instead of holding the service up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.register_assert_rewrite("serve_support")

from bundle_fixture import LABELS, STONE_COLOURS, build_bundle, draw_stone, encode  # noqa: E402
from serve_support import make_settings, signed_client, upload  # noqa: E402

from gemid.serve.app import create_app  # noqa: E402

pytest_plugins = ["serve_support"]


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    swapped = ["Emerald", "Ruby", *LABELS[2:]]
    assert LABELS[:2] == ["Ruby", "Emerald"]
    return build_bundle(tmp_path_factory.mktemp("candidate"), int8=False, name="tiny-swapped", labels=swapped)


def _photo(label: str, seed: int = 0) -> bytes:
    return encode(draw_stone(STONE_COLOURS[label], seed=seed), ".png")


def _field_report(data: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "gemid.cli", "field-report", "--json"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "GEMID_DATA_DIR": str(data)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_shadow_answers_are_recorded_unseen_and_compared_on_confirmed_reports(tmp_path: Path, tiny_bundle,
                                                                              identifier, candidate):
    data = tmp_path / "data"
    app = create_app(make_settings(data, tiny_bundle, shadow_bundle=candidate), identifier=identifier)
    ids = {}
    with signed_client(app) as c:
        for label in ("Ruby", "Emerald", "Citrine"):
            r = c.post("/v1/identify", files=[upload(f"{label}.png", _photo(label))])
            assert r.status_code == 200
            report = r.json()["reports"][0]
            assert report["species"]["top"][0]["label"] == label  # the served model's answer, untouched
            ids[label] = report["report_id"]
        c.portal.call(app.state.shadow.drain)
        for label in ("Ruby", "Emerald"):
            assert c.post(f"/v1/reports/{ids[label]}/confirmation",
                          json={"label": label, "method": "Raman"}).status_code == 201
        shown = c.get(f"/v1/reports/{ids['Ruby']}").text
        metrics = c.get("/metrics").text
        page_data = c.get("/v1/field").json()  # what the field page draws
        bad = c.get("/v1/field?since=yesterday")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    assert page_data["accuracy"]["shadow"]["confirmed"] == 2 and page_data["accuracy"]["confirmed"] == 2
    assert page_data["drift"]["weeks"][-1]["photos"] == 3
    assert "tiny-swapped" not in shown and "shadow" not in shown  # recorded, never shown
    assert 'gemid_shadow_total{outcome="disagreed"} 2.0' in metrics
    assert 'gemid_shadow_total{outcome="agreed"} 1.0' in metrics

    shadow = _field_report(data)["shadow"]
    assert shadow["confirmed"] == 2
    assert shadow["served"]["accuracy"] == 1.0 and shadow["shadow"]["accuracy"] == 0.0
    assert shadow["only_served_right"] == 2 and shadow["only_shadow_right"] == 0
    (bundle,) = shadow["agreement"]
    assert bundle["bundle"].startswith("tiny-swapped") and bundle["answered"] == 3
    assert bundle["agreement"]["correct"] == 1  # only the Citrine, which both call Citrine
    table = subprocess.run([sys.executable, "-m", "gemid.cli", "field-report"], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "GEMID_DATA_DIR": str(data)}).stdout
    assert "shadow model, on the 2 confirmed photos it answered" in table
    assert "agrees with the served top-1 on  33.3 %" in table


def test_a_full_shadow_queue_skips_photos_and_the_reports_are_unaffected(tmp_path: Path, tiny_bundle,
                                                                         identifier, candidate):
    app = create_app(make_settings(tmp_path / "data", tiny_bundle, shadow_bundle=candidate, shadow_queue=1),
                     identifier=identifier)
    with signed_client(app) as c:
        r = c.post("/v1/identify", files=[upload(f"{i}.png", _photo("Ruby", seed=i)) for i in range(4)])
        assert r.status_code == 200 and len(r.json()["reports"]) == 4
        assert all("report_id" in e for e in r.json()["reports"])
        c.portal.call(app.state.shadow.drain)
        metrics = c.get("/metrics").text
    # the four photos were handed over at once: the first took the one place, the others were skipped
    assert 'gemid_shadow_total{outcome="skipped"} 3.0' in metrics
    assert 'gemid_shadow_total{outcome="disagreed"} 1.0' in metrics


def test_shadow_runs_in_its_own_worker_process(tmp_path: Path, tiny_bundle, candidate):
    data = tmp_path / "data"
    settings = make_settings(data, tiny_bundle, shadow_bundle=candidate, analysis="processes")
    app = create_app(settings)
    with signed_client(app) as c:
        r = c.post("/v1/identify", files=[upload("ruby.png", _photo("Ruby"))])
        assert r.status_code == 200
        c.portal.call(app.state.shadow.drain)
        assert app.state.shadow._pool is not None and app.state.shadow._pool.pids()
        if sys.platform == "linux":  # the served workers get the cores first
            import psutil

            assert [psutil.Process(pid).nice() for pid in app.state.shadow._pool.pids()] == [19]
    shadow = _field_report(data)["shadow"]
    assert shadow["agreement"][0]["answered"] == 1 and shadow["agreement"][0]["agreement"]["correct"] == 0
