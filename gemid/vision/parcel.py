"""A parcel of photos identified on every core: `gemid identify` with many files.

One process analyses one photo at a time on about one core (the pixel stages are partly plain Python,
which holds the interpreter lock), so a parcel runs in `jobs` worker processes, each with its own copy of
the model and one thread, taking chunks of files in turn. Measured on 2 cores (`gemid identify DIR --json
--jobs 1` vs `--jobs 2`, 400 gems68 photos, start-up included): full reports 28.9 s vs 19.7 s; the quick
screen (`--no-grade`) 5.9 s vs 5.2 s. A worker starts in about half a second, so small parcels stay in
one process.

A photo that kills its worker (a decoder crash on a damaged or crafted file) must not sink the parcel:
the files of the chunks that were lost are analysed again one at a time, alone in a worker, so the photo
that crashes alone gets its own error entry and the others their reports.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

from gemid.report import FileError, Readings, Report

if TYPE_CHECKING:
    from gemid.vision.pipeline import Identifier

log = logging.getLogger(__name__)

Item = tuple[str, Path]  # (name shown, file)
Entry = Report | FileError
CHUNK = 8  # files per task: the classifier batches them (the same bound as Identifier.identify_many)
MIN_FILES = 32  # up to this many files in one process (80 photos: no gain screening, 12 % grading)
CHUNKS_PER_JOB = 4  # at least this many tasks per worker, so that the workers finish together
CRASHED = ("analysing this photo stopped the analysis process (a decoder crash): the file may be damaged or "
           "crafted. Export the photo again from the camera or phone")


@dataclass(frozen=True)
class ModelSpec:
    """What a worker loads: the same bundle and variant as the parent, `threads` ONNX Runtime threads."""

    bundle_dir: Path
    variant: str
    threads: int
    top_k: int
    debug: bool = False  # tracebacks in the workers' warnings, as `gemid identify --debug`


@dataclass(frozen=True)
class Request:
    reference: str | None
    readings: Readings | None
    grade: bool


def default_jobs(files: int, cores: int) -> int:
    """One worker per core when the parcel is big enough to repay their start-up, else 1."""
    if cores < 2 or files <= MIN_FILES:
        return 1
    return min(cores, math.ceil(files / CHUNK))


def chunk_size(files: int, jobs: int) -> int:
    return max(1, min(CHUNK, math.ceil(files / (jobs * CHUNKS_PER_JOB))))


# --- in a worker process ----------------------------------------------------------------------------------

_identifier: Identifier | None = None  # set once per worker process by _init, nowhere else
_init_error: str | None = None  # why _init could not load the model, for the parent to say


def _init(spec: ModelSpec) -> None:
    """Load the model once per worker. A failure is kept for `_ready` to report, not raised: the pool would
    print its traceback on the technician's console."""
    global _identifier, _init_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops its workers
    try:
        import cv2

        from gemid.vision.cli import worker_console
        from gemid.vision.pipeline import Identifier

        worker_console(spec.debug)
        cv2.setNumThreads(spec.threads)  # the workers share the cores; OpenCV's own threads would oversubscribe
        _identifier = Identifier(spec.bundle_dir, variant=spec.variant, threads=spec.threads, top_k=spec.top_k)
    except Exception as exc:
        _init_error = f"{type(exc).__name__}: {exc}"


def _ready() -> str | None:
    """None when this worker holds the model, else why not."""
    return _init_error if _identifier is None else None


def _run(items: Sequence[Item], request: Request) -> list[Entry]:
    if _identifier is None:
        raise RuntimeError("parcel._run runs only in a parcel worker process")
    return run_items(_identifier, items, request)


# --- in the parent ----------------------------------------------------------------------------------------


def run_items(identifier: Identifier, items: Sequence[Item], request: Request) -> list[Entry]:
    """Identify `items` in this process, one entry per file in order (a bad file gives a FileError)."""
    from gemid.errors import GemidInputError

    try:
        return identifier.identify_many(list(items), reference=request.reference, readings=request.readings,
                                        grade=request.grade)
    except GemidInputError as exc:
        return [FileError.from_exception(shown, exc) for shown, _ in items]
    except Exception as exc:  # the batch itself failed (the model), not one photo: refuse these, keep the rest
        return _failed(items, exc)


def _failed(items: Sequence[Item], exc: BaseException) -> list[Entry]:

    log.error("could not analyse %s: %s: %s", ", ".join(shown for shown, _ in items), type(exc).__name__, exc,
              exc_info=exc)
    return [FileError.from_exception(shown, exc) for shown, _ in items]


Runner = Callable[[Sequence[Item], Request], list[Entry]]


def run_parallel(spec: ModelSpec, items: Sequence[Item], request: Request, jobs: int,
                 advance: Callable[[int], None] = lambda n: None, runner: Runner = _run) -> list[Entry] | None:
    """Identify `items` in `jobs` worker processes; entries in the order of `items`. None when the workers
    could not start (the caller then runs the parcel in its own process, where a model error is reported).

    `runner` is what a worker runs on a chunk (`_run`): a seam for tests of worker crashes."""
    size = chunk_size(len(items), jobs)
    chunks = [list(items[i : i + size]) for i in range(0, len(items), size)]
    done: dict[int, list[Entry]] = {}
    lost: list[int] = []
    pool = _pool(spec, jobs)
    try:
        try:
            problems = [p for p in (f.result() for f in [pool.submit(_ready) for _ in range(jobs)]) if p]
        except BrokenProcessPool:
            problems = ["a worker process ended while starting"]
        if problems:
            log.warning("the analysis workers could not start (%s); identifying in this process", problems[0])
            return None
        futures: dict[Future[list[Entry]], int] = {pool.submit(runner, chunk, request): i
                                                   for i, chunk in enumerate(chunks)}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                i = futures[future]
                try:
                    done[i] = future.result()
                except BrokenProcessPool:
                    lost.append(i)
                    continue
                except Exception as exc:  # the call failed outside the analysis (a result that cannot travel)
                    done[i] = _failed(chunks[i], exc)
                advance(len(chunks[i]))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for i in sorted(lost):  # a worker died: find the photo that kills one when it is alone
        done[i] = _one_by_one(spec, chunks[i], request, advance, runner)
    return [entry for i in range(len(chunks)) for entry in done[i]]


def _pool(spec: ModelSpec, jobs: int) -> ProcessPoolExecutor:
    # spawn, never fork: a forked copy of a process running ONNX Runtime's threads can hang
    return ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init, initargs=(spec,))


def _one_by_one(spec: ModelSpec, items: Sequence[Item], request: Request, advance: Callable[[int], None],
                runner: Runner) -> list[Entry]:
    out: list[Entry] = []
    pool = _pool(spec, 1)
    try:
        for item in items:
            try:
                out.extend(pool.submit(runner, [item], request).result())
            except BrokenProcessPool:
                out.append(FileError.refusal(item[0], "analysis_failed", CRASHED))
                pool.shutdown(wait=True)
                pool = _pool(spec, 1)
            except Exception as exc:
                out.extend(_failed([item], exc))
            advance(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return out
