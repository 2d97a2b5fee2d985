"""GET /v1/field: the learning loop's figures for the field page (#/field) and any other client: field
accuracy of the confirmed reports of a period (gemid.serve.field, shadow comparison included) and the drift
of the last weeks against the training photos (gemid.serve.drift), the same data `gemid field-report --json`
and `gemid drift --json` print.
"""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from sqlalchemy.exc import SQLAlchemyError

from gemid.messages import ISO_WHEN
from gemid.serve.deps import StoreDep
from gemid.serve.drift import drift_report, load_reference
from gemid.serve.errors import ApiError, error_responses, store_failure
from gemid.serve.field import confirmed_rows, field_report, shadow_agreement
from gemid.serve.routes.reports import _parse_when

router = APIRouter(prefix="/v1", tags=["learning loop"])


@router.get("/field", responses=error_responses(422, 503),
            summary="Field accuracy of confirmed reports, shadow model and drift of the capture statistics")
async def field(
    request: Request,
    store: StoreDep,
    since: Annotated[str | None, Query(pattern=ISO_WHEN, description="ISO date or date-time, inclusive")] = None,
    until: Annotated[str | None, Query(pattern=ISO_WHEN,
                                       description="ISO date (that whole day included) or date-time")] = None,
    weeks: Annotated[int, Query(ge=1, le=104, description="ISO weeks of drift, the current one included")] = 8,
) -> dict[str, Any]:
    """`accuracy`: as `gemid field-report --json` (photographed in since..until); `drift`: as `gemid drift
    --json` (the last `weeks` weeks, whatever the period)."""
    created_from = _parse_when(since, "since", end=False)
    created_to = _parse_when(until, "until", end=True)
    state = request.app.state

    def compute() -> dict[str, Any]:
        if getattr(state, "drift_reference", None) is None:
            state.drift_reference = load_reference(state.settings.drift_reference)
        rows = confirmed_rows(store, created_from=created_from, created_to=created_to)
        shadow = shadow_agreement(store, created_from=created_from, created_to=created_to)
        return {"accuracy": field_report(rows, since=since, until=until, shadow=shadow),
                "drift": drift_report(store, state.drift_reference, weeks=weeks)}

    try:
        return await to_thread.run_sync(compute)
    except SQLAlchemyError as exc:
        raise store_failure(exc) from exc
    except (OSError, ValueError) as exc:  # the drift reference file is missing or not JSON
        raise ApiError(503, "drift_reference_unavailable",
                       f"the drift reference cannot be read ({type(exc).__name__}); see GEMID_DRIFT_REFERENCE") from exc
