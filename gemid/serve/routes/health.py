"""Probes and metrics for whoever runs the service: /healthz (the process answers), /readyz (the model is
loaded, the database answers and the photo store can be written: send traffic), /metrics (Prometheus).

/readyz gives the same `503 not_ready` as any route that needs a part the service does not have yet
(gemid.serve.deps), saying which part is missing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gemid.serve.deps import MetricsDep, NotReady, database_schema
from gemid.serve.drift import load_reference, window_drift
from gemid.serve.errors import error_responses
from gemid.serve.metrics import ServiceMetrics

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The model is loaded, the database answers and the store can be written",
            responses=error_responses(503))
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    if state.identifier is None:
        raise NotReady("the model is not loaded")
    schema = await database_schema(state.store)
    problem = await to_thread.run_sync(state.images.write_problem, state.settings.max_bytes)
    if problem:
        raise NotReady(f"the photo store cannot be written: {problem}")
    bundle = state.identifier.bundle
    return JSONResponse({"status": "ready", "schema": schema,
                         "model": {"name": bundle.name, "version": bundle.version,
                                   "variant": state.settings.model_variant}})


DRIFT_EVERY = 60.0  # seconds between two drift computations for /metrics (a scrape every 15 s reads the cache)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, metrics: MetricsDep) -> Response:
    await _refresh_drift(request.app.state, metrics)
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _refresh_drift(state: Any, metrics: ServiceMetrics) -> None:
    """The drift gauges: the last 7 days against the training photos, at most once a minute; a store that is
    not open yet, or a reference that cannot be read, leaves them as they were (logged), never fails a scrape."""
    now = time.monotonic()
    store = state.store
    if store is None or now - getattr(state, "drift_checked", -DRIFT_EVERY) < DRIFT_EVERY:
        return
    state.drift_checked = now
    try:
        if getattr(state, "drift_reference", None) is None:
            state.drift_reference = await to_thread.run_sync(load_reference, state.settings.drift_reference)
        result = await to_thread.run_sync(window_drift, store, state.drift_reference)
    except Exception:
        log.exception("drift for /metrics could not be computed")
        return
    metrics.drift_photos.set(result["photos"])
    for name, s in result["stats"].items():
        metrics.drift_psi.labels(name).set(s["psi"] if s["psi"] is not None else 0.0)
        metrics.drift_moved.labels(name).set(1.0 if s["moved"] else 0.0)
