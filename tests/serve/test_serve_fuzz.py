"""A bounded schemathesis run against a real `gemid serve` (issue 30, finding 7 and the fuzzing target): every
answer is one the OpenAPI schema declares, with the shape it declares, and none is a 500.

The fuzzer reads the schema the service serves, so this also checks that the schema says what the server
does: the error shape of every refusal, both shapes of /v1/identify, every status a route can send.
Bounded to FUZZ_SECONDS of generation (about 45 s on 2 cores with the start-up), deterministic."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

pytest.register_assert_rewrite("serve_support")

from serve_process import bearer, cli_key, free_port, start, stop, wait_ready  # noqa: E402
from serve_support import stone  # noqa: E402

pytest_plugins = ["serve_support"]

FUZZ_SECONDS = 30
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"


def test_the_openapi_documents_the_error_shape_and_every_status(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    identify = paths["/v1/identify"]["post"]
    # finding 7: the error statuses of /v1/identify said they returned IdentifyResponse only
    for status in ("400", "413", "415", "422", "503", "507"):
        refs = [s["$ref"] for s in identify["responses"][status]["content"]["application/json"]["schema"]["anyOf"]]
        assert refs == ["#/components/schemas/IdentifyResponse", "#/components/schemas/ErrorBody"], status
    body = identify["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["images"]["minItems"] == 1  # at least one image
    readings = paths["/v1/reports/{report_id}/readings"]["post"]
    assert {"400", "408", "409", "413", "422", "501", "503"} <= set(readings["responses"])
    rules = readings["requestBody"]["content"]["application/json"]["schema"]["allOf"]
    assert rules[1]["description"] == "at least one reading"
    assert "`ri_high` only together with `ri`" in readings["requestBody"]["description"]
    since = next(p for p in paths["/v1/reports"]["get"]["parameters"] if p["name"] == "since")
    assert "pattern" in json.dumps(since["schema"])  # the date filters' rule
    for path, ops in paths.items():
        for method, op in ops.items():
            if path.startswith("/v1/"):
                assert "503" in op["responses"], (method, path)  # starting, busy or the store unwritable
    assert schema["components"]["schemas"]["ErrorBody"]["properties"]["error"]


def test_a_bounded_fuzz_run_finds_no_500_and_no_undeclared_status(tmp_path, tiny_bundle):
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert st, "schemathesis is in the dev extra"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path / "data", tiny_bundle, port, GEMID_INFERENCE_CONCURRENCY="1", GEMID_MAX_REVISIONS="5")
    try:
        wait_ready(proc, base)
        key = cli_key(tmp_path / "data")  # an administrator's: every route is reachable
        # one stored report, so that the fuzzer's calls can reach past "not found" where it finds its id
        r = httpx2.post(f"{base}/v1/identify", files=[("images", ("ruby.png", stone("Ruby"), "image/png"))],
                        headers=bearer(key))
        assert r.status_code == 200, r.text
        run = subprocess.run(
            [st, "run", f"{base}/openapi.json", "--checks", CHECKS, "--max-time", str(FUZZ_SECONDS),
             "--workers", "2", "--generation-deterministic", "--request-timeout", "30",
             "--header", f"Authorization: Bearer {key}"],
            capture_output=True, text=True, timeout=FUZZ_SECONDS + 120, cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        summary = run.stdout[-3000:]
        assert run.returncode == 0, summary
        assert "passed" in summary and "failure" not in summary.lower(), summary
        metrics = httpx2.get(f"{base}/metrics").text
        assert 'status="500"' not in metrics
    finally:
        stop(proc)
        log = proc.stdout.read()
        proc.stdout.close()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
