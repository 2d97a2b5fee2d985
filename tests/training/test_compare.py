"""`gemid evaluate --compare OLD NEW`: both bundles through the runtime on the same held-out drawn stones; a model
that is clearly worse overall or on a species with enough photos fails the command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bundle_fixture import LABELS, STONE_COLOURS, build_bundle, draw_stone, encode

from gemid.datasets.manifest import Row, write_manifest
from gemid.training.compare import mcnemar_exact, paired_difference

PER_SPECIES = 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    good = build_bundle(root / "good", int8=False)
    # the same ONNX model (hashes stay valid) with Ruby and Emerald swapped in bundle.json's labels: every red stone
    # is called an Emerald and every green one a Ruby
    worse = Path(shutil.copytree(good, root / "worse"))
    meta = json.loads((worse / "bundle.json").read_text())
    labels = meta["labels"]
    i, j = labels.index("Ruby"), labels.index("Emerald")
    labels[i], labels[j] = labels[j], labels[i]
    meta["name"] = "tiny-colour-swapped"
    (worse / "bundle.json").write_text(json.dumps(meta))
    rows = []
    for label in LABELS:
        folder = root / "photos" / label
        folder.mkdir(parents=True)
        for k in range(PER_SPECIES):
            rgb = draw_stone(STONE_COLOURS[label], seed=k, centre=(128 + 4 * (k % 3 - 1), 96 + 3 * (k % 2)),
                             radius=60 + k)
            (folder / f"{k}.png").write_bytes(encode(rgb))
            rows.append(Row(path=f"photos/{label}/{k}.png", species=label, split="val"))
    # a training photo of another species: not in the val split, so it must not be measured
    rows.append(Row(path="photos/Ruby/0.png", species="Amethyst", split="train"))
    manifest = write_manifest(rows, root / "manifest.csv", root=root)
    return {"good": good, "worse": worse, "manifest": manifest}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    from gemid.cli import main

    rc = main(["evaluate", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_bundle_compared_with_itself_passes_with_no_difference(setup, capsys):
    rc, out, err = _run(capsys, "--compare", str(setup["good"]), str(setup["good"]), "--manifest",
                        str(setup["manifest"]), "--json")
    assert rc == 0, err
    res = json.loads(out)
    o = res["overall"]
    assert o["n"] == len(LABELS) * PER_SPECIES  # the val split only
    assert o["old_top1"] == o["new_top1"] == 1.0
    assert o["difference"] == 0.0 and o["only_new_right"] == o["only_old_right"] == 0
    lo, hi = o["difference_ci"]
    assert lo < 0 < hi
    assert not res["worse"] and res["reasons"] == []
    assert {s["species"] for s in res["species"]} == set(LABELS)
    assert all(s["judged"] and s["n"] == PER_SPECIES and s["difference"] == 0.0 for s in res["species"])


def test_a_worse_bundle_fails_with_the_reason(setup, capsys):
    rc, out, err = _run(capsys, "--compare", str(setup["good"]), str(setup["worse"]), "--manifest",
                        str(setup["manifest"]))
    assert rc == 1
    assert "clearly worse overall" in err and len(err.strip().splitlines()) == 1
    # the table: both models' top-1 with intervals, the paired difference, and the species it lost
    assert "top-1 100.0 %" in out and "top-1 66.7 %" in out
    assert "new − old: -33.3 points" in out
    assert "FAIL: the new model is clearly worse on Emerald" in out
    assert "FAIL: the new model is clearly worse on Ruby" in out
    assert "clearly worse on Peridot" not in out

    rc, out, _ = _run(capsys, "--compare", str(setup["good"]), str(setup["worse"]), "--manifest",
                      str(setup["manifest"]), "--json")
    res = json.loads(out)
    by = {s["species"]: s for s in res["species"]}
    assert by["Ruby"]["new_top1"] == 0.0 and by["Ruby"]["difference_ci"][1] < 0
    assert by["Peridot"]["difference"] == 0.0
    assert res["overall"]["only_old_right"] == 2 * PER_SPECIES and res["overall"]["difference_ci"][1] < 0

    # the reverse comparison is an improvement: it passes
    rc, out, _ = _run(capsys, "--compare", str(setup["worse"]), str(setup["good"]), "--manifest",
                      str(setup["manifest"]))
    assert rc == 0 and "new − old: +33.3 points" in out and "OK:" in out


def test_species_below_min_photos_are_not_judged_one_by_one(setup, capsys):
    rc, out, _ = _run(capsys, "--compare", str(setup["good"]), str(setup["worse"]), "--manifest",
                      str(setup["manifest"]), "--min-photos", str(PER_SPECIES + 1), "--json")
    res = json.loads(out)
    assert rc == 1 and not any(s["judged"] for s in res["species"])
    assert len(res["reasons"]) == 1 and "overall" in res["reasons"][0]


def test_clear_errors(setup, capsys, tmp_path):
    rc, _, err = _run(capsys, "--compare", str(setup["good"]), str(setup["good"]))
    assert rc == 2 and "--manifest" in err
    rc, _, err = _run(capsys, "--compare", str(setup["good"]), str(tmp_path / "nothing"), "--manifest",
                      str(setup["manifest"]))
    assert rc == 2 and "bundle.json missing" in err
    rc, _, err = _run(capsys, "--compare", str(setup["good"]), str(setup["good"]), "--manifest",
                      str(setup["manifest"]), "--split", "test")
    assert rc == 2 and "no rows with split=test" in err
    rc, _, err = _run(capsys)
    assert rc == 2 and "--checkpoint" in err


def test_paired_interval_on_hand_made_outcomes():
    # Newcombe (1998), Statistics in Medicine 17:2635, example (a): 36 both right, 12 only new, 2 only old, 0 both
    # wrong → difference 0.2000, method 10 interval 0.0569 to 0.3404
    ex = paired_difference([True] * 36 + [False] * 12 + [True] * 2, [True] * 36 + [True] * 12 + [False] * 2)
    assert ex["difference"] == pytest.approx(0.2)
    assert ex["difference_ci"] == pytest.approx([0.0569, 0.3404], abs=5e-5)
    # ten photos the old model gets right: losing 3 is not yet clearly worse, losing 4 is
    three = paired_difference([True] * 10, [False] * 3 + [True] * 7)
    four = paired_difference([True] * 10, [False] * 4 + [True] * 6)
    assert three["difference"] == pytest.approx(-0.3) and three["difference_ci"][1] > 0
    assert four["difference"] == pytest.approx(-0.4) and four["difference_ci"][1] < 0
    for r in (three, four):
        lo, hi = r["difference_ci"]
        assert -1 <= lo < r["difference"] < hi <= 1
    # discordant pairs both ways cancel: no difference, an interval around 0
    mixed = paired_difference([True, False] * 10, [False, True] * 10)
    assert mixed["difference"] == 0 and mixed["difference_ci"][0] < 0 < mixed["difference_ci"][1]
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    with pytest.raises(ValueError):
        paired_difference([True], [True, False])


def test_compare_runs_without_torch(setup):
    """The comparison is the runtime's (ONNX Runtime): a runtime-only install, without torch, runs it."""
    import subprocess
    import sys
    import textwrap

    code = f"""
        import sys
        sys.modules["torch"] = None  # `import torch` now fails, as on a runtime-only install
        from gemid.cli import main
        rc = main(["evaluate", "--compare", {str(setup["good"])!r}, {str(setup["worse"])!r},
                   "--manifest", {str(setup["manifest"])!r}])
        assert rc == 1, rc
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "clearly worse overall" in proc.stderr and "training extra" not in proc.stderr
