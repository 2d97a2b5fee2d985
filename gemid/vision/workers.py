"""Photos analysed in worker processes: the one home of "which model, how many threads" and of the pool.

Both `gemid identify` with a parcel (gemid.vision.parcel) and the service (gemid.serve.analysis) run the
pipeline in worker processes, because the pixel stages, the test guidance and the report are partly plain
Python, which holds the interpreter lock: photos analysed in threads of one process wait on each other.
Each worker loads its own copy of the model once, with `ModelSpec.threads` threads for ONNX Runtime and
OpenCV, so that the workers together use the cores without oversubscribing them.

What lives here, shared by both callers:
- `ModelSpec`: the bundle, variant, threads and limits a worker loads (the service derives it from its
  settings, the CLI from its flags);
- `WorkerPool`: `processes` spawned workers holding the model, each in an executor of its own and given one
  task at a time, a start-up check that every worker loaded it (a failure is reported in one line, never
  as the pool's traceback);
- `in_worker()`: the identifier of the worker process a task runs in.

One executor per worker, not one pool of N: when a photo crashes its worker (a decoder crash) or hangs it
(the service's watchdog then ends the worker), a shared ProcessPoolExecutor fails *every* task in flight,
and an innocent photo beside the bad one was refused ("stopped twice") while a parcel fell back to one photo
at a time. Here only the task of the worker that died fails (`BrokenProcessPool`, so the caller knows which
photo it was); that worker alone is replaced, warmed up, and the others never stop.

A worker ends when the process that started it ends, even by `kill -9`: it watches the pipe its parent
holds open (multiprocessing's parent sentinel), which closes when the parent dies however it dies.
Without this the workers, blocked reading their task queue, lived on under PID 1 with their models.

Crash recovery beyond that differs by caller and stays with it: a parcel re-runs a lost chunk photo by photo,
the service retries a photo once, in case its worker died of something else (killed, out of memory).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import wait as wait_for
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemid.vision.bundle import DEFAULT_BUNDLE_DIR
from gemid.vision.classify import MIN_TOP_K
from gemid.vision.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from gemid.vision.pipeline import Identifier

log = logging.getLogger(__name__)

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
        limit_blas(self.threads)
        return Identifier(self.bundle_dir, variant=self.variant, threads=self.threads, top_k=self.top_k,
                          max_bytes=self.max_bytes, max_pixels=self.max_pixels, load_model=load_model)


def limit_blas(threads: int) -> None:
    """numpy's BLAS (OpenBLAS) to at most `threads` threads in this process. The graders' small matrix
    products (colour conversions of a stone's pixels, least squares on a few thousand) gain nothing from
    threads, and with the machine busy (the service's workers side by side) OpenBLAS's threads wait on each
    other: colour 122 -> 76 ms and the stone area 19 -> 7 ms per photo with one thread on a 2-core machine
    at load ~17, 40x on a bare 60,000 x 3 product (issue 33)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an install without it keeps OpenBLAS's own choice
        return
    threadpool_limits(limits=max(1, int(threads)), user_api="blas")


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
    end_with_parent()
    try:
        if spec.console:
            from gemid.console import worker_console

            worker_console(spec.debug)
        _identifier = spec.load()
    except Exception as exc:
        _init_error = f"{type(exc).__name__}: {exc}"


def end_with_parent() -> None:
    """End this process as soon as its parent has ended (even by kill -9): a daemon thread waits on the
    parent's sentinel, a pipe whose other end only the parent holds, so it reads end-of-file then."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait_for([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="gemid-parent-watch", daemon=True).start()


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


def _alive(executor: ProcessPoolExecutor) -> bool:
    """Whether the executor's worker process still runs. The executor notices a dead worker only when its
    management thread wakes up; a task given to it before then would fail as if it had killed the worker.
    (`_processes` is the executor's own record; without it, assume alive and let the task find out.)"""
    processes = getattr(executor, "_processes", None) or {}
    return all(p.is_alive() for p in list(processes.values()))


class WorkerPool:
    """`processes` spawned workers, each holding the model of `spec`, each in a single-process executor of its
    own that is given one task at a time (see the module's text); tasks wait in one queue, first come first
    served. A task whose worker died fails with BrokenProcessPool; the others carry on."""

    def __init__(self, spec: ModelSpec, processes: int) -> None:
        self.spec = spec
        self.processes = processes
        self._lock = threading.RLock()
        self._slots: list[ProcessPoolExecutor] = [self._new() for _ in range(processes)]
        self._pids: list[int | None] = [None] * processes
        self._idle: deque[int] = deque(range(processes))
        self._queue: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._dead: set[int] = set()  # slots whose fresh worker could not start: tried again on the next task
        self._closed = False

    def _new(self) -> ProcessPoolExecutor:
        # spawn, never fork: a forked copy of a process running threads (ONNX Runtime, an event loop) can hang
        return ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_init, initargs=(self.spec,))

    def start(self, timeout: float = WARM_UP_SECONDS) -> list[int]:
        """Start every worker and load its model now; their pids. Raises WorkersUnavailable with the reason."""
        with self._lock:
            checks = [executor.submit(_status, 0.0) for executor in self._slots]
        deadline = time.monotonic() + timeout
        for i, check in enumerate(checks):
            try:
                pid, problem = check.result(timeout=max(0.0, deadline - time.monotonic()))
            except BrokenProcessPool as exc:
                raise WorkersUnavailable("a worker process ended while starting") from exc
            except TimeoutError as exc:
                raise WorkersUnavailable(f"only {i} of {self.processes} analysis workers started "
                                         f"in {timeout:.0f} s") from exc
            if problem:
                raise WorkersUnavailable(problem)
            self._pids[i] = pid
        return self.pids()

    def pids(self) -> list[int]:
        """The worker processes' ids, as each answered when it started (for diagnostics and tests)."""
        with self._lock:
            return sorted(pid for pid in self._pids if pid is not None)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `fn(*args)` in the next free worker. The future fails with BrokenProcessPool when that worker
        died while running it (the task's doing, or not: the caller decides whether to try again)."""
        outer: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            for i in sorted(self._dead):  # a worker that could not restart gets another try, not a dead slot
                self._dead.discard(i)
                self._slots[i].shutdown(wait=False, cancel_futures=True)
                self._start_slot(i)
            self._queue.append((outer, fn, args))
            self._dispatch()
        return outer

    def _dispatch(self) -> None:
        """Give queued tasks to idle workers (under the lock)."""
        while self._idle and self._queue and not self._closed:
            outer, fn, args = self._queue[0]
            if outer.cancelled():  # cancelled while it waited
                self._queue.popleft()
                continue
            i = self._idle.popleft()
            executor = self._slots[i]
            if not _alive(executor):  # killed while idle: replace it before a photo is blamed for its death
                self._replace(i, executor)
                continue
            try:
                inner = executor.submit(fn, *args)
            except (BrokenProcessPool, RuntimeError):  # the worker died while idle (killed): not the task's doing
                self._replace(i, executor)
                continue
            self._queue.popleft()
            outer.set_running_or_notify_cancel()
            inner.add_done_callback(lambda done, i=i, ex=executor, outer=outer: self._finished(i, ex, outer, done))

    def _finished(self, i: int, executor: ProcessPoolExecutor, outer: Future[Any], inner: Future[Any]) -> None:
        exc = inner.exception() if not inner.cancelled() else BrokenProcessPool("the worker pool was shut down")
        with self._lock:
            if isinstance(exc, BrokenProcessPool):
                self._replace(i, executor)
            elif self._slots[i] is executor:
                self._idle.append(i)
            self._dispatch()
        if outer.cancelled():
            return
        if exc is not None:
            outer.set_exception(exc)
        else:
            outer.set_result(inner.result())

    def _replace(self, i: int, broken: ProcessPoolExecutor) -> None:
        """A fresh worker in slot `i` in place of `broken` (under the lock); idle again once it has loaded the
        model, so no task waits on its start-up while another worker is free."""
        if self._closed or self._slots[i] is not broken:
            return
        broken.shutdown(wait=False, cancel_futures=True)
        log.warning("analysis worker %s stopped; starting a fresh one", self._pids[i])
        self._start_slot(i)

    def _start_slot(self, i: int) -> None:
        """A fresh worker in slot `i` (under the lock), idle once it has loaded the model."""
        fresh = self._slots[i] = self._new()
        self._pids[i] = None
        try:
            warm = fresh.submit(_status, 0.0)
        except RuntimeError as exc:  # a pool that cannot even take a task
            log.exception("could not start a fresh analysis worker")
            self._out_of_service(i, exc)
            return
        warm.add_done_callback(lambda done: self._warmed(i, fresh, done))

    def _out_of_service(self, i: int, problem: object) -> None:
        """Slot `i` has no worker until the next task tries again; with no worker at all, the waiting tasks
        fail now (WorkersUnavailable) instead of waiting for ever."""
        self._dead.add(i)
        if not self._idle and all(pid is None for pid in self._pids):
            while self._queue:
                outer, _fn, _args = self._queue.popleft()
                if outer.set_running_or_notify_cancel():
                    outer.set_exception(WorkersUnavailable(f"no analysis worker could restart: {problem}"))

    def _warmed(self, i: int, fresh: ProcessPoolExecutor, done: Future[Any]) -> None:
        with self._lock:
            if self._closed or self._slots[i] is not fresh:
                return
            problem = None if done.cancelled() else done.exception()
            if problem is None:
                pid, why = done.result()
                if why is None:
                    self._pids[i] = pid
                    self._idle.append(i)
                    self._dispatch()
                    return
                problem = why
            log.error("a fresh analysis worker could not start: %s", problem)
            self._out_of_service(i, problem)

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
            slots = list(self._slots)
            queued = list(self._queue)
            self._queue.clear()
        for outer, _fn, _args in queued:
            outer.cancel()
        for executor in slots:
            executor.shutdown(wait=wait, cancel_futures=True)
