"""POST /v1/identify through the real app, a real SQLite file (and, for the restart, a real PostgreSQL server)
and the photo store in tmp_path.

Every refusal must give the right status and a message, and store nothing; no input may give a 500
(TestClient re-raises any server exception, so a crash fails the test).
"""

from __future__ import annotations

import hashlib
import random

import pytest

pytest.register_assert_rewrite("serve_support")

from fastapi.testclient import TestClient  # noqa: E402
from serve_support import make_settings, signed_client, stone, stored, upload  # noqa: E402

from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.settings import Settings  # noqa: E402

pytest_plugins = ["serve_support", "postgres_support"]


@pytest.fixture
def any_db_settings(database_url: str, tmp_path, tiny_bundle) -> Settings:
    """The service on a SQLite file, and on PostgreSQL, by GEMID_DB_URL (with the key file replicas share)."""
    key = {} if database_url.startswith("sqlite") else {"signing_key": tmp_path / "shared" / "signing-key.pem"}
    return make_settings(tmp_path / "data", tiny_bundle, db_url=database_url, **key)


def test_round_trip_survives_a_restart(any_db_settings: Settings, tiny_bundle, identifier):
    settings = any_db_settings
    photo = stone("Ruby")
    with signed_client(create_app(settings, identifier=identifier)) as c:
        r = c.post("/v1/identify", files=[upload("ruby.png", photo, "image/png")], data={"reference": " PK-7  lot 3 "})
        assert r.status_code == 200, r.text
        (report,) = r.json()["reports"]
        assert report["species"]["decision"] == "identified"
        assert report["species"]["top"][0]["label"] == "Ruby" and len(report["species"]["top"]) >= 5
        assert report["reference"] == "PK-7 lot 3" and report["file"] == "ruby.png"
        assert report["image"]["sha256"] == hashlib.sha256(photo).hexdigest()
        assert "confirm" in report["disclaimer"]
        rid = report["report_id"]
        assert c.get(f"/v1/reports/{rid}").json() == report
    assert stored(settings) == (1, 1, 1)

    # a new app on the same data directory, loading the model itself: a server restart
    with signed_client(create_app(settings)) as c:
        assert c.get(f"/v1/reports/{rid}").json() == report
        img = c.get(f"/v1/reports/{rid}/image")
        assert img.status_code == 200 and img.content == photo
        assert img.headers["content-type"] == "image/png"
        assert [i["report_id"] for i in c.get("/v1/reports").json()["items"]] == [rid]


def test_api_gives_the_same_answer_as_the_runtime(client: TestClient, identifier):
    photo = stone("Emerald", ".jpg")
    direct = identifier.identify(photo, filename="e.jpg")
    (report,) = client.post("/v1/identify", files=[upload("e.jpg", photo, "image/jpeg")]).json()["reports"]
    assert report["species"]["top"] == direct.model_dump(mode="json")["species"]["top"]
    assert report["species"]["decision"] == direct.species.decision
    assert client.get(f"/v1/reports/{report['report_id']}/image").headers["content-type"] == "image/jpeg"


def test_grade_false_is_a_quick_species_screen(client: TestClient, settings: Settings, identifier):
    photo = stone("Ruby", ".jpg")
    graded = client.post("/v1/identify", files=[upload("r.jpg", photo, "image/jpeg")]).json()["reports"][0]
    quick = client.post("/v1/identify?grade=false", files=[upload("r.jpg", photo, "image/jpeg")]).json()["reports"][0]
    assert graded["colour"] is not None and graded["clarity"] is not None
    assert quick["colour"] is None and quick["clarity"] is None
    # the species answer, quality and test guidance do not depend on grading
    for key in ("species", "quality", "tests"):
        assert quick[key] == graded[key], key
    assert client.get(f"/v1/reports/{quick['report_id']}").json() == quick  # stored as sent
    assert client.post("/v1/identify?grade=maybe", files=[upload("r.jpg", photo, "image/jpeg")]).status_code == 422
    assert stored(settings) == (2, 2, 1)  # two reports of one photo (content-addressed)


def test_png_named_jpg_is_read_by_content(client: TestClient, settings: Settings):
    r = client.post("/v1/identify", files=[upload("photo.jpg", stone("Sapphire Blue"), "image/jpeg")])
    assert r.status_code == 200
    (report,) = r.json()["reports"]
    assert report["image"]["format"] == "PNG" and report["species"]["top"][0]["label"] == "Sapphire Blue"
    assert client.get(f"/v1/reports/{report['report_id']}/image").headers["content-type"] == "image/png"
    assert stored(settings) == (1, 1, 1)


