"""notebooks/02_model_evaluation.ipynb executes top to bottom (nbclient) on a real evaluation folder.

On a fresh clone it runs on the small drawn-stone model's `gemid evaluate` output; with ../shared and a
trained model, it also runs on the gems68 evaluation (marked `shared`).
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

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_model_evaluation.ipynb"
REAL_EVAL = Path(os.environ.get("GEMID_REAL_EVAL_DIR",
                                Path(__file__).resolve().parents[1] / "models" / "gemid-species" / "eval"))


def _execute(eval_dir: Path, monkeypatch, timeout: int = 240) -> nbformat.NotebookNode:
    return notebook_support.execute(NOTEBOOK, {"GEMID_EVAL_DIR": str(eval_dir)}, monkeypatch, timeout)


_text = notebook_support.text


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


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


@pytest.mark.shared
def test_notebook_runs_on_the_gems68_evaluation(gems68_dir, monkeypatch):
    assert (REAL_EVAL / "metrics.json").is_file(), f"the shipped model's evaluation is missing at {REAL_EVAL}"
    nb = _execute(REAL_EVAL, monkeypatch, timeout=600)
    assert "68 classes" in _text(nb)
