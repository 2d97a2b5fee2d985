"""Execute a notebook top to bottom with the venv's kernel, and read back what it printed and drew."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat


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


def images(nb: nbformat.NotebookNode) -> int:
    return sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
