"""The gemmological property table: every model label mapped, values plausible and sourced, loader strict."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from gemid.gemmology.table import (
    FLUORESCENCE,
    LABELS_JSON,
    OPTIC_SIGNS,
    OPTICS,
    PLEOCHROISM,
    PROPERTIES_CSV,
    PropertyTableError,
    default_table,
    load_table,
)


def _rows() -> list[dict[str, str]]:
    with open(PROPERTIES_CSV, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _num(v: str) -> float | None:
    return float(v) if v.strip() else None


def test_every_model_label_is_mapped():
    labels = json.loads(LABELS_JSON.read_text())["labels"]
    assert len(labels) == 68 and len(set(labels)) == 68
    mapped = {r["label"] for r in _rows() if r["label"]}
    assert set(labels) <= mapped, sorted(set(labels) - mapped)
    table = default_table()
    for lab in labels:
        assert table.rows_for(lab), lab


@pytest.mark.shared
def test_labels_list_matches_the_gems68_folders(gems68_dir: Path):
    folders = sorted(p.name for p in gems68_dir.iterdir() if p.is_dir())
    assert json.loads(LABELS_JSON.read_text())["labels"] == folders


def test_rows_are_sourced_ordered_and_plausible():
    rows = _rows()
    assert len(rows) >= 68 + 10  # the labels plus look-alikes and simulants
    for r in rows:
        where = r["name"]
        assert r["source"].strip(), f"{where}: no source"
        assert any(ref in r["source"] for ref in ("GIA", "Read", "Webster", "O'Donoghue", "Gems & Gemology")), where
        for prefix, lo_ok, hi_ok in (("ri", 1.3, 2.9), ("sg", 0.9, 7.5), ("biref", 0.0, 0.3), ("hardness", 1, 10)):
            lo, hi = _num(r[f"{prefix}_low"]), _num(r[f"{prefix}_high"])
            if lo is None and hi is None and prefix in ("ri", "biref"):
                continue
            assert lo is not None and hi is not None, f"{where}: {prefix} half given"
            assert lo <= hi, f"{where}: {prefix} {lo} > {hi}"
            assert lo_ok <= lo and hi <= hi_ok, f"{where}: {prefix} {lo}-{hi} implausible"
        if not r["ri_low"].strip():
            assert "opaque" in r["note"].lower(), f"{where}: RI missing but not opaque"
        optic = r["optic"].split("|")
        assert optic and set(optic) <= set(OPTICS), where
        signs = [s for s in r["optic_sign"].split("|") if s]
        assert set(signs) <= set(OPTIC_SIGNS), where
        assert ("DR" in optic) == bool(signs), f"{where}: sign needed exactly for DR"
        if optic == ["SR"] and r["biref_high"].strip():
            assert float(r["biref_high"]) == 0.0, where
        assert set(r["pleochroism"].split("|")) <= set(PLEOCHROISM), where
        assert set(r["uv_lw"].split("|")) <= set(FLUORESCENCE), where
        assert set(r["uv_sw"].split("|")) <= set(FLUORESCENCE), where
        assert r["origin"] in ("natural", "synthetic", "imitation"), where


def test_textbook_anchor_values():
    """A few values every gemmologist knows: if these move, the table was damaged."""
    t = default_table()
    ruby = t.rows_for("Ruby")[0]
    assert ruby.ri.low <= 1.762 and ruby.ri.high >= 1.770 and ruby.sg.low <= 4.00 <= ruby.sg.high
    assert ruby.optic == ("DR",) and ruby.optic_sign == ("uniaxial-",) and ruby.mineral == "corundum"
    quartz = t.rows_for("Amethyst")[0]
    assert (quartz.ri.low, quartz.ri.high) == (1.544, 1.553) and quartz.sg.low <= 2.65 <= quartz.sg.high
    assert t.rows_for("Diamond")[0].ri.low > 2.4 and t.rows_for("Fluorite")[0].ri.high < 1.44
    for garnet in ("Pyrope", "Almandine", "Rhodolite", "Spessartite", "Hessonite", "Tsavorite", "Andradite"):
        row = t.rows_for(garnet)[0]
        assert row.family == "garnet" and row.optic[0] == "SR", garnet
    assert t.rows_for("Pyrite")[0].opaque
    assert {m.mineral for m in t.rows_for("Sapphire Blue") + t.rows_for("Sapphire Purple")} == {"corundum"}


def test_lookalikes_and_simulants_are_present_and_point_at_labels():
    t = default_table()
    names = {m.name for m in t.lookalikes()}
    assert {"Red spinel", "Glass", "Cubic zirconia", "Synthetic moissanite", "Plastic"} <= names
    for m in t.lookalikes():
        assert m.lookalike_of, m.name
        assert all(x == "*" or x in t.labels for x in m.lookalike_of), m.name


def test_rows_for_falls_back_to_name_mineral_and_family():
    t = default_table()
    assert [m.name for m in t.rows_for("Red spinel")] == ["Red spinel"]
    assert {m.name for m in t.rows_for("Spinel")} == {"Red spinel", "Blue spinel"}  # natural only
    assert {m.family for m in t.rows_for("garnet")} == {"garnet"}
    assert t.rows_for("Unobtainium") == ()
    assert len(t.rows_for("Sunstone")) == 2  # oligoclase and labradorite


def _write_variant(tmp_path: Path, edit) -> Path:
    rows = _rows()
    edit(rows)
    out = tmp_path / "props.csv"
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda rows: rows[0].update(ri_low="1.80", ri_high="1.70"), "ri_low"),
        (lambda rows: rows[0].update(sg_low="12", sg_high="13"), "plausible"),
        (lambda rows: rows[0].update(optic="DR|XX"), "optic"),
        (lambda rows: rows[0].update(source=""), "source"),
        (lambda rows: rows[0].update(optic_sign=""), "sign"),
        (lambda rows: rows.pop(next(i for i, r in enumerate(rows) if r["label"] == "Kyanite")), "Kyanite"),
        (lambda rows: rows.append(dict(rows[0])), "duplicate"),
        (lambda rows: rows[-1].update(lookalike_of="Moonstone"), "Moonstone"),
    ],
)
def test_loader_rejects_a_damaged_table(tmp_path, edit, message):
    path = _write_variant(tmp_path, edit)
    with pytest.raises(PropertyTableError, match=message):
        load_table(path)


def test_loader_reads_a_clean_copy_and_a_custom_label_list(tmp_path):
    shutil.copy(PROPERTIES_CSV, tmp_path / "p.csv")
    (tmp_path / "labels.json").write_text(json.dumps({"labels": ["Ruby", "Emerald"]}))
    table = load_table(tmp_path / "p.csv", tmp_path / "labels.json")
    assert table.model_labels == ("Ruby", "Emerald")
    (tmp_path / "bad.json").write_text(json.dumps({"labels": ["Ruby", "Moonstone"]}))
    with pytest.raises(PropertyTableError, match="Moonstone"):
        load_table(tmp_path / "p.csv", tmp_path / "bad.json")
