"""Manifests store paths relative to themselves, so a folder of photos can move with its manifest; older
manifests with absolute paths still read, and still match the hash a model recorded for them."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from datasets_support import make_clean_dataset

from gemid.cli import main
from gemid.datasets.importers import import_folder
from gemid.datasets.manifest import (
    Row,
    legacy_manifest_sha256,
    manifest_matches,
    manifest_sha256,
    read_manifest,
    write_manifest,
)


def _old_style(rows: list[Row], path: Path) -> Path:
    """A manifest as gemid wrote it before paths became relative: absolute paths outside its folder."""
    lines = ["path,species,colour_grade,clarity_grade,split,source"]
    lines += [f"{Path(r.path).resolve()},{r.species},{r.colour_grade},{r.clarity_grade},{r.split},{r.source}"
              for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def test_photos_beside_the_manifest_are_written_relative_and_survive_a_move(tmp_path):
    make_clean_dataset(tmp_path / "project" / "photos", per_class=2)
    man = tmp_path / "project" / "data" / "mine.csv"
    assert main(["dataset", "import", str(tmp_path / "project" / "photos"), "--out", str(man)]) == 0
    rows = read_manifest(man).rows
    assert rows and all(r.path.startswith("../photos/") for r in rows)
    assert "\\" not in man.read_text() and str(tmp_path) not in man.read_text()
    shutil.move(tmp_path / "project", tmp_path / "moved")
    m = read_manifest(tmp_path / "moved" / "data" / "mine.csv")
    resolved = [m.resolve(r) for r in m.rows]
    assert all(p.is_file() and p.is_absolute() and ".." not in p.parts for p in resolved)
    assert resolved[0].parent.parent == (tmp_path / "moved" / "photos").resolve()


def test_manifests_with_absolute_paths_still_read(tmp_path):
    rows = import_folder(make_clean_dataset(tmp_path / "photos", per_class=2)).rows
    old = _old_style(rows, tmp_path / "elsewhere" / "old.csv")
    m = read_manifest(old)
    assert [m.resolve(r) for r in m.rows] == [Path(r.path) for r in rows]
    assert all(Path(r.path).is_absolute() for r in m.rows)
    # `gemid dataset split` rewrites it with relative paths, naming the same photos
    assert main(["dataset", "split", str(old), "--out", str(tmp_path / "elsewhere" / "new.csv")]) == 0
    new = read_manifest(tmp_path / "elsewhere" / "new.csv")
    assert all(r.path.startswith("../photos/") for r in new.rows)
    assert [new.resolve(r) for r in new.rows] == [m.resolve(r) for r in m.rows]


def test_a_reimported_manifest_matches_the_hash_an_older_model_recorded(tmp_path):
    """A model trained on an absolute-path manifest records its bytes' hash; the same rows written today with
    relative paths are recognised as that manifest, and a manifest with a moved split is not."""
    rows = [r.with_split("val" if i % 3 == 0 else "train")
            for i, r in enumerate(import_folder(make_clean_dataset(tmp_path / "photos", per_class=3)).rows)]
    recorded = manifest_sha256(_old_style(rows, tmp_path / "data" / "old.csv"))
    new = write_manifest(rows, tmp_path / "data" / "new.csv")
    assert manifest_sha256(new) != recorded  # the bytes differ: relative paths
    assert legacy_manifest_sha256(new) == recorded and manifest_matches(new, recorded)
    assert manifest_matches(new, manifest_sha256(new))
    moved = write_manifest([rows[0].with_split("train"), *rows[1:]], tmp_path / "data" / "moved.csv")
    assert not manifest_matches(moved, recorded)
    assert not manifest_matches(tmp_path / "data" / "missing.csv", recorded) and not manifest_matches(new, None)


def test_photos_below_the_manifest_hash_as_before(tmp_path):
    """Synthetic sets keep their photos below the manifest, where old and new manifests are byte-identical."""
    assert main(["dataset", "synth", "--n", "3", "--out", str(tmp_path / "s"), "--size", "64"]) == 0
    man = tmp_path / "s" / "manifest.csv"
    assert [r.path for r in read_manifest(man).rows][0].startswith("images/stone_00000.")
    assert legacy_manifest_sha256(man) == manifest_sha256(man) == hashlib.sha256(man.read_bytes()).hexdigest()


def test_bare_rows_with_relative_paths_are_taken_from_the_current_folder(tmp_path, monkeypatch):
    make_clean_dataset(tmp_path / "photos", per_class=1)
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "synth", "--n", "2", "--out", "synth", "--size", "64"]) == 0
    m = read_manifest(tmp_path / "synth" / "manifest.csv")
    assert all(r.path.startswith("images/") and m.resolve(r).is_file() for r in m.rows)
    rel = [Row(path=os.path.join("photos", "Ruby", "ruby_0.jpg"), species="Ruby")]
    m = read_manifest(write_manifest(rel, tmp_path / "out" / "m.csv"))
    assert m.rows[0].path == "../photos/Ruby/ruby_0.jpg" and m.resolve(m.rows[0]).is_file()


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
def test_a_linked_photo_keeps_its_own_name(tmp_path):
    make_clean_dataset(tmp_path / "cache", per_class=1)
    (tmp_path / "photos" / "Ruby").mkdir(parents=True)
    (tmp_path / "photos" / "Ruby" / "r.jpg").symlink_to(tmp_path / "cache" / "Ruby" / "ruby_0.jpg")
    m = read_manifest(write_manifest(import_folder(tmp_path / "photos").rows, tmp_path / "m.csv"))
    assert [r.path for r in m.rows] == ["photos/Ruby/r.jpg"]
