"""Signed reports through the real app and the real `gemid verify`: every stored revision signed, the chain,
tampering of any field or of the photo detected, key rotation, the public keys, start-up refusals."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import pytest

pytest.register_assert_rewrite("serve_support")

from fastapi.testclient import TestClient  # noqa: E402
from serve_support import make_settings, stone, upload  # noqa: E402

from gemid import signing  # noqa: E402
from gemid.cli import main as gemid_main  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.keys import SigningKeyError, open_signer  # noqa: E402
from gemid.serve.settings import Settings  # noqa: E402
from gemid.serve.store import ReportStore  # noqa: E402

pytest_plugins = ["serve_support", "postgres_support"]


def identify(c: TestClient, label: str = "Ruby") -> dict:
    """A new report (a new reference each time: the same photo under the same reference is a duplicate)."""
    r = c.post("/v1/identify", files=[upload(f"{label}.png", stone(label))],
               data={"reference": f"LOT-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 200, r.text
    return r.json()["reports"][0]


def with_readings(c: TestClient, rid: str) -> dict:
    r = c.post(f"/v1/reports/{rid}/readings", json={"ri": 1.762, "ri_high": 1.770})
    assert r.status_code == 201, r.text
    return r.json()


def confirm(c: TestClient, rid: str) -> dict:
    r = c.post(f"/v1/reports/{rid}/confirmation", json={"label": "Ruby", "method": "standard tests"})
    assert r.status_code == 201, r.text
    return r.json()


def run_verify(capsys: pytest.CaptureFixture[str], tmp_path: Path, document: object, *args: str) -> tuple[int, str]:
    path = tmp_path / "report.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    code = gemid_main(["verify", str(path), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_every_revision_is_signed_and_chained(client: TestClient, settings: Settings):
    created = identify(client)
    sig = created["signature"]
    assert sig["algorithm"] == "Ed25519" and len(sig["key_id"]) == 16 and created["previous_signature"] is None
    rid = created["report_id"]
    assert client.get(f"/v1/reports/{rid}").json() == created  # served exactly as signed and stored
    second = with_readings(client, rid)
    third = confirm(client, rid)
    assert second["previous_signature"] == sig["value"]
    assert third["previous_signature"] == second["signature"]["value"]
    revisions = client.get(f"/v1/reports/{rid}/revisions").json()
    assert [r["signature"] for r in revisions["revisions"]] == [created["signature"], second["signature"],
                                                                 third["signature"]]
    keys = client.get("/v1/keys").json()["keys"]
    assert [k["key_id"] for k in keys] == [sig["key_id"]] and keys[0]["retired_at"] is None
    public = {sig["key_id"]: signing.load_public_pem(keys[0]["public_pem"])}
    verdict = signing.verify_revisions(revisions["revisions"], public)
    assert verdict.ok and verdict.checked == [1, 2, 3]
    key_file = settings.signing_key_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert signing.key_id(signing.load_private_key(key_file).public_key()) == sig["key_id"]


def test_gemid_verify_offline_detects_any_change(client: TestClient, settings: Settings, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], monkeypatch):
    created = identify(client)
    rid = created["report_id"]
    with_readings(client, rid)
    revisions = client.get(f"/v1/reports/{rid}/revisions").json()
    pem = tmp_path / "public.pem"
    pem.write_text(client.get("/v1/keys").json()["keys"][0]["public_pem"])
    photo = tmp_path / "ruby.png"
    photo.write_bytes(stone("Ruby"))

    code, out = run_verify(capsys, tmp_path, created, "--key", str(pem), "--photo", str(photo))
    assert code == 0 and "valid" in out and "photo matches" in out, out
    code, out = run_verify(capsys, tmp_path, revisions, "--key", str(pem))
    assert code == 0 and "revisions 1-2 (chain intact)" in out, out
    # without --key: the public keys of the store the GEMID_* settings name
    monkeypatch.setenv("GEMID_DATA_DIR", str(settings.data_dir))
    code, out = run_verify(capsys, tmp_path, revisions)
    assert code == 0, out

    def changed(path: tuple, value: object) -> dict:
        doc = json.loads(json.dumps(created))
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        return doc

    edits = [
        (("species", "top", 0, "probability"), 0.123),
        (("conclusion", "label"), "Spinel"),
        (("image", "sha256"), "0" * 64),
        (("reference",), "LOT-forged"),
        (("created_at",), "2020-01-01T00:00:00Z"),
        (("previous_signature",), "x"),
        (("disclaimer",), created["disclaimer"] + " "),
    ]
    for path, value in edits:
        code, out = run_verify(capsys, tmp_path, changed(path, value), "--key", str(pem))
        assert code == 1 and "revision 1" in out and "does not match the content" in out, (path, out)
    extra = dict(created, desk="forged")  # an added field is a change too
    assert run_verify(capsys, tmp_path, extra, "--key", str(pem))[0] == 1
    bad_value = json.loads(json.dumps(created))
    sig = bad_value["signature"]["value"]
    bad_value["signature"]["value"] = ("B" if sig[0] == "A" else "A") + sig[1:]  # a changed first character
    assert run_verify(capsys, tmp_path, bad_value, "--key", str(pem))[0] == 1
    unsigned = {k: v for k, v in created.items() if k != "signature"}
    code, out = run_verify(capsys, tmp_path, unsigned, "--key", str(pem))
    assert code == 1 and "no signature" in out
    # the service's error answer saved in place of the report (fetched without the key): said so, exit 2, not
    # "not what the service issued", which reads like tampering (an outside try)
    refused = {"error": {"code": "unauthorised", "message": "sign in first"}}
    code, out = run_verify(capsys, tmp_path, refused, "--key", str(pem))
    assert code == 2 and "error answer, not a report" in out and "Authorization: Bearer" in out, out
    # keys that are not the issuer's: "cannot check" and exit 2, not "NOT VALID", which reads like a forgery (an
    # outside try verified a genuine report against another engineer's default store); never "valid"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    code, out = run_verify(capsys, tmp_path, created, "--key", str(stranger))
    assert code == 2 and "cannot check" in out and f"the key file {stranger}" in out and "/v1/keys" in out, out
    # but a revision by a stranger's key in a chain the issuer's key signed is a forgery: NOT VALID
    rogue = Ed25519PrivateKey.generate()
    forged = dict(revisions["revisions"][1])
    forged.pop("signature")
    forged["signature"] = signing.sign(forged, rogue, signing.key_id(rogue.public_key()))
    mixed = {"revisions": [revisions["revisions"][0], forged]}
    code, out = run_verify(capsys, tmp_path, mixed, "--key", str(pem))
    assert code == 1 and "NOT VALID" in out and "not among the public keys given" in out, out
    # a byte changed anywhere, even one that breaks the JSON, never passes
    text = json.dumps(created)
    assert run_verify(capsys, tmp_path, text[:-1], "--key", str(pem))[0] == 1

    other = tmp_path / "other.png"
    other.write_bytes(stone("Ruby")[:-1] + b"\x00")
    code, out = run_verify(capsys, tmp_path, created, "--key", str(pem), "--photo", str(other))
    assert code == 1 and "not this photo" in out, out

    # the chain: a revision dropped, or replaced by another report's, is named
    code, out = run_verify(capsys, tmp_path, {"revisions": [revisions["revisions"][1]]}, "--key", str(pem))
    assert code == 0  # a revision alone verifies by itself...
    swapped = json.loads(json.dumps(revisions))
    swapped["revisions"][0] = created  # same revision 1: still intact
    assert run_verify(capsys, tmp_path, swapped, "--key", str(pem))[0] == 0
    other_report = identify(client, "Emerald")
    swapped["revisions"][0] = other_report
    code, out = run_verify(capsys, tmp_path, swapped, "--key", str(pem))
    assert code == 1 and "revision 2" in out and ("chain is broken" in out or "belongs to report" in out), out


def test_chain_break_in_the_database_is_detected(client: TestClient, settings: Settings):
    """An edited revision row: its own signature fails; the next revision's link still names the original."""
    created = identify(client)
    rid = created["report_id"]
    with_readings(client, rid)
    store = ReportStore.open(settings.database_url)
    try:
        from sqlalchemy import update

        from gemid.serve.models_db import RevisionRow

        body = dict(store.get_body(rid, 1) or {})
        body["conclusion"] = dict(body["conclusion"], label="Spinel")
        with store.engine.begin() as conn:
            conn.execute(update(RevisionRow).where(RevisionRow.report_id == rid, RevisionRow.revision == 1)
                         .values(body=body))
        keys = {k["key_id"]: signing.load_public_pem(k["public_pem"]) for k in client.get("/v1/keys").json()["keys"]}
        verdict = signing.verify_revisions(store.revision_bodies(rid), keys)
        assert not verdict.ok and verdict.checked == [2]
        assert any(p.startswith("revision 1:") for p in verdict.problems)
        # a re-signed forgery of revision 1 (another key) would break revision 2's link instead
        forged = dict(body, signature=signing.sign(body, signing.new_private_key(), "f" * 16))
        chain = [forged, store.get_body(rid, 2)]
        keys["f" * 16] = signing.load_private_key(settings.signing_key_path).public_key()  # even if trusted
        verdict = signing.verify_revisions(chain, keys)
        assert any("revision 2" in p and "chain is broken" in p for p in verdict.problems), verdict.problems
    finally:
        store.close()


