"""`gemid dataset from-store`: confirmed photos of a real store (drawn stones) become a manifest that
`gemid train` reads, without near-duplicates of each other or of a given manifest."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.register_assert_rewrite("serve_support")

from bundle_fixture import STONE_COLOURS, draw_stone, encode  # noqa: E402
from serve_support import make_settings, signed_client, upload  # noqa: E402

from gemid.datasets.manifest import Row, read_manifest, write_manifest  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402

pytest_plugins = ["serve_support"]


def _photo(label: str, **kw) -> bytes:
    return encode(draw_stone(STONE_COLOURS[label], **kw), ".png")


def test_from_store_exports_confirmed_photos_without_near_duplicates(tmp_path: Path, tiny_bundle, identifier):
    data = tmp_path / "data"
    base_photo = tmp_path / "base" / "Peridot" / "p1.png"
    base_photo.parent.mkdir(parents=True)
    base_photo.write_bytes(_photo("Peridot", seed=7))
    write_manifest([Row(path=str(base_photo), species="Peridot", split="val")], tmp_path / "base" / "base.csv")

    photos = {
        "ruby": _photo("Ruby", seed=1),
        "ruby-again": _photo("Ruby", seed=1),  # the same stone uploaded twice
        "emerald": _photo("Emerald", seed=2, centre=(90, 80), radius=45, background=(60, 60, 70)),  # another stone
        "peridot": _photo("Peridot", seed=7),  # already in the base manifest
        "citrine": _photo("Citrine", seed=3),  # never confirmed
        "glass": _photo("Amethyst", seed=4),  # confirmed as 'other'
    }
    ids = {}
    # a photo stored while the store did not allow training use: confirmed, but never exported
    with signed_client(create_app(make_settings(data, tiny_bundle), identifier=identifier)) as c:
        r = c.post("/v1/identify", files=[upload("sapphire.png", _photo("Sapphire Blue", seed=5, radius=30))])
        ids["spinel"] = r.json()["reports"][0]["report_id"]
        assert c.post(f"/v1/reports/{ids['spinel']}/confirmation",
                      json={"label": "Sapphire Blue", "method": "Raman"}).status_code == 201
    with signed_client(create_app(make_settings(data, tiny_bundle, training_consent=True),
                               identifier=identifier)) as c:
        for name, body in photos.items():
            r = c.post("/v1/identify", files=[upload(f"{name}.png", body)])
            ids[name] = r.json()["reports"][0]["report_id"]
        for name, label in (("ruby", "Ruby"), ("ruby-again", "Ruby"), ("emerald", "Emerald"),
                            ("peridot", "Peridot")):
            assert c.post(f"/v1/reports/{ids[name]}/confirmation",
                          json={"label": label, "method": "Raman"}).status_code == 201
        assert c.post(f"/v1/reports/{ids['glass']}/confirmation",
                      json={"label": "other", "other_name": "glass", "method": "RI"}).status_code == 201

    out = tmp_path / "export"
    done = subprocess.run(
        [sys.executable, "-m", "gemid.cli", "dataset", "from-store", str(out), "--against",
         str(tmp_path / "base" / "base.csv")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "GEMID_DATA_DIR": str(data), "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert done.returncode == 0, done.stderr

    m = read_manifest(out / "manifest.csv")
    assert sorted((r.species, r.source.split(":")[1]) for r in m.rows) == sorted(
        [("Ruby", ids["ruby"]), ("Emerald", ids["emerald"])])
    for r in m.rows:
        assert not Path(r.path).is_absolute() and r.split == "train" and r.source.startswith("field:")
        assert m.resolve(r).read_bytes() == photos["ruby" if r.species == "Ruby" else "emerald"]
    assert f"dropped {ids['ruby-again']}: near-duplicate of report {ids['ruby']}" in done.stdout
    assert f"dropped {ids['peridot']}: near-duplicate of" in done.stdout
    assert "1 confirmed as 'other', 1 stored without training consent" in done.stdout
    assert ids["spinel"] not in (out / "manifest.csv").read_text()

    combined = read_manifest(out / "combined.csv")
    assert sorted(r.species for r in combined.rows) == ["Emerald", "Peridot", "Ruby"]
    assert combined.resolve(next(r for r in combined.rows if r.species == "Peridot")) == base_photo.resolve()
    with open(out / "manifest.csv", newline="") as f:
        assert next(csv.reader(f)) == ["path", "species", "colour_grade", "clarity_grade", "split", "source"]


def test_only_consenting_desks_photos_are_exported(tmp_path: Path, tiny_bundle, identifier):
    """GEMID_TRAINING_CONSENT_DESKS: photos sent by a consenting desk's key are exported, another desk's are
    not, although both are confirmed."""
    data = tmp_path / "data"
    settings = make_settings(data, tiny_bundle, training_consent_desks="lahore, gilgit")
    ids = {}
    for desk, label, seed in (("gilgit", "Ruby", 1), ("airport", "Emerald", 2)):
        with signed_client(create_app(settings, identifier=identifier), role="supervisor", desk=desk) as c:
            r = c.post("/v1/identify", files=[upload(f"{desk}.png", _photo(label, seed=seed))])
            ids[desk] = r.json()["reports"][0]["report_id"]
            assert c.post(f"/v1/reports/{ids[desk]}/confirmation",
                          json={"label": label, "method": "Raman"}).status_code == 201
    out = tmp_path / "export"
    done = subprocess.run(
        [sys.executable, "-m", "gemid.cli", "dataset", "from-store", str(out)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "GEMID_DATA_DIR": str(data), "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert done.returncode == 0, done.stderr
    rows = read_manifest(out / "manifest.csv").rows
    assert [(r.species, r.source.split(":")[1]) for r in rows] == [("Ruby", ids["gilgit"])]
    assert "1 stored without training consent" in done.stdout
