"""`gemid identify` and `gemid models` as a technician runs them: files, folders, globs, bad files, exit codes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_fixture import LABELS, STONE_COLOURS, build_bundle, draw_stone, encode, with_broken_exif

from gemid.cli import main
from gemid.report import ROW_FIELDS as CSV_FIELDS


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")  # rich wraps at 80 columns when stdout is not a terminal


@pytest.fixture
def parcel(tmp_path) -> Path:
    """A desk's folder: good photos (one a PNG named .jpg, one in a subfolder), and bad files."""
    d = tmp_path / "parcel"
    (d / "more").mkdir(parents=True)
    (d / ".thumbs").mkdir()
    (d / "a_ruby.png").write_bytes(encode(draw_stone(STONE_COLOURS["Ruby"])))
    (d / "b_emerald.jpg").write_bytes(encode(draw_stone(STONE_COLOURS["Emerald"]), ".png"))
    (d / "more" / "c_citrine.jpg").write_bytes(encode(draw_stone(STONE_COLOURS["Citrine"]), ".jpg"))
    (d / "d_notes.jpg").write_bytes(b"parcel 42: three stones\n")
    (d / "e_empty.png").write_bytes(b"")
    (d / "readme.txt").write_text("not an image extension: not picked up from a folder")
    (d / ".thumbs" / "x.png").write_bytes(b"hidden folders are skipped")
    return d


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["identify", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_for_a_folder_with_bad_files(capsys, bundle, parcel):
    rc, out, err = run(capsys, str(parcel), "--model", str(bundle), "--json")
    assert rc == 1  # some files failed
    entries = json.loads(out)  # ONE JSON array on stdout, nothing else
    files = [Path(e["file"]).relative_to(parcel).as_posix() for e in entries]
    assert files == ["a_ruby.png", "b_emerald.jpg", "d_notes.jpg", "e_empty.png", "more/c_citrine.jpg"]
    by = {Path(e["file"]).name: e for e in entries}
    assert by["a_ruby.png"]["species"]["top"][0]["label"] == "Ruby"
    assert by["b_emerald.jpg"]["image"]["format"] == "PNG"
    assert by["c_citrine.jpg"]["species"]["decision"] == "identified"
    assert len(by["a_ruby.png"]["species"]["top"]) >= 5 and by["a_ruby.png"]["report_id"]
    assert by["d_notes.jpg"]["error"]["code"] == "unsupported_type" and "text" in by["d_notes.jpg"]["error"]["message"]
    assert by["e_empty.png"]["error"] == {"code": "empty_file", "message": "the file is empty (0 bytes)"}
    assert "Traceback" not in err


def test_all_good_exits_zero(capsys, bundle, parcel):
    rc, out, _ = run(capsys, str(parcel / "a_ruby.png"), str(parcel / "more"), "--model", str(bundle), "--json")
    assert rc == 0 and [e["species"]["top"][0]["label"] for e in json.loads(out)] == ["Ruby", "Citrine"]


def test_no_grade_skips_colour_and_clarity_only(capsys, bundle, parcel):
    photo = str(parcel / "a_ruby.png")
    rc, out, _ = run(capsys, photo, "--model", str(bundle), "--json")
    rc2, out2, _ = run(capsys, photo, "--model", str(bundle), "--json", "--no-grade")
    (graded,), (quick,) = json.loads(out), json.loads(out2)
    assert rc == rc2 == 0
    assert graded["colour"] is not None and graded["clarity"] is not None
    assert quick["colour"] is None and quick["clarity"] is None and quick["species"] == graded["species"]


def test_table_by_default(capsys, bundle, parcel):
    rc, out, err = run(capsys, str(parcel), "--model", str(bundle))
    assert rc == 1
    assert "Ruby" in out and "identified" in out and "Emerald" in out
    assert "error" in out and "the file is empty" in out
    assert "Preliminary identification" in out  # the disclaimer
    assert "Traceback" not in out + err


def test_csv_for_a_parcel(capsys, bundle, parcel, tmp_path):
    target = tmp_path / "out" / "parcel.csv"
    rc, _out, _ = run(capsys, str(parcel), "--model", str(bundle), "--csv", str(target), "--reference", "LOT-9")
    assert rc == 1
    assert target.read_bytes().startswith(b"\xef\xbb\xbf")  # the service's CSV: a spreadsheet reads it as UTF-8
    with open(target, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        assert reader.fieldnames == CSV_FIELDS
    assert CSV_FIELDS[:11] == ["file", "report_id", "decision", "top1", "p1", "top2", "p2", "colour", "clarity",
                               "warnings", "error"]
    assert len(rows) == 5
    ruby = next(r for r in rows if r["file"].endswith("a_ruby.png"))
    assert ruby["decision"] == "identified" and ruby["top1"] == "Ruby" and 0.5 < float(ruby["p1"]) <= 1.0
    assert ruby["top2"] in LABELS and float(ruby["p2"]) < float(ruby["p1"]) and ruby["error"] == ""
    assert ruby["reference"] == "LOT-9"
    bad = next(r for r in rows if r["file"].endswith("d_notes.jpg"))
    assert bad["report_id"] == "" and bad["error"].startswith("unsupported_type:")
    # a reference typed as a formula stays text in the spreadsheet, as in the service's export
    run(capsys, str(parcel / "a_ruby.png"), "--model", str(bundle), "--csv", str(target), "--reference", "=1+2")
    with open(target, newline="", encoding="utf-8-sig") as f:
        assert next(csv.DictReader(f))["reference"] == "'=1+2"


def test_globs_and_missing_paths(capsys, bundle, parcel):
    rc, out, _ = run(capsys, str(parcel / "*.png"), str(parcel / "nope.jpg"), str(parcel / "*.gif"),
                     "--model", str(bundle), "--json")
    entries = json.loads(out)
    assert rc == 1
    assert [Path(e["file"]).name for e in entries] == ["a_ruby.png", "e_empty.png", "nope.jpg", "*.gif"]
    assert entries[2]["error"]["message"] == "no such file or folder"
    assert entries[3]["error"]["message"] == "no files match this pattern"


def test_recursive_glob(capsys, bundle, parcel):
    rc, out, _ = run(capsys, str(parcel / "**" / "*_*.jpg"), "--model", str(bundle), "--json")
    names = [Path(e["file"]).name for e in json.loads(out)]
    assert names == ["b_emerald.jpg", "d_notes.jpg", "c_citrine.jpg"] and rc == 1


def test_readings_top_reference_and_int8(capsys, bundle, parcel):
    rc, out, _ = run(capsys, str(parcel / "a_ruby.png"), "--model", str(bundle), "--json", "--int8", "--top", "7",
                     "--reference", "PK/2025/17", "--ri", "1.765", "--ri-high", "1.774", "--sg", "4.0",
                     "--optic", "DR", "--pleochroism", "moderate", "--uv", "strong")
    assert rc == 0
    (r,) = json.loads(out)
    assert r["model"]["variant"] == "int8" and r["reference"] == "PK/2025/17"
    assert len(r["species"]["top"]) == len(LABELS)  # --top 7, but the model knows six
    rr = r["tests"]["reranking"]
    assert rr["readings"]["ri"] == 1.765 and rr["readings"]["uv_lw"] == "strong" and rr["readings"]["optic"] == "DR"
    assert rr["combined"][0]["label"] == "Ruby"


def test_the_table_says_why_a_photo_was_rejected(capsys, bundle, tmp_path, monkeypatch):
    # an outside try: a rejected row showed only "rejected" beside the photo's percentages; the reason was in
    # --json alone (a referral's was printed)
    import numpy as np

    (tmp_path / "blank.png").write_bytes(encode(np.full((400, 400, 3), 128, np.uint8)))
    monkeypatch.setenv("COLUMNS", "160")
    _rc, out, _ = run(capsys, str(tmp_path / "blank.png"), "--model", str(bundle), "--json")
    (r,) = json.loads(out)
    assert r["conclusion"]["decision"] == "rejected" and r["conclusion"]["reason"]
    _rc, out, _ = run(capsys, str(tmp_path / "blank.png"), "--model", str(bundle))
    words = r["conclusion"]["reason"].split()[:4]
    assert " ".join(words) in " ".join(out.replace("│", " ").split()), out


def test_a_reading_with_a_decimal_comma_is_taken(capsys, bundle, parcel):
    rc, out, _ = run(capsys, str(parcel / "a_ruby.png"), "--model", str(bundle), "--json", "--ri", "1,765", "--sg", "4,0")
    readings = json.loads(out)[0]["tests"]["reranking"]["readings"]
    assert rc == 0 and (readings["ri"], readings["sg"]) == (1.765, 4.0)


def test_default_top_is_at_least_ten(capsys, bundle, parcel):
    _rc, out, _ = run(capsys, str(parcel / "a_ruby.png"), "--model", str(bundle), "--json")
    assert len(json.loads(out)[0]["species"]["top"]) == len(LABELS)  # ten, or the six the test model knows


@pytest.mark.parametrize("argv, words", [
    (["--ri", "9"], "--ri"),
    (["--sg", "-1"], "--sg"),
    (["--reference", "x" * 300], "--reference"),
])
def test_invalid_options_are_usage_errors(capsys, bundle, parcel, argv, words):
    rc, out, err = run(capsys, str(parcel / "a_ruby.png"), "--model", str(bundle), *argv)
    assert rc == 2 and words in err and out == ""


@pytest.mark.parametrize("argv", [[], ["x.jpg", "--top", "0"], ["x.jpg", "--optic", "XX"], ["x.jpg", "--ri", "abc"]])
def test_argparse_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(["identify", *argv])
    assert e.value.code == 2


def test_missing_model_exits_2(capsys, parcel, tmp_path):
    rc, _out, err = run(capsys, str(parcel / "a_ruby.png"), "--model", str(tmp_path / "no-model"))
    assert rc == 2 and "cannot load the model" in err and "bundle.json missing" in err


def test_many_files_with_progress(capsys, bundle, tmp_path):
    for i, label in enumerate(LABELS):
        (tmp_path / f"{i}.png").write_bytes(encode(draw_stone(STONE_COLOURS[label], seed=i), ".png"))
    rc, out, err = run(capsys, str(tmp_path), "--model", str(bundle), "--json")
    assert rc == 0 and [e["species"]["top"][0]["label"] for e in json.loads(out)] == LABELS
    assert "Traceback" not in err


def test_models_lists_bundles_and_checks_sha256(capsys, bundle, tmp_path):
    models = tmp_path / "models"
    good = build_bundle(models / "good", int8=False)
    assert main(["models", "--dir", str(models)]) == 0
    out = capsys.readouterr().out
    assert "tiny-colour" in out and "0.0.1-test" in out and "ok" in out and "val_top1" in out

    altered = build_bundle(models / "altered", int8=False)
    with open(altered / "model.onnx", "ab") as f:
        f.write(b"\0")
    assert main(["models", "--dir", str(models), "--json"]) == 1
    rows = {Path(r["dir"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert rows["good"]["files"]["fp32"]["status"] == "ok" and rows["good"]["labels"] == len(LABELS)
    assert rows["good"]["metrics"]["val_top1"] == 1.0
    assert rows["altered"]["files"]["fp32"]["status"].startswith("altered")
    assert good.is_dir()

    (models / "broken").mkdir()
    (models / "broken" / "bundle.json").write_text("{not json")
    assert main(["models", "--dir", str(models), "--json"]) == 1
    rows = {Path(r["dir"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert "not a valid bundle" in rows["broken"]["error"]


def test_models_lists_the_shipped_cut_shape_model_too(capsys):
    """README says models/gemid-shape gives stone.shape; `gemid models` listed the species model alone (an
    outside try)."""
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    shape = rows["gemid-shape"]
    assert shape["labels"] == 11 and {f["status"] for f in shape["files"].values()} == {"ok"}
    assert set(shape["files"]) == {"embedder", "cnn", "head"} and "gemid-species" in rows


def test_models_with_nothing_found(capsys, tmp_path):
    assert main(["models", "--dir", str(tmp_path)]) == 1
    assert "no model bundles" in capsys.readouterr().out


def test_console_command_end_to_end(bundle, parcel):
    """The real entry point in a fresh process: exit code, clean JSON on stdout, nothing torch-related."""
    proc = subprocess.run(
        [sys.executable, "-m", "gemid.cli", "identify", str(parcel / "a_ruby.png"), str(parcel / "d_notes.jpg"),
         "--model", str(bundle), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    entries = json.loads(proc.stdout)
    assert entries[0]["species"]["top"][0]["label"] == "Ruby" and entries[1]["error"]["code"] == "unsupported_type"
    assert "Traceback" not in proc.stderr
    helptext = subprocess.run([sys.executable, "-m", "gemid.cli", "--help"], capture_output=True, text=True).stdout
    assert "identify" in helptext and "models" in helptext


def test_a_photo_with_broken_exif_prints_no_library_warning(bundle, tmp_path):
    """Pillow warns about a corrupt EXIF block with a line naming its own source file; the technician sees the
    report (the photo as stored), not that line — unless they ask for --debug."""
    photo = tmp_path / "exif.jpg"
    photo.write_bytes(with_broken_exif(encode(draw_stone(STONE_COLOURS["Ruby"]), ".jpg")))
    cmd = [sys.executable, "-m", "gemid.cli", "identify", str(photo), "--model", str(bundle), "--json", "--no-grade"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["species"]["top"][0]["label"] == "Ruby"
    assert proc.stderr == ""
    debug = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, timeout=120)
    assert debug.returncode == 0 and "Corrupt EXIF data" in debug.stderr  # the case this test is about


def test_readings_that_fit_cz_conclude_refer_in_the_json_the_table_and_the_csv(capsys, bundle, parcel, tmp_path):
    """A ruby photo with CZ readings (over the limit, SG 5.80): the conclusion is refer, naming CZ, in every
    output; the photo's own answer stays visible as "from the photo". The switches come from `Readings`."""
    ruby = str(parcel / "a_ruby.png")
    cz = ("--ri-otl", "--sg", "5.80", "--weight-ct", "1.1")
    rc, out, _ = run(capsys, ruby, "--model", str(bundle), "--json", *cz)
    (r,) = json.loads(out)
    assert rc == 0 and r["species"]["top"][0]["label"] == "Ruby"
    c = r["conclusion"]
    assert (c["decision"], c["basis"], c["label"]) == ("refer", "photo+readings", "Cubic zirconia")
    assert "Cubic zirconia" in c["fits"] and r["tests"]["done"] == ["refractive_index", "specific_gravity"]
    assert r["tests"]["reranking"]["readings"]["weight_ct"] == 1.1 and r["tests"]["lab_note"]
    assert r["tests"]["recommended"] == []  # no test "confirms" a candidate the readings refuted: the lab does
    rc, out, _ = run(capsys, ruby, "--model", str(bundle), *cz)
    assert "refer" in out and "Cubic zirconia" in out and "From the photo" in out
    target = tmp_path / "cz.csv"
    run(capsys, ruby, "--model", str(bundle), "--csv", str(target), *cz)
    with open(target, newline="", encoding="utf-8-sig") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["decision"], row["answer"], row["photo_decision"], row["basis"]) == (
        "refer", "Cubic zirconia", "identified", "photo+readings")


def test_a_photo_alone_concludes_from_the_photo(capsys, bundle, parcel):
    _rc, out, _ = run(capsys, str(parcel / "a_ruby.png"), "--model", str(bundle), "--json")
    c = json.loads(out)[0]["conclusion"]
    assert (c["decision"], c["label"], c["basis"]) == ("identified", "Ruby", "photo") and "Red spinel" in c["cannot_exclude"]


def test_the_table_fits_80_columns_without_breaking_words_and_closes_with_counts(capsys, bundle, parcel,
                                                                                  monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rc, out, _ = run(capsys, str(parcel), "--model", str(bundle))
    assert rc == 1
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "identifi\n" not in out and not any(line.rstrip().endswith(("identifi", "uncerta")) for line in lines)
    assert "identified" in out  # whole words, at 80 columns
    assert "5 files: 3 identified · 0 uncertain · 0 refer · 0 rejected · 2 errors" in out


def test_readings_belong_to_one_stone_not_to_a_parcel_or_a_tray(capsys, bundle, parcel, tmp_path):
    # a user's finding: readings given with a folder or a tray photo re-ranked every stone on one stone's readings
    rc, _out, err = run(capsys, str(parcel), "--model", str(bundle), "--ri", "1.762")
    assert rc == 2 and "readings describe one stone" in err and "files" in err
    from bundle_fixture import draw_tray

    (tmp_path / "tray.png").write_bytes(encode(draw_tray()))
    rc, out, _ = run(capsys, str(tmp_path / "tray.png"), "--model", str(bundle), "--json", "--ri", "1.762")
    (entry,) = json.loads(out)
    assert rc == 1 and entry["error"]["code"] == "readings_several_stones", entry
    assert "holds 6 stones" in entry["error"]["message"]
    rc, out, _ = run(capsys, str(tmp_path / "tray.png"), "--model", str(bundle), "--json")
    assert rc == 0 and len(json.loads(out)) == 6  # without readings, each stone its report


def test_a_tray_photo_gives_a_row_per_stone_in_reading_order(capsys, bundle, tmp_path, monkeypatch):
    # a user's finding: locally a tray came back as one rejected photo ("photograph one stone at a time"), while
    # the service, and `--server`, gave each stone its report
    from bundle_fixture import TRAY_READING_ORDER, draw_tray

    d = tmp_path / "lot"
    d.mkdir()
    (d / "a_tray.png").write_bytes(encode(draw_tray()))
    (d / "b_ruby.jpg").write_bytes(encode(draw_stone(STONE_COLOURS["Ruby"]), ".jpg"))
    rc, out, _ = run(capsys, str(d), "--model", str(bundle), "--json", "--csv", str(tmp_path / "lot.csv"))
    assert rc == 0
    entries = json.loads(out)
    assert [e["species"]["top"][0]["label"] for e in entries] == [*TRAY_READING_ORDER, "Ruby"]
    assert [(e["stone"]["index"], e["stone"]["count"]) for e in entries] == [(i, 6) for i in range(1, 7)] + [(1, 1)]
    assert len({e["image"]["sha256"] for e in entries[:6]}) == 1 and entries[0]["file"].endswith("a_tray.png")
    with open(tmp_path / "lot.csv", newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [r["stone"] for r in rows] == [f"{i} of 6" for i in range(1, 7)] + ["1 of 1"]
    # two workers give the same rows
    rc, out, _ = run(capsys, str(d), "--model", str(bundle), "--json", "--jobs", "2")
    assert [e["stone"]["index"] for e in json.loads(out)] == [*range(1, 7), 1]
    # the table says which stone each row is, and counts files and stones
    monkeypatch.setenv("COLUMNS", "100")
    rc, out, _ = run(capsys, str(d), "--model", str(bundle))
    text = " ".join(out.split())
    assert all(f"stone {i} of 6" in text for i in range(1, 7))
    assert "2 files, 7 stones: 7 identified · 0 uncertain · 0 refer · 0 rejected · 0 errors" in text
