"""Tray photos, duplicates, parcels and the CSV exports through the real app, a real SQLite store and the real
(tiny) ONNX model: every stone of a tray photo gets its own stored report sharing the photo stored once; the
same photo under the same reference returns the stored reports; a parcel lists its stones with the rows of
gemid.report.table_row; the CSVs have ROW_FIELDS as columns.
"""

from __future__ import annotations

import csv
import hashlib
import io
from urllib.parse import quote

import pytest

pytest.register_assert_rewrite("serve_support")

from bundle_fixture import TRAY_READING_ORDER, draw_tray, encode  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serve_support import make_settings, signed_client, stone, stored, upload  # noqa: E402

from gemid.report import ROW_FIELDS, Report, table_row  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.settings import Settings  # noqa: E402

pytest_plugins = ["serve_support", "postgres_support"]


@pytest.fixture(scope="module")
def tray_photo() -> bytes:
    return encode(draw_tray())


def identify(client: TestClient, *photos: tuple[str, bytes], reference: str | None = None, query: str = ""):
    data = {"reference": reference} if reference is not None else {}
    return client.post(f"/v1/identify{query}", files=[upload(n, b, "image/png") for n, b in photos], data=data)


def read_csv(text: str) -> list[dict[str, str]]:
    assert text.startswith("\ufeff")  # spreadsheets read it as UTF-8
    reader = csv.DictReader(io.StringIO(text[1:]))
    assert reader.fieldnames == ROW_FIELDS
    return list(reader)


def test_every_stone_of_a_tray_photo_gets_its_own_stored_report(client: TestClient, settings: Settings,
                                                                 tray_photo: bytes):
    r = identify(client, ("tray.png", tray_photo), ("ruby.png", stone("Ruby")), reference="LOT 1")
    assert r.status_code == 200, r.text
    body = r.json()
    reports = body["reports"]
    assert body["notices"] == []
    assert len(reports) == 7  # six stones of the tray, then the single stone
    tray, single = reports[:6], reports[6]
    assert [x["stone"]["index"] for x in tray] == [1, 2, 3, 4, 5, 6]
    assert {x["stone"]["count"] for x in tray} == {6}
    assert [x["species"]["top"][0]["label"] for x in tray] == TRAY_READING_ORDER  # each from its own crop
    assert {x["image"]["sha256"] for x in tray} == {hashlib.sha256(tray_photo).hexdigest()}
    assert single["stone"]["index"] == 1 and single["stone"]["count"] == 1
    assert single["species"]["top"][0]["label"] == "Ruby"
    # small in the frame by design: no stone of a tray is told to "move closer" (an outside try's finding)
    assert not [w for x in tray for w in x["quality"]["warnings"] if w["code"] == "stone_too_small"]
    for x in tray:
        assert x["colour"] is not None and x["clarity"] is not None and x["conclusion"] is not None
        assert x["tests"] is not None and x["file"] == "tray.png" and x["reference"] == "LOT 1"
        assert client.get(f"/v1/reports/{x['report_id']}").json() == x  # stored as answered
        img = client.get(f"/v1/reports/{x['report_id']}/image")
        assert img.status_code == 200 and img.content == tray_photo
    assert len({x["report_id"] for x in reports}) == 7
    assert stored(settings) == (7, 7, 2)  # seven reports, two photos stored once each


def test_readings_sent_with_a_tray_or_with_several_photos_are_refused_and_nothing_is_stored(
        client: TestClient, settings: Settings, tray_photo: bytes):
    # readings describe one stone: given to every stone of a tray they re-ranked the others on a stranger's RI
    r = client.post("/v1/identify", files=[upload("tray.png", tray_photo, "image/png")], data={"ri": "1.762"})
    assert r.status_code == 422, r.text
    (entry,) = r.json()["reports"]
    assert entry["error"]["code"] == "readings_several_stones" and "holds 6 stones" in entry["error"]["message"]
    r = client.post("/v1/identify", data={"ri": "1.762"},
                    files=[upload("a.png", stone("Ruby"), "image/png"), upload("b.png", stone("Ruby"), "image/png")])
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_readings", r.text
    assert "2 photos" in r.json()["error"]["message"]
    assert stored(settings) == (0, 0, 0)
    r = client.post("/v1/identify", files=[upload("ruby.png", stone("Ruby"), "image/png")], data={"ri": "1.762"})
    assert r.status_code == 200 and r.json()["reports"][0]["tests"]["reranking"]["readings"]["ri"] == 1.762


