"""`gemid dataset audit|import|split` on a drawn data set with planted faults: it must find exactly those."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from datasets_support import make_clean_dataset, make_faulty_dataset

from gemid.cli import main
from gemid.datasets.importers import import_csv, import_folder
from gemid.datasets.manifest import read_manifest, write_manifest


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    return make_faulty_dataset(tmp_path_factory.mktemp("faulty") / "drawn")


def _audit(tmp_path: Path, source: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "audit.json"
    rc = main(["dataset", "audit", str(source), "--json", str(out), *extra])
    return rc, json.loads(out.read_text())


def _members(groups: list[dict]) -> list[tuple[str, ...]]:
    return sorted(tuple(sorted(m["path"] for m in g["members"])) for g in groups)


def test_importer_lists_every_image_and_keeps_labels_verbatim(faulty):
    res = import_folder(faulty.root)
    assert len(res.rows) == faulty.n_files
    assert {r.species for r in res.rows} == {"Ruby", "Emerald Green", "Sapphire Blue"}
    assert res.ignored == [faulty.ignored]
    assert {r.source for r in res.rows} == {"drawn"}
    assert all(Path(r.path).is_absolute() for r in res.rows)


def test_audit_finds_exactly_the_planted_faults(tmp_path, faulty, capsys):
    rc, rep = _audit(tmp_path, faulty.root)
    assert rc == 0  # not --strict
    assert rep["files"] == faulty.n_files and rep["usable"] == faulty.n_files - 2
    assert [m["path"] for m in rep["extension_mismatches"]] == [faulty.png_named_jpg]
    assert rep["extension_mismatches"][0]["content_format"] == "png" and rep["extension_mismatches"][0]["has_alpha"]
    assert rep["with_alpha"] == [faulty.png_named_jpg]
    assert {(u["path"], u["problem"]) for u in rep["unusable"]} == {(faulty.truncated, "truncated"),
                                                                     (faulty.empty, "empty")}
    dup = rep["duplicates"]
    assert _members(dup["within_class"]) == [faulty.near_pair]
    assert not dup["within_class"][0]["exact"]
    assert _members(dup["across_classes"]) == [faulty.cross_pair]
    assert dup["across_classes"][0]["exact"] and dup["across_classes"][0]["max_distance"] == 0
    assert dup["across_splits"] == []  # a folder has no splits
    assert rep["classes"]["Ruby"] == {"files": 10, "usable": 9, "splits": {}}
    assert rep["formats"] == {"jpeg": faulty.n_files - 2, "png": 1, "unknown": 1}
    assert rep["sizes"]["width"] == {"min": 90, "median": 128, "max": 128}
    assert rep["problems_found"]
    text = capsys.readouterr().out  # the table says the same things
    for needle in ("emerald_png.jpg", "ruby_truncated.jpg", "ACROSS CLASSES", "copied.jpg", "ruby_0_small.jpg"):
        assert needle in text


def test_strict_fails_only_when_there_are_problems(tmp_path, faulty):
    assert _audit(tmp_path, faulty.root, "--strict")[0] == 1
    clean = make_clean_dataset(tmp_path / "clean")
    rc, rep = _audit(tmp_path, clean, "--strict")
    assert rc == 0 and not rep["problems_found"] and rep["unusable"] == []
    assert all(not v for k, v in rep["duplicates"].items() if k != "photos_in_groups")


def test_json_to_stdout_is_the_report(faulty, capsys):
    assert main(["dataset", "audit", str(faulty.root), "--json", "-"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_classes"] == 3 and rep["threshold_bits"] == 40


def test_import_writes_a_deterministic_group_aware_manifest(tmp_path, faulty):
    a, b = tmp_path / "a" / "m.csv", tmp_path / "b" / "m.csv"
    for out in (a, b):
        assert main(["dataset", "import", str(faulty.root), "--out", str(out), "--val-fraction", "0.3",
                     "--seed", "1"]) == 0
    assert a.read_bytes() == b.read_bytes()
    m = read_manifest(a)
    paths = {Path(m.resolve(r)).relative_to(faulty.root).as_posix(): r for r in m.rows}
    assert faulty.truncated not in paths and faulty.empty not in paths  # unusable files left out
    assert faulty.png_named_jpg in paths
    assert len(m.rows) == faulty.n_files - 2
    for pair in (faulty.near_pair, faulty.cross_pair):
        assert paths[pair[0]].split == paths[pair[1]].split
    for species in ("Ruby", "Emerald Green", "Sapphire Blue"):
        splits = [r.split for r in m.rows if r.species == species]
        assert 2 <= splits.count("val") <= 4 and splits.count("train") >= 6
    assert all(m.resolve(r).is_file() for r in m.rows)
    main(["dataset", "import", str(faulty.root), "--out", str(b), "--seed", "2", "--val-fraction", "0.3"])
    assert a.read_bytes() != b.read_bytes()


def test_audit_of_a_manifest_reports_leaks_and_split_repairs_them(tmp_path, faulty):
    man = tmp_path / "m.csv"
    main(["dataset", "import", str(faulty.root), "--out", str(man), "--seed", "0"])
    rc, rep = _audit(tmp_path, man, "--strict")
    assert rep["duplicates"]["across_splits"] == []
    assert set(rep["splits"]) == {"train", "val"}
    m = read_manifest(man)
    leak = [r.with_split("val" if r.path.endswith("ruby_0.jpg") else "train" if r.path.endswith("ruby_0_small.jpg")
                         else r.split) for r in m.rows]
    write_manifest(leak, man, root=m.root)
    rc, rep = _audit(tmp_path, man, "--strict")
    assert rc == 1
    assert _members(rep["duplicates"]["across_splits"]) == [faulty.near_pair]
    assert main(["dataset", "split", str(man), "--seed", "0"]) == 0
    rc, rep = _audit(tmp_path, man, "--strict")
    assert rep["duplicates"]["across_splits"] == []


def test_kfold_split_from_the_cli(tmp_path, faulty):
    man = tmp_path / "m.csv"
    main(["dataset", "import", str(faulty.root), "--out", str(man), "--no-split"])
    assert {r.split for r in read_manifest(man).rows} == {""}
    val = []
    for fold in range(3):
        out = tmp_path / f"f{fold}.csv"
        assert main(["dataset", "split", str(man), "--out", str(out), "--kfold", "3", "--fold", str(fold)]) == 0
        val += [r.path for r in read_manifest(out).rows if r.split == "val"]
    assert sorted(val) == sorted(r.path for r in read_manifest(man).rows)
    every = tmp_path / "all.csv"
    assert main(["dataset", "split", str(man), "--out", str(every), "--kfold", "3", "--fold", "all"]) == 0
    named = read_manifest(every)
    assert named.folds == ["fold0", "fold1", "fold2"]
    assert sorted(r.path for r in named.split("fold1")) == sorted(
        r.path for r in read_manifest(tmp_path / "f1.csv").rows if r.split == "val")


def test_csv_import_maps_columns(tmp_path, faulty):
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "tone", "vs"])
        w.writerow(["photos/Ruby/ruby_1.jpg", "Ruby", "medium dark", "VS1"])
        w.writerow([str(faulty.root / "Sapphire Blue" / "sapphire blue_1.jpg"), "Sapphire Blue", "", ""])
        for k in range(2, 6):
            w.writerow([f"photos/Ruby/ruby_{k}.jpg", "Ruby", "", ""])
    shutil.copytree(faulty.root / "Ruby", tmp_path / "photos" / "Ruby")
    res = import_csv(labels, path_column="file", species_column="label", colour_column="tone",
                     clarity_column="vs", source="lab-a")
    assert [(r.species, r.colour_grade, r.clarity_grade, r.source) for r in res.rows[:2]] == [
        ("Ruby", "medium dark", "VS1", "lab-a"), ("Sapphire Blue", "", "", "lab-a")]
    assert all(Path(r.path).is_file() for r in res.rows)
    out = tmp_path / "m.csv"
    assert main(["dataset", "import", str(labels), "--out", str(out), "--path-column", "file",
                 "--species-column", "label", "--colour-column", "tone"]) == 0
    rows = read_manifest(out).rows
    assert [r.colour_grade for r in rows] == ["medium dark", "", "", "", "", ""]
    assert [r.split for r in rows if r.species == "Sapphire Blue"] == ["train"]  # a lone photo trains
    assert sorted(r.split for r in rows if r.species == "Ruby") == ["train"] * 4 + ["val"]


@pytest.mark.parametrize("argv, needle", [
    (["dataset", "audit", "/no/such/folder"], "no such folder or file"),
    (["dataset", "import", "{csv}", "--out", "{tmp}/m.csv", "--species-column", "kind"], "no column(s) kind"),
    (["dataset", "split", "{csv}", "--val-fraction", "1.5"], "between 0 and 1"),
    (["dataset", "audit", "{tmp}/empty_dir"], "no photos found"),
])
def test_bad_input_is_one_clear_line(tmp_path, faulty, capsys, argv, needle):
    man = tmp_path / "m.csv"
    write_manifest(import_folder(faulty.root).rows[:4], man)
    (tmp_path / "empty_dir").mkdir()
    argv = [a.format(csv=man, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_dataset_without_subcommand_prints_help(capsys):
    assert main(["dataset"]) == 2
    out = capsys.readouterr().out
    assert "audit" in out and "import" in out and "split" in out


@pytest.mark.parametrize("command", ["audit", "import", "split", "synth"])
def test_help_names_every_default(command, capsys):
    """Every optional flag that takes a value says its default in `gemid dataset COMMAND --help`."""
    import argparse

    from gemid.cli import build_parser

    def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    parser = subcommands(subcommands(build_parser())["dataset"])[command]
    valued = [a for a in parser._actions if a.option_strings and not a.required and a.nargs != 0]
    assert valued, command
    silent = [a.option_strings[0] for a in valued if "default" not in (a.help or "")]
    assert not silent, f"gemid dataset {command} --help does not say the default of {silent}"
    with pytest.raises(SystemExit) as exc:
        main(["dataset", command, "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for a in valued:
        if "%(default)" in a.help:
            assert f"(default: {a.default}" in text, (a.option_strings[0], a.default)
    if command != "synth":
        assert "--colour-threshold DELTA_E largest colour difference at which two photos within --threshold " \
               "are still near-duplicates: mean CIELAB delta-E between their 8x8 thumbnails (default: 12.0)" in text
