"""`gemid identify --server URL`: the command line's photos land in a real running service's store (a real
`gemid serve` process with the tiny real ONNX bundle, its own SQLite store), printed as a local run prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx2
import pytest
from bundle_fixture import STONE_COLOURS, TRAY_READING_ORDER, build_bundle, draw_stone, draw_tray, encode
from serve_process import cli_key, free_port, start, stop, wait_ready

from gemid.cli import main


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("service")
    bundle = build_bundle(root / "bundle")
    port = free_port()
    proc = start(root / "data", bundle, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base)
        AUTH["key"] = cli_key(root / "data", "technician", "desk-1")
        yield base + "/"
    finally:
        stop(proc)


AUTH: dict[str, str] = {}  # the service's API key, made by `gemid keys create` when it starts


def signed() -> dict[str, str]:
    return {"Authorization": f"Bearer {AUTH['key']}"}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    d = tmp_path / "lot"
    d.mkdir()
    (d / "a_tray.png").write_bytes(encode(draw_tray()))
    (d / "b_ruby.jpg").write_bytes(encode(draw_stone(STONE_COLOURS["Ruby"]), ".jpg"))
    (d / "c_notes.jpg").write_bytes(b"parcel 42: three stones\n")
    return d


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")
    monkeypatch.delenv("GEMID_API_KEY", raising=False)


def test_photos_sent_to_the_service_are_stored_there(capsys, service: str, photos: Path, tmp_path: Path):
    rc = main(["identify", str(photos), "--server", service, "--api-key", AUTH["key"],
               "--reference", "CLI LOT 1", "--json",
               "--csv", str(tmp_path / "out.csv")])
    out, err = capsys.readouterr()
    assert rc == 1, err  # the text file named .jpg is refused by the service, the rest identified
    entries = json.loads(out)
    reports = [e for e in entries if "report_id" in e]
    refused = [e for e in entries if "error" in e]
    assert [r["species"]["top"][0]["label"] for r in reports] == [*TRAY_READING_ORDER, "Ruby"]  # every stone
    assert [e["file"] for e in refused] == [str(photos / "c_notes.jpg")] and refused[0]["error"]["code"]
    # what the service stored is what the command printed
    parcel = httpx2.get(f"{service}v1/parcels/{quote('CLI LOT 1')}", headers=signed()).json()
    assert [r["report_id"] for r in parcel["rows"]] == [r["report_id"] for r in reports]
    assert [row["stone"] for row in parcel["rows"]] == [f"{i} of 6" for i in range(1, 7)] + ["1 of 1"]
    # the service stores the file's own name, not the technician's folders (an outside try found "/tmp/tray.jpg")
    assert {r["file"] for r in reports} == {"a_tray.png", "b_ruby.jpg"}
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 1 + 8  # header, 7 stones, the refusal

    # again under the same reference: the stored reports, with the service's notice, nothing stored twice
    rc = main(["identify", str(photos / "b_ruby.jpg"), "--server", service, "--api-key", AUTH["key"],
               "--reference", "CLI LOT 1"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "already stored under reference 'CLI LOT 1'" in " ".join(err.split())
    assert "gemid identify --force" in " ".join(err.split())  # the notice names what this command takes
    assert "1 identified" in out or "1 uncertain" in out
    assert httpx2.get(f"{service}v1/parcels/{quote('CLI LOT 1')}", headers=signed()).json()["stones"] == 7
    # --force stores it again; without --server it is a usage error (a local run stores nothing)
    rc = main(["identify", str(photos / "b_ruby.jpg"), "--server", service, "--api-key", AUTH["key"],
               "--reference", "CLI LOT 1", "--force"])
    out, err = capsys.readouterr()
    assert rc == 0 and "already stored" not in err
    assert httpx2.get(f"{service}v1/parcels/{quote('CLI LOT 1')}", headers=signed()).json()["stones"] == 8
    assert main(["identify", str(photos / "b_ruby.jpg"), "--force"]) == 2
    assert "--force only applies with --server" in capsys.readouterr().err


def test_readings_and_a_quick_screen_reach_the_service(capsys, service: str, photos: Path):
    rc = main(["identify", str(photos / "b_ruby.jpg"), "--server", service, "--api-key", AUTH["key"],
               "--ri", "1.762", "--sg", "4.0",
               "--optic", "DR", "--no-grade", "--json"])
    out, _ = capsys.readouterr()
    assert rc == 0
    (report,) = json.loads(out)
    assert report["tests"]["reranking"]["readings"]["ri"] == 1.762
    assert report["tests"]["reranking"]["readings"]["optic"] == "DR"
    assert report["colour"] is None  # --no-grade: grade=false on the service
    stored = httpx2.get(f"{service}v1/reports/{report['report_id']}", headers=signed()).json()
    assert stored == report


def test_a_ruler_beside_the_stones_reaches_the_service(capsys, service: str, tmp_path: Path):
    from card_support import RULER_TRAY, ruler_photo

    photo, _, _ = ruler_photo(RULER_TRAY, seed=1)
    path = tmp_path / "ruler.jpg"
    path.write_bytes(encode(photo, ".jpg"))
    rc = main(["identify", str(path), "--server", service, "--api-key", AUTH["key"], "--ruler", "--no-grade",
               "--json"])
    out, _ = capsys.readouterr()
    assert rc == 0
    reports = json.loads(out)
    assert len(reports) == len(RULER_TRAY)
    assert all(r["stone"]["size"]["status"] == "measured" and "ruler" in r["stone"]["size"]["method"] for r in reports)


def test_a_service_that_cannot_be_reached_is_a_clear_error(capsys, photos: Path):
    rc = main(["identify", str(photos / "b_ruby.jpg"), "--server", f"http://127.0.0.1:{free_port()}/"])
    _, err = capsys.readouterr()
    assert rc == 2 and "cannot reach the gemid service" in err
    rc = main(["identify", str(photos / "b_ruby.jpg"), "--server", "lab-pc:8000"])
    _, err = capsys.readouterr()
    assert rc == 2 and "http:// or https://" in err


def test_the_key_comes_from_the_environment_and_a_refused_key_stops_the_run(capsys, service: str, photos: Path,
                                                                            monkeypatch):
    photo = str(photos / "b_ruby.jpg")
    rc = main(["identify", photo, "--server", service, "--reference", "NO KEY"])  # no key at all
    _, err = capsys.readouterr()
    assert rc == 2 and "refused the request (HTTP 401)" in err and "GEMID_API_KEY" in err, err
    rc = main(["identify", photo, "--server", service, "--api-key", "gk_not-a-key", "--reference", "NO KEY"])
    _, err = capsys.readouterr()
    assert rc == 2 and "HTTP 401" in err and "GEMID_API_KEY" not in err, err  # a key was sent, and refused
    monkeypatch.setenv("GEMID_API_KEY", AUTH["key"])  # the desk's key in its environment: sent as Bearer
    rc = main(["identify", photo, "--server", service, "--reference", "ENV KEY", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    (report,) = json.loads(out)
    listed = httpx2.get(f"{service}v1/parcels/{quote('ENV KEY')}", headers=signed()).json()
    assert [r["report_id"] for r in listed["rows"]] == [report["report_id"]]
    assert httpx2.get(f"{service}v1/parcels/{quote('NO KEY')}", headers=signed()).status_code == 404  # none stored
