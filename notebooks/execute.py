"""Run both notebooks top to bottom and save them with their outputs, so a reader sees results on opening them.

    .venv/bin/python notebooks/execute.py

01 runs on the gems68 training photos (`../shared/data/gems68/train`), 02 on the shipped model's evaluation
(`models/gemid-species/eval`), both with `GEMID_SHOW_PHOTOS=0`: the saved outputs hold counts, tables and
figures, never one of the gems68 photos or a crop of one (they are not ours to publish;
`tests/training/test_notebooks_*.py` check the saved notebooks for photos). Same kernel and working directory as the
tests: the venv's `python3`, the repository root.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbclient
import nbformat

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = {
    "01_dataset_exploration.ipynb": {"GEMID_DATASET_DIR": str(REPO.parent / "shared" / "data" / "gems68" / "train")},
    "02_model_evaluation.ipynb": {"GEMID_EVAL_DIR": "models/gemid-species/eval"},
}


def execute(name: str, env: dict[str, str], timeout: int = 900) -> Path:
    path = REPO / "notebooks" / name
    os.environ.update(env | {"GEMID_SHOW_PHOTOS": "0", "MPLBACKEND": "Agg", "NO_ALBUMENTATIONS_UPDATE": "1"})
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(REPO)}}).execute()
    nbformat.write(nb, path)
    return path


def main() -> int:
    data = Path(NOTEBOOKS["01_dataset_exploration.ipynb"]["GEMID_DATASET_DIR"])
    if not data.is_dir():
        print(f"error: the gems68 photos are not at {data}", file=sys.stderr)
        return 2
    for name, env in NOTEBOOKS.items():
        path = execute(name, env)
        print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
