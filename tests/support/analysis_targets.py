"""Stand-ins for what analysis worker processes run (the service's `identify_in_worker`, a parcel's chunk runner).

A module of its own with nothing heavy at the top: a worker imports it on its first call, and importing
the service test support (FastAPI's TestClient, pytest) there would take longer than the timeouts tested.
"""

from __future__ import annotations

import os
import time


def crash_worker(*_args: object) -> None:
    """Kills its worker process, as a decoder crash on a crafted file would."""
    os._exit(70)


def hang_or_pass(data: bytes, filename: str | None, *_args: object):
    """Loops for ever on b"hang" (a decoder stuck on a crafted file), takes 3 s on b"slow" and 1.2 s on
    b"step", and otherwise answers at once: a refusal entry coded "done", so a test can tell which photos
    were answered."""
    from gemid.report import ErrorInfo, FileError
    from gemid.serve.analysis import Outcome

    if data == b"hang":
        while True:
            time.sleep(1)
    if data == b"slow":
        time.sleep(3)
    if data == b"step":
        time.sleep(1.2)
    return Outcome(FileError(file=filename, error=ErrorInfo(code="done", message="analysed by a stand-in")), 200, 0.0)


def parcel_crash_on_marker(items, request):
    """A parcel worker's chunk runner that dies, as on a decoder crash, when a file's name says "crash"."""
    from gemid.vision.parcel import _run

    if any("crash" in shown for shown, _path in items):
        os._exit(70)
    return _run(items, request)


def parcel_fail_on_marker(items, request):
    """A parcel worker's chunk runner whose batch fails (as a broken model would) when a file's name says "boom"."""
    from gemid.vision.parcel import _run

    if any("boom" in shown for shown, _path in items):
        raise RuntimeError("the model could not run this batch")
    return _run(items, request)


def parcel_init_fails(_spec) -> None:
    """A worker's start-up that cannot load its model, as `workers._init` records it."""
    import gemid.vision.workers as workers

    workers._init_error = "RuntimeError: no model in this worker"


def parcel_worker_pid(items, _request):
    """Answers each file with an entry naming the worker process that saw it, after a pause long enough
    that one worker cannot take every chunk."""
    from gemid.report import ErrorInfo, FileError

    time.sleep(0.2)
    return [[FileError(file=shown, error=ErrorInfo(code="pid", message=str(os.getpid())))] for shown, _ in items]
