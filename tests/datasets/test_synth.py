"""The synthetic stone renderer: deterministic, truthful, and its CLI writes a usable manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gemid.datasets.manifest import read_manifest
from gemid.datasets.synth import (
    BACKGROUNDS,
    CUTS,
    InclusionSpec,
    StoneSpec,
    random_spec,
    render,
    render_dataset,
    spec_from_json,
)
from gemid.vision import clarity_scales, colour_scales
from gemid.vision.colorimetry import delta_e_2000, rgb8_to_lab


def test_render_is_deterministic_and_seed_dependent() -> None:
    spec = random_spec(np.random.default_rng(5), noise=2.0, jpeg_quality=80)
    a, ma, ta = render(spec, size=128, seed=3)
    b, mb, tb = render(spec, size=128, seed=3)
    c, _, _ = render(spec, size=128, seed=4)
    assert a.dtype == np.uint8 and a.shape == (128, 128, 3)
    assert np.array_equal(a, b) and np.array_equal(ma, mb) and ta == tb
    assert not np.array_equal(a, c)  # noise follows the seed


@pytest.mark.parametrize("cut", CUTS)
def test_mask_covers_the_stone_of_every_cut(cut: str) -> None:
    spec = StoneSpec(cut=cut, lab=(40.0, 50.0, 20.0), scale=0.5, aspect=1.0 if cut == "round" else 1.4,
                     background="white", shadow=0.0, highlights=0)
    rgb, mask, truth = render(spec, size=128)
    frac = (mask > 0).mean()
    assert 0.08 < frac < 0.3  # a stone half the frame long
    lab = rgb8_to_lab(rgb)
    bg = lab[mask == 0]
    assert np.median(bg[:, 0]) > 85  # the white background stays white outside the mask
    assert np.median(lab[mask > 0][:, 1]) > 20  # and the stone is red inside it
    assert truth["cut"] == cut and truth["colour_grade"] == colour_scales.grade_lab(spec.lab).code


def test_clean_render_reproduces_the_body_colour() -> None:
    """A facet of median brightness has the body colour: the median stone pixel matches the truth."""
    spec = StoneSpec(cut="round", lab=(50.0, -40.0, 10.0), highlights=0, scintillation=0.0, shadow=0.0)
    rgb, mask, _ = render(spec, size=192)
    inner = mask > 0
    lab = rgb8_to_lab(rgb)[inner]
    med = np.median(lab, axis=0)
    assert delta_e_2000(med, np.array(spec.lab)) < 2.0


def test_illuminant_tints_the_whole_scene() -> None:
    base = dict(cut="round", lab=(50.0, 0.0, 0.0), background="white", background_lab=(94.0, 0.0, 0.0))
    warm, _, _ = render(StoneSpec(illuminant_k=5000.0, **base), size=96)
    cool, _, _ = render(StoneSpec(illuminant_k=8000.0, **base), size=96)
    corner_warm, corner_cool = rgb8_to_lab(warm[:8, :8]).mean((0, 1)), rgb8_to_lab(cool[:8, :8]).mean((0, 1))
    assert corner_warm[2] > 4.0 > -4.0 > corner_cool[2]  # yellowish under 5000 K, bluish under 8000 K
    assert abs(corner_warm[0] - corner_cool[0]) < 2.0  # luminance of a neutral is preserved


def test_severity_is_monotone_in_count_size_and_contrast() -> None:
    def spec(n: int, size: float, contrast: float) -> StoneSpec:
        incs = tuple(InclusionSpec("crystal", x=0.05 * i - 0.1, y=0.0, size=size, contrast=contrast, seed=i)
                     for i in range(n))
        return StoneSpec(inclusions=incs)

    assert spec(0, 0.05, 0.5).severity == 0.0 and spec(0, 0.05, 0.5).clarity_grade == "VVS"
    assert spec(1, 0.05, 0.5).severity < spec(3, 0.05, 0.5).severity < spec(9, 0.05, 0.5).severity
    assert spec(3, 0.02, 0.5).severity < spec(3, 0.05, 0.5).severity < spec(3, 0.10, 0.5).severity
    assert spec(3, 0.05, 0.2).severity < spec(3, 0.05, 0.5).severity < spec(3, 0.05, 1.0).severity
    heavy = StoneSpec(inclusions=tuple(InclusionSpec(k, x=0.0, y=0.0, size=0.12, contrast=1.0, seed=i)
                                       for i, k in enumerate(["crystal", "feather", "cloud"] * 10)))
    assert clarity_scales.grade_index(heavy.clarity_grade) >= clarity_scales.grade_index("I1")


def test_inclusions_are_drawn_where_the_truth_says() -> None:
    inc = InclusionSpec("crystal", x=0.1, y=-0.1, size=0.1, contrast=1.0, seed=1)
    base = dict(cut="cabochon", lab=(75.0, 10.0, 30.0), highlights=0, shadow=0.0)
    clean, _, _ = render(StoneSpec(**base), size=160)
    dirty, _, truth = render(StoneSpec(inclusions=(inc,), **base), size=160)
    x, y, w, h = truth["inclusions"][0]["bbox"]
    diff = np.abs(clean.astype(int) - dirty.astype(int)).sum(-1)
    assert diff[y : y + h, x : x + w].max() > 100  # a dark crystal on a light stone
    outside = diff.copy()
    outside[max(0, y - 2) : y + h + 2, max(0, x - 2) : x + w + 2] = 0
    assert outside.max() == 0


def test_random_specs_cover_the_scene_space_and_respect_constraints() -> None:
    rng = np.random.default_rng(0)
    specs = [random_spec(rng) for _ in range(200)]
    assert {s.cut for s in specs} == set(CUTS)
    assert {s.background for s in specs} == set(BACKGROUNDS)
    ks = [s.illuminant_k for s in specs]
    assert min(ks) >= 5000 and max(ks) <= 8000
    assert any(s.card for s in specs) and any(not s.inclusions for s in specs)
    fixed = random_spec(rng, cut="pear", background="black", n_inclusions=0, illuminant_k=6500.0)
    assert (fixed.cut, fixed.background, fixed.inclusions, fixed.illuminant_k) == ("pear", "black", (), 6500.0)
    with pytest.raises(TypeError):
        random_spec(rng, colour="red")
    with pytest.raises(ValueError):
        StoneSpec(cut="marquise")


def test_render_dataset_writes_images_manifest_and_truth(tmp_path) -> None:
    from gemid.cli import main

    assert main(["dataset", "synth", "--n", "4", "--out", str(tmp_path / "s"), "--seed", "1", "--size", "96"]) == 0
    m = read_manifest(tmp_path / "s" / "manifest.csv")
    assert len(m.rows) == 4 and all(m.resolve(r).is_file() for r in m.rows)
    truths = [json.loads(line) for line in (tmp_path / "s" / "truth.jsonl").read_text().splitlines()]
    for row, t in zip(m.rows, truths, strict=True):
        assert row.species == "synthetic" and row.colour_grade == t["colour_grade"]
        assert row.clarity_grade == t["clarity_grade"] in clarity_scales.GRADES
        assert spec_from_json(t["spec"]).severity == pytest.approx(t["severity"], abs=1e-4)
    again = render_dataset(4, tmp_path / "t", seed=1, size=96)
    assert (tmp_path / "t" / "truth.jsonl").read_text() == (tmp_path / "s" / "truth.jsonl").read_text()
    assert again.name == "manifest.csv"
