"""Faults the service must be honest about (issue 30, findings 1-5): a server killed with -9 leaves no
workers behind, a client that goes away mid-upload is no server error, a disk that cannot be written gives
503 everywhere (and /readyz says so), and a request beyond the bounds is refused, not queued for ever."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import time

import psutil
import pytest

pytest.register_assert_rewrite("serve_support")

from fastapi.testclient import TestClient  # noqa: E402
from serve_process import free_port, start, wait_ready  # noqa: E402
from serve_support import make_settings, signed_client, stone, stored, upload  # noqa: E402

import gemid.serve.images as images_module  # noqa: E402
import gemid.serve.routes.reports as reports_module  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402

pytest_plugins = ["serve_support"]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_workers_end_when_the_server_is_killed(tmp_path, tiny_bundle):
    # finding 3: after kill -9 of the server its workers lived on under PID 1 (~410 MB per crash)
    port = free_port()
    proc = start(tmp_path / "data", tiny_bundle, port, GEMID_INFERENCE_CONCURRENCY="2")
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}")
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(children) >= 2  # the two analysis workers (and multiprocessing's resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def _multipart(boundary: str = "gemid") -> bytes:
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"r.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
    return head + stone("Ruby") + f"\r\n--{boundary}--\r\n".encode()


def test_a_client_that_disconnects_mid_upload_is_an_info_line_not_a_500(client: TestClient, settings, caplog):
    # finding 4: a 134-line traceback and status="500" in /metrics
    body = _multipart()
    messages = [{"type": "http.request", "body": body[: len(body) // 2], "more_body": True},
                {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/identify", "raw_path": b"/v1/identify", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"localhost"), (b"content-length", str(len(body)).encode()),
                         (b"authorization", client.headers["authorization"].encode()),
                         (b"content-type", b"multipart/form-data; boundary=gemid")],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80), "state": {}}
    with caplog.at_level("INFO", logger="gemid"):
        client.portal.call(client.app, scope, receive, send)
    assert "client disconnected during POST /v1/identify" in caplog.text
    assert "unhandled error" not in caplog.text and "Traceback" not in caplog.text
    metrics = client.get("/metrics").text
    assert 'route="/v1/identify",status="499"' in metrics and 'status="500"' not in metrics
    assert stored(settings) == (0, 0, 0) and not list(settings.spool_dir.iterdir())


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_503_everywhere_and_readyz_says_so(settings, identifier, monkeypatch):
    # finding 5: preview.jpg answered 500 on a full disk, and /readyz said ready while nothing could be saved
    with signed_client(create_app(settings, identifier=identifier)) as c:
        rid = c.post("/v1/identify", files=[upload("r.png", stone("Ruby"))]).json()["reports"][0]["report_id"]
        assert c.get("/readyz").status_code == 200
        monkeypatch.setattr(images_module.tempfile, "mkstemp", _disk_full)  # every new file in the store fails
        monkeypatch.setattr(reports_module, "atomic_write", _disk_full)
        r = c.get(f"/v1/reports/{rid}/preview.jpg")
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable", r.text
        assert "No space left" in r.json()["error"]["message"] and r.headers["retry-after"]
        r = c.get("/readyz")
        assert r.status_code == 503 and "photo store cannot be written" in r.json()["error"]["message"], r.text
        r = c.post("/v1/identify", files=[upload("e.png", stone("Emerald"))])
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable", r.text
        monkeypatch.setattr("gemid.serve.uploads.tempfile.mkstemp", _disk_full)  # not even the upload lands
        r = c.post("/v1/identify", files=[upload("e.png", stone("Emerald"))])
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable", r.text
        assert 'status="500"' not in c.get("/metrics").text
    assert stored(settings)[:2] == (1, 1)


def test_readyz_fails_on_a_store_that_is_not_writable(settings, identifier, monkeypatch):
    with signed_client(create_app(settings, identifier=identifier)) as c:
        monkeypatch.setattr(images_module.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EROFS,
                                                                                                 "Read-only file system")))
        r = c.get("/readyz")
        assert r.status_code == 503 and "Read-only file system" in r.json()["error"]["message"]


def upload_scope(authorization: str) -> dict:
    """The ASGI scope of a POST /v1/identify multipart upload, for a test's own receive()."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/v1/identify", "raw_path": b"/v1/identify", "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"multipart/form-data; boundary=x"), (b"host", b"localhost"),
                        (b"authorization", authorization.encode())],
            "client": ("127.0.0.1", 5000), "server": ("testserver", 80), "state": {}}


