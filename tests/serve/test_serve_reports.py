"""Stored reports through the real app: fetch, list with filters and pages, revisions with readings, the
photo, health and metrics, and the JSON error shape for every failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytest.register_assert_rewrite("serve_support")

from alembic.script import ScriptDirectory  # noqa: E402
from bundle_fixture import encode  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serve_support import make_settings, signed_client, stone, stored, upload  # noqa: E402

from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.settings import Settings  # noqa: E402
from gemid.serve.store import ReportStore, alembic_config, make_engine  # noqa: E402

pytest_plugins = ["serve_support"]

def identify(c: TestClient, label: str, reference: str | None = None, **data) -> dict:
    if reference is not None:
        data["reference"] = reference
    r = c.post("/v1/identify", files=[upload(f"{label}.png", stone(label))], data=data)
    assert r.status_code == 200, r.text
    return r.json()["reports"][0]


def test_listing_filters_and_pages(client: TestClient):
    ruby = identify(client, "Ruby", "LOT-1")
    emerald = identify(client, "Emerald", "LOT-1")
    grey = identify(client, "Grey", "lot-2")  # a colour the model never saw
    sapphire = identify(client, "Sapphire Blue")
    assert grey["species"]["decision"] != "identified"

    def ids(**params) -> list[str]:
        r = client.get("/v1/reports", params=params)
        assert r.status_code == 200, r.text
        return [i["report_id"] for i in r.json()["items"]]

    newest_first = [sapphire["report_id"], grey["report_id"], emerald["report_id"], ruby["report_id"]]
    assert ids() == newest_first
    assert ids(species="ruby") == [ruby["report_id"]]
    assert ids(decision="identified") == [r["report_id"] for r in (sapphire, emerald, ruby)]
    assert ids(decision=grey["species"]["decision"]) == [grey["report_id"]]
    assert ids(reference="lot-1") == [emerald["report_id"], ruby["report_id"]]
    today = datetime.now(UTC).date()
    assert ids(since=today.isoformat(), until=today.isoformat()) == newest_first
    assert ids(until=(today - timedelta(days=1)).isoformat()) == []
    assert ids(since=(datetime.now(UTC) + timedelta(minutes=5)).isoformat()) == []

    page = client.get("/v1/reports", params={"limit": 3}).json()
    assert page["total"] == 4 and page["next_offset"] == 3 and len(page["items"]) == 3
    rest = client.get("/v1/reports", params={"limit": 3, "offset": 3}).json()
    assert [i["report_id"] for i in rest["items"]] == newest_first[3:] and rest["next_offset"] is None
    item = page["items"][0]
    assert item["species"] == "Sapphire Blue" and item["decision"] == "identified" and item["revision"] == 1

    for params, words in [({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"offset": -1}, "offset"),
                          ({"decision": "maybe"}, "decision"), ({"since": "yesterday"}, "since")]:
        r = client.get("/v1/reports", params=params)
        assert r.status_code == 422 and words in r.json()["error"]["message"], (params, r.text)
    # the expected form in words, not the regular expression behind it (a user's finding)
    message = client.get("/v1/reports", params={"since": "yesterday"}).json()["error"]["message"]
    assert "YYYY-MM-DD" in message and "\\d" not in message and "'yesterday'" in message


def test_unknown_ids_are_404_in_the_error_shape(client: TestClient):
    rid = identify(client, "Ruby")["report_id"]
    for path, code in [("/v1/reports/nope", "report_not_found"), ("/v1/reports/nope/image", "report_not_found"),
                       ("/v1/reports/nope/revisions", "report_not_found"),
                       (f"/v1/reports/{rid}?revision=2", "revision_not_found"), ("/v2/whatever", "not_found")]:
        r = client.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == code, (path, r.text)
    r = client.post("/v1/reports/nope/readings", json={"ri": 1.76})
    assert r.status_code in (404, 501) and "error" in r.json()
    r = client.delete(f"/v1/reports/{rid}")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_readings_are_validated_before_anything_is_stored(client: TestClient, settings: Settings):
    rid = identify(client, "Ruby")["report_id"]
    for body, words in [({}, "no readings"), ({"ri": "high"}, "ri"), ({"sg": 99}, "sg"), ({"optic": "round"}, "optic"),
                        ({"bogus": 1}, "bogus: Extra inputs are not permitted"), ({"RI": 1.76}, "RI")]:
        r = client.post(f"/v1/reports/{rid}/readings", json=body)
        assert r.status_code == 422 and words in r.json()["error"]["message"], (body, r.text)
    for bad in (b'{"ri": NaN}', b'{"sg": 1e309}'):  # not "less than or equal to 3": not a number at all
        r = client.post(f"/v1/reports/{rid}/readings", content=bad, headers={"content-type": "application/json"})
        assert r.status_code == 422 and "finite number" in r.json()["error"]["message"], r.text
    r = client.post(f"/v1/reports/{rid}/readings", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]["message"]
    r = client.post(f"/v1/reports/{rid}/readings", content=b"ri=1.76", headers={"content-type": "text/plain"})
    assert r.status_code == 422 and "the body must be a JSON object" in r.json()["error"]["message"], r.text
    r = client.post(f"/v1/reports/{rid}/readings", json={"ri": 1.76, "note": "x" * 70_000})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert "photos" not in r.json()["error"]["message"]  # readings carry none to send fewer of
    assert stored(settings) == (1, 1, 1)


def test_readings_add_a_revision_and_keep_the_original(client: TestClient, settings: Settings):
    original = identify(client, "Ruby")
    rid = original["report_id"]
    r = client.post(f"/v1/reports/{rid}/readings", json={"ri": 1.765})
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["revision"] == 2 and second["report_id"] == rid
    assert r.headers["location"] == f"/v1/reports/{rid}?revision=2"
    rerank = second["tests"]["reranking"]
    assert rerank["readings"]["ri"] == 1.765 and rerank["combined"] and rerank["photo_only"]
    assert client.get(f"/v1/reports/{rid}?revision=1").json() == original
    assert client.get(f"/v1/reports/{rid}").json() == second
    third = client.post(f"/v1/reports/{rid}/readings", json={"sg": 4.0}).json()
    assert third["revision"] == 3
    # the same readings again change nothing: the latest revision, 200 (an outside try sent one SG 52 times,
    # used up the revision cap and left the report unconfirmable)
    again = client.post(f"/v1/reports/{rid}/readings", json={"sg": 4.0})
    assert again.status_code == 200 and again.json() == third
    assert third["tests"]["reranking"]["readings"]["ri"] == 1.765  # merged with the earlier reading
    assert third["tests"]["reranking"]["readings"]["sg"] == 4.0
    replaced = client.post(f"/v1/reports/{rid}/readings?replace=true", json={"sg": 4.0}).json()
    assert replaced["tests"]["reranking"]["readings"]["ri"] is None
    # quartz readings refute the photo's confident ruby: the history list shows the current conclusion, a
    # referral naming what the readings fit (the photo gave quartz too little to be its answer)
    quartz = client.post(f"/v1/reports/{rid}/readings?replace=true", json={"ri": 1.544, "sg": 2.65}).json()
    top = quartz["tests"]["reranking"]["combined"][0]["label"]
    assert top in ("Amethyst", "Citrine") and quartz["species"] == original["species"]
    assert quartz["conclusion"]["decision"] == "refer" and top in quartz["conclusion"]["fits"]
    (item,) = client.get("/v1/reports").json()["items"]
    assert (item["decision"], item["species"], item["revision"]) == ("refer", quartz["conclusion"]["label"], 5)
    assert client.get("/v1/reports", params={"species": "ruby"}).json()["total"] == 0
    revisions = client.get(f"/v1/reports/{rid}/revisions").json()["revisions"]
    assert [v["revision"] for v in revisions] == [1, 2, 3, 4, 5] and revisions[0] == original
    assert stored(settings) == (1, 5, 1)


def test_merged_readings_pass_the_same_checks_and_new_edges_replace_old_ones(client: TestClient, settings: Settings):
    rid = identify(client, "Ruby")["report_id"]
    assert client.post(f"/v1/reports/{rid}/readings", json={"ri": 1.762, "ri_high": 1.770, "sg": 4.0}).status_code == 201
    # a re-read refractometer replaces both old edges: no stale high edge below the new low one
    r = client.post(f"/v1/reports/{rid}/readings", json={"ri": 1.775})
    assert r.status_code == 201, r.text
    readings = r.json()["tests"]["reranking"]["readings"]
    assert (readings["ri"], readings["ri_high"], readings["sg"]) == (1.775, None, 4.0)
    # over the limit after an RI is a re-reading, not a second edge
    readings = client.post(f"/v1/reports/{rid}/readings", json={"ri_otl": True}).json()["tests"]["reranking"]["readings"]
    assert (readings["ri"], readings["ri_otl"], readings["sg"]) == (None, True, 4.0)
    # but new edges beside an old birefringence that they contradict are refused, naming the old readings
    assert client.post(f"/v1/reports/{rid}/readings", json={"birefringence": 0.008}).status_code == 201
    r = client.post(f"/v1/reports/{rid}/readings", json={"ri": 1.762, "ri_high": 1.790})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_readings", r.text
    message = r.json()["error"]["message"]
    assert "entered before" in message and "DR 0.008" in message and "replace=true" in message, message
    assert stored(settings) == (1, 5, 1)  # the photo's report and four revisions: nothing of the refusal
    r = client.post(f"/v1/reports/{rid}/readings?replace=true", json={"ri": 1.762, "ri_high": 1.790})
    assert r.status_code == 201, r.text


def test_readings_refused_in_a_json_body_carry_the_code_of_readings_refused_with_a_photo(client: TestClient):
    """RI 9.9 was `invalid_readings` as a form field of POST /v1/identify and `invalid_request` in the JSON body
    of POST /v1/reports/{id}/readings (an outside try): one refusal, one code."""
    rid = identify(client, "Ruby")["report_id"]
    for body, words in (({"ri": 9.9}, "ri"), ({"ri": 1.85}, "beyond the refractometer's limit 1.81"),
                        ({"optic": "XX"}, "optic"), ({"colour": "red"}, "colour")):
        r = client.post(f"/v1/reports/{rid}/readings", json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_readings", r.text
        assert words in r.json()["error"]["message"], r.text
    bad_path = client.post("/v1/reports/a%00b/readings", json={"ri": 1.76})
    assert bad_path.status_code == 422 and bad_path.json()["error"]["code"] == "invalid_request"  # not the readings


def test_an_ri_and_over_the_limit_together_are_refused(client: TestClient):
    rid = identify(client, "Ruby")["report_id"]
    r = client.post(f"/v1/reports/{rid}/readings", json={"ri": 1.762, "ri_otl": True})
    assert r.status_code == 422 and "over the limit means no edge below" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize(("scale", "method"), [({"coin_mm": "20"}, "coin of 20 mm"), ({"ruler": "on"}, "millimetre ruler")],
                         ids=["coin", "ruler"])
def test_stones_beside_a_coin_or_a_ruler_are_measured_through_the_api(client: TestClient, scale, method):
    from card_support import COIN_TRAY, RULER_TRAY, coin_photo, ruler_photo

    tray, photo = (COIN_TRAY, coin_photo(COIN_TRAY, seed=1)[0]) if "coin_mm" in scale else \
        (RULER_TRAY, ruler_photo(RULER_TRAY, seed=1)[0])
    r = client.post("/v1/identify", files=[upload("tray.jpg", encode(photo, ".jpg"))],
                    data={**scale, "reference": "SCALE-1"}, params={"grade": "false"})
    assert r.status_code == 200, r.text
    reports = r.json()["reports"]
    assert len(reports) == len(tray)
    assert all(e["stone"]["size"]["status"] == "measured" and method in e["stone"]["size"]["method"] for e in reports)


def test_readings_sent_with_the_photo(client: TestClient):
    report = identify(client, "Ruby", ri="1.765", optic="DR")
    assert report["revision"] == 1
    assert report["tests"]["reranking"]["readings"]["ri"] == 1.765
    # a decimal comma, as the page's form takes it (an outside try got "unable to parse string as a number")
    report = identify(client, "Ruby", ri="1,765", sg=" 4,00 ", weight_ct="0,5")
    readings = report["tests"]["reranking"]["readings"]
    assert (readings["ri"], readings["sg"], readings["weight_ct"]) == (1.765, 4.0, 0.5)


def test_health_readiness_and_docs(settings: Settings, identifier):
    app = create_app(settings, identifier=identifier)
    with signed_client(app) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["model"]["name"] == "tiny-colour"
        head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
        assert ready.json()["schema"] == head
        spec = c.get("/openapi.json").json()
        form = spec["paths"]["/v1/identify"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form["properties"]["images"]["items"]["format"] == "binary" and "ri" in form["properties"]
        assert {"/v1/reports", "/v1/reports/{report_id}", "/v1/reports/{report_id}/image",
                "/v1/reports/{report_id}/readings", "/v1/reports/{report_id}/revisions"} <= set(spec["paths"])
        docs = c.get("/docs")
        assert docs.status_code == 200 and "cdn." not in docs.text  # offline desks: every asset from the app
        assert c.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
        assert "cdn." not in c.get("/redoc").text
        working = app.state.store
        app.state.store = ReportStore(make_engine("sqlite:////proc/no/such/dir/gemid.db"))  # the disk is gone
        try:
            down = c.get("/readyz")
            assert down.status_code == 503 and down.json()["error"]["code"] == "not_ready"
        finally:
            app.state.store.close()
            app.state.store = working


def test_one_not_ready_answer_before_start_up_and_after_shutdown(settings: Settings, identifier):
    """Whatever a request needs (the store, the photos, the model, the analysis), outside start-up..shutdown it
    gets the one 503 `not_ready` that /readyz gives, never a 500 from a part that is not there yet."""
    app = create_app(settings, identifier=identifier)
    requests = [
        ("POST", "/v1/identify", {"files": [upload("ruby.png", stone("Ruby"))]}),
        ("GET", "/v1/reports", {}),
        ("GET", "/v1/reports/abc", {}),
        ("GET", "/v1/reports/abc/revisions", {}),
        ("GET", "/v1/reports/abc/image", {}),
        ("GET", "/v1/reports/abc/preview.jpg", {}),
        ("GET", "/v1/reports/abc/qr.svg", {}),
        ("POST", "/v1/reports/abc/readings", {"json": {"ri": 1.76}}),
        ("GET", "/r/abc", {}),
        ("GET", "/readyz", {}),
    ]

    def answers(c: TestClient) -> list[tuple[str, int, str]]:
        return [(path, (r := c.request(method, path, **kw)).status_code, r.json()["error"]["code"])
                for method, path, kw in requests]

    expected = [(path, 503, "not_ready") for _m, path, _kw in requests]
    not_started = signed_client(app, raise_server_exceptions=False)  # no `with`: start-up has not run
    assert answers(not_started) == expected
    with signed_client(app) as c:
        assert c.get("/readyz").status_code == 200
    assert answers(not_started) == expected  # shut down again


def test_metrics_count_requests_and_identifications_per_app(tmp_path, tiny_bundle, identifier):
    a = create_app(make_settings(tmp_path / "a", tiny_bundle), identifier=identifier)
    b = create_app(make_settings(tmp_path / "b", tiny_bundle), identifier=identifier)
    with signed_client(a) as ca, signed_client(b) as cb:
        identify(ca, "Ruby")
        ca.post("/v1/identify", files=[upload("a.txt", b"not an image at all")])
        ca.get("/v1/reports/unknown")
        text = ca.get("/metrics").text
        assert 'gemid_identifications_total{decision="identified"} 1.0' in text
        assert 'gemid_file_errors_total{code="unsupported_type"} 1.0' in text
        assert 'gemid_http_requests_total{method="POST",route="/v1/identify",status="200"} 1.0' in text
        assert 'gemid_http_requests_total{method="POST",route="/v1/identify",status="415"} 1.0' in text
        assert 'gemid_http_requests_total{method="GET",route="/v1/reports/{report_id}",status="404"} 1.0' in text
        assert "gemid_inference_seconds_count 1.0" in text
        assert 'gemid_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/v1/identify"} 2.0' in text
        other = cb.get("/metrics").text  # a second app in the same process counts on its own
        assert "gemid_identifications_total{" not in other
        assert 'route="/v1/identify"' not in other


def test_an_unexpected_failure_is_a_json_500_without_a_trace(settings: Settings, identifier):
    app = create_app(settings, identifier=identifier)

    @app.get("/test-crash")
    async def crash() -> None:
        raise RuntimeError("secret internal detail")

    with signed_client(app, raise_server_exceptions=False) as c:
        r = c.get("/test-crash")
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal_error",
                                  "message": "an unexpected error occurred on the server; it has been logged"}}
    assert "secret" not in r.text and "Traceback" not in r.text
