"""The audit and the canonical split on the real gems68 photos (marked `shared`: skipped without them)."""

from __future__ import annotations

import json

import pytest

from gemid.cli import main
from gemid.datasets.manifest import read_manifest
from gemid.datasets.splits import straddling_groups

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def audit_report(gems68_dir, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gems68_audit") / "audit.json"
    assert main(["dataset", "audit", str(gems68_dir), "--json", str(out), "--strict"]) == 0
    return json.loads(out.read_text())


def test_audit_finds_the_two_png_files_named_jpg(audit_report):
    mism = {m["path"]: m for m in audit_report["extension_mismatches"]}
    assert set(mism) == {"Almandine/almandine_21.jpg", "Zoisite/zoisite_21.jpg"}
    assert all(m["content_format"] == "png" and m["has_alpha"] for m in mism.values())
    assert audit_report["formats"] == {"jpeg": 2040, "png": 2}


def test_audit_counts_and_finds_no_label_conflicts(audit_report):
    assert audit_report["files"] == audit_report["usable"] == 2042
    assert audit_report["n_classes"] == 68
    assert audit_report["classes"]["Aventurine Green"]["files"] > 0  # folder names kept verbatim
    assert audit_report["unusable"] == []
    # Measured: exact and near copies exist inside classes, none across classes at the default thresholds.
    assert audit_report["duplicates"]["across_classes"] == []
    within = audit_report["duplicates"]["within_class"]
    assert len(within) >= 30 and sum(g["exact"] for g in within) >= 1


def test_canonical_split_keeps_every_near_duplicate_group_whole(gems68_dir, tmp_path):
    out = tmp_path / "gems68.csv"
    args = ["dataset", "import", str(gems68_dir), "--out", str(out), "--val-fraction", "0.2", "--seed", "0"]
    assert main(args) == 0
    m = read_manifest(out)
    assert len(m.rows) == 2042 and len(m.labels) == 68
    # outside the CSV's folder, named relative to it
    assert all(r.path.startswith("../") and m.resolve(r).is_file() for r in m.rows)
    val = m.split("val")
    assert 0.18 * 2042 <= len(val) <= 0.22 * 2042
    assert {r.species for r in val} == set(m.labels)  # every species validated
    # Re-group with the audit of the written manifest: no group may straddle train/val.
    rep = tmp_path / "audit.json"
    assert main(["dataset", "audit", str(out), "--json", str(rep), "--strict"]) == 0
    report = json.loads(rep.read_text())
    assert report["duplicates"]["across_splits"] == []
    groups = report["duplicates"]["within_class"] + report["duplicates"]["across_classes"]
    index = {m.resolve(r).relative_to(gems68_dir.resolve()).as_posix(): i for i, r in enumerate(m.rows)}
    assert straddling_groups(list(m.rows), [[index[x["path"]] for x in g["members"]] for g in groups]) == []
    assert sum(len(g["members"]) for g in groups) >= 60