def test_readings_sent_again_with_a_stored_photo_revise_its_report(client: TestClient, settings: Settings,
                                                                     tray_photo: bytes):
    # an outside try: a stored photo sent again with spinel readings came back "identified Ruby" with the old
    # readings, the new ones silently dropped
    ruby = stone("Ruby")
    first = client.post("/v1/identify", files=[upload("ruby.png", ruby, "image/png")],
                        data={"reference": "LOT R", "ri": "1.762", "sg": "4.0"}).json()["reports"][0]
    r = client.post("/v1/identify", files=[upload("ruby.png", ruby, "image/png")],
                    data={"reference": "LOT R", "ri": "1.718", "sg": "3.60"})
    assert r.status_code == 200, r.text
    (again,) = r.json()["reports"]
    assert again["report_id"] == first["report_id"] and again["revision"] == 2
    assert (again["tests"]["reranking"]["readings"]["ri"], again["conclusion"]["decision"]) == (1.718, "refer")
    (notice,) = r.json()["notices"]
    assert notice["code"] == "duplicate" and "added to its report as revision 2" in notice["message"]
    assert stored(settings) == (1, 2, 1)  # one report, two revisions, one photo
    # a stored tray photo with readings: refused as its analysis would be, nothing stored
    assert client.post("/v1/identify", files=[upload("tray.png", tray_photo, "image/png")],
                       data={"reference": "LOT R"}).status_code == 200
    r = client.post("/v1/identify", files=[upload("tray.png", tray_photo, "image/png")],
                    data={"reference": "LOT R", "ri": "1.762"})
    assert r.status_code == 422 and r.json()["reports"][0]["error"]["code"] == "readings_several_stones", r.text
    assert stored(settings) == (7, 8, 2)


def test_same_photo_same_reference_returns_the_stored_reports(client: TestClient, settings: Settings,
                                                              tray_photo: bytes):
    first = identify(client, ("tray.png", tray_photo), reference="LOT 2").json()["reports"]
    ids = [x["report_id"] for x in first]
    assert stored(settings) == (6, 6, 1)

    again = identify(client, ("tray-again.png", tray_photo), reference="LOT 2")
    assert again.status_code == 200, again.text
    body = again.json()
    assert [x["report_id"] for x in body["reports"]] == ids  # the stored ones, in reading order
    (notice,) = body["notices"]
    assert notice["code"] == "duplicate" and notice["file"] == "tray-again.png"
    assert notice["report_ids"] == ids and "LOT 2" in notice["message"] and "force=true" in notice["message"]
    assert stored(settings) == (6, 6, 1)  # nothing new

    # the same photo twice in one request, under a reference seen for the first time: analysed once
    both = identify(client, ("a.png", stone("Emerald")), ("b.png", stone("Emerald")), reference="LOT 3").json()
    assert both["reports"][0]["report_id"] == both["reports"][1]["report_id"]
    assert [n["file"] for n in both["notices"]] == ["b.png"]
    assert stored(settings) == (7, 7, 2)

    # another reference, no reference, or force: a new report each time
    other = identify(client, ("tray.png", tray_photo), reference="LOT 9").json()
    assert other["notices"] == [] and not {x["report_id"] for x in other["reports"]} & set(ids)
    assert identify(client, ("tray.png", tray_photo)).json()["notices"] == []
    forced = identify(client, ("tray.png", tray_photo), reference="LOT 2", query="?force=true").json()
    assert forced["notices"] == [] and not {x["report_id"] for x in forced["reports"]} & set(ids)
    assert stored(settings) == (7 + 18, 7 + 18, 2)
    # the parcel now holds the tray twice (forced), each photo's stones together and in reading order
    parcel = client.get(f"/v1/parcels/{quote('LOT 2')}").json()
    assert [x["stone"]["index"] for x in parcel["reports"]] == [1, 2, 3, 4, 5, 6] * 2
    assert [x["report_id"] for x in parcel["reports"][:6]] == ids


