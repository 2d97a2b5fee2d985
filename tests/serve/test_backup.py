"""`gemid backup` while the service serves, and `gemid restore` into an empty data folder: every report comes
back and verifies; a damaged backup and a non-empty target are refused."""

from __future__ import annotations

import hashlib
import json
import stat
import threading
from pathlib import Path

import pytest

pytest.register_assert_rewrite("serve_support")

from fastapi.testclient import TestClient  # noqa: E402
from serve_support import make_settings, signed_client, stone, upload  # noqa: E402

from gemid import signing  # noqa: E402
from gemid.cli import main as gemid_main  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.backup import verify_store  # noqa: E402
from gemid.serve.settings import Settings  # noqa: E402

pytest_plugins = ["serve_support", "postgres_support"]


def _reports(c: TestClient) -> list[str]:
    ids = []
    for label in ("Ruby", "Emerald", "Sapphire Blue"):
        r = c.post("/v1/identify", files=[upload(f"{label}.png", stone(label))])
        assert r.status_code == 200, r.text
        ids.append(r.json()["reports"][0]["report_id"])
    assert c.post(f"/v1/reports/{ids[0]}/readings", json={"ri": 1.762}).status_code == 201
    assert c.post(f"/v1/reports/{ids[0]}/confirmation", json={"label": "Ruby", "method": "Raman"}).status_code == 201
    return ids


