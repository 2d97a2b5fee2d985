"""What the routes share: the parts of the service they depend on, the report id they all take, and the one
"not ready" answer.

Everything lives on `app.state` (set by the app factory, `gemid.serve.app`, and its start-up), nothing in
module globals, so several apps can run side by side. The store, the photos, the model and the analysis
exist only between start-up and shutdown; a route that needs one of them outside that time gets
`503 not_ready` from its dependency, the same answer `/readyz` gives, whichever part is missing.

The dependencies are `async` although they only read an attribute: FastAPI runs a plain `def` dependency in
its thread pool, and /v1/identify's six thread round trips cost the server process more CPU than its own
code did.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Annotated, Any

from anyio import CapacityLimiter, to_thread
from fastapi import Depends, Path, Request

from gemid.report import IssuedBy
from gemid.serve.accounts import Principal
from gemid.serve.errors import ApiError
from gemid.serve.images import ImageStore
from gemid.serve.metrics import ServiceMetrics
from gemid.serve.settings import Settings
from gemid.serve.store import ReportStore, schema_revision

if TYPE_CHECKING:
    from gemid.serve.analysis import Analysis
    from gemid.vision.pipeline import Identifier

log = logging.getLogger(__name__)


class NotReady(ApiError):
    """503 `not_ready`: the service is starting or stopping, or a part it needs does not answer."""

    def __init__(self, message: str = "the service is starting; try again in a moment") -> None:
        super().__init__(503, "not_ready", message)


def _started(part: Any) -> Any:
    """A part that start-up sets (and shutdown clears); None outside that time is `NotReady`."""
    if part is None:
        raise NotReady()
    return part


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


async def get_limiter(request: Request) -> CapacityLimiter:
    return request.app.state.limiter


async def get_store(request: Request) -> ReportStore:
    return _started(request.app.state.store)


async def get_images(request: Request) -> ImageStore:
    return _started(request.app.state.images)


async def get_identifier(request: Request) -> Identifier:
    return _started(request.app.state.identifier)


async def get_analysis(request: Request) -> Analysis:
    return _started(request.app.state.analysis)


async def loaded_identifier(request: Request) -> Identifier | None:
    """The model when it is loaded, else None: for what can answer without it (the page's set-up)."""
    return request.app.state.identifier


async def database_schema(store: ReportStore) -> str | None:
    """The store's schema revision; `NotReady` saying why when the database does not answer."""
    try:
        return await to_thread.run_sync(schema_revision, store.engine)
    except Exception as exc:  # any database failure means not ready; say which
        log.warning("readiness: database unreachable: %s", exc)
        raise NotReady(f"the database is unreachable ({type(exc).__name__})") from exc


async def get_principal(request: Request) -> Principal | None:
    """Who sent the request (gemid.serve.access put it there); None on an open route."""
    return getattr(request.state, "principal", None)


def desk_scope(principal: Principal | None) -> tuple[str | None] | None:
    """A technician's view: only its desk's reports (a 1-tuple, as the desk may be None); others see all."""
    return (principal.desk,) if principal is not None and principal.desk_only else None


def issued_by(principal: Principal | None) -> IssuedBy | None:
    """What a new revision records of its maker."""
    return None if principal is None else IssuedBy(name=principal.name, desk=principal.desk)


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
LimiterDep = Annotated[CapacityLimiter, Depends(get_limiter)]
StoreDep = Annotated[ReportStore, Depends(get_store)]
ImagesDep = Annotated[ImageStore, Depends(get_images)]
IdentifierDep = Annotated["Identifier", Depends(get_identifier)]
AnalysisDep = Annotated["Analysis", Depends(get_analysis)]
LoadedIdentifierDep = Annotated["Identifier | None", Depends(loaded_identifier)]
PrincipalDep = Annotated["Principal | None", Depends(get_principal)]

# report ids are UUIDs; anything else (a NUL, a slash) is not one, and must not reach the database
REPORT_ID = r"^[A-Za-z0-9_-]{1,64}$"
ReportId = Annotated[str, Path(min_length=1, max_length=64, pattern=REPORT_ID,
                               description="the report_id of a stored report")]
# revisions are 32-bit columns (PostgreSQL's INTEGER) and no listing is that long either: larger numbers in a
# query are refused (422), not passed to the database to overflow there (500)
MAX_INT32 = 2**31 - 1


async def report_exists(store: ReportStore, report_id: str) -> bool:
    """Whether a report with this id is stored; an id that cannot be one is not asked of the database."""
    if not re.fullmatch(REPORT_ID, report_id):
        return False
    return await to_thread.run_sync(store.image_of, report_id) is not None
