"""Execute a notebook top to bottom with the venv's kernel, and read back what it printed and drew."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import nbclient
import nbformat
import numpy as np

# A figure of plots (bars, scatter, heat map, histograms, text) uses few colours: the notebooks' own use 34-185
# distinct colours at 5 bits a channel. A grid of photo thumbnails or stone crops uses thousands (gems68
# thumbnails 7,000-12,000, the worst-error crops ~9,000; even drawn stones 2,500-3,400).
PHOTO_COLOURS = 1500
MAX_SAVED_BYTES = 1_000_000  # a saved notebook stays small enough to read on GitHub and to review


def execute(notebook: Path, env: dict[str, str], monkeypatch, timeout: int) -> nbformat.NotebookNode:
    """Run `notebook` from the repo root with `env` set (the notebooks read their inputs from it)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(notebook.parents[1])}})
    client.execute()
    return nb


def text(nb: nbformat.NotebookNode) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def pngs(nb: nbformat.NotebookNode) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for c in nb.cells for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})]


def images(nb: nbformat.NotebookNode) -> int:
    return len(pngs(nb))


def colours(png: bytes) -> int:
    """Distinct colours of an image at 5 bits a channel (anti-aliasing and JPEG noise don't count)."""
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    q = (bgr.reshape(-1, 3) >> 3).astype(np.int32)
    return len(np.unique((q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]))


def photos(nb: nbformat.NotebookNode) -> int:
    """How many image outputs look like photos (or crops of them) rather than figures of plots."""
    return sum(colours(p) > PHOTO_COLOURS for p in pngs(nb))


def assert_saved_executed_without_photos(notebook: Path) -> nbformat.NotebookNode:
    """The committed notebook was run top to bottom in one go, is small, and shows no photo: its image outputs
    are figures of plots, never the gems68 photos or crops of them (not ours to publish)."""
    assert notebook.stat().st_size < MAX_SAVED_BYTES, f"{notebook.name} is {notebook.stat().st_size} bytes"
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), \
        f"{notebook.name} is not saved executed top to bottom: run python notebooks/execute.py"
    assert all(c.outputs for c in code), "a code cell without output"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert images(nb) >= 2
    assert photos(nb) == 0, f"{notebook.name} shows a photo; save it with GEMID_SHOW_PHOTOS=0"
    return nb
