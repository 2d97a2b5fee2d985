"""A parcel of photos identified on every core: `gemid identify` with many files.

One process analyses one photo at a time on about one core (see gemid.vision.workers), so a parcel runs in
`jobs` worker processes, each with its own copy of the model and one thread, taking chunks of files in
turn. Starting a worker costs its model's load, so small parcels stay in one process (the README gives the
measured times and the threshold's reason).

A photo that kills its worker (a decoder crash on a damaged or crafted file) must not sink the parcel: only
the chunk of the worker that died is lost (gemid.vision.workers gives each worker an executor of its own),
its files go back into the same pool one per task, in parallel with the rest of the parcel, and the photo
that crashes alone gets its own error entry and the others their reports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gemid.report import FileError, Readings, Report
from gemid.vision.pipeline import CHUNK
from gemid.vision.workers import ModelSpec, WorkerPool, WorkersUnavailable, in_worker

if TYPE_CHECKING:
    from gemid.vision.pipeline import Identifier

log = logging.getLogger(__name__)

Item = tuple[str, Path]  # (name shown, file)
Entry = Report | FileError
Entries = list[Entry]  # one file's: a report per stone found in it, or its one refusal
MIN_FILES = 32  # up to this many files in one process: below it the workers' start-up ate their gain
CHUNKS_PER_JOB = 4  # at least this many tasks per worker, so that the workers finish together
CRASHED = ("analysing this photo stopped the analysis process (a decoder crash): the file may be damaged or "
           "crafted. Export the photo again from the camera or phone")


@dataclass(frozen=True)
class Request:
    reference: str | None
    readings: Readings | None
    grade: bool
    coin_mm: float | None = None  # a coin of this diameter beside the stones: their scale
    ruler: bool = False  # a millimetre ruler beside the stones: their scale


def default_jobs(files: int, cores: int) -> int:
    """One worker per core when the parcel is big enough to repay their start-up, else 1."""
    if cores < 2 or files <= MIN_FILES:
        return 1
    return min(cores, math.ceil(files / CHUNK))


def chunk_size(files: int, jobs: int) -> int:
    return max(1, min(CHUNK, math.ceil(files / (jobs * CHUNKS_PER_JOB))))


def _run(items: Sequence[Item], request: Request) -> list[Entries]:
    """What a worker runs on one chunk."""
    return run_items(in_worker(), items, request)


# --- in the parent ----------------------------------------------------------------------------------------


def run_items(identifier: Identifier, items: Sequence[Item], request: Request) -> list[Entries]:
    """Identify `items` in this process, in order: per file, a report for every stone in it (a tray photo gives
    several, as the service does) or the FileError that refused it."""
    from gemid.errors import GemidInputError

    try:
        found = identifier.identify_stones_many(list(items), reference=request.reference,
                                                readings=request.readings, grade=request.grade,
                                                coin_mm=request.coin_mm, ruler=request.ruler)
    except GemidInputError as exc:
        return [[FileError.from_exception(shown, exc)] for shown, _ in items]
    except Exception as exc:  # the batch itself failed (the model), not one photo: refuse these, keep the rest
        return _failed(items, exc)
    return [list(r) if isinstance(r, list) else [r] for r in found]


def _failed(items: Sequence[Item], exc: BaseException) -> list[Entries]:

    log.error("could not analyse %s: %s: %s", ", ".join(shown for shown, _ in items), type(exc).__name__, exc,
              exc_info=exc)
    return [[FileError.from_exception(shown, exc)] for shown, _ in items]


Runner = Callable[[Sequence[Item], Request], list[Entries]]


def run_parallel(spec: ModelSpec, items: Sequence[Item], request: Request, jobs: int,
                 advance: Callable[[int], None] = lambda n: None, runner: Runner = _run) -> list[Entries] | None:
    """Identify `items` in `jobs` worker processes; each file's entries in the order of `items`. None when the workers
    could not start (the caller then runs the parcel in its own process, where a model error is reported).

    `runner` is what a worker runs on a chunk (`_run`): a seam for tests of worker crashes."""
    size = chunk_size(len(items), jobs)
    chunks = [list(items[i : i + size]) for i in range(0, len(items), size)]
    done: dict[int, list[Entries]] = {}
    pool = WorkerPool(spec, jobs)
    try:
        try:
            pool.start()
        except WorkersUnavailable as exc:
            log.warning("the analysis workers could not start (%s); identifying in this process", exc)
            return None
        # (chunk, position in it or None for the whole chunk) per task
        futures: dict[Future[list[Entries]], tuple[int, int | None]] = {
            pool.submit(runner, chunk, request): (i, None) for i, chunk in enumerate(chunks)}
        singles: dict[int, dict[int, list[Entries]]] = {}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                i, j = futures.pop(future)
                part = chunks[i] if j is None else [chunks[i][j]]
                try:
                    entries = future.result()
                except BrokenProcessPool:
                    if len(part) > 1:  # a worker died on this chunk: find the photo that kills one when alone
                        singles[i] = {}
                        for j2, item in enumerate(part):
                            retry = pool.submit(runner, [item], request)
                            futures[retry] = (i, j2)
                            pending.add(retry)
                        continue
                    entries = [[FileError.refusal(part[0][0], "analysis_failed", CRASHED)]]
                except Exception as exc:  # the call failed outside the analysis (a result that cannot travel)
                    entries = _failed(part, exc)
                if j is None:
                    done[i] = entries
                else:
                    singles[i][j] = entries
                    if len(singles[i]) == len(chunks[i]):
                        done[i] = [e for k in range(len(chunks[i])) for e in singles[i][k]]
                advance(len(part))
    finally:
        pool.shutdown()
    return [entry for i in range(len(chunks)) for entry in done[i]]
