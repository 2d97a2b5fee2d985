"""Shadow mode: a candidate bundle (GEMID_SHADOW_BUNDLE) answers every stored photo too, and nobody sees it.

A developer sees the candidate on real desk photos before promoting it: `gemid field-report` compares its
top-1 with the served model's on the confirmed reports, and counts how often the two agree on all of them.

It must never cost the technician anything, so it runs after the report is stored and answered, on the
stored photo, in a process of its own at the lowest CPU priority (one worker of gemid.vision.workers holding
the candidate; a thread when the service analyses in threads), one photo at a time. At most GEMID_SHADOW_QUEUE photos wait for it;
past that a photo is skipped and counted (`gemid_shadow_total{outcome="skipped"}`) rather than queued, so
under load the shadow samples the traffic instead of growing a backlog. A failure of the candidate (it
cannot read a photo, its worker dies) is logged and counted, never seen by the client. Its answers go to the
`shadow_answers` table, not into any report revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyio import CapacityLimiter, to_thread

from gemid.vision.workers import ModelSpec, WorkerPool, in_worker

if TYPE_CHECKING:
    from gemid.serve.metrics import ServiceMetrics
    from gemid.serve.settings import Settings
    from gemid.serve.store import ReportStore
    from gemid.vision.pipeline import Identifier


def screen(identifier: Identifier, photo: Path) -> list[dict[str, Any]]:
    """The candidate's species screen of one photo, a stone at a time as the service reads it: each stone's
    decision, top-1 label and its probability, and the seconds the photo took."""
    start = time.perf_counter()
    reports = identifier.identify_stones(photo, grade=False)
    seconds = time.perf_counter() - start
    return [{"decision": r.species.decision, "label": r.species.top[0].label if r.species.top else "",
             "probability": r.species.top[0].probability if r.species.top else 0.0, "seconds": seconds}
            for r in reports]


_niced = False


def screen_in_worker(photo: Path) -> list[dict[str, Any]]:
    """In the shadow's own worker process: the first photo lowers the process to the lowest CPU priority, so
    the served analysis workers get the cores first and the shadow takes what they leave (its bounded queue
    then skips the rest)."""
    global _niced
    if not _niced and hasattr(os, "nice"):
        with contextlib.suppress(OSError):  # not allowed here: the queue bound still holds
            os.nice(19)
        _niced = True
    return screen(in_worker(), photo)


log = logging.getLogger(__name__)


class Shadow:
    """The candidate model and its bounded queue; `submit` never waits."""

    def __init__(self, settings: Settings, store: ReportStore, metrics: ServiceMetrics, *, in_threads: bool) -> None:
        assert settings.shadow_bundle is not None
        self.spec = ModelSpec(bundle_dir=settings.shadow_bundle, variant=settings.shadow_variant, threads=1,
                              max_bytes=settings.max_bytes, max_pixels=settings.max_pixels)
        self.store = store
        self.metrics = metrics
        self.queue = settings.shadow_queue
        self.in_threads = in_threads
        self._pool: WorkerPool | None = None
        self._identifier: Identifier | None = None
        self._limiter = CapacityLimiter(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.name = ""

    async def start(self) -> None:
        """Load the candidate (verified like any bundle): a broken candidate stops start-up with its reason."""
        if self.in_threads:
            self._identifier = await to_thread.run_sync(self.spec.load)
            info = self._identifier.model_info
        else:
            self._pool = WorkerPool(self.spec, 1)
            await to_thread.run_sync(self._pool.start)
            info = (await to_thread.run_sync(lambda: self.spec.load(load_model=False))).model_info
        self.name = f"{info.name} {info.version} {info.variant}"[:200]
        log.info("shadow mode: %s runs beside the served model", self.name)

    def submit(self, served: list[tuple[str, str]], created_at: datetime, photo: Path) -> bool:
        """Queue the candidate's screen of a stored photo whose stones the served model answered as `served`
        ((report id, top-1 label) in reading order); False (and counted) when the queue is full."""
        if len(self._tasks) >= self.queue:
            self.metrics.shadow.labels("skipped").inc(len(served))
            return False
        task = asyncio.get_running_loop().create_task(self._run(served, created_at, photo))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, served: list[tuple[str, str]], created_at: datetime, photo: Path) -> None:
        try:
            if self._identifier is not None:
                answers = await to_thread.run_sync(screen, self._identifier, photo, limiter=self._limiter)
            else:
                assert self._pool is not None
                answers = await asyncio.wrap_future(self._pool.submit(screen_in_worker, photo))
            if len(answers) != len(served):  # the candidate split the photo otherwise: stones cannot be paired
                raise ValueError(f"the candidate found {len(answers)} stones, the served model {len(served)}")
            for (report_id, served_label), answer in zip(served, answers, strict=True):
                row = {"report_id": report_id, "created_at": created_at, "bundle": self.name,
                       "served_label": served_label[:100], **answer, "label": answer["label"][:100]}
                await to_thread.run_sync(self.store.add_shadow, row)
                agreed = answer["label"].lower() == served_label.lower()
                self.metrics.shadow.labels("agreed" if agreed else "disagreed").inc()
        except asyncio.CancelledError:
            raise
        except Exception:  # the candidate's trouble is the developer's, never the desk's
            log.exception("shadow model could not answer the photo of report %s", served[0][0])
            self.metrics.shadow.labels("failed").inc(len(served))

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for the queued photos (tests, and a graceful stop)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._pool is not None:
            await to_thread.run_sync(self._pool.shutdown)
