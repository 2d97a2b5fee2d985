"""Many desks, one service: two replicas (two apps, each with its own data folder, as on two machines) on one
throwaway PostgreSQL, sharing only the database and the signing key file. A report created through one is
read, shown with its photo, verified and given readings through the other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.register_assert_rewrite("serve_support")

from serve_support import make_settings, signed_client, stone, upload  # noqa: E402

from gemid import signing  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402

pytest_plugins = ["serve_support", "postgres_support"]


def test_two_replicas_on_one_postgresql(postgres_url: str, tiny_bundle: Path, identifier, tmp_path: Path):
    key = tmp_path / "shared" / "signing-key.pem"
    desk_a = make_settings(tmp_path / "machine-a", tiny_bundle, db_url=postgres_url, signing_key=key)
    desk_b = make_settings(tmp_path / "machine-b", tiny_bundle, db_url=postgres_url, signing_key=key)
    photo = stone("Ruby")
    with signed_client(create_app(desk_a, identifier=identifier), "supervisor", "gate A") as a, \
            signed_client(create_app(desk_b, identifier=identifier), "supervisor", "gate B") as b:
        r = a.post("/v1/identify", files=[upload("ruby.png", photo)], data={"reference": "AIRPORT-1"})
        assert r.status_code == 200, r.text
        created = r.json()["reports"][0]
        rid = created["report_id"]
        # the same report, keys and photo through the other machine, whose disk never saw the photo
        assert not any((desk_b.images_dir).rglob("*.png"))
        assert b.get(f"/v1/reports/{rid}").json() == created
        assert b.get("/v1/keys").json() == a.get("/v1/keys").json()
        image = b.get(f"/v1/reports/{rid}/image")
        assert image.status_code == 200 and image.content == photo
        assert b.get(f"/v1/reports/{rid}/preview.jpg").status_code == 200
        url = a.get(f"/v1/reports/{rid}/qr.svg").headers["x-verification-url"]
        code = url.rsplit("/", 1)[1]
        checked = b.get(f"/v1/verify/{code}").json()
        assert checked["verified"] is True and checked["photo"] == "matches", checked
        # readings through B, a confirmation through A: one chain, one key
        second = b.post(f"/v1/reports/{rid}/readings", json={"ri": 1.762, "ri_high": 1.770})
        assert second.status_code == 201, second.text
        third = a.post(f"/v1/reports/{rid}/confirmation", json={"label": "Ruby", "method": "Raman"})
        assert third.status_code == 201, third.text
        assert third.json()["previous_signature"] == second.json()["signature"]["value"]
        revisions = a.get(f"/v1/reports/{rid}/revisions").json()
        assert revisions == b.get(f"/v1/reports/{rid}/revisions").json()
        keys = {k["key_id"]: signing.load_public_pem(k["public_pem"]) for k in b.get("/v1/keys").json()["keys"]}
        verdict = signing.verify_revisions(json.loads(json.dumps(revisions))["revisions"], keys,
                                           photo_sha256=created["image"]["sha256"])
        assert verdict.ok and verdict.checked == [1, 2, 3] and len(verdict.key_ids) == 1
        assert b.get(f"/v1/verify/{code}").json()["revisions"] == 3
        # the same photo sent through the other replica is stored once
        again = b.post("/v1/identify", files=[upload("ruby-again.png", photo)])
        assert again.status_code == 200
    from sqlalchemy import create_engine, func, select

    from gemid.serve import audit
    from gemid.serve.models_db import PhotoRow

    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(PhotoRow)).scalar_one() == 1
        # both replicas wrote the audit trail, into one intact chain
        check = audit.verify(engine)
        assert check.problem is None and check.entries >= 10, check.problem
        assert check.sealed_through == check.entries and len(check.key_ids) == 1  # both sealed with the one key
        trail = audit.rows(engine)
        assert {e["desk"] for e in trail if e["action"] == "readings"} == {"gate B"}
        assert {e["desk"] for e in trail if e["action"] == "confirmation"} == {"gate A"}
        assert [e["report_id"] for e in trail if e["action"] == "create"][0] == rid
    finally:
        engine.dispose()
