"""The real-photo clarity labels (issue 27): schema, split, agreement. Photo-free except those marked `shared`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gemid.datasets.clarity_labels import (
    COLUMNS,
    FIRST_PASS,
    SECOND_PASS,
    ClarityLabelError,
    agreement,
    cohen_kappa,
    iou,
    match_boxes,
    read_labels,
    split_mismatches,
)

GOOD = {"path": "Ruby/ruby_1.jpg", "species": "Ruby", "width": "300", "height": "200", "label": "included",
        "reason": "", "boxes": "[[10,20,30,40]]", "pass": "1", "split": "val", "group": ""}


def write(tmp_path: Path, rows: list[dict], name: str = "labels.csv") -> Path:
    out = tmp_path / name
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return out


# --- the committed manifests --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def first():
    return read_labels(FIRST_PASS)


def test_first_pass_covers_the_transparent_species_and_keeps_a_val_part(first):
    types = json.loads((Path(__file__).resolve().parents[2] / "gemid/vision/data/clarity_types.json").read_text())
    kinds = {k.lower(): v for k, v in types["types"].items()}
    assert len(first) >= 800
    assert {kinds[lab.species.lower()] for lab in first} <= {"I", "II", "III"}
    val = [lab for lab in first if lab.split == "val"]
    assert 0.15 <= len(val) / len(first) <= 0.25
    labels = {lab.label for lab in val}
    assert labels == {"eye_clean", "included", "cannot_judge"}  # the benchmark can measure every figure
    assert all(lab.annotator_pass == 1 for lab in first)


def test_first_pass_keeps_near_duplicate_groups_on_one_side_and_labelled_alike(first):
    groups: dict[str, list] = {}
    for lab in first:
        if lab.group:
            groups.setdefault(lab.group, []).append(lab)
    assert len(groups) >= 10
    for key, members in groups.items():
        assert key in {m.path for m in members}  # the key is a member's path
        assert len({m.split for m in members}) == 1
        assert len({m.label for m in members}) == 1, key  # copies of one photo show the same stone


def test_second_pass_is_a_blind_sample_of_the_first(first):
    second = read_labels(SECOND_PASS)
    assert len(second) >= 100
    assert {s.path for s in second} <= {f.path for f in first}
    assert all(s.annotator_pass == 2 for s in second)
    ag = agreement(first, second)
    assert ag.n == len(second) and ag.percent >= 80.0 and ag.kappa >= 0.6


# --- schema -------------------------------------------------------------------------------------------


def test_a_good_row_reads_back(tmp_path):
    (lab,) = read_labels(write(tmp_path, [GOOD]))
    assert lab.boxes == ((10, 20, 30, 40),) and lab.judgeable and lab.split == "val"


@pytest.mark.parametrize(("change", "message"), [
    ({"label": "clean"}, "label 'clean'"),
    ({"label": "cannot_judge", "boxes": "", "reason": ""}, "needs a reason"),
    ({"label": "cannot_judge", "boxes": "", "reason": "sunny"}, "needs a reason"),
    ({"label": "eye_clean", "reason": "cabochon", "boxes": ""}, "only cannot_judge rows carry a reason"),
    ({"boxes": ""}, "at least one box"),
    ({"label": "eye_clean"}, "boxes belong only on included rows"),
    ({"boxes": "[[290,20,30,40]]"}, "not inside the 300x200 image"),
    ({"boxes": "[[-1,0,5,5]]"}, "not inside"),
    ({"boxes": "[[0,0,0,5]]"}, "not inside"),
    ({"boxes": "[[0,0,5.5,5]]"}, "whole pixels"),
    ({"boxes": "[[0,0,5]]"}, "whole pixels"),
    ({"boxes": "{not json"}, "not JSON"),
    ({"split": "test"}, "split 'test'"),
    ({"pass": "3"}, "pass must be 1 or 2"),
    ({"width": "wide"}, "not a whole number"),
    ({"width": "0"}, "must be positive"),
    ({"path": "../Ruby/ruby_1.jpg"}, "relative to the gems68 train folder"),
    ({"species": ""}, "empty path or species"),
])
def test_bad_rows_are_refused_with_their_line(tmp_path, change, message):
    src = write(tmp_path, [GOOD, {**GOOD, "path": "Ruby/ruby_2.jpg", **change}])
    with pytest.raises(ClarityLabelError, match=message) as err:
        read_labels(src)
    assert f"{src}:3" in str(err.value)


def test_a_missing_column_is_named(tmp_path):
    out = tmp_path / "short.csv"
    out.write_text("path,species,label\nRuby/r.jpg,Ruby,eye_clean\n")
    with pytest.raises(ClarityLabelError, match="missing column.*width"):
        read_labels(out)


def test_a_path_twice_or_two_passes_in_one_file_are_refused(tmp_path):
    with pytest.raises(ClarityLabelError, match="listed twice"):
        read_labels(write(tmp_path, [GOOD, GOOD]))
    with pytest.raises(ClarityLabelError, match="one annotator pass"):
        read_labels(write(tmp_path, [GOOD, {**GOOD, "path": "Ruby/ruby_2.jpg", "pass": "2"}]))


def test_a_near_duplicate_group_across_train_and_val_is_refused(tmp_path):
    a = {**GOOD, "group": "Ruby/ruby_1.jpg"}
    b = {**GOOD, "path": "Ruby/ruby_9.jpg", "group": "Ruby/ruby_1.jpg", "split": "train"}
    with pytest.raises(ClarityLabelError, match="split across train and val: Ruby/ruby_1.jpg"):
        read_labels(write(tmp_path, [a, b]))
    assert len(read_labels(write(tmp_path, [a, {**b, "split": "val"}]))) == 2


def test_split_mismatches_name_paths_whose_split_differs_or_is_unknown(tmp_path):
    labels = read_labels(write(tmp_path, [GOOD, {**GOOD, "path": "Ruby/ruby_2.jpg", "split": "train"}]))
    assert split_mismatches(labels, {"Ruby/ruby_1.jpg": "val", "Ruby/ruby_2.jpg": "train"}) == []
    assert split_mismatches(labels, {"Ruby/ruby_1.jpg": "train"}) == ["Ruby/ruby_1.jpg", "Ruby/ruby_2.jpg"]


# --- agreement ----------------------------------------------------------------------------------------


def test_cohen_kappa_matches_a_worked_example():
    # 50 items: both "yes" 20, both "no" 15, first yes/second no 5, first no/second yes 10
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    # p_o = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.4
    assert cohen_kappa(a, b, labels=("y", "n")) == pytest.approx(0.4)
    assert cohen_kappa(a, a, labels=("y", "n")) == pytest.approx(1.0)
    assert cohen_kappa(["y"] * 4, ["y"] * 4) == 1.0  # one label throughout, identical
    assert cohen_kappa(a, list(reversed(a)), labels=("y", "n")) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="labelled 2 and 1"):
        cohen_kappa(["y", "n"], ["y"])


def test_box_matching_is_one_to_one_at_the_iou_threshold():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    # two boxes of pass 1 both overlap the single box of pass 2: only one may claim it
    assert match_boxes([(0, 0, 10, 10), (1, 0, 10, 10)], [(0, 0, 10, 10)]) == (1, 1, 0)
    assert match_boxes([(0, 0, 10, 10)], [(5, 0, 10, 10)], threshold=0.3) == (1, 0, 0)
    assert match_boxes([(0, 0, 10, 10)], [(5, 0, 10, 10)], threshold=0.5) == (0, 1, 1)


def test_agreement_joins_by_path_and_counts_boxes_on_photos_both_call_included(tmp_path):
    rows1 = [GOOD, {**GOOD, "path": "Ruby/ruby_2.jpg", "label": "eye_clean", "boxes": ""},
             {**GOOD, "path": "Ruby/ruby_3.jpg", "label": "cannot_judge", "reason": "cabochon", "boxes": ""}]
    rows2 = [{**r, "pass": "2"} for r in rows1]
    rows2[0]["boxes"] = "[[10,20,30,40],[200,100,20,20]]"
    rows2[1] = {**rows2[1], "label": "included", "boxes": "[[0,0,5,5]]"}
    rows2 = rows2[:2] + [{**GOOD, "path": "Ruby/unseen.jpg", "pass": "2"}]
    ag = agreement(read_labels(write(tmp_path, rows1, "a.csv")), read_labels(write(tmp_path, rows2, "b.csv")))
    assert ag.n == 2  # ruby_3 only in pass 1, unseen only in pass 2
    assert ag.percent == 50.0
    assert ag.confusion == {("included", "included"): 1, ("eye_clean", "included"): 1}
    assert (ag.boxes_matched, ag.boxes_first_only, ag.boxes_second_only) == (1, 0, 1)


# --- against the photos -------------------------------------------------------------------------------


@pytest.mark.shared
def test_sizes_and_splits_match_the_photos_and_the_species_split(first, gems68_dir, tmp_path):
    """Width and height are the decoder's (after EXIF orientation), and every split is the one
    `gemid dataset import --val-fraction 0.2 --seed 0` gives the species model."""
    from gemid.cli import main
    from gemid.datasets.manifest import read_manifest
    from gemid.vision.decode import decode

    for lab in first[::25]:
        img = decode(gems68_dir / lab.path)
        assert (img.width, img.height) == (lab.width, lab.height), lab.path
    out = tmp_path / "gems68.csv"
    assert main(["dataset", "import", str(gems68_dir), "--out", str(out), "--val-fraction", "0.2",
                 "--seed", "0"]) == 0
    m = read_manifest(out)
    splits = {m.resolve(r).relative_to(gems68_dir.resolve()).as_posix(): r.split for r in m.rows}
    assert split_mismatches(first, splits) == []


# --- how the benchmark counts answers -------------------------------------------------------------------


def test_the_benchmark_counts_an_ungraded_answer_on_a_judgeable_stone_as_a_miss():
    import sys
    from types import SimpleNamespace as NS

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.bench_clarity_real import answer, score

    assert answer(NS(clarity=None)) == ("abstain", None)
    assert answer(NS(clarity=NS(status="cannot_judge", eye_clean=None, grade=None))) == ("abstain", None)
    assert answer(NS(clarity=NS(status="not_applicable", eye_clean=True, grade="VVS"))) == ("abstain", None)
    assert answer(NS(clarity=NS(eye_clean=True, grade="VVS"))) == ("eye_clean", "VVS")  # no status field yet
    assert answer(NS(clarity=NS(status="graded", eye_clean=False, grade="I3"))) == ("included", "I3")

    s = score([("eye_clean", "eye_clean"), ("eye_clean", "included"), ("eye_clean", "abstain"),
               ("eye_clean", "eye_clean"), ("included", "included"), ("included", "abstain"),
               ("cannot_judge", "abstain"), ("cannot_judge", "included")])
    assert s["judgeable"] == 6 and s["cannot_judge"] == 2
    assert s["eye_clean_recall"] == pytest.approx(50.0)  # 2 of 4, the abstention counted as a miss
    assert s["eye_clean_precision"] == pytest.approx(100.0)  # both stones called eye-clean are
    assert s["included_recall"] == pytest.approx(50.0)
    assert s["included_precision"] == pytest.approx(50.0)
    assert s["abstention_rate"] == pytest.approx(100 * 2 / 6)
    assert s["cannot_judge_abstained"] == pytest.approx(50.0)