def test_rotation_keeps_old_reports_verifiable(client: TestClient, settings: Settings, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], monkeypatch):
    before = identify(client)
    monkeypatch.setenv("GEMID_DATA_DIR", str(settings.data_dir))
    old_key = signing.load_private_key(settings.signing_key_path)  # as a leaked key would be kept
    assert gemid_main(["keys", "rotate-signing"]) == 0
    out = capsys.readouterr().out
    assert f"retired: {before['signature']['key_id']}" in out
    after = identify(client)  # the running service picked up the new key file
    assert after["signature"]["key_id"] != before["signature"]["key_id"]
    keys = client.get("/v1/keys").json()["keys"]
    assert [k["key_id"] for k in keys] == [after["signature"]["key_id"], before["signature"]["key_id"]]
    assert keys[0]["retired_at"] is None and keys[1]["retired_at"] is not None
    readings = with_readings(client, before["report_id"])  # an old report's new revision: the new key
    assert readings["signature"]["key_id"] == after["signature"]["key_id"]
    for doc in (before, after, client.get(f"/v1/reports/{before['report_id']}/revisions").json()):
        code, text = run_verify(capsys, tmp_path, doc)
        assert code == 0, text
    keys_json = tmp_path / "keys.json"
    keys_json.write_text(json.dumps(client.get("/v1/keys").json()))
    assert run_verify(capsys, tmp_path, before, "--key", str(keys_json))[0] == 0
    # a single PEM of the new key cannot check the old report ("cannot check", exit 2), and says which key it needs
    pem = tmp_path / "new.pem"
    pem.write_text(keys[0]["public_pem"])
    code, text = run_verify(capsys, tmp_path, before, "--key", str(pem))
    assert code == 2 and "cannot check" in text and before["signature"]["key_id"] in text
    # a revision the retired key signs after its retirement does not verify (an outside try forged one, dated
    # 2027, with the old key kept from before the rotation, and it did)
    forged = {k: v for k, v in before.items() if k != "signature"}
    forged["created_at"] = "2027-01-01T00:00:00+00:00"
    forged["signature"] = signing.sign(forged, old_key, before["signature"]["key_id"])
    code, text = run_verify(capsys, tmp_path, forged, "--key", str(keys_json))
    assert code == 1 and "retired at" in text, text
    assert run_verify(capsys, tmp_path, forged)[0] == 1  # the store's own keys say the same


