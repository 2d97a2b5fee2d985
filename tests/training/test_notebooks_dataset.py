"""notebooks/01_dataset_exploration.ipynb executes top to bottom (nbclient) in the venv's kernel.

On a fresh clone it runs on a drawn data set with planted faults; with ../shared it also runs on gems68
(marked `shared`). The committed notebook is saved executed on gems68 (`python notebooks/execute.py`) with
`GEMID_SHOW_PHOTOS=0`: its figures are plots, never one of the photos (they are not ours to publish).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
import notebook_support  # noqa: E402  (after the importorskips)

pytest.importorskip("matplotlib")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_dataset_exploration.ipynb"


def _execute(data: Path, monkeypatch, timeout: int = 300, *, show_photos: bool = True):
    env = {"GEMID_DATASET_DIR": str(data), "MPLBACKEND": "Agg", "GEMID_SHOW_PHOTOS": "1" if show_photos else "0"}
    return notebook_support.execute(NOTEBOOK, env, monkeypatch, timeout)


_text, _images, _photos = notebook_support.text, notebook_support.images, notebook_support.photos


def test_committed_notebook_shows_gems68_results_and_no_photo():
    nb = notebook_support.assert_saved_executed_without_photos(NOTEBOOK)
    text = _text(nb)
    assert "2042 files, 2042 usable, 68 classes" in text  # what a reader sees on opening it: the gems68 audit
    assert "photo thumbnails: hidden" in text and "sample grid hidden: 48 of 68 species" in text
    assert _images(nb) == 2  # counts and sizes; no sample grid, no duplicate groups
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "GEMID_DATASET_DIR" in first.source and "GEMID_SHOW_PHOTOS" in first.source


def test_photos_stay_out_of_the_outputs_unless_asked_for(tmp_path, monkeypatch):
    """GEMID_SHOW_PHOTOS unset: the grids are not drawn and the groups are listed by name. (The photo check
    that guards the committed notebook does find the two grids when they are drawn: the next test.)"""
    from datasets_support import make_faulty_dataset

    monkeypatch.delenv("GEMID_SHOW_PHOTOS", raising=False)
    faulty = make_faulty_dataset(tmp_path / "drawn")
    nb = notebook_support.execute(NOTEBOOK, {"GEMID_DATASET_DIR": str(faulty.root), "MPLBACKEND": "Agg"},
                                  monkeypatch, 300)
    text = _text(nb)
    assert "photo thumbnails: hidden" in text and "sample grid hidden: 3 of 3 species" in text
    assert "listed 2 group(s); GEMID_SHOW_PHOTOS=1 draws their photos" in text
    assert _images(nb) == 2 and _photos(nb) == 0


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
    assert _photos(nb) == 2  # the photo check tells the two grids of stones from the two plots


@pytest.mark.shared
def test_notebook_runs_on_gems68(gems68_dir, monkeypatch):
    nb = _execute(gems68_dir, monkeypatch, timeout=900)
    text = _text(nb)
    assert "2042 files, 2042 usable, 68 classes" in text
    assert "named .jpg but really png with alpha: Almandine/almandine_21.jpg" in text
    assert "named .jpg but really png with alpha: Zoisite/zoisite_21.jpg" in text
    assert "0 across-class group(s)" in text and "sample grid: 48 of 68 species" in text
    assert _images(nb) == 4
    assert _photos(nb) == 2  # the sample grid and the duplicate groups: never saved (GEMID_SHOW_PHOTOS=0)
