"""Where the service analyses photos: in worker processes (the default) or in threads of its own process.

Why processes: the pixel stages, the test guidance and the report are partly plain Python, which holds the
interpreter lock, so two photos analysed in threads of one process wait on each other. Measured on 2 cores
(`python -m bench.bench_service --variant int8 --modes screen`, 16 clients): in threads 15 % of the
machine stayed idle and the service gave 33-39 identifications/s (four runs); in worker processes the
machine is busy and it gives 39-54 (nine runs; this VM's speed varies by up to 20 % between runs). Each
worker analyses one photo at a time with a whole core; the server process keeps HTTP, the store and the
event loop, and all requests share one queue.

A photo that kills its worker (a decoder crash on a damaged or crafted file) costs that worker, not the
service. A photo still being analysed after `GEMID_ANALYSIS_TIMEOUT` (a decoder looping on a crafted
file) is stopped the only way a running analysis can be: a watchdog in its worker, started when the
worker starts the photo, ends the worker. Either way the workers are restarted and the photos they held
are tried once more, since a worker may die of something else while it holds an innocent photo; a photo
that stops a worker twice is refused (422 `analysis_failed`) and nothing of it is stored.

Threads remain for an app given an already loaded `Identifier` (tests share one model between apps)
and for `GEMID_ANALYSIS=threads` (a one-core machine, or a debugger).
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TYPE_CHECKING, Protocol

from anyio import CapacityLimiter, to_thread

from gemid.errors import GemidInputError
from gemid.report import FileError, Readings, Report

if TYPE_CHECKING:
    from gemid.serve.settings import Settings
    from gemid.vision.pipeline import Identifier

log = logging.getLogger(__name__)

WARM_UP_SECONDS = 120.0  # spawning a worker and loading the model takes a few seconds; this is a stuck one


@dataclass(frozen=True)
class Outcome:
    """One photo analysed: a report (status None) or the refusal and its HTTP status."""

    entry: Report | FileError
    status: int | None
    seconds: float  # analysis time, not the wait in the queue


class Analysis(Protocol):
    async def start(self) -> None: ...

    async def identify(self, data: bytes, *, filename: str | None, reference: str | None,
                       readings: Readings | None, grade: bool) -> Outcome: ...

    async def close(self) -> None: ...


UNPROCESSABLE = "this photo could not be analysed; try another photo of the stone"


def _refused(filename: str | None, code: str, message: str, status: int, seconds: float = 0.0) -> Outcome:
    return Outcome(FileError.refusal(filename, code, message), status, seconds)


def load_identifier(settings: Settings, *, load_model: bool = True) -> Identifier:
    """The model as `settings` describe it, loaded in this process (an analysis worker's, or the server's; the
    server needs no ONNX session of its own when workers analyse: load_model=False)."""
    import cv2

    from gemid.vision.pipeline import Identifier

    # photos run in parallel (threads or worker processes); OpenCV's own threads inside each one would only
    # oversubscribe the cores (measured: 2 workers x 2 photos x OpenCV threads tripled the analysis time)
    cv2.setNumThreads(settings.threads_per_photo)
    return Identifier(settings.model_dir, variant=settings.model_variant, threads=settings.threads_per_photo,
                      max_bytes=settings.max_bytes, max_pixels=settings.max_pixels, load_model=load_model)


def analyse(identifier: Identifier, data: bytes, filename: str | None, reference: str | None,
            readings: Readings | None, grade: bool) -> Outcome:
    """Identify one photo; a bad photo or a failing stage becomes a refusal entry, never an exception."""

    start = time.perf_counter()
    try:
        report = identifier.identify(data, filename=filename, reference=reference, readings=readings, grade=grade)
    except GemidInputError as exc:
        return Outcome(FileError.from_exception(filename, exc), exc.status, time.perf_counter() - start)
    except Exception:  # an odd photo that broke a stage: refuse this one, keep the others, log why
        log.exception("could not analyse %s", filename)
        return _refused(filename, "unprocessable_image", UNPROCESSABLE, 422, time.perf_counter() - start)
    return Outcome(report, None, time.perf_counter() - start)


class ThreadAnalysis:
    """Photos analysed in the server's worker threads, at most `limiter` at once."""

    def __init__(self, identifier: Identifier, limiter: CapacityLimiter) -> None:
        self.identifier = identifier
        self.limiter = limiter

    async def start(self) -> None:
        return None

    async def identify(self, data: bytes, *, filename: str | None, reference: str | None,
                       readings: Readings | None, grade: bool) -> Outcome:
        return await to_thread.run_sync(analyse, self.identifier, data, filename, reference, readings, grade,
                                        limiter=self.limiter)

    async def close(self) -> None:
        return None