def test_backup_while_serving_and_restore_into_an_empty_data_dir(settings: Settings, identifier, tmp_path: Path,
                                                                 tiny_bundle: Path, monkeypatch,
                                                                 capsys: pytest.CaptureFixture[str]):
    dest = tmp_path / "backup"
    with signed_client(create_app(settings, identifier=identifier)) as c:
        ids = _reports(c)
        keys = c.get("/v1/keys").json()
        monkeypatch.setenv("GEMID_DATA_DIR", str(settings.data_dir))
        stop = threading.Event()

        statuses: list[int] = []

        def keep_writing() -> None:  # a desk adding readings all through the backup, each set new (a revision)
            while not stop.is_set():
                ri = 1.760 + 0.001 * (len(statuses) % 5)
                statuses.append(c.post(f"/v1/reports/{ids[2]}/readings", json={"ri": ri}).status_code)

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            assert gemid_main(["backup", str(dest)]) == 0  # the service is running: SQLite's online backup
        finally:
            stop.set()
            writer.join()
        assert statuses and set(statuses) == {201}, statuses  # (a thread's failed assert would only warn)
        assert "backed up 3 reports" in capsys.readouterr().out
        originals = {rid: c.get(f"/v1/reports/{rid}/revisions").json() for rid in ids}
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700  # password hashes and photos: the owner's only
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["signing_key"] == {"included": False} and not (dest / "signing-key.pem").exists()
    assert manifest["database"]["kind"] == "sqlite" and len(manifest["files"]) == 4  # the db and 3 photos

    target = make_settings(tmp_path / "restored", tiny_bundle)
    monkeypatch.setenv("GEMID_DATA_DIR", str(target.data_dir))
    assert gemid_main(["restore", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 verify" in out and "rotate-signing" in out
    assert verify_store(target) == (3, [])
    assert stat.S_IMODE(target.data_dir.stat().st_mode) == 0o700
    trail = tmp_path / "trail.jsonl"
    assert gemid_main(["audit", "export", "--out", str(trail)]) == 0  # the restore is on the restored trail
    assert json.loads(trail.read_text().splitlines()[-1])["action"] == "store_restored"
    assert gemid_main(["restore", str(dest)]) == 2  # not empty now
    assert "not empty" in capsys.readouterr().err

    # the restored store serves the same signed revisions and keys, once it has a signing key again
    assert gemid_main(["keys", "rotate-signing"]) == 0
    with signed_client(create_app(target, identifier=identifier)) as c:
        for rid, revisions in originals.items():  # what the snapshot caught of the readings being added
            restored = c.get(f"/v1/reports/{rid}/revisions").json()["revisions"]
            assert restored == revisions["revisions"][: len(restored)] and restored
            assert c.get(f"/v1/reports/{rid}/image").content
        listed = c.get("/v1/keys").json()["keys"]
        assert [k["key_id"] for k in listed][1:] == [k["key_id"] for k in keys["keys"]]
        # an outside try restored over a running service: it reported success while the service went on
        # writing into the deleted database. Now the service's lock on its folder refuses that, forced or not
        capsys.readouterr()
        assert gemid_main(["restore", "--force", str(dest)]) == 2
        assert "a gemid service is using" in capsys.readouterr().err
        assert c.get(f"/v1/reports/{ids[0]}").status_code == 200  # and it serves on, untouched
    assert gemid_main(["restore", "--force", str(dest)]) == 0  # stopped: the lock went with it
    capsys.readouterr()


def test_backup_with_the_signing_key_and_damage_detection(client: TestClient, settings: Settings, tmp_path: Path,
                                                          tiny_bundle: Path, monkeypatch,
                                                          capsys: pytest.CaptureFixture[str]):
    ids = _reports(client)
    dest = tmp_path / "with-key"
    monkeypatch.setenv("GEMID_DATA_DIR", str(settings.data_dir))
    assert gemid_main(["backup", str(dest), "--with-signing-key"]) == 0
    assert "signing key INCLUDED" in capsys.readouterr().out
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["signing_key"]["included"] is True and "PRIVATE" in manifest["signing_key"]["warning"]
    assert stat.S_IMODE((dest / "signing-key.pem").stat().st_mode) == 0o600
    assert gemid_main(["backup", str(dest)]) == 2  # never into a folder that holds something
    capsys.readouterr()

    # one photo altered in the backup: refused before anything is written
    photo = next(p for p in (dest / "images").rglob("*") if p.is_file())
    good = photo.read_bytes()
    photo.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    target = make_settings(tmp_path / "restored", tiny_bundle)
    monkeypatch.setenv("GEMID_DATA_DIR", str(target.data_dir))
    assert gemid_main(["restore", str(dest)]) == 2
    assert "damaged" in capsys.readouterr().err and not target.data_dir.exists()
    photo.write_bytes(good)

    assert gemid_main(["restore", str(dest)]) == 0
    assert "3 of 3 verify" in capsys.readouterr().out
    key = signing.load_private_key(target.signing_key_path)
    assert signing.key_id(key.public_key()) == client.get("/v1/keys").json()["keys"][0]["key_id"]
    with signed_client(create_app(target, identifier=identifier_of(client))) as c:  # signs on with the same key
        r = c.post(f"/v1/reports/{ids[1]}/readings", json={"ri": 1.58})
        assert r.status_code == 201 and r.json()["signature"]["key_id"] == signing.key_id(key.public_key())


def identifier_of(client: TestClient):
    return client.app.state.identifier


def test_postgresql_backup_holds_the_photos_and_restores_elsewhere(postgres_server: str, postgres_url: str,
                                                                   tiny_bundle: Path, identifier, tmp_path: Path,
                                                                   monkeypatch, capsys: pytest.CaptureFixture[str]):
    """pg_dump of a PostgreSQL store (its photos are rows), restored into another empty database and a new data
    folder: every report verifies and shows its photo there."""
    from postgres_support import new_database

    key = tmp_path / "shared" / "signing-key.pem"
    source = make_settings(tmp_path / "a", tiny_bundle, db_url=postgres_url, signing_key=key)
    with signed_client(create_app(source, identifier=identifier)) as c:
        ids = _reports(c)
        originals = {rid: c.get(f"/v1/reports/{rid}/revisions").json() for rid in ids}
    monkeypatch.setenv("GEMID_DB_URL", postgres_url)
    monkeypatch.setenv("GEMID_SIGNING_KEY", str(key))
    monkeypatch.setenv("GEMID_DATA_DIR", str(source.data_dir))
    assert gemid_main(["backup", str(tmp_path / "backup")]) == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["database"]["kind"] == "postgresql" and list(manifest["files"]) == ["database.pgdump"]
    capsys.readouterr()

    other = new_database(postgres_server)
    target = make_settings(tmp_path / "b", tiny_bundle, db_url=other, signing_key=tmp_path / "b-key.pem")
    monkeypatch.setenv("GEMID_DB_URL", other)
    monkeypatch.setenv("GEMID_SIGNING_KEY", str(target.signing_key_path))
    monkeypatch.setenv("GEMID_DATA_DIR", str(target.data_dir))
    assert gemid_main(["restore", str(tmp_path / "backup")]) == 0, capsys.readouterr()
    assert "3 of 3 verify" in capsys.readouterr().out
    assert gemid_main(["restore", str(tmp_path / "backup")]) == 2  # it holds reports now
    assert "already holds reports" in capsys.readouterr().err
    assert gemid_main(["keys", "rotate-signing"]) == 0
    with signed_client(create_app(target, identifier=identifier)) as c:
        for rid, revisions in originals.items():
            assert c.get(f"/v1/reports/{rid}/revisions").json() == revisions
            photo = c.get(f"/v1/reports/{rid}/image")  # from the restored rows: the new data folder has none
            assert photo.status_code == 200
            assert hashlib.sha256(photo.content).hexdigest() == revisions["revisions"][0]["image"]["sha256"]
