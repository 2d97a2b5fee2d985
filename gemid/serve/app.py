"""The app factory. `create_app(settings)` builds a self-contained service: everything it holds lives on
`app.state` (settings, store, images, identifier, analysis, metrics, limiter), nothing in module globals,
so tests can run several apps side by side and uvicorn can build one per worker (`--factory`). The routes
live in gemid.serve.routes, one module per resource; what they take from `app.state` comes through
gemid.serve.deps.

Start-up (lifespan): create the data directory, apply the database migrations, open the signing key
(gemid.serve.keys: made at first start; a replica without the shared key refuses), load the model once and
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
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from gemid import __version__
from gemid.serve.access import AccessMiddleware, document_access
from gemid.serve.analysis import Analysis, ProcessAnalysis, ThreadAnalysis, load_identifier
from gemid.serve.audit import ANCHOR_FILE, AuditWriter, Sealing
from gemid.serve.data_lock import hold_shared
from gemid.serve.errors import install_error_handlers
from gemid.serve.keys import open_signer
from gemid.serve.limits import BodyLimitMiddleware, InFlightMiddleware
from gemid.serve.metrics import MetricsMiddleware, ServiceMetrics
from gemid.serve.photos import open_images
from gemid.serve.routes import ROUTERS, confirm
from gemid.serve.security import allowed_hosts
from gemid.serve.settings import Settings
from gemid.serve.shadow import Shadow
from gemid.serve.store import ReportStore
from gemid.serve.uploads import clear_spool

if TYPE_CHECKING:
    from gemid.vision.pipeline import Identifier

log = logging.getLogger(__name__)

MAX_JSON_BODY = 64 * 1024  # readings and the like, never photos (those go to /v1/identify)

DESCRIPTION = """Preliminary gemstone identification from photos, with stored, revisable reports.

Every answer is preliminary: confirm with standard gemmological tests. Errors are JSON
`{"error": {"code", "message"}}`; per-photo refusals in `/v1/identify` are entries of `reports`."""


def _body_limits(settings: Settings):
    """The most a request may send: a parcel of photos to /v1/identify, a small JSON body elsewhere in /v1."""
    identify = settings.max_files * settings.max_bytes + 1024 * 1024  # photos + multipart overhead

    def limit_for(method: str, path: str) -> int | None:
        if method not in ("POST", "PUT", "PATCH"):
            return None
        if path.rstrip("/") == "/v1/identify":
            return identify
        if path.startswith("/v1/"):
            return MAX_JSON_BODY
        return None

    return limit_for


def create_app(settings: Settings | None = None, *, identifier: Identifier | None = None) -> FastAPI:
    """A new service. `identifier` lets a caller share an already loaded model between apps (its photos are
    then analysed in threads, whatever `settings.analysis` says)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        in_use = hold_shared(settings.data_dir)  # `gemid restore` refuses while it is held (gemid.serve.data_lock)
        left = await to_thread.run_sync(clear_spool, settings.spool_dir)
        if left:
            log.info("removed %d upload(s) left half-received by an earlier run", left)
        store = await to_thread.run_sync(ReportStore.open, settings.database_url)
        analysis: Analysis | None = None
        shadow: Shadow | None = None
        audit: AuditWriter | None = None
        try:
            store.signer = await to_thread.run_sync(open_signer, settings, store.engine)
            audit = AuditWriter(store.engine, Sealing(store.signer, settings.data_dir / ANCHOR_FILE))
            await audit.start()
            app.state.audit = audit
            in_threads = identifier is not None or settings.analysis == "threads"
            # with worker processes the server only reads the bundle and re-ranks: no model session of its own
            loaded = identifier or await to_thread.run_sync(
                functools.partial(load_identifier, settings, load_model=in_threads))
            if in_threads:
                analysis = ThreadAnalysis(loaded, app.state.limiter)
            else:
                analysis = ProcessAnalysis(settings, settings.inference_concurrency)
            await analysis.start()
            if settings.shadow_bundle is not None:
                shadow = Shadow(settings, store, app.state.metrics, in_threads=in_threads)
                await shadow.start()
                app.state.shadow = shadow
            app.state.analysis = analysis
            app.state.store = store
            images = await to_thread.run_sync(open_images, settings, store.engine)
            app.state.metrics.store_bytes.set(await to_thread.run_sync(images.used))
            app.state.metrics.store_max_bytes.set(settings.max_store_bytes or 0)
            app.state.images = images
            app.state.identifier = loaded
            bundle = loaded.bundle
            app.state.metrics.set_model(bundle.name, bundle.version, settings.model_variant)
            log.info("gemid ready: model %s %s (%s), data in %s", bundle.name, bundle.version,
                     settings.model_variant, settings.data_dir)
            yield
        finally:  # from here on every route that needs one of these answers 503 not_ready (gemid.serve.deps)
            app.state.identifier = None
            app.state.analysis = None
            app.state.store = None
            app.state.images = None
            if analysis is not None:
                await analysis.close()
            if shadow is not None:
                app.state.shadow = None
                await shadow.close()
            if audit is not None:
                await audit.close()
            app.state.audit = None
            store.close()
            in_use.close()

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
    app.state.audit = None
    app.state.allowed_hosts = allowed_hosts(settings.allowed_hosts, settings.listen_host, settings.public_url)

    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit_for=_body_limits(settings), timeout=settings.body_timeout)
    app.add_middleware(InFlightMiddleware, limit=settings.max_in_flight, on_refused=app.state.metrics.busy.inc)
    # outermost but the metrics: access is decided (and headers added) before anything reads the request
    app.add_middleware(AccessMiddleware, service=app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(confirm.router)
    document_access(app)
    return app
