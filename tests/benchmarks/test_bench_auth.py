"""The authentication benchmark's own measurements: its timed middleware really authenticates and writes the
audit trail, and its baseline server really has no access control (else its comparison means nothing)."""

from __future__ import annotations

import asyncio

import pytest
from bench_loader import bench_module
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def bench():
    with bench_module("bench_auth") as module:
        yield module


def test_the_timed_requests_are_authenticated_and_audited(bench, tmp_path):
    pr = asyncio.run(bench._per_request(100, tmp_path))
    assert 0 < pr.bare < min(pr.remembered, pr.looked_up, pr.remembered_trail, pr.looked_up_trail)
    assert pr.authentication == max(pr.remembered, pr.looked_up) - pr.bare
    # only the runs with the trail on left entries: every request through the middleware its "list" entry,
    # and each run the one that marks its end
    assert pr.entries == 2 * 3 * (100 + 50 + 1)


def test_the_baseline_is_the_service_without_access_control(bench, monkeypatch, tmp_path, tiny_bundle):
    monkeypatch.setenv("GEMID_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GEMID_MODEL_DIR", str(tiny_bundle))
    monkeypatch.setenv("GEMID_ANALYSIS", "threads")
    with TestClient(bench.baseline_app()) as c:
        assert c.get("/v1/reports").status_code == 200  # no key, any host name
        assert "content-security-policy" not in c.get("/v1/reports").headers


pytest_plugins = ["serve_support"]