# --- worker processes -------------------------------------------------------------------------------------

_worker_identifier: Identifier | None = None  # set once per worker process by _init_worker, nowhere else


def _init_worker(settings: Settings) -> None:
    global _worker_identifier
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which then stops its workers
    _worker_identifier = load_identifier(settings)


def identify_in_worker(data: bytes, filename: str | None, reference: str | None, readings: Readings | None,
                       grade: bool) -> Outcome:
    if _worker_identifier is None:
        raise RuntimeError("identify_in_worker runs only in an analysis worker process")
    return analyse(_worker_identifier, data, filename, reference, readings, grade)


def _watched(timeout: float, target: Callable[..., Outcome], *args: object) -> Outcome:
    """Run `target` in a worker under a watchdog: past `timeout` seconds the worker ends itself.

    faulthandler's watchdog is a C thread, so it fires even while the analysis is stuck inside a C decoder
    that never returns to Python (where no signal handler or exception could run); it first writes where
    each thread was to the server's log."""
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        return target(*args)
    finally:
        faulthandler.cancel_dump_traceback_later()


def _worker_pid(pause: float) -> int:
    time.sleep(pause)  # long enough that every worker, once started, takes one of the start-up calls
    return os.getpid()


class ProcessAnalysis:
    """Photos analysed by `processes` worker processes, each holding its own copy of the model.

    `target` is the function run in a worker (`identify_in_worker`): a seam for tests of worker crashes."""

    def __init__(self, settings: Settings, processes: int,
                 target: Callable[..., Outcome] = identify_in_worker) -> None:
        self.processes = processes
        self.timeout = settings.analysis_timeout
        self._settings = settings
        self._target = target
        self._pool = self._new_pool()
        self._replacing = asyncio.Lock()
        self._pids: list[int] = []

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, never fork: a forked copy of a process running threads (ONNX Runtime, the event loop) can hang
        return ProcessPoolExecutor(self.processes, mp_context=get_context("spawn"), initializer=_init_worker,
                                   initargs=(self._settings,))

    async def start(self) -> None:
        """Start every worker and load its model now, so the service is ready when it says so."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WARM_UP_SECONDS
        seen: set[int] = set()
        while len(seen) < self.processes:
            if loop.time() > deadline:
                raise RuntimeError(f"only {len(seen)} of {self.processes} analysis workers started "
                                   f"in {WARM_UP_SECONDS:.0f} s")
            calls = [asyncio.wrap_future(self._pool.submit(_worker_pid, 0.05)) for _ in range(self.processes)]
            seen.update(await asyncio.gather(*calls))
        self._pids = sorted(seen)  # a pool never replaces a worker by itself: a lost one breaks it (see _replace)

    def pids(self) -> list[int]:
        """The worker processes' ids, as they answered at start (for diagnostics and tests)."""
        return list(self._pids)

    async def identify(self, data: bytes, *, filename: str | None, reference: str | None,
                       readings: Readings | None, grade: bool) -> Outcome:
        for attempt in (1, 2):
            pool = self._pool
            try:
                call = pool.submit(_watched, self.timeout, self._target, data, filename, reference, readings, grade)
                return await asyncio.wrap_future(call)
            except BrokenProcessPool:
                log.error("an analysis worker stopped (a crash, or over %.0f s) while analysing %s (attempt %d of 2); "
                          "restarting the workers", self.timeout, filename, attempt)
                try:
                    await self._replace(pool)
                except (BrokenProcessPool, RuntimeError, OSError):
                    log.exception("the analysis workers could not be restarted")
                    return _refused(filename, "analysis_unavailable",
                                    "the analysis workers could not be restarted; nothing was stored, try again", 503)
            except Exception:  # the call itself failed (not the photo's analysis, which `analyse` contains)
                log.exception("analysing %s in a worker failed", filename)
                return _refused(filename, "unprocessable_image", UNPROCESSABLE, 422)
        return _refused(filename, "analysis_failed",
                        f"analysing this photo stopped the analysis process twice (a crash, or over "
                        f"{self.timeout:.0f} s): the file may be damaged or crafted; nothing of it was stored. "
                        "Export the photo again from the camera or phone", 422)

    async def _replace(self, broken: ProcessPoolExecutor) -> None:
        """A new pool in place of `broken`, once, however many requests found it broken at the same time."""
        async with self._replacing:
            if self._pool is broken:
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                await self.start()  # back to full strength before the retry, not one worker per request

    async def close(self) -> None:
        await to_thread.run_sync(self._pool.shutdown)
