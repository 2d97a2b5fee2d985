"""The worker pool never leaves a task waiting for ever: a worker that cannot restart fails the tasks that
would wait on it, and the next task tries the restart again."""

from __future__ import annotations

import os
import shutil
import signal
import time
from concurrent.futures.process import BrokenProcessPool

import pytest
from bundle_fixture import build_bundle

from gemid.vision.workers import ModelSpec, WorkerPool, WorkersUnavailable


def _pid() -> int:
    return os.getpid()


def test_a_worker_that_cannot_restart_fails_its_tasks_then_comes_back(tmp_path):
    bundle = build_bundle(tmp_path / "b", int8=False)
    pool = WorkerPool(ModelSpec(bundle_dir=bundle, threads=1), 1)
    try:
        (pid,) = pool.start()
        hidden = tmp_path / "hidden"
        shutil.move(bundle, hidden)  # the fresh worker will not find its model
        os.kill(pid, signal.SIGKILL)
        with pytest.raises((BrokenProcessPool, WorkersUnavailable)):  # its death, or the restart's refusal
            pool.submit(_pid).result(timeout=60)
        deadline = time.monotonic() + 60
        while pool.pids() == [] and time.monotonic() < deadline and not pool._dead:
            time.sleep(0.1)
        with pytest.raises(WorkersUnavailable):
            pool.submit(_pid).result(timeout=60)  # before: waited for ever in the queue
        shutil.move(hidden, bundle)
        assert pool.submit(_pid).result(timeout=60) not in (pid, os.getpid())  # a fresh worker again
    finally:
        pool.shutdown()
