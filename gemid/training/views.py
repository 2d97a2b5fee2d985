"""Augmented views of the training crops, made in worker processes, and the frozen features cached from them.

The augmentation (with the photometric front end it segments every view again, ~45 ms) is what a training
run waits on; the frozen lower blocks on a GPU take a fraction of that. Views are made by a pool of worker
processes that map the crops from a temporary .npy file instead of receiving them, each view a pure function
of (seed, view, photo), so the cache is the same whatever the number of workers. The pool comes from a fork
server, not a plain fork: forking a process whose other threads (PyTorch's, a progress bar's) may hold a lock
can leave the child waiting on it for ever.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_state: dict[str, Any] = {}  # one worker's augmentation and mapped crops (set once by its initializer)


def _init(augment: Any, train: str, mask: str, ids: np.ndarray) -> None:
    import cv2

    cv2.setNumThreads(1)  # the pool is the parallelism; OpenCV's own threads would oversubscribe the cores
    _state.update(augment=augment, train=np.load(train, mmap_mode="r"), mask=np.load(mask, mmap_mode="r"), ids=ids)


def _one(job: tuple[int, int]) -> np.ndarray:
    v, i = job
    return _state["augment"](np.asarray(_state["train"][i]), np.asarray(_state["mask"][i]), v, int(_state["ids"][i]))


def iter_views(augment: Any, train: np.ndarray, mask: np.ndarray, ids: Sequence[int], jobs: Sequence[tuple[int, int]],
               workers: int, chunk: int = 8) -> Iterator[np.ndarray]:
    """`augment(train[i], mask[i], view, ids[i])` for every job (view, i), in order, in `workers` processes."""
    ids = np.asarray(ids)
    if workers <= 1 or len(jobs) < 2 * chunk:
        for v, i in jobs:
            yield augment(train[i], mask[i], v, int(ids[i]))
        return
    with tempfile.TemporaryDirectory(prefix="gemid-views-") as tmp:
        files = [str(Path(tmp) / "train.npy"), str(Path(tmp) / "mask.npy")]
        np.save(files[0], train)
        np.save(files[1], mask)
        with mp.get_context("forkserver").Pool(workers, initializer=_init,
                                               initargs=(augment, *files, ids)) as pool:
            yield from pool.imap(_one, jobs, chunksize=chunk)


def cache_lower_features(model, augment: Any, train: np.ndarray, mask: np.ndarray, ids: Sequence[int], views: int, *,
                         n_frozen: int, batch: int, device, workers: int, progress: bool = True):
    """(V, N, C, H, W) float16 on the CPU: blocks[:n_frozen] of V augmented views of every photo."""
    import torch

    from gemid.training.presets import to_tensor

    mean, std = model.cfg.mean, model.cfg.std
    n_photos = len(train)
    jobs = [(v, i) for v in range(views) for i in range(n_photos)]
    out: list[torch.Tensor] = []
    model.eval()
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("caching frozen features", total=len(jobs))
        pending: list[np.ndarray] = []

        def flush() -> None:
            x = to_tensor(np.stack(pending), mean, std).to(device).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                out.append(model.forward_until(x, n_frozen).to(torch.float16).cpu())
            bar.advance(task, len(pending))
            pending.clear()

        for img in iter_views(augment, train, mask, ids, jobs, workers):
            pending.append(img)
            if len(pending) == batch:
                flush()
        if pending:
            flush()
    feats = torch.cat(out) if out else torch.zeros(0)
    return feats.view(views, n_photos, *feats.shape[1:])