def test_key_file_rules(tmp_path: Path, tiny_bundle: Path):
    settings = make_settings(tmp_path / "data", tiny_bundle)
    store = ReportStore.open(settings.database_url)
    try:
        first = open_signer(settings, store.engine)  # first start: made and registered
        assert open_signer(settings, store.engine).key_id == first.key_id
        settings.signing_key_path.rename(tmp_path / "moved.pem")
        with pytest.raises(SigningKeyError, match="missing"):
            open_signer(settings, store.engine)
        other = make_settings(tmp_path / "data", tiny_bundle, signing_key=tmp_path / "other.pem")
        signing.write_private_key(other.signing_key_path, signing.new_private_key())
        with pytest.raises(SigningKeyError, match="does not know"):
            open_signer(other, store.engine)
    finally:
        store.close()


def test_replicas_starting_at_once_end_with_one_key(tmp_path: Path, tiny_bundle: Path):
    """Two replicas on an empty store each made a key: the later one withdraws it (row and file) and refuses."""
    from gemid.serve.keys import _first_start_race, _register, public_keys

    settings = make_settings(tmp_path / "data", tiny_bundle)
    store = ReportStore.open(settings.database_url)
    try:
        first, second = signing.new_private_key(), signing.new_private_key()
        _register(store.engine, first.public_key(), retire_others=False)
        _register(store.engine, second.public_key(), retire_others=False)
        late = tmp_path / "late.pem"
        signing.write_private_key(late, second)
        with pytest.raises(SigningKeyError, match="same moment"):
            _first_start_race(store.engine, late, signing.key_id(second.public_key()))
        assert not late.exists()
        assert [k.key_id for k in public_keys(store.engine)] == [signing.key_id(first.public_key())]
        _first_start_race(store.engine, tmp_path / "first.pem", signing.key_id(first.public_key()))  # the winner
    finally:
        store.close()


