"""`gemid serve` as a user runs it: a real uvicorn process on loopback, stopped and started again."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx2
import pytest

pytest.register_assert_rewrite("serve_support")

from serve_process import bearer, cli_key, free_port, start, stop, wait_ready  # noqa: E402
from serve_support import stone, upload  # noqa: E402

pytest_plugins = ["serve_support"]


@pytest.mark.slow
def test_serve_restart_keeps_reports(tmp_path: Path, tiny_bundle: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    photo = stone("Peridot", ".jpg")
    proc = start(tmp_path / "data", tiny_bundle, port)
    try:
        wait_ready(proc, base)
        assert (tmp_path / "data").stat().st_mode & 0o077 == 0  # the store is its account's alone
        auth = bearer(cli_key(tmp_path / "data", "technician", "desk-1"))
        r = httpx2.post(f"{base}/v1/identify", files=[upload("p.jpg", photo, "image/jpeg")], timeout=30, headers=auth)
        assert r.status_code == 200, r.text
        report = r.json()["reports"][0]
    finally:
        stop(proc)
    assert proc.returncode == 0
    proc = start(tmp_path / "data", tiny_bundle, port)
    try:
        wait_ready(proc, base)
        assert httpx2.get(f"{base}/v1/reports/{report['report_id']}", headers=auth).json() == report
        assert httpx2.get(f"{base}/v1/reports/{report['report_id']}/image", headers=auth).content == photo
    finally:
        stop(proc)
    again = proc.stdout.read() if proc.stdout else ""
    # the first start's sign-in link is long gone: a restart says how to get back in (an outside try)
    assert "/signin?token=" not in again and "gemid users link NAME" in again, again


def test_serve_refuses_a_missing_model_with_one_clear_line(tmp_path: Path):
    proc = start(tmp_path / "data", tmp_path / "no-model", free_port())
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "no model bundle" in out and "Traceback" not in out
    assert "GEMID_MODEL_DIR" in out  # and how to point at one


def test_metrics_with_several_http_workers_count_the_whole_service(tmp_path: Path, tiny_bundle: Path):
    """`gemid serve --workers 2`: any of the two processes may answer a scrape; each must give the totals."""
    import json
    import threading

    from prometheus_client.mmap_dict import MmapedDict

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = bearer(cli_key(tmp_path / "data"))  # made (and the store migrated) before the server starts
    # PROMETHEUS_MULTIPROC_DIR empty: as unset, so gemid serve makes the folder itself
    proc = start(tmp_path / "data", tiny_bundle, port, "--workers", "2", PROMETHEUS_MULTIPROC_DIR="",
                 GEMID_INFERENCE_CONCURRENCY="1")
    photo = stone("Ruby")
    counts = Path("/nonexistent")

    def serving_pids() -> set[str]:
        """The HTTP processes that have counted an identification (each writes its own counter file)."""
        pids = set()
        for f in counts.glob("counter_*.db"):
            for key, value, *_ in MmapedDict.read_all_values_from_file(str(f)):
                if json.loads(key)[0] == "gemid_identifications" and value > 0:
                    pids.add(f.stem.split("_")[1])
        return pids

    sent = 0
    try:
        wait_ready(proc, base, timeout=120)
        # the folder gemid serve made for the HTTP processes' counts, as their environment names it
        folders = set()
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
                folders |= {e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")}
        assert len(folders) == 1, folders
        counts = Path(folders.pop())
        assert counts.is_dir() and counts.name.startswith("gemid-metrics-")
        while len(serving_pids()) < 2 and sent < 96:  # concurrent connections until both processes served
            def one() -> None:
                with httpx2.Client(base_url=base, headers=auth) as c:  # a new connection each
                    assert c.post("/v1/identify?grade=false", files=[upload("r.png", photo, "image/png")],
                                  timeout=60).status_code == 200
            threads = [threading.Thread(target=one) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            sent += 8
        assert len(serving_pids()) == 2, "the kernel never spread the connections over both processes"
        for _ in range(10):  # each scrape on a new connection: answered by either process
            text = httpx2.get(f"{base}/metrics", timeout=10).text
            total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("gemid_identifications_total{"))
            assert total == sent, text
            assert 'gemid_model_info{name="tiny-colour"' in text
    finally:
        stop(proc)
    assert not counts.exists()  # removed when the service stops: the next start counts from zero


@pytest.mark.parametrize(("env", "words"), [
    ({"GEMID_MAX_BYTES": "20MB"}, ["invalid setting GEMID_MAX_BYTES='20MB'", "valid integer"]),
    # PostgreSQL that does not answer: one line, the URL shown without its password
    ({"GEMID_DB_URL": "postgresql://desk:s3cret@127.0.0.1:9/gemid"},
     ["cannot open the database postgresql+psycopg://desk:***@127.0.0.1:9/gemid", "Connection refused"]),
    ({"GEMID_DB_URL": "mysql+nosuchdriver://desk:s3cret@db/gemid"}, ["cannot open the database", "desk:***@db"]),
    ({"GEMID_DB_URL": "postgresql+psycopg2://desk:s3cret@db/gemid"},
     ["its driver (psycopg2) is not installed", "pip install 'gemid[postgres]'"]),
])
def test_serve_refuses_a_bad_setup_with_one_clear_line(tmp_path: Path, tiny_bundle: Path, env, words):
    proc = start(tmp_path / "data", tiny_bundle, free_port(), **env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert out.startswith("gemid serve: ") and "Traceback" not in out and "s3cret" not in out
    for w in words:
        assert w in out, out


def test_serve_says_at_once_when_it_cannot_listen(tmp_path: Path, tiny_bundle: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        t0 = time.monotonic()
        proc = start(tmp_path / "data", tiny_bundle, port)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert out.startswith(f"gemid serve: cannot listen on 127.0.0.1:{port}: the port is already in use"), out
    assert "Traceback" not in out and time.monotonic() - t0 < 30  # before any model or worker starts
    # an address this machine does not have (a typo in --host)
    proc = start(tmp_path / "data", tiny_bundle, free_port(), "--host", "10.255.255.254")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "this machine has no such address" in out, out


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from gemid.serve.settings import Settings

    monkeypatch.setenv("GEMID_DATA_DIR", str(tmp_path / "desk"))
    monkeypatch.setenv("GEMID_MAX_FILES", "3")
    monkeypatch.setenv("GEMID_MODEL_VARIANT", "int8")
    monkeypatch.setenv("GEMID_PUBLIC_URL", "https://lab.example/gemid/")
    s = Settings()
    assert (s.max_files, s.model_variant, s.public_url) == (3, "int8", "https://lab.example/gemid")
    assert s.database_url == f"sqlite:///{(tmp_path / 'desk').resolve() / 'gemid.db'}"
    assert s.images_dir == tmp_path / "desk" / "images"
    monkeypatch.setenv("GEMID_DB_URL", "postgresql+psycopg://gemid@db/gemid")
    assert Settings().database_url == "postgresql+psycopg://gemid@db/gemid"
    for plain in ("postgresql://gemid:pw@db:5433/gemid", "postgres://gemid:pw@db:5433/gemid"):  # the driver installed
        monkeypatch.setenv("GEMID_DB_URL", plain)
        assert Settings().database_url == "postgresql+psycopg://gemid:pw@db:5433/gemid"
    monkeypatch.setenv("GEMID_MODEL_VARIANT", "fp16")
    with pytest.raises(ValueError, match="model_variant"):
        Settings()


def test_serve_help_shows_every_default_and_every_setting(monkeypatch: pytest.MonkeyPatch, capsys):
    from gemid.cli import main
    from gemid.serve.settings import Settings, default_data_dir

    monkeypatch.setenv("COLUMNS", "200")  # long lines: no default is split across two
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    options = out.split("options:")[1].split("environment settings:")[0]
    for option in re.split(r"\n(?=  -)", options.strip("\n")):  # an option and its help, whatever its lines
        if not option.startswith("  -h, --help"):
            assert "default: " in option, option
    assert f"GEMID_DATA_DIR; default: {default_data_dir()})" in options
    assert "GEMID_MODEL_VARIANT; default: fp32)" in options
    environment = out.split("environment settings:")[1]
    for name, field in Settings.model_fields.items():
        assert f"  GEMID_{name.upper()}\n" in environment, name
        if field.default is not None and field.default_factory is None:
            assert f"default: {field.default}" in environment.split(f"GEMID_{name.upper()}\n")[1], name
    assert "GEMID_MAX_REFERENCE_CHARS" not in out  # the reference limit is the report schema's (gemid.report)
