"""The conclusion through the API: readings added to a stored report make a new revision whose conclusion,
guidance and History line follow the readings; the photo-only revision stays as it was."""

from __future__ import annotations

from serve_support import stone

pytest_plugins = ["serve_support"]


def test_cz_readings_refer_the_stone_in_the_new_revision_and_in_history(client):
    r = client.post("/v1/identify", files=[("images", ("ruby.png", stone("Ruby"), "image/png"))])
    assert r.status_code == 200
    first = r.json()["reports"][0]
    assert first["conclusion"]["decision"] == "identified" and first["conclusion"]["basis"] == "photo"
    assert first["tests"]["recommended"][0]["test"] == "refractive_index"
    rid = first["report_id"]

    r = client.post(f"/v1/reports/{rid}/readings", json={"ri_otl": True, "sg": 5.80})
    assert r.status_code == 201
    second = r.json()
    c = second["conclusion"]
    assert second["revision"] == 2 and (c["decision"], c["label"]) == ("refer", "Cubic zirconia")
    assert second["species"] == first["species"]  # "from the photo" is unchanged
    assert "refractive_index" not in {t["test"] for t in second["tests"]["recommended"]}
    assert second["tests"]["done"] == ["refractive_index", "specific_gravity"]

    listed = client.get("/v1/reports").json()["items"]
    line = next(i for i in listed if i["report_id"] == rid)
    assert (line["decision"], line["species"], line["probability"]) == ("refer", "Cubic zirconia", None)
    assert client.get("/v1/reports", params={"decision": "refer"}).json()["total"] == 1
    old = client.get(f"/v1/reports/{rid}", params={"revision": 1}).json()
    assert old["conclusion"]["decision"] == "identified"


def test_ruby_readings_confirm_the_photo(client):
    r = client.post("/v1/identify", files=[("images", ("ruby.png", stone("Ruby"), "image/png"))],
                    data={"ri": "1.762", "ri_high": "1.770", "sg": "3.80", "weight_ct": "0.5"})
    c = r.json()["reports"][0]["conclusion"]
    assert (c["decision"], c["label"], c["basis"]) == ("identified", "Ruby", "photo+readings")
    assert "Synthetic corundum (flame-fusion)" in c["cannot_exclude"]
