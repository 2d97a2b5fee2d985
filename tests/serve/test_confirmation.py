"""Confirmations through the real app: a new revision carrying the settled answer, its validation, field
accuracy computed from the store, and the counters in /metrics."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("serve_support")

from fastapi.testclient import TestClient  # noqa: E402
from serve_support import make_settings, signed_client, stone, stored, upload  # noqa: E402

from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.field import confirmed_rows, field_report, render_table  # noqa: E402
from gemid.serve.settings import Settings  # noqa: E402
from gemid.serve.store import ReportStore  # noqa: E402

pytest_plugins = ["serve_support"]


def identify(c: TestClient, label: str) -> dict:
    r = c.post("/v1/identify", files=[upload(f"{label}.png", stone(label))])
    assert r.status_code == 200, r.text
    return r.json()["reports"][0]


def confirm(c: TestClient, report_id: str, **body):
    return c.post(f"/v1/reports/{report_id}/confirmation", json={"method": "Raman", **body})


def test_a_confirmation_is_a_new_revision_and_keeps_the_original(client: TestClient, settings: Settings):
    ruby = identify(client, "Ruby")
    r = confirm(client, ruby["report_id"], label="ruby", lab_reference="LAB-77")
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/reports/{ruby['report_id']}?revision=2"
    new = r.json()
    c = new["confirmation"]
    me = client.get("/v1/session").json()  # the key that sent it confirmed it
    assert (new["revision"], c["label"], c["method"], c["lab_reference"], c["confirmed_by"]) == (
        2, "Ruby", "Raman", "LAB-77", me["name"])  # the label in the model's spelling
    assert new["issued_by"] == {"name": me["name"], "desk": None}
    assert c["confirmed_at"] and new["species"] == ruby["species"] and new["conclusion"] == ruby["conclusion"]
    assert client.get(f"/v1/reports/{ruby['report_id']}").json()["confirmation"]["label"] == "Ruby"
    assert client.get(f"/v1/reports/{ruby['report_id']}?revision=1").json()["confirmation"] is None
    assert stored(settings)[:2] == (1, 2)

    # a correction is one more revision; readings afterwards keep the confirmation
    r = confirm(client, ruby["report_id"], label="other", other_name="red glass")
    assert r.status_code == 201 and r.json()["confirmation"]["other_name"] == "red glass"
    r = client.post(f"/v1/reports/{ruby['report_id']}/readings", json={"ri": 1.762})
    assert r.status_code == 201, r.text
    assert r.json()["confirmation"]["label"] == "other"


@pytest.mark.parametrize("body, code", [
    ({"label": "Rubby"}, "unknown_label"),
    ({"label": "other"}, "invalid_confirmation"),
    ({"label": "Ruby", "other_name": "glass"}, "invalid_confirmation"),
    ({"label": "Ruby", "method": "   "}, "invalid_confirmation"),
    ({"label": "Ruby", "colour": "red"}, None),  # an unknown field
    ({"method": "Raman"}, None),  # no label
])
def test_a_wrong_confirmation_is_refused_and_stores_nothing(client: TestClient, settings: Settings, body, code):
    ruby = identify(client, "Ruby")
    r = client.post(f"/v1/reports/{ruby['report_id']}/confirmation", json={"method": "Raman", **body})
    assert r.status_code == 422, r.text
    if code:
        assert r.json()["error"]["code"] == code
    assert stored(settings)[:2] == (1, 1)


def test_property_table_labels_are_accepted(client: TestClient):
    """A look-alike the model never learnt (the table's rows) is a valid confirmed answer."""
    ruby = identify(client, "Ruby")
    r = confirm(client, ruby["report_id"], label="cubic ZIRCONIA")
    assert r.status_code == 201, r.text
    assert r.json()["confirmation"]["label"] == "Cubic zirconia"  # the table's spelling


def test_an_unknown_report_is_404(client: TestClient):
    r = confirm(client, "no-such-report", label="Ruby")
    assert r.status_code == 404 and r.json()["error"]["code"] == "report_not_found"


def test_the_revision_cap_holds(tmp_path, tiny_bundle, identifier):
    with signed_client(create_app(make_settings(tmp_path / "d", tiny_bundle, max_revisions=2),
                               identifier=identifier)) as c:
        ruby = identify(c, "Ruby")
        assert confirm(c, ruby["report_id"], label="Ruby").status_code == 201
        r = confirm(c, ruby["report_id"], label="Ruby")
        assert r.status_code == 409 and r.json()["error"]["code"] == "too_many_revisions"


def test_openapi_documents_the_route(client: TestClient):
    op = client.get("/openapi.json").json()["paths"]["/v1/reports/{report_id}/confirmation"]["post"]
    assert {"201", "404", "409", "422", "503"} <= set(op["responses"])
    assert op["requestBody"]["required"] is True


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_field_accuracy_from_the_store_and_metrics(client: TestClient, settings: Settings):
    ruby, emerald, peridot = identify(client, "Ruby"), identify(client, "Emerald"), identify(client, "Peridot")
    identify(client, "Citrine")  # never confirmed: not counted
    assert ruby["species"]["top"][0]["label"] == "Ruby" and emerald["species"]["top"][0]["label"] == "Emerald"
    assert confirm(client, ruby["report_id"], label="Ruby").status_code == 201
    assert confirm(client, emerald["report_id"], label="Peridot").status_code == 201
    assert confirm(client, peridot["report_id"], label="Peridot").status_code == 201
    assert confirm(client, peridot["report_id"], label="Peridot").status_code == 201  # again: counted once

    text = client.get("/metrics").text
    assert _metric(text, "gemid_confirmed_total") == 3
    photo_right = sum(r["species"]["top"][0]["label"] == lab
                      for r, lab in ((ruby, "Ruby"), (emerald, "Peridot"), (peridot, "Peridot")))
    assert _metric(text, 'gemid_field_correct_total{answer="photo"}') == photo_right

    store = ReportStore.open(settings.database_url)
    try:
        rows = confirmed_rows(store)
    finally:
        store.close()
    assert sorted(r.report_id for r in rows) == sorted(x["report_id"] for x in (ruby, emerald, peridot))
    rep = field_report(rows)
    assert rep["confirmed"] == 3 and rep["photo"]["correct"] == photo_right
    lo, hi = rep["photo"]["ci95"]
    assert 0 <= lo < photo_right / 3 < hi <= 1
    per = {s["label"]: s for s in rep["species"]}
    assert per["Peridot"]["n"] == 2 and per["Ruby"]["n"] == 1
    assert {"confirmed": "Peridot", "answered": "Emerald", "count": 1} in rep["confusions"]["photo"]
    table = render_table(rep)
    assert "Peridot" in table and "Emerald" in table and "3 confirmed" in table


def test_the_cli_confirms_through_a_running_service_and_reports_field_accuracy(tmp_path, tiny_bundle):
    import json
    import subprocess
    import sys

    import httpx2
    from serve_process import bearer, cli_key, free_port, start, stop, wait_ready

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"

    proc = start(data, tiny_bundle, port)
    try:
        wait_ready(proc, base)
        technician = cli_key(data, "technician", "desk-1")
        supervisor = cli_key(data, "supervisor")

        def gemid(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "gemid.cli", *args], capture_output=True, text=True,
                                  timeout=120, env={**__import__("os").environ, "GEMID_DATA_DIR": str(data),
                                                    "GEMID_API_KEY": supervisor})

        r = httpx2.post(f"{base}/v1/identify", files=[upload("ruby.png", stone("Ruby"))], timeout=60,
                        headers=bearer(technician))
        rid = r.json()["reports"][0]["report_id"]
        done = gemid("confirm", rid, "--label", "Ruby", "--method", "Raman", "--lab-reference", "L-9",
                     "--server", base)
        assert done.returncode == 0, done.stderr
        as_technician = gemid("confirm", rid, "--label", "Ruby", "--method", "Raman", "--server", base,
                              "--api-key", technician)  # confirmations are a supervisor's
        assert as_technician.returncode == 2 and "HTTP 403" in as_technician.stderr
        assert "revision 2" in done.stdout and "Ruby by Raman, lab report L-9" in done.stdout
        assert "conclusion:" in done.stdout
        refused = gemid("confirm", rid, "--label", "Rubby", "--method", "Raman", "--server", base)
        assert refused.returncode == 2 and "refused it (HTTP 422)" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        report = gemid("field-report", "--json")
        assert report.returncode == 0, report.stderr
        figures = json.loads(report.stdout)
        assert figures["confirmed"] == 1 and figures["species"][0]["label"] == "Ruby"
        assert gemid("field-report", "--since", "2999-01-01").stdout.count("no confirmed reports") == 1
    finally:
        stop(proc)
    down = gemid("confirm", rid, "--label", "Ruby", "--method", "Raman", "--server", base)
    assert down.returncode == 2 and "cannot reach the gemid service" in down.stderr