def test_requests_past_max_in_flight_get_503_with_retry_after_and_health_still_answers(tmp_path, tiny_bundle,
                                                                                        identifier):
    # finding 2: nothing bounded how many uploads the server held at once
    # the body deadline leaves a loaded machine time to send the third request while the two stall
    settings = make_settings(tmp_path / "data", tiny_bundle, max_in_flight=2, body_timeout=4.0)
    with signed_client(create_app(settings, identifier=identifier)) as c:
        held: list[asyncio.Event] = []

        async def stalled_receive():  # a client that opened its upload and sends nothing more
            event = asyncio.Event()
            held.append(event)
            await event.wait()
            return {"type": "http.disconnect"}

        scope = upload_scope(c.headers["authorization"])
        answers: list[dict] = []

        async def send(message):
            answers.append(message)

        slow = [c.portal.start_task_soon(c.app, scope, stalled_receive, send) for _ in range(2)]
        deadline = time.monotonic() + 10
        while len(held) < 2 and time.monotonic() < deadline:  # both stalled uploads hold their places
            time.sleep(0.01)
        assert len(held) == 2, "the stalled uploads never reached their body"
        r = c.post("/v1/identify", files=[upload("r.png", stone("Ruby"))])
        assert r.status_code == 503 and r.json()["error"]["code"] == "busy", r.text
        assert r.headers["retry-after"] == "2"
        assert c.get("/readyz").status_code == 200 and c.get("/healthz").status_code == 200
        for future in slow:  # the stalled bodies meet the body deadline: 408, and their places are free again
            future.result(timeout=10)
        assert [m["status"] for m in answers if m["type"] == "http.response.start"] == [408, 408]
        assert c.post("/v1/identify", files=[upload("r.png", stone("Ruby"))]).status_code == 200


def test_an_upload_that_trickles_is_answered_408_once_past_the_body_timeout(tmp_path, tiny_bundle, identifier):
    # an outside try held every place in flight with uploads sending 3 bytes a second: never a pause long enough
    # for the body timeout, so another desk's GET /v1/reports got 503 busy
    settings = make_settings(tmp_path / "data", tiny_bundle, body_timeout=1.0)
    with signed_client(create_app(settings, identifier=identifier)) as c:
        head = [b'--x\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\n']

        async def trickle():  # a photo's part opened, then a few bytes of it every 0.2 s, for ever
            await asyncio.sleep(0.2)
            return {"type": "http.request", "body": head.pop() if head else b"\x89PNG", "more_body": True}

        scope = upload_scope(c.headers["authorization"])
        answers: list[dict] = []

        async def send(message):
            answers.append(message)

        started = time.monotonic()
        c.portal.start_task_soon(c.app, scope, trickle, send).result(timeout=20)
        assert [m["status"] for m in answers if m["type"] == "http.response.start"] == [408]
        body = json.loads(b"".join(m.get("body", b"") for m in answers if m["type"] == "http.response.body"))
        assert body["error"]["code"] == "body_too_slow" and time.monotonic() - started < 10
        assert c.get("/v1/reports").status_code == 200


def test_a_connection_that_sends_no_request_is_closed_and_readyz_answers_through_a_flood(tmp_path, tiny_bundle):
    # finding 1: idle sockets exhausted the file descriptors and /readyz failed until they closed
    port = free_port()
    proc = start(tmp_path / "data", tiny_bundle, port, GEMID_INFERENCE_CONCURRENCY="1", GEMID_MAX_CONNECTIONS="50",
                 GEMID_HEADER_TIMEOUT="2", GEMID_ANALYSIS="threads")
    idle: list[socket.socket] = []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(proc, base)
        for _ in range(200):  # four times the cap, none sending a byte
            idle.append(socket.create_connection(("127.0.0.1", port)))
        import httpx2

        assert httpx2.get(f"{base}/readyz", timeout=5).status_code == 200
        lone = socket.create_connection(("127.0.0.1", port))
        lone.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # an unfinished head
        lone.settimeout(6)
        started = time.monotonic()
        assert lone.recv(1024) == b""  # closed by the server ...
        assert time.monotonic() - started < 5  # ... after the 2 s header timeout, not whenever it likes
        lone.close()
    finally:
        for s in idle:
            s.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except Exception:
            proc.kill()
            proc.wait()
        proc.stdout.close()
