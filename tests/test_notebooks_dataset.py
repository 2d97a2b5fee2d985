"""notebooks/01_dataset_exploration.ipynb executes top to bottom (nbclient) in the venv's kernel.

On a fresh clone it runs on a drawn data set with planted faults; with ../shared it also runs on gems68
(marked `shared`). The committed notebook carries no outputs (the gems68 photos are not ours to publish).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
import notebook_support  # noqa: E402  (after the importorskips)

pytest.importorskip("matplotlib")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_dataset_exploration.ipynb"


def _execute(data: Path, monkeypatch, timeout: int = 300):
    return notebook_support.execute(NOTEBOOK, {"GEMID_DATASET_DIR": str(data), "MPLBACKEND": "Agg"}, monkeypatch,
                                    timeout)


_text, _images = notebook_support.text, notebook_support.images


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_runs_on_a_drawn_dataset_in_the_venv_kernel(tmp_path, monkeypatch):
    from datasets_support import make_faulty_dataset

    faulty = make_faulty_dataset(tmp_path / "drawn")
    nb = _execute(faulty.root, monkeypatch)
    text = _text(nb)
    assert f"python: {sys.prefix}" in text  # the kernel is this interpreter (the venv), not a system python
    assert f"{faulty.n_files} files, {faulty.n_files - 2} usable, 3 classes" in text
    assert f"named .jpg but really png with alpha: {faulty.png_named_jpg}" in text
    assert f"unusable (truncated): {faulty.truncated}" in text and f"unusable (empty): {faulty.empty}" in text
    assert "1 within-class group(s), 1 across-class group(s), 0 across-split group(s); 4 photos in groups" in text
    assert "across_classes ['Emerald Green', 'Sapphire Blue']" in text
    assert "sample grid: 3 of 3 species" in text and "showed 2 group(s)" in text
    assert _images(nb) == 4  # counts, sizes, sample grid, duplicate groups


@pytest.mark.shared
def test_notebook_runs_on_gems68(gems68_dir, monkeypatch):
    nb = _execute(gems68_dir, monkeypatch, timeout=900)
    text = _text(nb)
    assert "2042 files, 2042 usable, 68 classes" in text
    assert "named .jpg but really png with alpha: Almandine/almandine_21.jpg" in text
    assert "named .jpg but really png with alpha: Zoisite/zoisite_21.jpg" in text
    assert "0 across-class group(s)" in text and "sample grid: 48 of 68 species" in text
    assert _images(nb) == 4
