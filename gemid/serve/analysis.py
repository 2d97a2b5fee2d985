"""Where the service analyses photos: in worker processes (the default) or in threads of its own process.

Why processes: see gemid.vision.workers (the pool, shared with the CLI's parcels); the README gives the
measured throughput of both. Each worker analyses one photo at a time with a whole core; the server
process keeps HTTP, the store and the event loop, and all requests share one queue.

A photo that kills its worker (a decoder crash on a damaged or crafted file) costs that worker, not the
service. A photo still being analysed after `GEMID_ANALYSIS_TIMEOUT` (a decoder looping on a crafted
file) is stopped the only way a running analysis can be: a watchdog in its worker, started when the
worker starts the photo, ends the worker. Either way only that worker is replaced (each worker has an
executor of its own, gemid.vision.workers): the photos the other workers hold are answered as if nothing
happened. The photo is tried once more, since a worker may die of something else while it holds an
innocent photo (killed, out of memory); a photo that stops a worker twice is refused by name (422
`analysis_failed`) and nothing of it is stored.

Threads remain for an app given an already loaded `Identifier` (tests share one model between apps)
and for `GEMID_ANALYSIS=threads` (a one-core machine, or a debugger).
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from anyio import CapacityLimiter, to_thread

from gemid.errors import GemidInputError
from gemid.report import FileError, Readings, Report
from gemid.vision.workers import ModelSpec, WorkerPool, WorkersUnavailable, in_worker

if TYPE_CHECKING:
    from gemid.serve.settings import Settings
    from gemid.vision.pipeline import Identifier

log = logging.getLogger(__name__)


Photo = bytes | Path  # the photo's bytes, or the file it was spooled to (the service: never held in memory)


@dataclass(frozen=True)
class Outcome:
    """One photo analysed: its first stone's report (status None) or the refusal and its HTTP status; the
    photo's other stones, each with its own report, in `others` (a tray or parcel photo)."""

    entry: Report | FileError
    status: int | None
    seconds: float  # analysis time, not the wait in the queue
    others: tuple[Report, ...] = ()
    captures: tuple[dict[str, Any], ...] = ()  # each stone's capture statistics (gemid.vision.capture), for drift

    @property
    def entries(self) -> list[Report | FileError]:
        """Every stone's report in reading order (one entry for a single stone or a refusal)."""
        return [self.entry, *self.others]


class Analysis(Protocol):
    async def start(self) -> None: ...

    async def identify(self, data: Photo, *, filename: str | None, reference: str | None,
                       readings: Readings | None, grade: bool, coin_mm: float | None = None,
                       ruler: bool = False) -> Outcome: ...

    async def close(self) -> None: ...


UNPROCESSABLE = "this photo could not be analysed; try another photo of the stone"


def _refused(filename: str | None, code: str, message: str, status: int, seconds: float = 0.0) -> Outcome:
    return Outcome(FileError.refusal(filename, code, message), status, seconds)


def model_spec(settings: Settings) -> ModelSpec:
    """The model the service's settings describe: the one spec its server and its workers load."""
    return ModelSpec(bundle_dir=settings.model_dir, variant=settings.model_variant,
                     threads=settings.threads_per_photo, max_bytes=settings.max_bytes,
                     max_pixels=settings.max_pixels)


def load_identifier(settings: Settings, *, load_model: bool = True) -> Identifier:
    """The model as `settings` describe it, loaded in this process (the server needs no ONNX session of its
    own when workers analyse: load_model=False)."""
    return model_spec(settings).load(load_model=load_model)


def analyse(identifier: Identifier, data: Photo, filename: str | None, reference: str | None,
            readings: Readings | None, grade: bool, coin_mm: float | None = None, ruler: bool = False) -> Outcome:
    """Identify every stone of one photo (a tray gives one report per stone, `Identifier.identify_stones`);
    a bad photo or a failing stage becomes a refusal entry, never an exception."""

    start = time.perf_counter()
    try:
        reports, captures = identifier.identify_stones_captured(data, filename=filename, reference=reference,
                                                                readings=readings, grade=grade, coin_mm=coin_mm,
                                                                ruler=ruler)
        first, *others = reports
    except GemidInputError as exc:
        return Outcome(FileError.from_exception(filename, exc), exc.status, time.perf_counter() - start)
    except Exception:  # an odd photo that broke a stage: refuse this one, keep the others, log why
        log.exception("could not analyse %s", filename)
        return _refused(filename, "unprocessable_image", UNPROCESSABLE, 422, time.perf_counter() - start)
    # one photo, one moment: its stones share the time it was analysed, which keeps them together (and in
    # reading order) wherever reports are listed by time (a parcel, History)
    others = [o.model_copy(update={"created_at": first.created_at}) for o in others]
    return Outcome(first, None, time.perf_counter() - start, tuple(others), tuple(c.as_dict() for c in captures))


class ThreadAnalysis:
    """Photos analysed in the server's worker threads, at most `limiter` at once."""

    def __init__(self, identifier: Identifier, limiter: CapacityLimiter) -> None:
        self.identifier = identifier
        self.limiter = limiter

    async def start(self) -> None:
        return None

    async def identify(self, data: Photo, *, filename: str | None, reference: str | None,
                       readings: Readings | None, grade: bool, coin_mm: float | None = None,
                       ruler: bool = False) -> Outcome:
        return await to_thread.run_sync(analyse, self.identifier, data, filename, reference, readings, grade, coin_mm,
                                        ruler, limiter=self.limiter)

    async def close(self) -> None:
        return None


# --- worker processes -------------------------------------------------------------------------------------

def identify_in_worker(data: Photo, filename: str | None, reference: str | None, readings: Readings | None,
                       grade: bool, coin_mm: float | None = None, ruler: bool = False) -> Outcome:
    return analyse(in_worker(), data, filename, reference, readings, grade, coin_mm, ruler)


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


class ProcessAnalysis:
    """Photos analysed by `processes` worker processes, each holding its own copy of the model.

    `target` is the function run in a worker (`identify_in_worker`): a seam for tests of worker crashes."""

    def __init__(self, settings: Settings, processes: int,
                 target: Callable[..., Outcome] = identify_in_worker) -> None:
        self.processes = processes
        self.timeout = settings.analysis_timeout
        self._target = target
        self._pool = WorkerPool(model_spec(settings), processes)

    async def start(self) -> None:
        """Start every worker and load its model now, so the service is ready when it says so."""
        try:
            await to_thread.run_sync(self._pool.start)
        except WorkersUnavailable as exc:
            raise RuntimeError(f"the analysis workers could not start: {exc}") from exc

    def pids(self) -> list[int]:
        """The worker processes' ids, as each answered when it started (for diagnostics and tests)."""
        return self._pool.pids()

    async def identify(self, data: Photo, *, filename: str | None, reference: str | None,
                       readings: Readings | None, grade: bool, coin_mm: float | None = None,
                       ruler: bool = False) -> Outcome:
        for attempt in (1, 2):
            try:
                call = self._pool.submit(_watched, self.timeout, self._target, data, filename, reference, readings,
                                         grade, coin_mm, ruler)
                return await asyncio.wrap_future(call)
            except BrokenProcessPool:
                log.error("an analysis worker stopped (a crash, or over %.0f s) while analysing %s (attempt %d of 2); "
                          "it is being replaced", self.timeout, filename, attempt)
            except WorkersUnavailable:
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

    async def close(self) -> None:
        await to_thread.run_sync(self._pool.shutdown)