def test_a_parcel_lists_its_stones_with_one_row_each(client: TestClient, tray_photo: bytes):
    reference = "PK/7 lot 3"  # a slash inside a reference: URL-encoded in the path
    identify(client, ("tray.png", tray_photo), reference=reference)
    identify(client, ("ruby.png", stone("Ruby")), ("blank.png", encode(_blank())), reference=reference)
    identify(client, ("elsewhere.png", stone("Peridot")), reference="PK/7 lot 30")  # not this parcel
    r = client.get(f"/v1/parcels/{quote(reference, safe='')}")
    assert r.status_code == 200, r.text
    parcel = r.json()
    assert parcel["reference"] == reference and parcel["stones"] == 8 and parcel["photos"] == 3
    assert parcel["columns"] == ROW_FIELDS
    reports = [Report.model_validate(x) for x in parcel["reports"]]
    assert parcel["rows"] == [table_row(x) for x in reports]
    assert [row["stone"] for row in parcel["rows"]] == [f"{i} of 6" for i in range(1, 7)] + ["1 of 1", ""]
    assert [row["file"] for row in parcel["rows"]] == ["tray.png"] * 6 + ["ruby.png", "blank.png"]
    assert [row["top1"] for row in parcel["rows"][:7]] == [*TRAY_READING_ORDER, "Ruby"]
    decisions = [row["decision"] for row in parcel["rows"]]
    assert parcel["counts"] == {d: decisions.count(d) for d in ("identified", "uncertain", "refer", "rejected")}
    assert parcel["counts"]["rejected"] >= 1  # the blank photo: no stone
    for row in parcel["rows"][:7]:
        assert row["colour"] and row["clarity"] and row["shape"] and row["image_sha256"]

    # readings entered on one stone show in its row
    rid = parcel["rows"][0]["report_id"]
    assert client.post(f"/v1/reports/{rid}/readings", json={"ri": 1.58, "sg": 2.72}).status_code == 201
    row = client.get(f"/v1/parcels/{quote(reference, safe='')}").json()["rows"][0]
    assert row["readings"] == "RI 1.580; SG 2.72" and row["revision"] == "2"

    # the parcel's CSV: the same rows
    r = client.get(f"/v1/parcels/{quote(reference, safe='')}.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = read_csv(r.text)
    assert [x["report_id"] for x in rows] == [x["report_id"] for x in parcel["rows"]]
    assert rows[0]["readings"] == "RI 1.580; SG 2.72"


def _blank() -> object:
    import numpy as np

    return np.full((200, 300, 3), 245, np.uint8)


def test_unknown_or_bad_parcels_are_clear_errors(client: TestClient):
    for path in ("/v1/parcels/NO-SUCH-LOT", "/v1/parcels/NO-SUCH-LOT.csv"):
        r = client.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "parcel_not_found", r.text
        assert "NO-SUCH-LOT" in r.json()["error"]["message"]
    r = client.get("/v1/parcels/" + "x" * 300)
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_reference"
    r = client.get("/v1/parcels/%20%20")
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_reference"


def test_history_csv_has_the_list_filters(client: TestClient):
    identify(client, ("r.png", stone("Ruby")), reference="=HYPERLINK(\"x\")")
    identify(client, ("e.png", stone("Emerald")), reference="CSV-B")
    identify(client, ("e2.png", stone("Emerald")), reference="CSV-B2")
    everything = read_csv(client.get("/v1/reports.csv").text)
    listed = client.get("/v1/reports", params={"limit": 200}).json()["items"]
    assert [x["report_id"] for x in everything] == [x["report_id"] for x in listed]  # newest first, all
    # a reference typed as a formula stays text in a spreadsheet
    assert [x["reference"] for x in everything if x["file"] == "r.png"] == ["'=HYPERLINK(\"x\")"]
    for params in ({"reference": "csv-b"}, {"species": "emerald"}, {"decision": "identified", "species": "Ruby"}):
        got = read_csv(client.get("/v1/reports.csv", params=params).text)
        want = client.get("/v1/reports", params={**params, "limit": 200}).json()["items"]
        assert [x["report_id"] for x in got] == [x["report_id"] for x in want], params
        assert got, params
    assert {x["file"] for x in read_csv(client.get("/v1/reports.csv", params={"reference": "csv-b"}).text)} == {
        "e.png", "e2.png"}
    bad = client.get("/v1/reports.csv", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["code"]
    bad = client.get("/v1/reports.csv", params={"decision": "maybe"})
    assert bad.status_code == 422 and bad.json()["error"]["code"]


def test_duplicates_parcels_and_csv_on_sqlite_and_postgresql(database_url: str, tmp_path, tiny_bundle, identifier,
                                                            tray_photo: bytes):
    """The same queries on both stores: a duplicate found by sha256 and reference, a parcel's stones in order
    (two photos analysed one after the other, each photo's stones together), History's CSV newest first."""
    key = {} if database_url.startswith("sqlite") else {"signing_key": tmp_path / "shared" / "signing-key.pem"}
    settings = make_settings(tmp_path / "data", tiny_bundle, db_url=database_url, **key)
    with signed_client(create_app(settings, identifier=identifier)) as c:
        first = identify(c, ("tray.png", tray_photo), ("ruby.png", stone("Ruby")), reference="PG LOT").json()
        again = identify(c, ("tray.png", tray_photo), reference="PG LOT").json()
        assert [n["code"] for n in again["notices"]] == ["duplicate"]
        assert [x["report_id"] for x in again["reports"]] == [x["report_id"] for x in first["reports"][:6]]
        parcel = c.get(f"/v1/parcels/{quote('PG LOT')}").json()
        assert [x["report_id"] for x in parcel["rows"]] == [x["report_id"] for x in first["reports"]]
        rows = read_csv(c.get("/v1/reports.csv").text)
        assert [x["file"] for x in rows] == ["ruby.png"] + ["tray.png"] * 6  # the newest photo first
        assert [x["stone"] for x in rows[1:]] == [f"{i} of 6" for i in range(1, 7)]  # its stones in reading order
    assert stored(settings)[:2] == (7, 7)
