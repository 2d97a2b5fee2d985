"""Photos analysed in worker processes: the one home of "which model, how many threads" and of the pool.

Both `gemid identify` with a parcel (gemid.vision.parcel) and the service (gemid.serve.analysis) run the
pipeline in worker processes, because the pixel stages, the test guidance and the report are partly plain
Python, which holds the interpreter lock: photos analysed in threads of one process wait on each other.
Each worker loads its own copy of the model once, with `ModelSpec.threads` threads for ONNX Runtime and
OpenCV, so that the workers together use the cores without oversubscribing them.

What lives here, shared by both callers:
- `ModelSpec`: the bundle, variant, threads and limits a worker loads (the service derives it from its
  settings, the CLI from its flags);
- `WorkerPool`: a spawn pool whose workers hold the model, a start-up check that every worker loaded it
  (a failure is reported in one line, never as the pool's traceback), and `replace()` after a crash;
- `in_worker()`: the identifier of the worker process a task runs in.

Crash recovery differs by caller and stays with it: a parcel re-runs a lost chunk one photo at a time, the
service retries a photo once on fresh workers.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemid.vision.bundle import DEFAULT_BUNDLE_DIR
from gemid.vision.classify import MIN_TOP_K
from gemid.vision.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from gemid.vision.pipeline import Identifier

WARM_UP_SECONDS = 120.0  # spawning a worker and loading the model takes a few seconds; this is a stuck one


@dataclass(frozen=True)
class ModelSpec:
    """Which bundle, which variant, how many threads: what a process loads to identify photos."""

    bundle_dir: Path = DEFAULT_BUNDLE_DIR
    variant: str = "fp32"
    threads: int = 1
    top_k: int = MIN_TOP_K
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    console: bool = False  # speak to the technician's console as `gemid identify` does (parcel workers)
    debug: bool = False  # with console: tracebacks in the warnings, as `gemid identify --debug`

    def load(self, *, load_model: bool = True) -> Identifier:
        """The model as this spec describes it, loaded in this process."""
        import cv2

        from gemid.vision.pipeline import Identifier

        # photos run in parallel (threads or worker processes); OpenCV's own threads inside each one would only
        # oversubscribe the cores (measured: 2 workers x 2 photos x OpenCV threads tripled the analysis time)
        cv2.setNumThreads(self.threads)
        return Identifier(self.bundle_dir, variant=self.variant, threads=self.threads, top_k=self.top_k,
                          max_bytes=self.max_bytes, max_pixels=self.max_pixels, load_model=load_model)


class WorkersUnavailable(RuntimeError):
    """The workers could not start (the model did not load, or a worker ended while starting)."""


# --- in a worker process ----------------------------------------------------------------------------------

_identifier: Identifier | None = None  # set once per worker process by _init, nowhere else
_init_error: str | None = None  # why _init could not load the model, for the parent to say


def _init(spec: ModelSpec) -> None:
    """Load the model once per worker. A failure is kept for `_status` to report, not raised: the pool would
    print its traceback on the console and leave only a BrokenProcessPool to the parent."""
    global _identifier, _init_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops its workers
    try:
        if spec.console:
            from gemid.console import worker_console

            worker_console(spec.debug)
        _identifier = spec.load()
    except Exception as exc:
        _init_error = f"{type(exc).__name__}: {exc}"


def _status(pause: float) -> tuple[int, str | None]:
    """(this worker's pid, None when it holds the model, else why not)."""
    time.sleep(pause)  # long enough that every worker, once started, takes one of the start-up calls
    return os.getpid(), _init_error if _identifier is None else None


def in_worker() -> Identifier:
    """The identifier of the worker process this task runs in."""
    if _identifier is None:
        raise RuntimeError("this runs only in an analysis worker process")
    return _identifier


# --- in the parent ----------------------------------------------------------------------------------------


class WorkerPool:
    """`processes` spawned workers, each holding the model of `spec`."""

    def __init__(self, spec: ModelSpec, processes: int) -> None:
        self.spec = spec
        self.processes = processes
        self.executor = self._new()
        self._pids: list[int] = []

    def _new(self) -> ProcessPoolExecutor:
        # spawn, never fork: a forked copy of a process running threads (ONNX Runtime, an event loop) can hang
        return ProcessPoolExecutor(self.processes, mp_context=get_context("spawn"), initializer=_init,
                                   initargs=(self.spec,))

    def start(self, timeout: float = WARM_UP_SECONDS) -> list[int]:
        """Start every worker and load its model now; their pids. Raises WorkersUnavailable with the reason."""
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while len(seen) < self.processes:
            if time.monotonic() > deadline:
                raise WorkersUnavailable(f"only {len(seen)} of {self.processes} analysis workers started "
                                         f"in {timeout:.0f} s")
            try:
                answers = [f.result() for f in [self.executor.submit(_status, 0.05) for _ in range(self.processes)]]
            except BrokenProcessPool as exc:
                raise WorkersUnavailable("a worker process ended while starting") from exc
            problems = [problem for _, problem in answers if problem]
            if problems:
                raise WorkersUnavailable(problems[0])
            seen.update(pid for pid, _ in answers)
        self._pids = sorted(seen)  # a pool never replaces a worker by itself: a lost one breaks it (see replace)
        return list(self._pids)

    def pids(self) -> list[int]:
        """The worker processes' ids, as they answered at start (for diagnostics and tests)."""
        return list(self._pids)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.executor.submit(fn, *args)

    def replace(self) -> None:
        """Fresh workers in place of a broken pool (a worker crashed or was stopped by its watchdog)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._new()

    def shutdown(self, wait: bool = True) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=True)
