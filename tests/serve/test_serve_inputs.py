"""Input hygiene and the store's bounds (issue 30, findings 6, 8, 9, 10, 11): what a client sends is cleaned
or refused before anything is stored, and the store refuses what it has no room for."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("serve_support")

from fastapi.testclient import TestClient  # noqa: E402
from serve_support import make_settings, signed_client, stone, stored, upload  # noqa: E402

from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.settings import Settings  # noqa: E402

pytest_plugins = ["serve_support"]


def identify(c: TestClient, label: str = "Ruby", name: str | None = None, **data) -> dict:
    r = c.post("/v1/identify", files=[upload(name or f"{label}.png", stone(label))], data=data)
    assert r.status_code == 200, r.text
    return r.json()["reports"][0]


def test_bidirectional_controls_leave_references_and_file_names_but_joiners_stay(client: TestClient):
    # finding 6: U+202E would print "LOT-\u202e411-ABC" as "LOT-CBA-114", and a search for it found nothing
    report = identify(client, reference="LOT-\u202e411-ABC", name="lot\u2066-7\u2069.png")
    assert report["reference"] == "LOT-411-ABC" and report["file"] == "lot-7.png"
    assert client.get("/v1/reports", params={"reference": "LOT-411"}).json()["total"] == 1
    every = "".join(chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
    assert identify(client, reference=f"A{every}B")["reference"] == "AB"
    urdu = "لاٹ\u200c۱\u200d۲"  # ZWNJ and ZWJ: Urdu needs them
    assert identify(client, reference=urdu)["reference"] == urdu
    assert client.get("/v1/reports", params={"reference": "لاٹ\u200c۱"}).json()["total"] == 1


@pytest.mark.parametrize("body", [{"birefringence": False}, {"ri": True}, {"ri": "1.76"}, {"sg": "4"},
                                  {"ri_otl": 1}, {"ri_otl": "true"}, {"optic": "sr"}, {"pleochroism": 2}])
def test_json_readings_must_be_json_numbers_and_switches_true_or_false(client: TestClient, settings: Settings, body):
    # finding 8: `"birefringence": false` was stored as 0.0
    rid = identify(client)["report_id"]
    r = client.post(f"/v1/reports/{rid}/readings", json=body)
    assert r.status_code == 422, r.text
    assert next(iter(body)) in r.json()["error"]["message"]
    assert stored(settings) == (1, 1, 1)


def test_form_readings_are_text_and_parsed(client: TestClient):
    report = identify(client, ri="1.765", sg="4", ri_otl="false", optic="DR")
    readings = report["tests"]["reranking"]["readings"]
    assert (readings["ri"], readings["sg"], readings["ri_otl"], readings["optic"]) == (1.765, 4.0, False, "DR")
    for field, value in [("ri", "high"), ("ri_otl", "maybe"), ("optic", "round"), ("sg", "nan")]:
        r = client.post("/v1/identify", files=[upload("r.png", stone("Ruby"))], data={field: value})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_readings", (field, r.text)
        assert field in r.json()["error"]["message"]


def test_a_report_takes_at_most_max_revisions(tmp_path, tiny_bundle, identifier):
    # finding 9: a fuzzer gave one report 241 revisions
    settings = make_settings(tmp_path / "data", tiny_bundle, max_revisions=3)
    with signed_client(create_app(settings, identifier=identifier)) as c:
        rid = identify(c)["report_id"]
        for sg in (4.0, 4.01):
            assert c.post(f"/v1/reports/{rid}/readings", json={"sg": sg}).status_code == 201
        r = c.post(f"/v1/reports/{rid}/readings", json={"sg": 4.02})
        assert r.status_code == 409 and r.json()["error"]["code"] == "too_many_revisions", r.text
        assert "3 revisions" in r.json()["error"]["message"] and "GEMID_MAX_REVISIONS" in r.json()["error"]["message"]
        assert [v["revision"] for v in c.get(f"/v1/reports/{rid}/revisions").json()["revisions"]] == [1, 2, 3]


@pytest.mark.parametrize("length", [300, 5_000, 60_000])
def test_a_long_file_name_is_cut_at_the_stores_limit(client: TestClient, length):
    # finding 10: names over ~5,000 characters got a vague bad_multipart
    report = identify(client, name="stone-" + "x" * length + ".png")
    assert len(report["file"]) == 255 and report["file"].startswith("stone-xxx") and report["file"].endswith("….png")
    assert client.get(f"/v1/reports/{report['report_id']}").json()["file"] == report["file"]


def test_the_size_limit_speaks_mib_as_it_is_set(tmp_path, tiny_bundle, identifier):
    # finding 11: a 20 MiB limit was announced as "21.0 MB"
    settings = make_settings(tmp_path / "data", tiny_bundle)
    assert settings.max_bytes == 20 * 2**20
    with signed_client(create_app(settings, identifier=identifier)) as c:
        r = c.post("/v1/identify", files=[upload("big.jpg", b"\xff\xd8" + bytes(20 * 2**20))])
        assert r.status_code == 413, r.text
        assert r.json()["reports"][0]["error"]["message"] == "the photo is 20.0 MiB; the limit is 20 MiB per photo"
        r = c.post("/v1/identify", content=b"x", headers={"content-type": "multipart/form-data; boundary=b",
                                                            "content-length": str(51 * 20 * 2**20)})
        assert r.status_code == 413 and "over 1001 MiB" in r.json()["error"]["message"], r.text
    assert stored(settings) == (0, 0, 0)
    assert not list(settings.spool_dir.iterdir())  # nothing of the refused upload stays on disk


def test_the_store_quota_refuses_new_photos_with_507_and_metrics_show_the_bytes(tmp_path, tiny_bundle, identifier):
    # finding 10: nothing bounded the disk the photos use
    ruby, emerald = stone("Ruby"), stone("Emerald")
    settings = make_settings(tmp_path / "data", tiny_bundle, max_store_bytes=len(ruby) + len(emerald) // 2)
    with signed_client(create_app(settings, identifier=identifier)) as c:
        assert c.post("/v1/identify", files=[upload("ruby.png", ruby)]).status_code == 200
        assert c.post("/v1/identify", files=[upload("again.png", ruby)]).status_code == 200  # the same photo: no room needed
        r = c.post("/v1/identify", files=[upload("emerald.png", emerald), upload("ruby3.png", ruby)])
        assert r.status_code == 200, r.text
        refused, kept = r.json()["reports"]
        assert refused["error"]["code"] == "store_full" and "GEMID_MAX_STORE_BYTES" in refused["error"]["message"]
        assert kept["species"]["top"][0]["label"] == "Ruby"
        r = c.post("/v1/identify", files=[upload("emerald.png", emerald)])
        assert r.status_code == 507 and r.json()["reports"][0]["error"]["code"] == "store_full"
        metrics = c.get("/metrics").text
        assert f"gemid_store_photo_bytes {float(len(ruby))}" in metrics
        assert f"gemid_store_photo_max_bytes {float(settings.max_store_bytes)}" in metrics
    assert stored(settings) == (3, 3, 1)
    with signed_client(create_app(settings, identifier=identifier)) as c:  # counted again on a restart
        assert c.app.state.images.used() == len(ruby)
