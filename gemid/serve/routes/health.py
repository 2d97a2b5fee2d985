"""Probes and metrics for whoever runs the service: /healthz (the process answers), /readyz (the model is
loaded, the database answers and the photo store can be written: send traffic), /metrics (Prometheus).

/readyz gives the same `503 not_ready` as any route that needs a part the service does not have yet
(gemid.serve.deps), saying which part is missing.
"""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gemid.serve.deps import MetricsDep, NotReady, database_schema
from gemid.serve.errors import error_responses

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


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