def test_a_confirmation_reaches_the_parcel_csv_the_manifest_and_the_verify_page(client: TestClient):
    """An outside try recorded "Red spinel (Raman)" on a stone gemid had identified as ruby: the parcel CSV and
    PDF still said only "Identified: Ruby", and the verify page listed both species without saying which stands."""
    import csv
    import io
    import re

    from pypdf import PdfReader

    r = client.post("/v1/identify", files=[upload("ruby.png", stone("Ruby"))], data={"reference": "LOT C"})
    rid = r.json()["reports"][0]["report_id"]
    assert confirm(client, rid, label="other", other_name="red glass").status_code == 201
    rows = list(csv.DictReader(io.StringIO(client.get("/v1/parcels/LOT%20C.csv").text[1:])))
    assert (rows[0]["confirmed"], rows[0]["confirmed_method"]) == ("red glass", "Raman")
    assert client.get("/v1/parcels/LOT%20C").json()["rows"][0]["confirmed"] == "red glass"
    pdf = PdfReader(io.BytesIO(client.get("/v1/parcels/LOT%20C.pdf").content))
    text = re.sub(r"\s+", " ", re.sub(r"[\u200b\u2066-\u2069]", "", pdf.pages[0].extract_text()))
    assert "confirmed: red glass (Raman)" in text, text
    url = client.get(f"/v1/reports/{rid}/qr.svg").headers["x-verification-url"]
    page = client.get(f"/verify/{url.rsplit('/', 1)[1]}").text
    assert '<strong id="confirmed">red glass</strong> (Raman)' in page and "which it replaces" in page
    assert "Preliminary conclusion" in page and "photo+readings" not in page
