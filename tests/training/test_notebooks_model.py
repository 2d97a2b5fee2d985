"""notebooks/02_model_evaluation.ipynb executes top to bottom (nbclient) on a real evaluation folder.

On a fresh clone it runs on the small drawn-stone model's `gemid evaluate` output; with ../shared and a
trained model, it also runs on the gems68 evaluation (marked `shared`). The committed notebook is saved
executed on the shipped model's evaluation (`python notebooks/execute.py`) with `GEMID_SHOW_PHOTOS=0`: no
crop of a gems68 photo is saved.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
import notebook_support  # noqa: E402  (after the importorskips)

pytest.importorskip("torch")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "02_model_evaluation.ipynb"
REAL_EVAL = Path(os.environ.get("GEMID_REAL_EVAL_DIR",
                                Path(__file__).resolve().parents[2] / "models" / "gemid-species" / "eval"))


SHIPPED_EVAL = Path(__file__).resolve().parents[2] / "models" / "gemid-species" / "eval"


def _execute(eval_dir: Path, monkeypatch, timeout: int = 240, *, show_photos: bool = False) -> nbformat.NotebookNode:
    env = {"GEMID_EVAL_DIR": str(eval_dir), "GEMID_SHOW_PHOTOS": "1" if show_photos else "0"}
    return notebook_support.execute(NOTEBOOK, env, monkeypatch, timeout)


_text = notebook_support.text


def test_committed_notebook_shows_the_shipped_models_figures_and_no_photo():
    nb = notebook_support.assert_saved_executed_without_photos(NOTEBOOK)
    text = _text(nb)
    m = json.loads((SHIPPED_EVAL / "metrics.json").read_text())
    assert f"models/gemid-species/eval: {m['n']} photos, {len(m['classes'])} classes" in text
    assert f"top-1          {m['top1'] * 100:6.2f} %" in text  # the shipped evaluation's figures, recomputed
    assert f"ECE after T    {m['calibration']['ece_after'] * 100:6.2f} %" in text
    assert notebook_support.images(nb) >= 4  # confusions, reliability, coverage/precision, open-set histogram
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "GEMID_EVAL_DIR" in first.source and "GEMID_SHOW_PHOTOS" in first.source


def test_notebook_runs_on_a_small_model(tmp_path_factory, monkeypatch):
    from model_fixture import tiny_run

    run = tiny_run(tmp_path_factory.getbasetemp())
    nb = _execute(run["eval"], monkeypatch)
    text = _text(nb)
    m = json.loads((run["eval"] / "metrics.json").read_text())
    assert f"{len(m['classes'])} classes" in text
    assert "top-1" in text and "identified" in text and "non-gem images rejected" in text
    images = sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert images >= 4  # confusions, reliability, coverage/precision, open-set histogram
    assert notebook_support.photos(nb) == 0


@pytest.mark.shared
def test_notebook_runs_on_the_gems68_evaluation(gems68_dir, monkeypatch):
    assert (REAL_EVAL / "metrics.json").is_file(), f"the shipped model's evaluation is missing at {REAL_EVAL}"
    nb = _execute(REAL_EVAL, monkeypatch, timeout=600, show_photos=True)
    assert "68 classes" in _text(nb)
    assert notebook_support.photos(nb) == 1  # the worst errors' crops: drawn only when asked for
    assert notebook_support.photos(_execute(REAL_EVAL, monkeypatch, timeout=600)) == 0