def test_a_parcel_keeps_order_and_stores_only_the_good_photos(client: TestClient, settings: Settings):
    files = [upload("a.png", stone("Ruby")), upload("notes.txt", b"parcel 12, three stones\n"),
             upload("c.png", stone("Citrine")), upload("empty.jpg", b"")]
    r = client.post("/v1/identify", files=files, data={"reference": "P-12"})
    assert r.status_code == 200
    entries = r.json()["reports"]
    assert [e["file"] for e in entries] == ["a.png", "notes.txt", "c.png", "empty.jpg"]
    assert entries[0]["species"]["top"][0]["label"] == "Ruby"
    assert entries[1]["error"]["code"] == "unsupported_type"
    assert entries[2]["species"]["top"][0]["label"] == "Citrine"
    assert entries[3]["error"]["code"] == "empty_file"
    assert all(e["reference"] == "P-12" for e in (entries[0], entries[2]))
    assert stored(settings) == (2, 2, 2)


def truncated_jpeg() -> bytes:
    data = stone("Ruby", ".jpg")
    return data[: len(data) // 2]


# (name, request kwargs, settings overrides, status, error code, words the message must contain)
BAD = [
    ("empty upload", {"files": [upload("a.jpg", b"")]}, {}, 400, "empty_file", "empty"),
    ("text file", {"files": [upload("a.jpg", b"just some text\n" * 20, "image/jpeg")]}, {}, 415,
     "unsupported_type", "not an image"),
    ("pdf", {"files": [upload("scan.pdf", b"%PDF-1.7\n" + b"x" * 200)]}, {}, 415, "unsupported_type", "PDF"),
    ("truncated jpeg", {"files": [upload("a.jpg", truncated_jpeg())]}, {}, 422, "corrupt_image", ""),
    ("random bytes", {"files": [upload("a.png", random.Random(1).randbytes(3000))]}, {}, 415, "unsupported_type", ""),
    ("oversize", {"files": [upload("big.png", stone("Ruby"))]}, {"max_bytes": 2000}, 413, "too_large", "limit is 2.0 KiB"),
    ("too many pixels", {"files": [upload("wide.png", stone("Ruby"))]}, {"max_pixels": 10_000}, 413,
     "too_many_pixels", "MP"),
]


@pytest.mark.parametrize(("name", "kwargs", "overrides", "status", "code", "words"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_photo_is_refused_and_nothing_is_stored(tmp_path, tiny_bundle, identifier, name, kwargs, overrides,
                                                      status, code, words):
    settings = make_settings(tmp_path / "data", tiny_bundle, **overrides)
    with signed_client(create_app(settings, identifier=None if overrides else identifier)) as c:
        r = c.post("/v1/identify", **kwargs)
    assert r.status_code == status, r.text
    (entry,) = r.json()["reports"]
    assert entry["error"]["code"] == code
    assert words in entry["error"]["message"] and len(entry["error"]["message"]) > 10
    assert entry["file"] == kwargs["files"][0][1][0]
    assert stored(settings) == (0, 0, 0)


# requests refused as a whole: {"error": {...}} and the status
BAD_REQUESTS = [
    ("no files", {"data": {"reference": "x"}, "files": [("reference", (None, "x"))]}, 400, "no_files", "images"),
    ("wrong field", {"files": [("image", ("a.png", stone("Ruby"), "image/png"))]}, 400, "no_files", "'image'"),
    ("extra field", {"files": [upload("a.png", stone("Ruby"))], "data": {"colour": "red"}}, 400, "unknown_field",
     "'colour'"),
    ("images as text", {"files": [("images", (None, "hello"))]}, 400, "not_a_file", "file"),
    ("json body", {"json": {"images": ["x"]}}, 400, "no_files", "multipart"),
    ("bad reading", {"files": [upload("a.png", stone("Ruby"))], "data": {"ri": "abc"}}, 422, "invalid_readings",
     "ri"),
    ("reading out of range", {"files": [upload("a.png", stone("Ruby"))], "data": {"sg": "42"}}, 422,
     "invalid_readings", "sg: must be 8.0 or less"),  # words, not "Input should be less than or equal to 8"
    ("unknown optic", {"files": [upload("a.png", stone("Ruby"))], "data": {"optic": "XX"}}, 422, "invalid_readings",
     "optic"),
    ("high RI alone", {"files": [upload("a.png", stone("Ruby"))], "data": {"ri_high": "1.77"}}, 422,
     "invalid_readings", "ri_high: a high RI reading needs the low RI reading"),
    ("RI past the refractometer's limit", {"files": [upload("a.png", stone("Ruby"))], "data": {"ri": "1.85"}}, 422,
     "invalid_readings", "beyond the refractometer's limit 1.81"),
    ("impossible coin", {"files": [upload("a.png", stone("Ruby"))], "data": {"coin_mm": "200"}}, 422,
     "invalid_coin", "10-40"),
    ("coin not a number", {"files": [upload("a.png", stone("Ruby"))], "data": {"coin_mm": "a euro"}}, 422,
     "invalid_coin", "coin_mm"),
    ("ruler not yes or no", {"files": [upload("a.png", stone("Ruby"))], "data": {"ruler": "maybe"}}, 422,
     "invalid_scale", "ruler: true or false"),
    ("coin and ruler", {"files": [upload("a.png", stone("Ruby"))], "data": {"coin_mm": "20", "ruler": "on"}}, 422,
     "invalid_scale", "not both"),
    ("long reference", {"files": [upload("a.png", stone("Ruby"))], "data": {"reference": "x" * 201}}, 422,
     "bad_reference", "200"),
    ("too many files", {"files": [upload(f"{i}.png", b"x") for i in range(51)]}, 400, "too_many_files", "50"),
]


@pytest.mark.parametrize(("name", "kwargs", "status", "code", "words"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_a_bad_request_is_refused_and_nothing_is_stored(client: TestClient, settings: Settings, name, kwargs, status,
                                                        code, words):
    r = client.post("/v1/identify", **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert words in r.json()["error"]["message"]
    assert stored(settings) == (0, 0, 0)


def test_status_when_every_photo_is_refused(client: TestClient, settings: Settings):
    same = client.post("/v1/identify", files=[upload("a.txt", b"text " * 10), upload("b.txt", b"more " * 10)])
    assert same.status_code == 415 and len(same.json()["reports"]) == 2
    mixed = client.post("/v1/identify", files=[upload("a.txt", b"text " * 10), upload("b.jpg", truncated_jpeg())])
    assert mixed.status_code == 400
    assert [e["error"]["code"] for e in mixed.json()["reports"]] == ["unsupported_type", "corrupt_image"]
    assert stored(settings) == (0, 0, 0)


def test_a_body_over_the_request_limit_is_refused_while_streaming(tmp_path, tiny_bundle, identifier):
    settings = make_settings(tmp_path / "data", tiny_bundle, max_files=1, max_bytes=1000)
    limit = 1000 + 1024 * 1024
    boundary = "gemidboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"big.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
    payload = b"\x89PNG\r\n\x1a\n" + b"\0" * (limit + 10)
    body = head + payload + f"\r\n--{boundary}--\r\n".encode()
    ctype = {"content-type": f"multipart/form-data; boundary={boundary}"}
    with signed_client(create_app(settings, identifier=identifier)) as c:
        declared = c.post("/v1/identify", content=body, headers=ctype)  # Content-Length known up front
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "request_too_large"

        def chunks():  # no Content-Length: counted as it arrives
            for i in range(0, len(body), 64 * 1024):
                yield body[i : i + 64 * 1024]

        streamed = c.post("/v1/identify", content=chunks(), headers=ctype)
        assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "request_too_large"
    assert stored(settings) == (0, 0, 0)


def test_garbage_never_gives_a_500(client: TestClient, settings: Settings):
    rng = random.Random(7)
    png = stone("Ruby")
    samples = [rng.randbytes(rng.randint(1, 4000)) for _ in range(6)]
    samples += [png[:n] for n in (8, 33, 100, len(png) - 20)]  # cut inside the header, the data, the end
    samples += [png[:200] + rng.randbytes(500) + png[700:]]  # damaged in the middle
    for i, data in enumerate(samples):
        r = client.post("/v1/identify", files=[upload(f"g{i}.jpg", data)])
        assert r.status_code in (200, 400, 413, 415, 422), (i, r.status_code, r.text)
    raw = [b"", b"--x\r\n", b"not multipart at all", b"--b\r\nContent-Disposition: form-data\r\n\r\n--b--"]
    for body in raw:
        r = client.post("/v1/identify", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
        assert 400 <= r.status_code < 500 and "error" in r.json(), (body, r.text)
    r = client.post("/v1/identify", content=b"x", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_multipart"


def test_no_report_is_recorded_when_its_photo_cannot_be_written(settings: Settings, identifier):
    with signed_client(create_app(settings, identifier=identifier)) as c:
        settings.images_dir.rmdir() if settings.images_dir.is_dir() else None
        settings.images_dir.write_text("a file where the photo directory should be")  # e.g. a broken disk
        r = c.post("/v1/identify", files=[upload("a.png", stone("Ruby"))])
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
        assert c.get("/v1/reports").json()["total"] == 0


def test_readings_sent_with_the_photo_rerank_revision_1(client: TestClient, settings: Settings):
    r = client.post("/v1/identify", files=[upload("a.png", stone("Ruby"))],
                    data={"ri": "1.544", "sg": "2.65", "optic": "", "reference": "R-1"})
    assert r.status_code == 200, r.text
    (report,) = r.json()["reports"]
    assert report["revision"] == 1 and report["species"]["top"][0]["label"] == "Ruby"
    rerank = report["tests"]["reranking"]
    assert rerank["readings"]["ri"] == 1.544 and rerank["readings"]["optic"] is None  # empty field = not measured
    assert rerank["combined"][0]["label"] in ("Amethyst", "Citrine")  # quartz readings overturn the photo
    assert stored(settings) == (1, 1, 1)


def test_text_and_numbers_a_database_cannot_hold_are_cleaned_or_refused(any_db_settings: Settings, identifier):
    """PostgreSQL cannot store NUL and keeps 32-bit revisions; no upload, filter or id may turn that into a 500
    (nor a 503 that loses the photo): names and references are cleaned, impossible ids and numbers refused."""
    photo = stone("Ruby")
    with signed_client(create_app(any_db_settings, identifier=identifier)) as c:
        long_name = "lot 7 " + "x" * 400 + ".png"
        r = c.post("/v1/identify", files=[upload("ruby\x1b[31m\x7f.png", photo, "image/png"),
                                          upload(long_name, stone("Ruby", seed=1), "image/png")],
                   data={"reference": "LOT\x00-7\x1b\tA"})  # another photo: the same one again is a duplicate
        assert r.status_code == 200, r.text
        first, second = r.json()["reports"]
        assert first["file"] == "ruby[31m.png" and first["reference"] == "LOT-7 A"
        assert len(second["file"]) == 255 and second["file"].startswith("lot 7 xxx") and second["file"].endswith("….png")
        rid = first["report_id"]
        assert c.get(f"/v1/reports/{rid}").json() == first  # stored, and read back as it was answered
        listed = c.get("/v1/reports", params={"reference": "lot\x00-7", "species": "ruby\x00"}).json()
        assert listed["total"] == 2  # a control character in a filter matches what was stored without it
        for path in ("/v1/reports/a%00b", "/v1/reports/a%00b/image", "/v1/reports/a%00b/revisions",
                     "/v1/reports/a%00b/qr.svg", "/v1/reports/a%00b/preview.jpg"):
            bad = c.get(path)
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request", path
        assert c.post("/v1/reports/a%00b/readings", json={"ri": 1.76}).status_code == 422
        huge = 10**20
        assert c.get(f"/v1/reports?offset={huge}").status_code == 422
        assert c.get(f"/v1/reports/{rid}?revision={huge}").status_code == 422
        assert c.get(f"/v1/reports/{rid}?revision={2**31 - 1}").json()["error"]["code"] == "revision_not_found"
        # dates at the ends of the calendar: the last day is no upper bound, before year 1 in UTC is refused
        assert c.get("/v1/reports", params={"until": "9999-12-31"}).json()["total"] == 2
        early = c.get("/v1/reports", params={"since": "0001-01-01T00:00:00+05:00"})
        assert early.status_code == 422 and "years 1-9999" in early.json()["error"]["message"]
        page = c.get("/r/a%00b<x>")  # a typed-in link: the human "not found" page, escaped
        assert page.status_code == 404 and "Report not found" in page.text and "<x>" not in page.text
    assert stored(any_db_settings) == (2, 2, 2)
