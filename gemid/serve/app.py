"""The app factory. `create_app(settings)` builds a self-contained service: everything it holds lives on
`app.state` (settings, store, images, identifier, analysis, metrics, limiter), nothing in module globals,
so tests can run several apps side by side and uvicorn can build one per worker (`--factory`).

Start-up (lifespan): create the data directory, apply the database migrations, load the model once and
start the analysis workers (gemid.serve.analysis), each with its own copy.
A missing or altered model bundle stops start-up with a clear message rather than serving errors.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST

from gemid import __version__
from gemid.serve import web
from gemid.serve.analysis import Analysis, ProcessAnalysis, ThreadAnalysis, load_identifier
from gemid.serve.errors import error_response, install_error_handlers
from gemid.serve.images import ImageStore
from gemid.serve.limits import BodyLimitMiddleware
from gemid.serve.metrics import MetricsMiddleware, ServiceMetrics
from gemid.serve.settings import Settings
from gemid.serve.store import ReportStore, schema_revision

if TYPE_CHECKING:
    from gemid.vision.pipeline import Identifier

log = logging.getLogger(__name__)

DESCRIPTION = """Preliminary gemstone identification from photos, with stored, revisable reports.

Every answer is preliminary: confirm with standard gemmological tests. Errors are JSON
`{"error": {"code", "message"}}`; per-photo refusals in `/v1/identify` are entries of `reports`."""


def _body_limits(settings: Settings):
    identify = settings.max_files * settings.max_bytes + 1024 * 1024  # photos + multipart overhead

    def limit_for(method: str, path: str) -> int | None:
        if method not in ("POST", "PUT", "PATCH"):
            return None
        if path.rstrip("/") == "/v1/identify":
            return identify
        if path.startswith("/v1/"):
            return 64 * 1024
        return None

    return limit_for


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="The model is loaded and the database answers",
                responses={503: {"description": "not ready"}})
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        if state.identifier is None:
            return error_response(503, "not_ready", "the model is not loaded")
        try:
            schema = await to_thread.run_sync(schema_revision, state.store.engine)
        except Exception as exc:  # any database failure means not ready; say which
            log.warning("readiness: database unreachable: %s", exc)
            return error_response(503, "not_ready", f"the database is unreachable ({type(exc).__name__})")
        bundle = state.identifier.bundle
        return JSONResponse({"status": "ready", "schema": schema,
                             "model": {"name": bundle.name, "version": bundle.version,
                                       "variant": state.settings.model_variant}})

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(settings: Settings | None = None, *, identifier: Identifier | None = None) -> FastAPI:
    """A new service. `identifier` lets a caller share an already loaded model between apps (its photos are
    then analysed in threads, whatever `settings.analysis` says)."""
    from gemid.serve.api import build_router

    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await to_thread.run_sync(ReportStore.open, settings.database_url)
        analysis: Analysis | None = None
        try:
            in_threads = identifier is not None or settings.analysis == "threads"
            # with worker processes the server only reads the bundle and re-ranks: no model session of its own
            loaded = identifier or await to_thread.run_sync(
                functools.partial(load_identifier, settings, load_model=in_threads))
            if in_threads:
                analysis = ThreadAnalysis(loaded, app.state.limiter)
            else:
                analysis = ProcessAnalysis(settings, settings.inference_concurrency)
            await analysis.start()
            app.state.analysis = analysis
            app.state.store = store
            app.state.images = ImageStore(settings.images_dir)
            app.state.identifier = loaded
            bundle = loaded.bundle
            app.state.metrics.set_model(bundle.name, bundle.version, settings.model_variant)
            log.info("gemid ready: model %s %s (%s), data in %s", bundle.name, bundle.version,
                     settings.model_variant, settings.data_dir)
            yield
        finally:
            app.state.identifier = None
            app.state.analysis = None
            if analysis is not None:
                await analysis.close()
            store.close()

    # FastAPIOffline: a FastAPI whose /docs and /redoc load their scripts from this app, not a CDN
    app = FastAPIOffline(title="gemid", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                         static_url="/docs-assets")
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    app.state.limiter = CapacityLimiter(settings.inference_concurrency)
    app.state.identifier = None
    app.state.analysis = None
    app.state.store = None
    app.state.images = None

    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit_for=_body_limits(settings))
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(_health_router())
    app.include_router(build_router())
    app.include_router(web.router)  # the technician page at /
    return app