def test_postgres_replica_without_the_key_file_refuses(postgres_url: str, tiny_bundle: Path, tmp_path: Path):
    """`gemid serve` on PostgreSQL: without GEMID_SIGNING_KEY, or with it naming a missing file once the store
    signs, it stops with one line (exit 2, no traceback) before listening."""
    import subprocess
    import sys

    env = {**os.environ, "GEMID_DB_URL": postgres_url, "GEMID_MODEL_DIR": str(tiny_bundle),
           "GEMID_DATA_DIR": str(tmp_path / "a"), "NO_ALBUMENTATIONS_UPDATE": "1"}
    env.pop("GEMID_SIGNING_KEY", None)
    from serve_process import free_port

    serve = [sys.executable, "-m", "gemid.cli", "serve", "--port", str(free_port())]
    done = subprocess.run(serve, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "GEMID_SIGNING_KEY is not set" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    # the first replica makes the shared key; a second one whose copy is missing refuses
    shared = make_settings(tmp_path / "a", tiny_bundle, db_url=postgres_url, signing_key=tmp_path / "shared.pem")
    store = ReportStore.open(shared.database_url)
    try:
        open_signer(shared, store.engine)
    finally:
        store.close()
    env["GEMID_SIGNING_KEY"] = str(tmp_path / "missing" / "shared.pem")
    done = subprocess.run(serve, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "is missing" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_stored_unsigned_reports_stay_readable(client: TestClient, settings: Settings):
    """A report stored before signing existed: served (brought up to the schema), and reported as unsigned."""
    created = identify(client)
    rid = created["report_id"]
    store = ReportStore.open(settings.database_url)
    try:
        from sqlalchemy import update

        from gemid.serve.models_db import RevisionRow

        body = {k: v for k, v in created.items() if k not in ("signature", "previous_signature", "schema_version")}
        with store.engine.begin() as conn:
            conn.execute(update(RevisionRow).where(RevisionRow.report_id == rid).values(body=body))
    finally:
        store.close()
    got = client.get(f"/v1/reports/{rid}").json()
    assert got["signature"] is None and got["schema_version"] == 1 and got["report_id"] == rid
    second = with_readings(client, rid)  # new revisions of an old report are signed
    assert second["signature"] is not None and second["previous_signature"] is None


def test_public_keys_are_open_and_app_restarts_with_the_same_key(settings: Settings, identifier):
    with TestClient(create_app(settings, identifier=identifier), base_url="http://localhost") as c:  # no key
        first = c.get("/v1/keys").json()["keys"]
    with TestClient(create_app(settings, identifier=identifier), base_url="http://localhost") as c:
        assert c.get("/v1/keys").json()["keys"] == first


def _code(c: TestClient, rid: str) -> str:
    url = c.get(f"/v1/reports/{rid}/qr.svg").headers["x-verification-url"]
    return url.rsplit("/", 1)[1]


def test_verification_page_and_api(client: TestClient, settings: Settings):
    created = identify(client)
    rid = created["report_id"]
    code = _code(client, rid)
    got = client.get(f"/v1/verify/{code}").json()
    assert got["verified"] is True and got["problems"] == [] and got["photo"] == "matches"
    assert got["report_id"] == rid and got["image_sha256"] == created["image"]["sha256"]
    assert got["species"] == created["conclusion"]["label"] and got["key_ids"] == [created["signature"]["key_id"]]
    assert "reference" not in got and "file" not in got  # the summary, not the report
    page = client.get(f"/verify/{code}")
    assert page.status_code == 200 and "Signature valid" in page.text and created["image"]["sha256"] in page.text
    assert created["reference"] not in page.text and "/image" not in page.text
    # nothing else can be reached through it: a report id, another form, a near miss
    for wrong in (rid, code[:-1] + ("A" if code[-1] != "A" else "B"), "x", "a" * 300):
        r = client.get(f"/v1/verify/{wrong}")
        assert r.status_code in (404,) and r.json()["error"]["code"] in ("unknown_code", "not_found"), wrong
        assert client.get(f"/verify/{wrong}").status_code == 404


def test_verification_page_shows_tampering(client: TestClient, settings: Settings):
    created = identify(client)
    rid = created["report_id"]
    code = _code(client, rid)
    # the photo file swapped on disk
    path = next(settings.images_dir.rglob(f"{created['image']['sha256']}.*"))
    original = path.read_bytes()
    path.write_bytes(stone("Emerald"))
    got = client.get(f"/v1/verify/{code}").json()
    assert got["verified"] is False and got["photo"] == "differs", got
    assert "Does not verify" in client.get(f"/verify/{code}").text
    path.write_bytes(original)
    assert client.get(f"/v1/verify/{code}").json()["verified"] is True
    # the stored JSON edited in the database
    store = ReportStore.open(settings.database_url)
    try:
        from sqlalchemy import update

        from gemid.serve.models_db import RevisionRow

        body = dict(store.get_body(rid) or {}, reference="LOT-EDITED")
        with store.engine.begin() as conn:
            conn.execute(update(RevisionRow).where(RevisionRow.report_id == rid).values(body=body))
    finally:
        store.close()
    got = client.get(f"/v1/verify/{code}").json()
    assert got["verified"] is False and any(p.startswith("revision 1:") for p in got["problems"]), got
